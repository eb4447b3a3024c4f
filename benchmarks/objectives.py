"""Compare training objectives by full fine-tuning on real data (issue: objective library).

Protocol: MiniLM fine-tuned on the training split (90/10 by prompt hash) of
../shared/data/hh_rlhf_harmless.jsonl + ../shared/data/humanevalpack.jsonl; identical
hyperparameters except the objective; several seeds; evaluation on each dataset's validation split:
accuracy, and accuracy per quartile of the representation distance ||h_c - h_r|| computed with
each trained model (NormBT's claim: gains concentrate on small-distance pairs and on the code pairs).

Every (objective, seed) cell is saved as OUT/objectives_cells/NAME-sSEED.json as it finishes (raw
validation scores and distances, small, committed), so an interrupted run resumes where it stopped,
in a later session too. Writes OUT/objectives.json, OUT/objectives.md and OUT/objectives_distance.png.

    python benchmarks/objectives.py --seeds 0 1 2 --hh-train-pairs 300
    # SmolLM2-135M, bt vs normbt, one seed on a smaller subset (benchmarks/results/objectives_smollm2/):
    python benchmarks/objectives.py --model smollm2-135m --objectives bt normbt --seeds 0 \
        --hh-train-pairs 150 --code-train-pairs 150 --batch-size 8 --lr 2e-5 \
        --work runs/bench_objectives_smollm2 --out benchmarks/results/objectives_smollm2
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from rewardlab.config import parse_config
from rewardlab.data import PreferenceTable, load_preferences
from rewardlab.eval.metrics import pairwise_accuracy
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.loop import train

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OBJECTIVES = {
    "bt": ({"name": "bt"}, []),
    "normbt": ({"name": "normbt"}, []),
    "classification": ({"name": "classification"}, []),
    "label_smoothing": ({"name": "label_smoothing", "alpha": 0.1}, []),
    "bt+simcse": ({"name": "bt"}, [{"name": "simcse", "weight": 1.0}]),
    "hinge": ({"name": "hinge"}, []),
}


def _subset(table: PreferenceTable, n: int | None, seed: int) -> PreferenceTable:
    if n is None or n >= len(table):
        return table
    return table.select(np.sort(np.random.default_rng(seed).permutation(len(table))[:n]).tolist())


def build_splits(work: Path, hh_train_pairs: int | None, code_train_pairs: int | None = None,
                 val_pairs: int | None = None, seed: int = 0) -> dict[str, Path]:
    """Write the fixed train/validation files (same for every cell)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {k: work / f"{k}.jsonl" for k in ("train", "val_hh", "val_code")}
    if all(p.is_file() for p in paths.values()):
        return paths
    hh_train, hh_val = load_preferences(DATA / "hh_rlhf_harmless.jsonl").split(0.1)
    code_train, code_val = load_preferences(DATA / "humanevalpack.jsonl").split(0.1)
    hh_train, code_train = _subset(hh_train, hh_train_pairs, seed), _subset(code_train, code_train_pairs, seed)
    PreferenceTable.concat([hh_train, code_train]).write(paths["train"])
    _subset(hh_val, val_pairs, seed).write(paths["val_hh"])
    _subset(code_val, val_pairs, seed).write(paths["val_code"])
    return paths


def run_cell(name: str, seed: int, paths: dict[str, Path], args, work: Path) -> dict:
    objective, aux = OBJECTIVES[name]
    out = work / f"{name}-s{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = parse_config({
        "output_dir": str(out),
        "model": {"name_or_path": args.model, "max_length": args.max_length},
        "data": {"train": str(paths["train"]), "validation": str(paths["val_hh"])},
        "objective": objective, "aux": aux,
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": seed,
                  "eval_every": 10_000, "save_every": 10_000, "log_every": 20, "progress": False,
                  "reward_stats_max_pairs": 0},
    })
    t0 = time.perf_counter()
    summary = train(cfg)
    model = RewardModel.from_pretrained(out / "model")
    result = {"objective": name, "seed": seed, "train_seconds": summary["train_seconds"],
              "pairs_per_second": summary["pairs_per_second"], "n_train": summary["n_train"], "datasets": {}}
    for key in ("val_hh", "val_code"):
        table = load_preferences(paths[key])
        s = model.score_pairs(table, batch_size=32, return_features=True)
        rc, rr = s["reward_chosen"], s["reward_rejected"]
        dist = np.linalg.norm(s["features_chosen"] - s["features_rejected"], axis=1)
        result["datasets"][key] = {
            "n": len(rc), "accuracy": pairwise_accuracy(rc, rr),
            "by_distance_quartile": quartile_accuracy(rc, rr, dist),
            "n_identical_inputs": int((dist == 0).sum()),
            "rc": rc.tolist(), "rr": rr.tolist(), "distance": dist.tolist(),
        }
    result["wall_seconds"] = time.perf_counter() - t0
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return result


def quartile_accuracy(rc, rr, dist) -> list[float]:
    """Accuracy in each distance quartile, always 4 values (NaN if empty).

    Quartiles by rank (ties broken by position) so there are always four equal-count bins, even when
    many pairs tie at distance 0 (e.g. code pairs whose bug lies beyond max_length).
    """
    rc, rr, dist = map(np.asarray, (rc, rr, dist))
    rank = np.empty(len(dist), dtype=int)
    rank[np.argsort(dist, kind="stable")] = np.arange(len(dist))
    bins = rank * 4 // max(len(dist), 1)
    return [float((rc[bins == b] > rr[bins == b]).mean()) if (bins == b).any() else float("nan") for b in range(4)]


def pooled_quartiles(cells: list[dict]) -> list[float | None]:
    """Accuracy per distance quartile over both validation sets, averaged over seeds."""
    per_seed = []
    for c in cells:
        rc = np.concatenate([c["datasets"][k]["rc"] for k in ("val_hh", "val_code")])
        rr = np.concatenate([c["datasets"][k]["rr"] for k in ("val_hh", "val_code")])
        dist = np.concatenate([c["datasets"][k]["distance"] for k in ("val_hh", "val_code")])
        per_seed.append(quartile_accuracy(rc, rr, dist))
    return np.nanmean(np.array(per_seed, dtype=float), axis=0).tolist()


def aggregate(cells: dict[str, list[dict]]) -> dict:
    table = {}
    for name, runs in cells.items():
        row = {"seeds": [c["seed"] for c in runs], "pairs_per_second": float(np.mean([c["pairs_per_second"] for c in runs]))}
        for key in ("val_hh", "val_code"):
            accs = [c["datasets"][key]["accuracy"] for c in runs]
            quart = np.array([c["datasets"][key]["by_distance_quartile"] for c in runs], dtype=float)
            row[key] = {"n": runs[0]["datasets"][key]["n"], "accuracy_mean": float(np.mean(accs)),
                        "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                        "accuracy_per_seed": accs, "quartile_accuracy_mean": np.nanmean(quart, axis=0).tolist(),
                        "n_identical_inputs": runs[0]["datasets"][key]["n_identical_inputs"]}
        row["pooled_quartile_accuracy_mean"] = pooled_quartiles(runs)
        table[name] = row
    return table


def normbt_vs_bt(agg: dict) -> list[str]:
    """The plain answer: NormBT − BT accuracy per dataset, paired by seed, with its spread."""
    if "bt" not in agg or "normbt" not in agg:
        return []
    out = ["## Does NormBT beat BT here?", ""]
    common = sorted(set(agg["bt"]["seeds"]) & set(agg["normbt"]["seeds"]))
    for key, label in (("val_hh", "HH harmless"), ("val_code", "HumanEvalPack")):
        b = dict(zip(agg["bt"]["seeds"], agg["bt"][key]["accuracy_per_seed"]))
        m = dict(zip(agg["normbt"]["seeds"], agg["normbt"][key]["accuracy_per_seed"]))
        d = np.array([m[s] - b[s] for s in common])
        n = agg["bt"][key]["n"]
        spread = f", std over seeds {d.std(ddof=1):.3f}" if len(d) > 1 else ""
        out.append(f"- {label} (n={n}, one pair = {1 / n:.3f}): NormBT − BT = {d.mean():+.3f} over seeds {common} "
                   f"(per seed: {', '.join(f'{v:+.3f}' for v in d)}{spread}).")
    bq = np.array(agg["bt"]["pooled_quartile_accuracy_mean"])
    nq = np.array(agg["normbt"]["pooled_quartile_accuracy_mean"])
    out.append("- By distance quartile (pooled, Q1 nearest): NormBT − BT = "
               + " / ".join(f"{v:+.3f}" for v in nq - bq) + ".")
    return out


def write_outputs(agg: dict, args, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": vars(args) | {"out": str(args.out), "work": str(args.work)},
            "note": "validation accuracy (a tie is wrong); quartiles of ||h_c - h_r|| from each trained model, Q1 smallest"}
    (out / "objectives.json").write_text(json.dumps({"meta": meta, "results": agg}, indent=2) + "\n")
    lines = [f"# Objectives on real data ({args.model}, full fine-tuning)", "",
             f"Protocol: {args.model}, max_length {args.max_length}, {args.epochs:g} epoch(s), batch {args.batch_size}, "
             f"lr {args.lr}, train = {args.hh_train_pairs or 'all'} HH-RLHF harmless pairs + {args.code_train_pairs or 'all'} HumanEvalPack training pairs "
             "(90/10 split by prompt hash); validation = each dataset's held-out split. Mean ± std over seeds.", "",
             "| objective | seeds | HH harmless acc | code (humanevalpack) acc | code acc by distance quartile Q1..Q4 | pooled acc by distance quartile Q1..Q4 |",
             "|---|---|---|---|---|---|"]
    for name, row in agg.items():
        hh, code = row["val_hh"], row["val_code"]
        q = " / ".join(f"{v:.3f}" for v in code["quartile_accuracy_mean"])
        pq = " / ".join(f"{v:.3f}" for v in row["pooled_quartile_accuracy_mean"])
        lines.append(f"| {name} | {len(row['seeds'])} | {hh['accuracy_mean']:.3f} ± {hh['accuracy_std']:.3f} (n={hh['n']}) | "
                     f"{code['accuracy_mean']:.3f} ± {code['accuracy_std']:.3f} (n={code['n']}) | {q} | {pq} |")
    lines += ["", *normbt_vs_bt(agg)]
    (out / "objectives.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (key, title) in zip(axes, (("pooled", "both validation sets"), ("val_code", "humanevalpack (code)"))):
        for name, row in agg.items():
            ys = row["pooled_quartile_accuracy_mean"] if key == "pooled" else row[key]["quartile_accuracy_mean"]
            ax.plot([1, 2, 3, 4], ys, marker="o", label=name)
        ax.set_xticks([1, 2, 3, 4], ["Q1 (near)", "Q2", "Q3", "Q4 (far)"])
        ax.set_title(f"accuracy by ||h_c - h_r|| quartile: {title}")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("representation distance quartile")
    axes[0].set_ylabel("validation accuracy (mean over seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "objectives_distance.png", dpi=110)
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objectives", nargs="+", default=["bt", "normbt", "classification", "label_smoothing", "bt+simcse"],
                    choices=sorted(OBJECTIVES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--model", default="minilm")
    # 256 leaves 168/656 HumanEvalPack pairs identical after truncation (the bug is cut off); 384: 46; 512: 23.
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--hh-train-pairs", type=int, default=400)
    ap.add_argument("--code-train-pairs", type=int, default=None, help="default: all")
    ap.add_argument("--val-pairs", type=int, default=None, help="cap per validation set (smoke runs); default: all")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)  # 3e-5 and 5e-5 left MiniLM at chance on HH after 40 steps
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench_objectives")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--aggregate-only", action="store_true",
                    help="train nothing: write the tables from the cells already in OUT/objectives_cells")
    args = ap.parse_args()
    paths = build_splits(args.work, args.hh_train_pairs, args.code_train_pairs, args.val_pairs)
    cells: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name in args.objectives:
            f = args.out / "objectives_cells" / f"{name}-s{seed}.json"
            if not f.is_file() and args.aggregate_only:
                continue
            trained = not f.is_file()
            if trained:
                print(f"[objectives] training {name} seed {seed}", flush=True)
                res = run_cell(name, seed, paths, args, args.work)
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(json.dumps(res))
            cells.setdefault(name, []).append(json.loads(f.read_text()))
            if trained:  # tables so far, in case a later cell is interrupted
                write_outputs(aggregate(cells), args, args.out)
    write_outputs(aggregate(cells), args, args.out)


if __name__ == "__main__":
    main()
