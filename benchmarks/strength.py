"""Preference strength on real data with known noise (issue: preference strength and denoising).

For ../shared/data/hh_rlhf_harmless.jsonl and ../shared/data/humanevalpack.jsonl (whose labels are
objectively right: the rejected program has an injected bug):

1. clean data: cross-fitted strengths (M members x K folds, MLP heads on frozen MiniLM embeddings),
   the fraction of pairs with μ̂ < 0, and (HH) the paper's table: validation accuracy of a head
   trained on each μ̂ decile of the training split alone;
2. known noise: flip a seeded x% (10, 20, 40) of the labels, recompute strengths on the noisy data,
   and report the AUROC of −μ̂ for finding the flipped pairs and the precision of the lowest-x% set;
   cross-fitted and, for comparison, the paper's in-sample variant (members scored on pairs they
   trained on). Three flip seeds.

Writes benchmarks/results/strength.{md,json} and strength.png.

    python benchmarks/strength.py            # about 10-20 min on 2 cores with embeddings cached
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from rewardlab.data import load_preferences
from rewardlab.embed.extract import EmbedSpec, embed_table
from rewardlab.strength import crossfit_heads, noise_detection, prompt_folds, random_flips
from rewardlab.strength.run import decile_accuracy

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# MiniLM is a sentence-transformers model trained with mean pooling. HumanEvalPack needs 512
# tokens: at 256 a quarter of its pairs are identical after truncation (the bug is cut off).
DATASETS = {
    "hh_rlhf_harmless": EmbedSpec(model="minilm", pooling="mean", max_length=256),
    "humanevalpack": EmbedSpec(model="minilm", pooling="mean", max_length=512),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--widths", type=int, nargs="*", default=[256])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.4])
    ap.add_argument("--flip-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    head = {"kind": "mlp", "widths": args.widths, "batch_size": 256, "epochs": 30, "patience": 3}
    results: dict = {"config": {**vars(args), "out": str(args.out), "head": head,
                                "embeddings": {k: v.as_dict() for k, v in DATASETS.items()},
                                "machine": platform.processor() or platform.machine()}, "datasets": {}}
    for name, spec in DATASETS.items():
        table = load_preferences(DATA / f"{name}.jsonl")
        emb = embed_table(table, spec, log=print)
        xc, xr = emb["chosen"], emb["rejected"]
        n = len(table)
        keys = [table.prompt_key(i) for i in range(n)]
        fold = prompt_folds(keys, args.folds)
        identical = int((np.abs(xc - xr).max(1) == 0).sum())
        t0 = time.perf_counter()
        clean = crossfit_heads(xc, xr, fold, members=args.members, head=head, seed=0)
        clean_sec = time.perf_counter() - t0
        entry: dict = {"n": n, "identical_embeddings": identical, "clean": {
            "frac_negative": float((clean.mean < 0).mean()), "frac_zero": float((clean.mean == 0).mean()),
            "mu_quantiles": np.quantile(clean.mean, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
            "median_std": float(np.median(clean.std)), "seconds": clean_sec,
            "member_accuracy_heldout": float((clean.diffs > 0).mean()),
            "ensemble_accuracy_heldout": float((clean.mean > 0).mean())}, "noisy": []}
        print(f"{name}: {n} pairs, clean μ̂ < 0: {entry['clean']['frac_negative']:.3f} ({clean_sec:.0f} s)", flush=True)
        entry["mu_clean"] = clean.mean.tolist()
        if name == "hh_rlhf_harmless":
            tr, va = (np.asarray(ix) for ix in table.split_indices(0.1))  # PreferenceTable.split's 90/10
            inner = crossfit_heads(xc[tr], xr[tr], prompt_folds([keys[i] for i in tr], args.folds),
                                   members=args.members, head=head, seed=1)
            rows = decile_accuracy(xc, xr, inner.mean, tr, va, members=3, head=head)
            full = decile_accuracy(xc, xr, np.zeros(len(tr)), tr, va, n_groups=1, members=3, head=head)
            entry["deciles"] = {"groups": rows, "all_pairs_accuracy": full[0]["val_accuracy"],
                                "all_pairs_accuracy_std": full[0]["val_accuracy_std"],
                                "n_train": int(len(tr)), "n_val": int(len(va))}
            print("deciles:", " ".join(f"{r['val_accuracy']:.3f}" for r in rows), "all", full[0]["val_accuracy"])
        for x in args.noise:
            for fs in args.flip_seeds:
                flipped = random_flips(n, x, fs)
                nc = np.where(flipped[:, None], xr, xc)
                nr = np.where(flipped[:, None], xc, xr)
                row = {"noise": x, "flip_seed": fs}
                for mode, f in (("crossfit", fold), ("in_sample", np.zeros(n, dtype=np.int64))):
                    res = crossfit_heads(nc, nr, f, members=args.members, head=head, seed=10 + fs)
                    det = noise_detection(res.mean, flipped)
                    row[mode] = det
                print(f"{name} noise {x:.0%} seed {fs}: AUROC crossfit {row['crossfit']['auroc']:.3f} "
                      f"(P@x {row['crossfit']['precision_at_x']:.3f}), in-sample {row['in_sample']['auroc']:.3f} "
                      f"(P@x {row['in_sample']['precision_at_x']:.3f})", flush=True)
                entry["noisy"].append(row)
        results["datasets"][name] = entry
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "strength.json").write_text(json.dumps(results, indent=1) + "\n")
    write_md(results, args.out)


def _agg(rows, noise, mode, key):
    v = [r[mode][key] for r in rows if r["noise"] == noise and r[mode][key] is not None]
    return float(np.mean(v)), float(np.std(v))


def write_md(results: dict, out: Path) -> None:
    from matplotlib.figure import Figure

    cfg = results["config"]
    lines = ["# Preference strength on real data with known noise", "",
             f"Strengths: {cfg['members']} MLP heads (widths {cfg['widths']}) per fold on frozen MiniLM embeddings "
             f"(mean pooling), {cfg['folds']}-fold cross-fitting by prompt hash unless marked in-sample. "
             f"Noise: a seeded x% of pairs have chosen and rejected swapped; mean ± std over flip seeds "
             f"{cfg['flip_seeds']}. Generated by `python benchmarks/strength.py`.", ""]
    for name, e in results["datasets"].items():
        c = e["clean"]
        lines += [f"## {name} ({e['n']} pairs)", "",
                  f"- clean data: **{100 * c['frac_negative']:.1f}%** of pairs have μ̂ < 0 "
                  f"({100 * c['frac_zero']:.1f}% exactly 0: {e['identical_embeddings']} pairs have identical "
                  f"embeddings); held-out accuracy of single members {c['member_accuracy_heldout']:.3f}, "
                  f"of the ensemble mean {c['ensemble_accuracy_heldout']:.3f}; median σ̂ {c['median_std']:.3f}; "
                  f"μ̂ quantiles 10/25/50/75/90%: " + ", ".join(f"{q:.3f}" for q in c["mu_quantiles"]), "",
                  "| flipped | AUROC of −μ̂ (cross-fitted) | precision of lowest x% | AUROC (in-sample) | "
                  "precision (in-sample) |", "|---|---|---|---|---|"]
        for x in sorted({r["noise"] for r in e["noisy"]}):
            a, sa = _agg(e["noisy"], x, "crossfit", "auroc")
            p, sp = _agg(e["noisy"], x, "crossfit", "precision_at_x")
            ai, sai = _agg(e["noisy"], x, "in_sample", "auroc")
            pi, spi = _agg(e["noisy"], x, "in_sample", "precision_at_x")
            lines.append(f"| {x:.0%} | {a:.3f} ± {sa:.3f} | {p:.3f} ± {sp:.3f} | {ai:.3f} ± {sai:.3f} | "
                         f"{pi:.3f} ± {spi:.3f} |")
        if "deciles" in e:
            d = e["deciles"]
            lines += ["", f"Validation accuracy ({d['n_val']} pairs) of 3 heads trained on each μ̂ decile of the "
                      f"{d['n_train']} training pairs alone (μ̂ cross-fitted within the training split); all "
                      f"training pairs: {d['all_pairs_accuracy']:.3f} ± {d['all_pairs_accuracy_std']:.3f}.", "",
                      "| decile (1 = weakest) | μ̂ range | val accuracy |", "|---|---|---|"]
            for r in d["groups"]:
                lines.append(f"| {r['group'] + 1} | [{r['mu_min']:.3f}, {r['mu_max']:.3f}] | "
                             f"{r['val_accuracy']:.3f} ± {r['val_accuracy_std']:.3f} |")
        lines.append("")
    (out / "strength.md").write_text("\n".join(lines) + "\n")
    names = list(results["datasets"])
    fig = Figure(figsize=(5.2 * len(names), 3.8))
    axes = fig.subplots(1, len(names) + 1)
    for ax, name in zip(axes, names):
        mu = np.asarray(results["datasets"][name]["mu_clean"])
        ax.hist(mu, bins=40, color="#4c72b0")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{name}: μ̂ on clean labels ({100 * (mu < 0).mean():.0f}% < 0)", fontsize=9)
        ax.set_xlabel("μ̂")
    ax = axes[-1]
    if "deciles" in results["datasets"].get("hh_rlhf_harmless", {}):
        d = results["datasets"]["hh_rlhf_harmless"]["deciles"]
        g = d["groups"]
        ax.bar([r["group"] + 1 for r in g], [r["val_accuracy"] for r in g],
               yerr=[r["val_accuracy_std"] for r in g], color="#55a868", capsize=3)
        ax.axhline(0.5, color="black", ls="--", lw=0.8)
        ax.axhline(d["all_pairs_accuracy"], color="#4c72b0", lw=1)
        ax.set_title("HH: val accuracy of a head per μ̂ decile", fontsize=9)
        ax.set_xlabel("decile (1 = weakest)")
    fig.tight_layout()
    fig.savefig(out / "strength.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
