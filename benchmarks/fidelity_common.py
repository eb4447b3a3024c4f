"""Shared pieces of the resumable fidelity experiments (issue 21): one training cell per
``rewardlab train`` run, a JSON cache of the trained models' scores, and the paired statistics
(per seed and pooled over seeds) that every comparison reports.

A cell is a directory under the work folder: one with ``summary.json`` is done and skipped,
one with checkpoints resumes from the last, one stopped before its first checkpoint starts over.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"


def run_main(main) -> None:
    """Run a benchmark's ``main()`` as rewardlab's commands run: bad input (a malformed data file,
    a committed record made on other pairs, both ``RewardlabError``) ends it with one line on
    stderr, naming the file and field, and exit status 2, without a traceback."""
    from rewardlab.errors import RewardlabError

    try:
        main()
    except RewardlabError as e:
        from rewardlab.cli.common import one_line

        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def write_config(work: Path, name: str, cfg: dict) -> Path:
    """``cfg`` as ``work/configs/NAME.yaml`` (rewritten each time: the same arguments give the same file)."""
    path = work / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a record whole or not at all (a kill mid-write leaves the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
    tmp.replace(path)


def train_cell(work: Path, name: str, cfg: dict) -> Path:
    """Train cell ``name`` (output ``work/NAME``) unless it is done; returns its directory."""
    out = work / name
    cfg = {**cfg, "output_dir": str(out)}
    cfg_path = write_config(work, name, cfg)
    if (out / "summary.json").is_file():
        return out
    ckpt = out / "checkpoints"
    resume = ckpt.is_dir() and any(ckpt.iterdir())
    again = [] if not out.exists() else ["--resume"] if resume else ["--overwrite"]
    print(f"training {name}{' (resuming)' if resume else ''}", flush=True)
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", str(cfg_path)] + again
    with (work / f"{name}.log").open("a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return out


def prompt_key(prompt) -> str:
    """A prompt as a dictionary key (a conversation as its JSON)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def suite_copy_without(target: Path, drop, data: Path = DATA) -> dict[str, int]:
    """The shared suite's data root without training rows: under ``target``, a copy of each file
    of ``data`` without the rows ``drop(file_name, row)`` marks (raw JSON lines, every field kept),
    and a link to each file that loses none. The shared suite holds the sets experiments train on,
    so a model evaluated on it must not meet its training prompts there. Returns the rows dropped
    per file."""
    target.mkdir(parents=True, exist_ok=True)
    dropped = {}
    for path in sorted(data.iterdir()):
        out = target / path.name
        if out.exists() or out.is_symlink():
            out.unlink()
        if path.suffix != ".jsonl":
            out.symlink_to(path)
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [line for line in lines if not drop(path.name, json.loads(line))]
        if len(keep) == len(lines):
            out.symlink_to(path)
        else:
            out.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            dropped[path.name] = len(lines) - len(keep)
    return dropped


class ScoreCache:
    """Reward differences d = r(chosen) − r(rejected) of trained cells on named tables, kept in one
    JSON file (``work/scores.json``, or ``path``) and written after every (cell, table), so a rerun
    scores nothing twice.

    With ``path`` under ``benchmarks/results`` the file is committed as cells finish, and
    :meth:`cell` trains a cell only when some of its tables lack scores: a machine replaced between
    sessions (its work folder gone) then loses at most the cell in progress. Each table's content
    is fingerprinted on first use, so a record made on other pairs is refused, not mixed in."""

    def __init__(self, work: Path, path: Path | None = None):
        self.work = Path(work)
        self.path = Path(path) if path is not None else self.work / "scores.json"
        self.data: dict = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _write(self) -> None:
        write_atomic(self.path, json.dumps(self.data))

    def _check(self, tables: dict) -> None:
        prints = self.data.setdefault("_tables", {})
        for k, t in tables.items():
            fp = table_fingerprint(t)
            if prints.setdefault(k, fp) != fp:
                from rewardlab.errors import DataError

                raise DataError(f"its scores were made on other pairs than this run's {k!r} table "
                                f"({len(t)} pairs); move the file away to score again",
                                file=str(self.path), field=f"_tables.{k}")

    def has(self, name: str, tables) -> bool:
        return all(k in self.data.get(name, {}) for k in tables)

    def diffs(self, cell_dir: Path, tables: dict, batch_size: int = 32) -> dict[str, np.ndarray]:
        from rewardlab.models.reward_model import RewardModel

        self._check(tables)
        have = self.data.setdefault(cell_dir.name, {})
        todo = [k for k in tables if k not in have]
        if todo:
            rm = RewardModel.from_pretrained(cell_dir / "model")
            for k in todo:
                print(f"scoring {cell_dir.name} on {k} ({len(tables[k])} pairs)", flush=True)
                s = rm.score_pairs(tables[k], batch_size=batch_size)
                have[k] = (np.asarray(s["reward_chosen"], float) - np.asarray(s["reward_rejected"], float)).tolist()
                self._write()
        return {k: np.asarray(have[k]) for k in tables}

    def cell(self, name: str, cfg: dict, tables: dict, batch_size: int = 32) -> dict[str, np.ndarray]:
        """The diffs of cell ``name`` on ``tables``, training it (``train_cell``) only when some
        table has no scores yet; a record made on other pairs stops it before it trains."""
        self._check(tables)
        if self.has(name, tables):
            return {k: np.asarray(self.data[name][k]) for k in tables}
        return self.diffs(train_cell(self.work, name, cfg), tables, batch_size)

    def extra(self, name: str, key: str, compute):
        """A cell's other recorded value (``compute()`` once, then kept beside its scores)."""
        have = self.data.setdefault(name, {})
        if key not in have:
            have[key] = compute()
            self._write()
        return have[key]


def table_fingerprint(table) -> str:
    """sha256 of a preference table's pairs (prompt, chosen, rejected, in order)."""
    import hashlib

    h = hashlib.sha256()
    for col in ("prompt", "chosen", "rejected"):
        for x in table[col]:
            h.update(json.dumps(x, sort_keys=True).encode())
            h.update(b"\x00")
    return h.hexdigest()


def correct(d: np.ndarray) -> np.ndarray:
    """1 where the chosen response scores higher (a tie counts as wrong, as in training accuracy)."""
    return (np.asarray(d) > 0).astype(int)


def t_interval(values, level: float = 0.95) -> dict:
    """Mean and t interval over seeds (nan bounds with one seed)."""
    from scipy import stats as st

    v = np.asarray(values, dtype=float)
    half = st.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"estimate": float(v.mean()), "low": float(v.mean() - half), "high": float(v.mean() + half),
            "method": "t interval over seeds"}


def paired_arms(acc: dict[str, dict[int, np.ndarray]], baseline: str, seeds: list[int],
                clusters=None) -> dict:
    """Every arm against ``baseline`` on the same test items, paired by seed.

    ``acc[arm][seed]``: 0/1 correctness per test item. Per seed: exact McNemar and a paired
    bootstrap (over ``clusters`` when given); Holm over all (arm, seed) McNemar tests. Pooled:
    the mean of the per-seed differences with a t interval over seeds, and a paired bootstrap of
    the seed-averaged correctness (items resampled, seeds fixed) whose p-values get Holm over
    the arms."""
    from rewardlab.eval import stats

    out: dict = {"baseline": baseline, "arms": {}}
    pvals, keys = [], []
    for arm in acc:
        if arm == baseline:
            continue
        rows = []
        for s in seeds:
            a, b = acc[arm][s], acc[baseline][s]
            m = stats.mcnemar_exact(a, b)
            d = stats.paired_bootstrap_difference(a, b, clusters=clusters, seed=s)
            rows.append({"seed": s, "arm": float(a.mean()), "baseline": float(b.mean()), "difference": d["estimate"],
                         "low": d["low"], "high": d["high"], "mcnemar_p": m["p_value"], "discordant": [m["b"], m["c"]]})
            pvals.append(m["p_value"])
            keys.append((arm, len(rows) - 1))
        mean_a = np.mean([acc[arm][s] for s in seeds], axis=0)
        mean_b = np.mean([acc[baseline][s] for s in seeds], axis=0)
        pooled = stats.paired_bootstrap_difference(mean_a, mean_b, clusters=clusters, seed=0)
        out["arms"][arm] = {"per_seed": rows, "accuracy": t_interval([r["arm"] for r in rows]),
                            "mean_difference": t_interval([r["difference"] for r in rows]),
                            "pooled_difference": {k: pooled[k] for k in ("estimate", "low", "high", "p_value", "method")}}
    out["baseline_accuracy"] = t_interval([float(acc[baseline][s].mean()) for s in seeds])
    if pvals:
        holm = stats.holm(pvals)
        for (arm, i), p, rej in zip(keys, holm["p_adjusted"], holm["reject"]):
            out["arms"][arm]["per_seed"][i].update(mcnemar_p_holm=p, reject=rej)
        arms = list(out["arms"])
        ph = stats.holm([out["arms"][a]["pooled_difference"]["p_value"] for a in arms])
        for a, p, rej in zip(arms, ph["p_adjusted"], ph["reject"]):
            out["arms"][a]["pooled_difference"].update(p_holm=p, reject=rej)
    return out


def fmt_ci(x: dict | None, digits: int = 3) -> str:
    """``0.612 [0.581, 0.640]`` from an ``{estimate, low, high}`` mapping."""
    if not x or x.get("estimate") is None:
        return "n/a"
    return f"{x['estimate']:.{digits}f} [{x['low']:.{digits}f}, {x['high']:.{digits}f}]"


def write_results(name: str, result: dict, markdown: str, results_dir: Path = RESULTS) -> None:
    """``results_dir/NAME.json`` and ``NAME.md``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results_dir / f"{name}.md").write_text(markdown)
    print(f"wrote {results_dir / name}.json and .md", flush=True)
