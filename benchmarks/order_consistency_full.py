"""Order consistency in the paper's setting as far as offline models allow (FIDELITY.md seed 001,
issue 22): the full design. Resumable at every stage; the lead queues the full run.

Stages (each skipped when its output exists, each resumable when interrupted):

1. **golden**: a MiniLM reward model fine-tuned (``rewardlab train``, BT, dropout off) on the
   visible preference sets *without* AlpacaEval (hh_rlhf_harmless, pandalm_test,
   llmbar_processed by default); the train loop checkpoints and ``--resume`` continues it.
2. **pool**: the AlpacaEval pool (the responses of alpacaeval_modelpairs + alpacaeval_gpt4_judged,
   prompts with >= 3 responses) scored by that golden.
3. **embed**: SmolLM2-135M last-layer **last-token** states of every pool item (the generating
   LLM's kind of features, a different model from the golden), in the shard cache of
   ``rewardlab.embed`` (a crash loses at most one shard; a rerun embeds only what is missing).
4. **scale**: a fixed noise scale s with cross-prompt label error 5% at beta 10
   (``scale_for_error_rate`` on the training prompts), used at every beta.
5. **cells**: four studies (``rewardlab.study``, results.jsonl resume records): the paper's three
   arms, BT-MLP, classification-MLP (one study: same seeds, same pairs) and
   classification-LightGBM, each on two pairing regimes: **dense**, ``--quantity`` (5000)
   independent cross-prompt pairs, and **sparse**, the paper's schedule, one cross-prompt pair
   per training prompt (``each_prompt_once``, every item in at most one pair). Heads with the
   paper's stopping rule: 30 epochs, last weights, a fifth held out unused
   (``early_stopping: false, val_fraction: 0.2``); MLP 1024-512, full batch 10240, lr 1e-3, an
   ensemble of ``--members`` (10, as the paper); LightGBM 300 rounds at lr 0.1, all rounds.
   beta in {0.5, 0.7, 1, 3, 5, 10, noiseless}; ``--seeds`` (10) paired seeds.
6. **summary**: per (regime, beta) each classification arm minus BT-MLP, paired by seed; t
   interval and paired t-test; Holm over all comparisons of a metric. Best-of-7 golden gain is
   primary (the pool has at most 7 responses per prompt; the paper goes to 500); Spearman and
   pairwise accuracy with tie = 0.5 beside it. The power statement is computed from the design
   and written before any cell runs (``power.json``).

FIDELITY's verdict rule: *confirms* if a classification arm >= BT-MLP on best-of-N at beta <= 1
with the interval excluding 0 and BT ahead only at beta >= 5; *refutes in this regime* if BT is
ahead in the noisy cells (beta <= 1) with intervals excluding 0; otherwise inconclusive.

    python benchmarks/order_consistency_full.py --work runs/oc_full             # the full design
    python benchmarks/order_consistency_full.py --work /tmp/oc_tiny --tiny --records /tmp/oc_tiny/records \\
        --results /tmp/oc_tiny/order_consistency_full

Records (``--records``, default ``benchmarks/results/order_consistency_full_records``, committed as
the run goes): the pool's golden rewards (``golden.parquet``: the rewards, the pool's info and one
fingerprint of its items, no text; the items are rebuilt from ../shared/data and checked against the
fingerprint, so the golden is not trained again) and each study's ``results.jsonl``, copied there after every ``--sync-cells`` cells. A machine
replaced between sessions then loses at most those cells and the embeddings (recomputed; they are
deterministic). A study's cell ids hash its settings, paths included: resume with the same
``--work`` path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import run_main, write_atomic  # noqa: E402
DATA = REPO.parent / "shared" / "data"
GOLDEN_DATA = ["hh_rlhf_harmless.jsonl", "pandalm_test.jsonl", "llmbar_processed.jsonl"]
POOL_DATA = ["alpacaeval_modelpairs.jsonl", "alpacaeval_gpt4_judged.jsonl"]
BETAS = [0.5, 0.7, 1.0, 3.0, 5.0, 10.0, -1.0]
ARMS = {  # name: (objective, head)
    "bt_mlp": ("bt", "mlp"), "cls_mlp": ("classification", "mlp"), "cls_gbdt": ("classification", "gbdt")}
METRICS = {"bon": "best-of-7 golden gain (primary)", "spearman": "per-prompt Spearman",
           "pairwise_accuracy": "golden pairwise accuracy (tie = 0.5)"}


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ----------------------------------------------------------------------------- stages
def stage_golden(work: Path, args) -> Path:
    out = work / "golden"
    model = out / "model"
    if (model / "config.json").is_file() and (out / "summary.json").is_file():
        return model
    cfg = {
        "output_dir": str(out),
        "model": {"name_or_path": "minilm", "max_length": args.golden_max_length, "overlength": "truncate_prompt_left"},
        "data": {"train": [str(DATA / f) for f in GOLDEN_DATA], "val_fraction": 0.1},
        "objective": {"name": "bt"},
        "train": {"epochs": args.golden_epochs, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.05,
                  "scheduler": "linear", "eval_every": 100, "save_every": 50, "log_every": 10, "seed": 42,
                  "disable_dropout": True, "progress": False},
    }
    if args.golden_max_steps:
        cfg["train"]["max_steps"] = args.golden_max_steps
    if args.golden_max_pairs:
        cfg["data"]["max_train_pairs"] = args.golden_max_pairs
        cfg["data"]["max_val_pairs"] = args.golden_max_pairs
    work.mkdir(parents=True, exist_ok=True)
    path = work / "golden.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    resume = (out / "checkpoints").is_dir()
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", str(path), "--resume" if resume else "--overwrite"]
    log(f"golden: {' '.join(cmd)}")
    subprocess.run(cmd, check=True)
    return model


def stage_pool(work: Path, golden_model: Path | None, args):
    from rewardlab.study.golden import ResponsePool, build_pool

    path = work / "pool.parquet"
    if path.is_file():
        return ResponsePool.read(path)
    pool = build_pool([str(DATA / f) for f in POOL_DATA], {"kind": "reward_model", "model": str(golden_model),
                                                           "batch_size": 32},
                      min_responses=3, max_prompts=args.pool_prompts, log=log)
    pool.write(path)
    return pool


def _items_sha256(pool) -> str:
    return hashlib.sha256("\n".join(pool.item_keys()).encode()).hexdigest()


def record_golden(pool, path: Path) -> None:
    """The golden-scored pool's record without its text (the texts are ../shared/data's, which
    stays out of the repository): the rewards in item order, the pool's info, an items fingerprint."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"rewardlab_golden": json.dumps({"info": pool.info, "items_sha256": _items_sha256(pool)}, default=str)}
    table = pa.table({"golden": pa.array(pool.golden, pa.float64())}).replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def pool_from_record(path: Path, args):
    """The pool rebuilt from the data with the recorded golden rewards; a DataError naming the
    record when the data no longer give the same items in the same order."""
    import pyarrow.parquet as pq

    from rewardlab.data import load_preferences
    from rewardlab.errors import DataError
    from rewardlab.study.golden import pool_from_table

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {})[b"rewardlab_golden"])
    pool = pool_from_table(load_preferences([str(DATA / f) for f in POOL_DATA]), min_responses=3)
    if args.pool_prompts is not None:
        pool = pool.select(np.flatnonzero(pool.prompt_id < args.pool_prompts))
    if _items_sha256(pool) != meta["items_sha256"]:
        raise DataError("the pool rebuilt from the data is not the one the golden rewards were recorded for",
                        file=str(path), field="items_sha256", expected=meta["items_sha256"], got=_items_sha256(pool))
    return pool.with_golden(table.column("golden").to_numpy(), meta["info"])


def stage_embed(work: Path, pool, args) -> Path:
    from rewardlab.embed.extract import EmbedSpec, embed_texts

    path = work / "smollm2_last.npy"
    if path.is_file():
        return path
    spec = EmbedSpec(model=args.embed_model, pooling="last", layer=-1, max_length=args.embed_max_length)
    res = embed_texts(pool.prompt, pool.response, spec, batch_size=args.embed_batch_size, cache_dir=args.cache_dir,
                      flush_every=256, progress=False, log=log)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, res.embeddings.astype(np.float32))
    tmp.replace(path)
    (work / "embed_stats.json").write_text(json.dumps(res.stats, indent=1, default=str) + "\n")
    return path


def stage_scale(work: Path, pool) -> dict[str, Any]:
    from rewardlab.data.simulate import golden_scale, scale_for_error_rate

    path = work / "scale.json"
    if path.is_file():
        return json.loads(path.read_text())
    is_test = pool.test_mask(0.2, "rewardlab")
    tr = np.flatnonzero(~is_test)
    s = scale_for_error_rate(pool.golden[tr], pool.prompt_id[tr], beta=10, error_rate=0.05, pairing="cross_prompt")
    info = {"fixed_scale": s, "global_std": golden_scale(pool.golden[tr]),
            "train_prompts": int(len(np.unique(pool.prompt_id[tr]))), "train_items": int(len(tr)),
            "test_prompts": int(len(np.unique(pool.prompt_id[is_test])))}
    path.write_text(json.dumps(info, indent=1) + "\n")
    return info


def study_configs(work: Path, emb: Path, scale: dict, args) -> dict[str, dict]:
    """The four studies: {dense, sparse} x {mlp arms (bt, classification), gbdt arm}."""
    heads = {
        "mlp": {"kind": "mlp", "members": args.members, "widths": [1024, 512], "batch_size": 10240,
                "epochs": args.epochs, "lr": 1e-3, "early_stopping": False, "val_fraction": 0.2},
        "gbdt": {"kind": "gbdt", "members": 1, "early_stopping": False, "val_fraction": 0.2,
                 "gbdt": {"n_estimators": args.gbdt_rounds, "learning_rate": 0.1, "num_threads": 1}},
    }
    regimes = {"dense": ({}, args.quantity),
               "sparse": ({"each_prompt_once": True, "max_per_item": 1}, scale["train_prompts"])}
    out = {}
    for regime, (sim, quantity) in regimes.items():
        for group, (objectives, head) in {"mlp": (["bt", "classification"], "mlp"),
                                          "gbdt": (["classification"], "gbdt")}.items():
            name = f"{regime}_{group}"
            out[name] = {
                "name": name, "output_dir": str(work / "studies" / name),
                "pool": {"path": str(work / "pool.parquet"), "test_fraction": 0.2, "split_salt": "rewardlab"},
                "embeddings": {"smollm2": {"path": str(emb)}},
                "heads": {head: heads[head]},
                "simulation": {"scale": scale["fixed_scale"], **sim},
                "eval": {"best_of_n": [1, 2, 3, 4, 5, 6, 7], "n_perm": 100, "ties": "half"},
                "grid": {"embedding": ["smollm2"], "objective": objectives, "head": [head], "beta": args.betas,
                         "quantity": [quantity], "pairing": ["cross_prompt"], "selection": ["random"],
                         "seed": list(range(args.seeds))},
                "threads_per_worker": 1,
            }
    return out


def n_cells(configs: dict[str, dict]) -> int:
    return sum(len(c["grid"]["objective"]) * len(c["grid"]["beta"]) * len(c["grid"]["seed"]) for c in configs.values())


def _copy(src: Path, dst: Path) -> None:
    write_atomic(dst, Path(src).read_bytes())


def run_recorded(name: str, tree: dict, args) -> None:
    """Run one study's pending cells, ``--sync-cells`` at a time, copying its ``results.jsonl`` to
    ``--records`` after each batch (and from there first, when the work folder lacks cells)."""
    from rewardlab.study.grid import parse_study_config
    from rewardlab.study.runners import read_results, run_study

    cfg = parse_study_config(tree, source=name)
    local = Path(tree["output_dir"]) / "results.jsonl"
    record = args.records / "studies" / name / "results.jsonl"
    if record.is_file() and len(read_results(record.parent)) > len(read_results(local.parent)):
        _copy(record, local)
    total = n_cells({name: tree})
    while True:
        before = len(read_results(local.parent))
        batch = args.sync_cells if args.max_cells is None else min(args.sync_cells, args.max_cells)
        run_study(cfg, workers=args.workers, max_cells=batch, plots=False, log=log)
        if local.is_file():
            _copy(local, record)
        done = len(read_results(local.parent))
        if done >= total or done == before or args.max_cells is not None:  # finished, stuck (errors), or capped
            return


# ----------------------------------------------------------------------------- statistics
def power(args) -> dict[str, Any]:
    from study_summary import min_detectable_effect

    m = 2 * len(args.betas) * 2  # (cls_mlp, cls_gbdt) vs bt_mlp, per beta and regime
    first, last = min_detectable_effect(args.seeds, 0.05 / m), min_detectable_effect(args.seeds, 0.05)
    sd_bon = 0.015  # SD of paired best-of-7 differences in today's study (median over settings)
    return {"n_seeds": args.seeds, "comparisons_per_metric": m, "mde_sd_first_step": first, "mde_sd_last_step": last,
            "sd_assumed_bon": sd_bon,
            "text": (f"{args.seeds} paired seeds, {m} comparisons per metric (Holm): 80% power at Holm's first step "
                     f"(alpha = 0.05/{m}) for a mean paired difference of {first:.2f} SD ({last:.2f} SD at the "
                     f"last step). At the SD of paired best-of-7 differences in today's study (about {sd_bon}) that "
                     f"is {first * sd_bon:.3f} golden reward units of best-of-7 gain in today's golden's units; the "
                     f"full run's own SD replaces this guess in the summary.")}


def summarize(work: Path, configs: dict[str, dict], args) -> dict[str, Any]:
    from study_summary import paired_test

    from rewardlab.eval.stats import holm
    from rewardlab.study.runners import read_results

    rows = []
    for name, c in configs.items():
        regime = name.split("_")[0]
        for r in read_results(c["output_dir"]):
            arm = {("bt", "mlp"): "bt_mlp", ("classification", "mlp"): "cls_mlp",
                   ("classification", "gbdt"): "cls_gbdt"}.get((r["objective"], r["head"]))
            if arm:
                rows.append({**r, "regime": regime, "arm": arm, "bon": r["bon_7"] if "bon_7" in r else None})
    table: dict[tuple, float] = {}
    for r in rows:
        for m in METRICS:
            table[(r["regime"], r["arm"], r["beta"], r["seed"], m)] = r[m]
    res: dict[str, Any] = {"n_cells": len(rows), "cells_planned": n_cells(configs), "metrics": {}}
    sds = []
    for metric in METRICS:
        tests = []
        for regime in ("dense", "sparse"):
            for beta in args.betas:
                for arm in ("cls_mlp", "cls_gbdt"):
                    d = [table[(regime, arm, beta, s, metric)] - table[(regime, "bt_mlp", beta, s, metric)]
                         for s in range(args.seeds)
                         if (regime, arm, beta, s, metric) in table and (regime, "bt_mlp", beta, s, metric) in table]
                    t = paired_test(np.array(d))
                    tests.append({"regime": regime, "beta": beta, "arm": arm, **t})
                    if metric == "bon" and t["sd"] is not None:
                        sds.append(t["sd"])
                for arm in ARMS:
                    vals = [table[(regime, arm, beta, s, metric)] for s in range(args.seeds)
                            if (regime, arm, beta, s, metric) in table]
                    res.setdefault("means", {}).setdefault(metric, []).append(
                        {"regime": regime, "beta": beta, "arm": arm, "n": len(vals),
                         "mean": float(np.mean(vals)) if vals else None,
                         "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None})
        h = holm([t["p"] for t in tests])
        for t, p, rej in zip(tests, h["p_adjusted"], h["reject"]):
            t["p_holm"], t["reject"] = p, bool(rej)
        res["metrics"][metric] = tests
    res["observed_sd_bon_median"] = float(np.median(sds)) if sds else None
    oracle = [r["bon_oracle_7"] for r in rows if r.get("bon_oracle_7") is not None]
    # the golden's own pick on the test prompts: the most any arm's best-of-7 gain can reach
    res["bon_oracle_7"] = float(np.median(oracle)) if oracle else None
    res["verdict"] = verdict(res["metrics"]["bon"])
    return res


def verdict(tests: list[dict]) -> dict[str, str]:
    """FIDELITY's rule per regime, on best-of-N (classification minus BT: positive favours classification)."""
    out = {}
    for regime in ("dense", "sparse"):
        sel = [t for t in tests if t["regime"] == regime and t["low"] is not None]
        if not sel:
            out[regime] = "not run"
            continue
        noisy = [t for t in sel if 0 < t["beta"] <= 1]
        clean = [t for t in sel if t["beta"] < 0 or t["beta"] >= 5]
        cls_wins_noisy = any(t["low"] > 0 for t in noisy)
        bt_wins_noisy = any(t["high"] < 0 for t in noisy)
        cls_wins_clean = any(t["low"] > 0 for t in clean)
        if cls_wins_noisy and not bt_wins_noisy and not cls_wins_clean:
            out[regime] = "confirms: a classification arm ahead of BT-MLP at beta <= 1 (interval above 0), BT not beaten at low noise"
        elif bt_wins_noisy and not cls_wins_noisy:
            out[regime] = "refutes in this regime: BT-MLP ahead at beta <= 1 with the interval excluding 0"
        else:
            out[regime] = "inconclusive: no interval at beta <= 1 excludes 0 in one direction only"
    return out


def write_markdown(res: dict, pw: dict, scale: dict, args, path: Path, command: str) -> None:
    def beta(b):
        return "noiseless" if b < 0 else f"{b:g}"

    lines = ["# Order consistency in the paper's setting (FIDELITY seed 001, full design)", "",
             f"Command: `{command}`. {res['n_cells']} of {res['cells_planned']} cells finished.", "",
             f"Golden: MiniLM BT reward model trained on {', '.join(GOLDEN_DATA)} (no AlpacaEval); pool: AlpacaEval "
             f"responses, {scale['train_prompts']} training / {scale['test_prompts']} test prompts; features: "
             f"{args.embed_model} last-token states (max length {args.embed_max_length}); fixed noise scale s = "
             f"{scale['fixed_scale']:.4g} (cross-prompt error 5% at beta 10; global std {scale['global_std']:.4g}); "
             f"dense = {args.quantity} cross-prompt pairs, sparse = one cross-prompt pair per training prompt; heads "
             f"with the paper's stopping rule; {args.seeds} paired seeds.", "",
             "## Power (computed before the run)", "", pw["text"],
             "" if res["observed_sd_bon_median"] is None else
             f"Observed median SD of paired best-of-7 differences: {res['observed_sd_bon_median']:.4f}.", "",
             "## Verdict (best-of-7, FIDELITY's rule)", ""]
    lines += [f"- {k}: {v}" for k, v in res["verdict"].items()]
    oracle = res.get("bon_oracle_7")
    for metric, title in METRICS.items():
        note = (f" (the golden's own pick gains {oracle:.4f})" if metric == "bon" and oracle is not None else "")
        lines += ["", f"## {title}: each arm's mean over seeds (SD){note}", "",
                  "| regime | beta | " + " | ".join(ARMS) + " |", "|---|---|" + "---|" * len(ARMS)]
        means = res.get("means", {}).get(metric, [])
        by = {(m["regime"], m["beta"], m["arm"]): m for m in means}
        for regime, b in dict.fromkeys((m["regime"], m["beta"]) for m in means):
            cells = []
            for arm in ARMS:
                m = by.get((regime, b, arm))
                cells.append("–" if not m or m["mean"] is None else
                             f"{m['mean']:.4f}" + ("" if m["sd"] is None else f" ({m['sd']:.4f})"))
            lines.append(f"| {regime} | {beta(b)} | " + " | ".join(cells) + " |")
    for metric, title in METRICS.items():
        lines += ["", f"## {title}: classification arm − BT-MLP, paired by seed", "",
                  "| regime | beta | arm | seeds | difference [95% CI] | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
        for t in res["metrics"][metric]:
            ci = "–" if t["low"] is None else f"{t['mean']:+.4f} [{t['low']:+.4f}, {t['high']:+.4f}]"
            if t.get("reject"):
                ci = f"**{ci}**"
            p = "–" if t["p"] is None else f"{t['p']:.2g}"
            ph = "–" if t.get("p_holm") is None else f"{t['p_holm']:.2g}"
            lines.append(f"| {t['regime']} | {beta(t['beta'])} | {t['arm']} | {t['n_seeds']} | {ci} | {p} | {ph} |")
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- main
def check_betas(ap: argparse.ArgumentParser, betas: list[float]) -> None:
    """Refuse (argparse's error: one line, exit 2) a beta that is neither > 0 nor -1 (noiseless)."""
    if any(not (b > 0 or b == -1.0) for b in betas):  # NaN fails both
        ap.error(f"--betas {' '.join(f'{b:g}' for b in betas)}: each beta must be > 0, or -1 for noiseless")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "oc_full")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "order_consistency_full")
    ap.add_argument("--tiny", action="store_true", help="a minutes-long end-to-end check of every stage")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--betas", type=float, nargs="+", default=BETAS)
    ap.add_argument("--quantity", type=int, default=5000)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--gbdt-rounds", type=int, default=300)
    ap.add_argument("--pool-prompts", type=int, default=None)
    ap.add_argument("--golden-epochs", type=float, default=1.0)
    ap.add_argument("--golden-max-steps", type=int, default=None)
    ap.add_argument("--golden-max-pairs", type=int, default=None)
    ap.add_argument("--golden-max-length", type=int, default=256)
    ap.add_argument("--embed-model", default="smollm2-135m")
    ap.add_argument("--embed-max-length", type=int, default=512)
    ap.add_argument("--embed-batch-size", type=int, default=8)
    ap.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/rewardlab/embeddings)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-cells", type=int, default=None, help="run at most this many pending cells per study")
    ap.add_argument("--records", type=Path, default=REPO / "benchmarks" / "results" / "order_consistency_full_records",
                    help="committed records: the golden rewards of the pool and each study's results.jsonl")
    ap.add_argument("--sync-cells", type=int, default=10, help="copy a study's results to --records every N cells")
    ap.add_argument("--stop-after", choices=["golden", "pool", "embed", "scale"], default=None)
    args = ap.parse_args()
    if args.tiny:
        args.seeds, args.betas, args.quantity, args.members, args.epochs = 2, [1.0, -1.0], 60, 2, 3
        args.gbdt_rounds, args.pool_prompts, args.golden_max_steps, args.golden_max_pairs = 10, 24, 2, 32
        args.golden_max_length, args.embed_max_length = 64, 64
    sizes = {"--quantity": args.quantity, "--members": args.members, "--epochs": args.epochs,
             "--gbdt-rounds": args.gbdt_rounds, "--workers": args.workers, "--sync-cells": args.sync_cells,
             "--embed-max-length": args.embed_max_length, "--embed-batch-size": args.embed_batch_size,
             "--golden-max-length": args.golden_max_length}
    sizes.update({k: v for k, v in {"--pool-prompts": args.pool_prompts, "--max-cells": args.max_cells,
                                    "--golden-max-steps": args.golden_max_steps,
                                    "--golden-max-pairs": args.golden_max_pairs}.items() if v is not None})
    bad = [k for k, v in sizes.items() if v < 1] + ["--seeds"] * (args.seeds < 2) \
        + ["--golden-epochs"] * (not args.golden_epochs > 0)
    if bad:
        ap.error(f"{', '.join(bad)}: sizes must be >= 1, --seeds >= 2 (paired tests), --golden-epochs > 0")
    check_betas(ap, args.betas)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    pw = power(args)
    (work / "power.json").write_text(json.dumps(pw, indent=1) + "\n")
    log(pw["text"])
    t0 = time.perf_counter()
    recorded_golden = args.records / "golden.parquet"
    if recorded_golden.is_file() and not (work / "pool.parquet").is_file():
        pool_from_record(recorded_golden, args).write(work / "pool.parquet")  # the golden is not needed again
    model = None
    if not (work / "pool.parquet").is_file():
        model = stage_golden(work, args)
        if args.stop_after == "golden":
            return
    pool = stage_pool(work, model, args)
    if not recorded_golden.is_file():
        record_golden(pool, recorded_golden)
    log(f"pool: {len(pool)} items, {pool.n_prompts} prompts")
    if args.stop_after == "pool":
        return
    emb = stage_embed(work, pool, args)
    if args.stop_after == "embed":
        return
    scale = stage_scale(work, pool)
    log(f"scale: {scale}")
    if args.stop_after == "scale":
        return
    configs = study_configs(work, emb, scale, args)
    log(f"{n_cells(configs)} cells in {len(configs)} studies")
    for name, tree in configs.items():
        run_recorded(name, tree, args)
    res = summarize(work, configs, args)
    if res["n_cells"] < res["cells_planned"] and args.max_cells is None:
        raise SystemExit(f"{res['cells_planned'] - res['n_cells']} of {res['cells_planned']} cells have no result "
                         f"(see {work / 'studies'}/*/errors.jsonl); no results written, rerun to retry them")
    res.update(power=pw, scale=scale, seconds=time.perf_counter() - t0,
               command=" ".join(["python", "benchmarks/order_consistency_full.py", *sys.argv[1:]]))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    write_markdown(res, pw, scale, args, args.results.with_suffix(".md"), res["command"])
    log(f"wrote {args.results.with_suffix('.md')}; verdict {res['verdict']}")


if __name__ == "__main__":
    run_main(main)
