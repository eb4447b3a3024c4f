"""Summarise an order-consistency study (issue: embedding fast path, item 7).

Reads a study's results (``OUT/results.parquet`` of ``rewardlab study``), averages the cells over
seeds and writes ``benchmarks/results/study.md`` (tables + the answer to "does BT win only at
low noise; is classification more robust?"), ``study_table.csv`` (one row per cell, the study's
own table) and copies the study's plots as ``study_*.png``.

    rewardlab study configs/study_order_consistency.yaml --workers 2
    python benchmarks/study_summary.py runs/study_shape
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _fmt(m: float, s: float) -> str:
    return f"{m:.3f} ± {s:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--metric", default="pairwise_accuracy")
    args = ap.parse_args()
    df = pd.read_parquet(args.study / "results.parquet")
    df["beta_label"] = df["beta"].map(lambda b: "noiseless" if b < 0 else f"{b:g}")
    betas = [b for b in sorted(df["beta"].unique(), key=lambda b: np.inf if b < 0 else b)]
    beta_labels = ["noiseless" if b < 0 else f"{b:g}" for b in betas]
    args.out.mkdir(parents=True, exist_ok=True)
    cols = [c for c in df.columns if c not in ("host", "pid")]
    df[cols].to_csv(args.out / "study_table.csv", index=False)
    bon = max(int(c.split("_")[1]) for c in df.columns if c.startswith("bon_") and not c.startswith("bon_oracle"))
    metrics = [("pairwise_accuracy", "golden pairwise accuracy (held-out prompts)"),
               ("spearman", "per-prompt Spearman with golden"),
               (f"bon_{bon}", f"Best-of-{bon} golden gain (oracle {df[f'bon_oracle_{bon}'].mean():.3f})")]
    lines = [f"# Order-consistency study: BT vs classification ({len(df)} cells)", "",
             f"Study `{args.study.name}` (config `configs/study_order_consistency.yaml`): golden = the MiniLM "
             "reward model trained on hh_rlhf_harmless scoring 5574 AlpacaEval responses to 804 prompts; heads on "
             "frozen MiniLM embeddings (mean pooling); 20% of prompts held out for evaluation. Each entry: mean ± "
             f"std over seeds ({df['seed'].nunique()} per setting). Observed label error rate of the simulated "
             "annotator per β: " + ", ".join(
                 f"{lab}: {df[df['beta_label'] == lab]['label_error_rate'].mean():.3f}" for lab in beta_labels) + ".",
             "", f"Total cell time {df['cell_seconds'].sum() / 60:.1f} min over {len(df)} cells "
             f"(mean {df['cell_seconds'].mean():.1f} s; by head: " + ", ".join(
                 f"{h} {g['cell_seconds'].mean():.1f} s" for h, g in df.groupby('head')) + ").", ""]
    for metric, title in metrics:
        lines += [f"## {title}", ""]
        for pairing in sorted(df["pairing"].unique()):
            for q in sorted(df["quantity"].unique()):
                sub = df[(df["pairing"] == pairing) & (df["quantity"] == q)]
                if sub.empty:
                    continue
                lines += [f"**{pairing}, {q} pairs**", "", "| objective / head | " + " | ".join(
                    f"β={b}" for b in beta_labels) + " |", "|---|" + "---|" * len(beta_labels)]
                for (obj, head), g in sub.groupby(["objective", "head"]):
                    cells = []
                    for lab in beta_labels:
                        v = g[g["beta_label"] == lab][metric]
                        cells.append(_fmt(v.mean(), v.std(ddof=0)) if len(v) else "")
                    lines.append(f"| {obj} / {head} | " + " | ".join(cells) + " |")
                lines.append("")
    # The question: BT - classification per (head, pairing, quantity, beta), paired by seed.
    lines += ["## BT minus classification (golden pairwise accuracy, paired by seed)", "",
              "Positive: BT better. Bold where |mean| > 2 standard errors of the paired differences.", ""]
    key = ["head", "pairing", "quantity", "beta_label", "seed"]
    piv = df.pivot_table(index=key, columns="objective", values="pairwise_accuracy").reset_index()
    if {"bt", "classification"} <= set(piv.columns):
        piv["diff"] = piv["bt"] - piv["classification"]
        lines += ["| head | pairing | pairs | " + " | ".join(f"β={b}" for b in beta_labels) + " |",
                  "|---|---|---|" + "---|" * len(beta_labels)]
        wins = {"bt": 0, "classification": 0, "tie": 0}
        for (head, pairing, q), g in piv.groupby(["head", "pairing", "quantity"]):
            cells = []
            for lab in beta_labels:
                d = g[g["beta_label"] == lab]["diff"].dropna()
                if len(d) == 0:
                    cells.append("")
                    continue
                se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.inf
                sig = abs(d.mean()) > 2 * se
                wins["tie" if not sig else ("bt" if d.mean() > 0 else "classification")] += 1
                cells.append(f"**{d.mean():+.3f}**" if sig else f"{d.mean():+.3f}")
            lines.append(f"| {head} | {pairing} | {q} | " + " | ".join(cells) + " |")
        lines += ["", f"Settings where BT is significantly better: {wins['bt']}, classification: "
                  f"{wins['classification']}, neither: {wins['tie']}.", ""]
        noisy = piv[piv["beta_label"].isin(["0.5", "1"])]["diff"].mean()
        clean = piv[piv["beta_label"].isin(["10", "noiseless"])]["diff"].mean()
        lines += ["## Answer", "",
                  "The paper's pattern is \"BT wins only at low noise; classification is more robust\". Here the "
                  f"mean BT − classification difference is {clean:+.3f} at low noise (β ≥ 10 and noiseless) and "
                  f"{noisy:+.3f} at high noise (β ≤ 1), over heads, pairings and quantities. "
                  + ("BT is as good or better at every noise level: the pattern does not hold on this golden "
                     "setting and these embeddings." if wins["classification"] == 0 and noisy >= 0 else
                     "See the table for where each objective wins."), ""]
        for head, g in piv.groupby("head"):
            per = ", ".join(f"β={lab}: {g[g['beta_label'] == lab]['diff'].mean():+.3f}" for lab in beta_labels)
            lines.append(f"- {head}: BT − classification by β (mean over pairings, quantities, seeds): {per}")
        lines.append("")
    (args.out / "study.md").write_text("\n".join(lines) + "\n")
    for png in (args.study / "plots").glob("*.png"):
        shutil.copy(png, args.out / f"study_{png.name}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
