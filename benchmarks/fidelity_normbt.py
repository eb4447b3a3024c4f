"""Seed 000 (NormBT) in a setting that can test the paper's claim (FIDELITY.md 000, issue 21).

Design, fixed before the run:
- Backbone MiniLM, dropout off (the default now), max_length 512 (the bug is not cut off: 23 of
  656 HumanEvalPack pairs are identical after truncation at 512 vs 168 at 256).
- HumanEvalPack split **by problem** (``rewardlab.data.splits.HUMANEVALPACK_PROBLEM``: a problem's
  four languages on one side), half the problems for training, half for the test; plus HH-RLHF
  harmless pairs (train: up to ``--hh-train`` pairs of its prompt-hash training side; test: its
  validation side), so distant pairs (HH) and near pairs (one-token bugs) train together.
- Arms BT and NormBT (beta 0.9), ``--seeds`` paired seeds (same data order and initial head per
  seed across arms), ``--epochs`` epochs, lr 1e-4, batch 16; no model selection (the fixed last
  step is evaluated; the validation records are the test pairs, logged only).
- Primary: accuracy on the held-out code pairs, paired per seed (exact McNemar), pooled over
  seeds (the per-seed differences' mean with a t interval over seeds and a paired bootstrap over
  problems); Holm over the seeds' McNemar tests. Beside it: HH test accuracy, accuracy by quartile
  of the eval-mode distance ||h_c - h_r|| (the trained model's own), the logged mu and the spread
  of the NormBT weights (mu / distance) on the training pairs.
- Verdicts (FIDELITY.md): confirms if BT >= 0.60 on code and NormBT - BT >= +3 points, gain in the
  nearest quartiles, HH within +-1; refutes here if BT >= 0.60 and the upper 95% bound of the gain
  is < +2; inconclusive if BT stays at chance on code.

Power (written before the run): about 328 held-out code pairs. A seed's paired difference has SD
about sqrt(q / n) with q the discordant share (0.2-0.3 for MiniLM runs differing in one loss
term): 0.025-0.030. Averaged over 5 seeds the SD lies between 0.011 (seeds independent) and 0.028
(seeds perfectly correlated through the items), so the design detects a gain of 3.1-7.8 points at
80% power (2.8 SD): the paper's +5 points (RewardBench Reasoning) is detectable if the seeds'
differences are not strongly correlated; a +3 gain may be reported as inconclusive.

Resumable and checkpointed: each (arm, seed) is a ``rewardlab train`` run under ``--work``; a run
with ``summary.json`` is done, one with checkpoints resumes (``--resume``), and the analysis runs
when every cell is done. Run it niced in the background:

    nice -n 10 python benchmarks/fidelity_normbt.py --work runs/fidelity_normbt
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ARMS = {"bt": {"name": "bt"}, "normbt": {"name": "normbt", "beta": 0.9}}
# minilm: the design above. smollm2: SmolLM2-135M-Instruct fully fine-tuned (last-token pooling,
# its chat template; no dropout in its config), the "if time allows" arm, run only when
# benchmarks/normbt_probe.py shows it leaves chance on held-out code; lr 2e-5 as usual for a
# decoder's full fine-tuning. Give it its own --work.
BACKBONES = {"minilm": {"model": "minilm", "lr": 1e-4}, "smollm2": {"model": "smollm2-135m", "lr": 2e-5}}


def prepare(work: Path, hh_train: int) -> dict[str, str]:
    """The train and test files (written once under ``work``; the repository holds no data)."""
    from rewardlab.data import load_preferences
    from rewardlab.data.splits import HUMANEVALPACK_PROBLEM, group_keys

    paths = {k: work / "data" / f"{k}.jsonl" for k in ("train", "test_code", "test_hh")}
    if all(p.is_file() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}
    paths["train"].parent.mkdir(parents=True, exist_ok=True)
    code = load_preferences(DATA / "humanevalpack.jsonl")
    c_train, c_test = code.split(0.5, salt="fidelity-normbt", keys=group_keys(code, HUMANEVALPACK_PROBLEM))
    hh = load_preferences(DATA / "hh_rlhf_harmless.jsonl")
    h_train, h_test = hh.split(0.1, salt="rewardlab")
    pick = np.sort(np.random.default_rng(0).permutation(len(h_train))[:hh_train]).tolist()
    h_train = h_train.select(pick)
    from rewardlab.data.table import PreferenceTable

    PreferenceTable.concat([c_train, h_train]).write(paths["train"])
    c_test.write(paths["test_code"])
    h_test.write(paths["test_hh"])
    return {k: str(v) for k, v in paths.items()}


def config(work: Path, files: dict, arm: str, seed: int, args) -> Path:
    bb = BACKBONES[args.backbone]
    cfg = {
        "output_dir": str(work / f"{arm}_s{seed}"),
        "model": {"name_or_path": bb["model"], "max_length": 512},
        "data": {"train": files["train"], "validation": [files["test_code"], files["test_hh"]]},
        "objective": ARMS[arm],
        "train": {"epochs": args.epochs, "batch_size": 16, "lr": bb["lr"], "warmup_ratio": 0.05, "seed": seed,
                  "eval_every": 10_000, "save_every": 20, "log_every": 10, "progress": False,
                  "disable_dropout": True},
    }
    if args.backbone != "minilm":  # the analysis scores the test pairs once; a decoder's end-of-run
        cfg["data"] = {"train": files["train"], "val_fraction": 0.0}  # validation would score them twice
    path = work / "configs" / f"{arm}_s{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cell(work: Path, cfg_path: Path, out: Path) -> None:
    if (out / "summary.json").is_file():
        return
    resume = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    # an interrupted cell continues from its last checkpoint; one stopped before its first starts over
    again = [] if not out.exists() else ["--resume"] if resume else ["--overwrite"]
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", str(cfg_path)] + again
    print(f"training {out.name}{' (resuming)' if resume else ''}", flush=True)
    with (work / f"{out.name}.log").open("a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def analyse(work: Path, files: dict, seeds: list[int], name: str = "fidelity_normbt") -> dict:
    """Scores of every trained model on the test pairs, paired statistics, the md/json results."""
    from rewardlab.data import load_preferences
    from rewardlab.data.splits import HUMANEVALPACK_PROBLEM, group_keys
    from rewardlab.eval import stats
    from rewardlab.models.reward_model import RewardModel

    code = load_preferences(files["test_code"])
    hh = load_preferences(files["test_hh"])
    problems = group_keys(code, HUMANEVALPACK_PROBLEM)
    cache = work / "scores.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    for arm in ARMS:
        for seed in seeds:
            key = f"{arm}_s{seed}"
            if key in scores:
                continue
            rm = RewardModel.from_pretrained(work / key / "model")
            c = rm.score_pairs(code, batch_size=16, return_features=True)
            h = rm.score_pairs(hh, batch_size=16)
            dist = np.linalg.norm(c["features_chosen"] - c["features_rejected"], axis=1)
            scores[key] = {"code": (c["reward_chosen"] > c["reward_rejected"]).astype(int).tolist(),
                           "hh": (h["reward_chosen"] > h["reward_rejected"]).astype(int).tolist(),
                           "distance": dist.tolist()}
            cache.write_text(json.dumps(scores))
    out: dict = {"seeds": seeds, "n_code": len(code), "n_hh": len(hh), "per_seed": []}
    diffs, pvals = [], []
    for seed in seeds:
        bt, nb = np.asarray(scores[f"bt_s{seed}"]["code"]), np.asarray(scores[f"normbt_s{seed}"]["code"])
        m = stats.mcnemar_exact(nb, bt)
        d = stats.paired_bootstrap_difference(nb, bt, clusters=problems, seed=seed)
        hb, hn = np.asarray(scores[f"bt_s{seed}"]["hh"]), np.asarray(scores[f"normbt_s{seed}"]["hh"])
        out["per_seed"].append({"seed": seed, "bt_code": float(bt.mean()), "normbt_code": float(nb.mean()),
                                "difference": d["estimate"], "low": d["low"], "high": d["high"],
                                "mcnemar_p": m["p_value"], "discordant": [m["b"], m["c"]],
                                "bt_hh": float(hb.mean()), "normbt_hh": float(hn.mean())})
        diffs.append(d["estimate"])
        pvals.append(m["p_value"])
    holm = stats.holm(pvals)
    for row, p, rej in zip(out["per_seed"], holm["p_adjusted"], holm["reject"]):
        row["mcnemar_p_holm"], row["reject"] = p, rej
    from scipy import stats as st

    diffs = np.asarray(diffs)
    half = st.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    out["mean_difference"] = {"estimate": float(diffs.mean()), "low": float(diffs.mean() - half),
                              "high": float(diffs.mean() + half), "method": "t interval over seeds"}
    stacked_bt = np.mean([scores[f"bt_s{s}"]["code"] for s in seeds], axis=0)
    stacked_nb = np.mean([scores[f"normbt_s{s}"]["code"] for s in seeds], axis=0)
    pooled = stats.paired_bootstrap_difference(stacked_nb, stacked_bt, clusters=problems, seed=0)
    out["pooled_difference"] = {k: pooled[k] for k in ("estimate", "low", "high", "p_value", "method")}
    out["bt_code_mean"] = float(stacked_bt.mean())
    quart = []  # by quartile of the BT model's eval-mode distance (mean over seeds)
    dist = np.mean([scores[f"bt_s{s}"]["distance"] for s in seeds], axis=0)
    edges = np.quantile(dist, [0.25, 0.5, 0.75])
    q = np.searchsorted(edges, dist, side="right")
    for k in range(4):
        idx = q == k
        quart.append({"quartile": k + 1, "n": int(idx.sum()), "bt": float(stacked_bt[idx].mean()),
                      "normbt": float(stacked_nb[idx].mean()), "difference": float((stacked_nb - stacked_bt)[idx].mean())})
    out["by_distance_quartile"] = quart
    mus = []
    for seed in seeds:
        recs = [json.loads(x) for x in (work / f"normbt_s{seed}" / "metrics.jsonl").read_text().splitlines()]
        mus += [r["normbt/mu"] for r in recs if r.get("split") == "train" and "normbt/mu" in r]
    out["normbt_mu"] = {"first": mus[0] if mus else None, "last": mus[-1] if mus else None,
                        "min": min(mus) if mus else None, "max": max(mus) if mus else None}
    ok, g = out["bt_code_mean"] >= 0.60, out["pooled_difference"]
    out["verdict"] = ("inconclusive: BT at chance on code" if not ok else
                      "confirms" if g["estimate"] >= 0.03 and g["low"] > 0 else
                      "refutes here" if g["high"] < 0.02 else "not reproduced in this setting (interval too wide)")
    (REPO / "benchmarks" / "results" / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "fidelity_normbt")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--hh-train", type=int, default=800)
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="minilm")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    files = prepare(args.work, args.hh_train)
    seeds = list(range(args.seeds))
    for seed in seeds:  # seed-major: a finished seed is a usable paired comparison
        for arm in ARMS:
            run_cell(args.work, config(args.work, files, arm, seed, args), args.work / f"{arm}_s{seed}")
    res = analyse(args.work, files, seeds, "fidelity_normbt" + ("" if args.backbone == "minilm" else f"_{args.backbone}"))
    print(json.dumps({k: res[k] for k in ("bt_code_mean", "mean_difference", "pooled_difference", "verdict")}, indent=2))


if __name__ == "__main__":
    main()
