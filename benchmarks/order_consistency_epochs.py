"""Does the classification MLP's deficit in order_consistency_full's sparse regime come from too few
training steps? (FIDELITY seed 001, issue 22; a check run after the full design, not part of its rule.)

The full design's heads follow the paper's stopping rule: 30 epochs of full-batch Adam (batch
10240), so a sparse cell (512 training pairs) takes 30 optimiser steps, as a paper cell of 5k pairs
did. There the classification MLP trails BT-MLP at every beta (best-of-7 about −0.06, pairwise
accuracy about −0.035). If the classification head (1024 item labels) is simply further from
convergence than BT after 30 steps, more epochs close the gap. This check reruns the sparse MLP
study, both arms, the same seeds and therefore the same pairs, with ``--epochs`` (300) at beta 1 and
10, and reports per beta classification − BT at 30 epochs (the full design's recorded cells) and at
``--epochs``, and the change between them, all paired by seed (t intervals; Holm over the betas of
a metric).

Rule, stated before the run (on pairwise accuracy, the least noisy metric; best-of-7 and Spearman
beside it): **the deficit is undertraining** if at every beta the change is positive (Holm-adjusted
p < 0.05) and the interval of classification − BT at ``--epochs`` reaches 0; **it stands** if at
every beta that interval stays below 0; otherwise **partly**.

    python benchmarks/order_consistency_epochs.py --work runs/oc_full --workers 2   # after order_consistency_full

It reads the full design's pool, embeddings and noise scale from ``--work`` and its 30-epoch cells
from ``--records``; its own cells go to ``WORK/studies_epochs`` (resumable) and its report to
``benchmarks/results/order_consistency_epochs.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import order_consistency_full as ocf  # noqa: E402
from fidelity_common import run_main, write_atomic  # noqa: E402

REPO = ocf.REPO
ARMS = {"bt_mlp": "bt", "cls_mlp": "classification"}
ARM_OF = {objective: arm for arm, objective in ARMS.items()}


def power(seeds: int, m: int) -> dict[str, Any]:
    from study_summary import min_detectable_effect

    first = min_detectable_effect(seeds, 0.05 / m)
    return {"n_seeds": seeds, "comparisons_per_metric": m, "mde_sd_first_step": first,
            "text": (f"{seeds} paired seeds, {m} betas a metric (Holm): 80% power at Holm's first step for a change "
                     f"of {first:.2f} SD of its paired per-seed values; at the full design's SD of the sparse "
                     f"classification − BT accuracy differences (about 0.02) that is about {first * 0.02:.3f} "
                     f"accuracy, against a deficit of about 0.035 to close.")}


def per_seed(rows: list[dict], metric: str) -> dict[tuple, float]:
    """{(arm, beta, seed): value} of the MLP arms."""
    out = {}
    for r in rows:
        arm = ARM_OF.get(r["objective"]) if r["head"] == "mlp" else None
        if arm:
            out[(arm, float(r["beta"]), int(r["seed"]))] = float(r[metric])
    return out


def summarize(short: list[dict], long: list[dict], betas: list[float], seeds: int,
              source: str | None = None) -> dict[str, Any]:
    """Per metric and beta: classification − BT at the design's epochs (``short``) and at more
    (``long``), and the change (long − short), each paired by seed; Holm over betas per metric."""
    from study_summary import paired_test

    from rewardlab.eval.stats import holm

    err_short, err_long = per_seed(short, "label_error_rate"), per_seed(long, "label_error_rate")
    differ = sorted(k for k in err_short.keys() & err_long.keys() if err_short[k] != err_long[k])
    if differ:  # the simulated pairs depend on seed and beta only: another label error rate is other pairs
        from rewardlab.errors import DataError

        raise DataError(f"{len(differ)} cells (first: {differ[0]}) were trained on other pairs than the recorded "
                        f"30-epoch cells of the same seed and beta", file=source, field="label_error_rate")
    res: dict[str, Any] = {"metrics": {}}
    for metric in ocf.METRICS:
        col = "bon_7" if metric == "bon" else metric
        a, b = per_seed(short, col), per_seed(long, col)
        tests = []
        for beta in betas:
            ok = [s for s in range(seeds) if all((arm, beta, s) in t for t in (a, b) for arm in ARMS)]
            d_short = np.array([a[("cls_mlp", beta, s)] - a[("bt_mlp", beta, s)] for s in ok])
            d_long = np.array([b[("cls_mlp", beta, s)] - b[("bt_mlp", beta, s)] for s in ok])
            means = {f"{arm}_{when}": float(np.mean([t[(arm, beta, s)] for s in ok])) if ok else None
                     for arm in ARMS for when, t in (("short", a), ("long", b))}
            tests.append({"beta": beta, "n_seeds": len(ok), "short": paired_test(d_short),
                          "long": paired_test(d_long), "change": paired_test(d_long - d_short), "means": means})
        p = [t["change"]["p"] for t in tests]
        if all(x is not None for x in p):
            h = holm(p)
            for t, ph in zip(tests, h["p_adjusted"]):
                t["change"]["p_holm"] = float(ph)
        res["metrics"][metric] = tests
    res["verdict"] = verdict(res["metrics"]["pairwise_accuracy"])
    return res


def verdict(tests: list[dict]) -> str:
    if not tests or any(t["long"]["high"] is None or t["change"].get("p_holm") is None for t in tests):
        return "not run"
    if all(t["change"]["mean"] > 0 and t["change"]["p_holm"] < 0.05 and t["long"]["high"] >= 0 for t in tests):
        return "the deficit is undertraining: more epochs close it at every beta"
    if all(t["long"]["high"] < 0 for t in tests):
        return "the deficit stands: classification − BT stays below 0 at every beta with more epochs"
    return "partly: more epochs change the deficit at some betas only"


def markdown(res: dict, args, command: str) -> str:
    def ci(t):
        return "–" if t["low"] is None else f"{t['mean']:+.4f} [{t['low']:+.4f}, {t['high']:+.4f}]"

    lines = ["# Sparse order consistency: is the classification MLP's deficit undertraining?", "",
             f"Command: `{command}`. The full design's sparse MLP cells (30 epochs, from its records) against the "
             f"same seeds and pairs trained for {args.epochs} epochs; both arms, beta "
             f"{', '.join(f'{b:g}' for b in args.betas)}.", "", "## Power (computed before the run)", "",
             res["power"]["text"], "", f"## Verdict (pairwise accuracy, the stated rule): {res['verdict']}", ""]
    for metric, title in ocf.METRICS.items():
        lines += [f"## {title}", "", f"| beta | seeds | BT 30 | cls 30 | BT {args.epochs} | cls {args.epochs} | "
                  f"cls − BT, 30 epochs | cls − BT, {args.epochs} epochs | change | p (Holm) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for t in res["metrics"][metric]:
            m = t["means"]
            fmt = [("–" if m[k] is None else f"{m[k]:.4f}") for k in ("bt_mlp_short", "cls_mlp_short",
                                                                        "bt_mlp_long", "cls_mlp_long")]
            ph = t["change"].get("p_holm")
            lines.append(f"| {t['beta']:g} | {t['n_seeds']} | " + " | ".join(fmt) + f" | {ci(t['short'])} | "
                         f"{ci(t['long'])} | {ci(t['change'])} | {'–' if ph is None else f'{ph:.2g}'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "oc_full", help="order_consistency_full's --work")
    ap.add_argument("--records", type=Path, default=REPO / "benchmarks" / "results" / "order_consistency_full_records")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "order_consistency_epochs")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--betas", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--members", type=int, default=10, help="as the full design's (it must match for the pairing)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.epochs < 1 or args.workers < 1 or args.members < 1 or args.seeds < 2:
        ap.error("--epochs, --workers, --members must be >= 1, --seeds >= 2 (paired tests)")
    ocf.check_betas(ap, args.betas)
    need = [args.work / "pool.parquet", args.work / "smollm2_last.npy", args.work / "scale.json",
            args.records / "studies" / "sparse_mlp" / "results.jsonl"]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        ap.error(f"{', '.join(missing)}: not found; run benchmarks/order_consistency_full.py --work {args.work} first")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rewardlab.study.grid import parse_study_config
    from rewardlab.study.runners import read_results, run_study

    pw = power(args.seeds, len(args.betas))
    ocf.log(pw["text"])
    scale = json.loads((args.work / "scale.json").read_text())
    design = argparse.Namespace(members=args.members, epochs=args.epochs, gbdt_rounds=300, quantity=5000,
                                betas=args.betas, seeds=args.seeds)
    tree = ocf.study_configs(args.work, args.work / "smollm2_last.npy", scale, design)["sparse_mlp"]
    tree.update(name=f"sparse_mlp_e{args.epochs}", output_dir=str(args.work / "studies_epochs" / f"e{args.epochs}"))
    t0 = time.perf_counter()
    run_study(parse_study_config(tree, source=tree["name"]), workers=args.workers, plots=False, log=ocf.log)
    long = read_results(tree["output_dir"])
    short = read_results(args.records / "studies" / "sparse_mlp")
    res = summarize(short, long, args.betas, args.seeds,
                    source=str(args.records / "studies" / "sparse_mlp" / "results.jsonl"))
    res.update(power=pw, epochs=args.epochs, betas=args.betas, seconds=time.perf_counter() - t0,
               command=" ".join(["python", "benchmarks/order_consistency_epochs.py", *sys.argv[1:]]))
    write_atomic(args.results.with_suffix(".json"), json.dumps(res, indent=1, default=float) + "\n")
    write_atomic(args.results.with_suffix(".md"), markdown(res, args, res["command"]))
    ocf.log(f"wrote {args.results.with_suffix('.md')}: {res['verdict']}")


if __name__ == "__main__":
    run_main(main)
