"""Strength-aware denoising recipes vs plain BT on clean and noisy labels (issue: preference strength).

Protocol, per dataset (../shared/data/hh_rlhf_harmless.jsonl, ../shared/data/humanevalpack.jsonl):
- 90/10 split by prompt hash (PreferenceTable.split); the validation labels stay clean;
- noise 0%, 20%, 40%: a seeded share of the TRAINING pairs have chosen and rejected swapped;
- strengths μ̂ of the (noisy) training pairs: cross-fitted (5 folds by prompt, 10 MLP heads per
  fold) on frozen MiniLM embeddings, recomputed for every (noise, seed);
- each recipe (rewardlab.strength.denoise) trains an MLP head (d → 256 → 1, Adam, early stopping
  on 10% of the training pairs — noisy like the rest) and is scored on the clean validation pairs;
- 3 seeds (the seed sets the flipped pairs, the strength members and the head).

Writes benchmarks/results/denoise.{md,json} and denoise.png.

    python benchmarks/denoise.py     # about 15-30 min on 2 cores, embeddings cached
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rewardlab.data import load_preferences
from rewardlab.embed.extract import EmbedSpec, embed_table
from rewardlab.heads import fit_head
from rewardlab.strength import crossfit_heads, noise_detection, plan_recipe, prompt_folds, random_flips

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DATASETS = {
    "hh_rlhf_harmless": EmbedSpec(model="minilm", pooling="mean", max_length=256),
    "humanevalpack": EmbedSpec(model="minilm", pooling="mean", max_length=512),
}
RECIPES = [
    ("bt", "bt", {}),
    ("flip 10% lowest", "flip_fraction", {"fraction": 0.1}),
    ("flip 20% lowest", "flip_fraction", {"fraction": 0.2}),
    ("flip μ̂<0", "flip_negative", {}),
    ("smooth all (α=0.1)", "smooth_all", {"alpha": 0.1}),
    ("smooth μ̂<0 (α=0.1)", "smooth_negative", {"alpha": 0.1}),
    ("adaptive margin", "adaptive_margin", {}),
    ("top 70% by μ̂", "top_subset", {"keep": 0.7}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    head = {"kind": "mlp", "widths": [256], "batch_size": 256, "epochs": 30, "patience": 3}
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in args.datasets:
        table = load_preferences(DATA / f"{name}.jsonl")
        emb = embed_table(table, DATASETS[name], log=print)
        keys = [table.prompt_key(i) for i in range(len(table))]
        tr, va = (np.asarray(ix) for ix in table.split_indices(0.1))  # PreferenceTable.split's 90/10
        xc, xr = emb["chosen"], emb["rejected"]
        n = len(table)
        X = np.concatenate([xc, xr])
        folds = prompt_folds([keys[i] for i in tr], args.folds)
        for noise in args.noise:
            for seed in args.seeds:
                flipped = random_flips(len(tr), noise, seed)
                c = np.where(flipped, n + tr, tr)  # row of the (noisy) chosen item in X
                r = np.where(flipped, tr, n + tr)
                st = crossfit_heads(X[c], X[r], folds, members=args.members, head=head, seed=100 + seed)
                det = noise_detection(st.mean, flipped) if noise > 0 else {}
                for label, recipe, opts in RECIPES:
                    plan = plan_recipe(recipe, st.mean, **opts)
                    keep = np.flatnonzero(plan.keep)
                    cols = {k: v[keep] for k, v in plan.columns.items()} or None
                    fitted = fit_head(X, c[keep], r[keep], objective=plan.objective, columns=cols,
                                      config={**head, "members": 1}, seed=seed)
                    pred = fitted.predict(X)
                    acc = float((pred[va] > pred[n + va]).mean())
                    rows.append({"dataset": name, "noise": noise, "seed": seed, "recipe": label,
                                 "recipe_name": recipe, "options": opts, "val_accuracy": acc,
                                 "n_train": int(len(keep)), "n_val": int(len(va)), **plan.counts,
                                 "frac_negative": float((st.mean < 0).mean()),
                                 "strength_auroc": det.get("auroc")})
                print(f"{name} noise {noise:.0%} seed {seed}: " + ", ".join(
                    f"{x['recipe']} {x['val_accuracy']:.3f}" for x in rows[-len(RECIPES):])
                    + f" [{time.perf_counter() - t0:.0f} s]", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "denoise.json").write_text(json.dumps({"config": {**vars(args), "out": str(args.out), "head": head},
                                                           "rows": rows}, indent=1) + "\n")
    write_md(rows, args)


def write_md(rows: list[dict], args) -> None:
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["dataset"] for r in rows))
    noises = sorted({r["noise"] for r in rows})
    labels = [label for label, _, _ in RECIPES]
    lines = ["# Denoising recipes vs plain BT (embedding heads)", "",
             "Validation accuracy on CLEAN held-out labels (10% of prompts by hash) of an MLP head (MiniLM mean-pooled "
             "embeddings, d → 256 → 1) trained on the other 90% with a share of its labels swapped; μ̂ cross-fitted "
             f"({args.folds} folds × {args.members} MLP heads) on the noisy training pairs; mean ± std over seeds "
             f"{args.seeds}. Generated by `python benchmarks/denoise.py`.", ""]
    summary = {}
    for name in names:
        sub = [r for r in rows if r["dataset"] == name]
        n_val = sub[0]["n_val"]
        lines += [f"## {name} ({sub[0]['n_train']} training / {n_val} validation pairs)", "",
                  "| recipe | " + " | ".join(f"noise {x:.0%}" for x in noises) + " |",
                  "|---|" + "---|" * len(noises)]
        for label in labels:
            cells = []
            for x in noises:
                v = [r["val_accuracy"] for r in sub if r["recipe"] == label and r["noise"] == x]
                summary[(name, label, x)] = (float(np.mean(v)), float(np.std(v)))
                cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        au = {x: [r["strength_auroc"] for r in sub if r["noise"] == x and r["recipe"] == "bt" and r["strength_auroc"]]
              for x in noises if x > 0}
        lines += ["", "Strength quality on these training pairs: AUROC of −μ̂ for the swapped pairs " + ", ".join(
            f"{x:.0%}: {np.mean(v):.3f}" for x, v in au.items()) + "; pairs with μ̂ < 0: " + ", ".join(
            f"{x:.0%}: {np.mean([r['frac_negative'] for r in sub if r['noise'] == x and r['recipe'] == 'bt']):.3f}"
            for x in noises) + f". One validation pair is {100 / n_val:.2f} points of accuracy.", ""]
    (args.out / "denoise.md").write_text("\n".join(lines) + "\n")
    fig = Figure(figsize=(5.5 * len(names), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names):
        for label in labels:
            m = [summary[(name, label, x)][0] for x in noises]
            s = [summary[(name, label, x)][1] for x in noises]
            ax.errorbar([100 * x for x in noises], m, yerr=s, marker="o", capsize=2, label=label,
                        lw=2.2 if label == "bt" else 1, color="black" if label == "bt" else None)
        ax.set_title(name)
        ax.set_xlabel("swapped training labels (%)")
        ax.set_ylabel("clean validation accuracy")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "denoise.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
