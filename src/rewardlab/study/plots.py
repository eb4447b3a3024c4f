"""Plots of a study's results table (PNG, matplotlib's Agg backend).

- ``best_of_n.png``: Best-of-N golden-reward gain against N, a line per objective, a panel per
  head (mean over every other grid value).
- ``noise.png``: pairwise accuracy (top) and Best-of-N gain at the largest N (bottom) against the
  annotators' observed label error rate (one point per β, noiseless at 0), per objective, a
  column per head.
- ``quantity.png``: the same against the annotation quantity (log axis).
- ``overoptimisation.png``: best-of-N with replacement as N grows (eval/overopt.py): golden gain
  (solid, golden std units) and proxy gain (dashed, proxy std units) against KL = log N − (N−1)/N,
  a line per objective, a panel per head; the golden oracle in grey.
Points average over seeds and every grid dimension not on the axes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.eval.overopt import bon_kl, peak_index


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _largest_n(rows: list[dict], ns: Sequence[int]) -> int | None:
    for n in sorted(ns, reverse=True):
        if any(r.get(f"bon_{n}") is not None for r in rows):
            return n
    return None


def overopt_ns(rows: list[dict]) -> list[int]:
    """The N of the over-optimisation columns (``overopt_golden_<N>``) in ``rows``."""
    return sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r if k.startswith("overopt_golden_")})


def overopt_plot(rows: list[dict[str, Any]], path: str | Path) -> Path | None:
    """``overoptimisation.png`` (module docstring); None when the rows have no such columns."""
    ns = overopt_ns(rows)
    if not ns:
        return None
    plt = _plt()
    heads = sorted({r["head"] for r in rows})
    objectives = sorted({r["objective"] for r in rows})
    kl = bon_kl(ns)
    fig, axes = plt.subplots(1, len(heads), figsize=(5 * len(heads), 3.8), squeeze=False)
    for ax, head in zip(axes[0], heads):
        for i, obj in enumerate(objectives):
            sub = [r for r in rows if r["head"] == head and r["objective"] == obj]
            color = f"C{i}"
            gold = [_mean([r.get(f"overopt_golden_{n}") for r in sub]) for n in ns]
            prox = [_mean([r.get(f"overopt_proxy_{n}") for r in sub]) for n in ns]
            if all(v is not None for v in gold):
                ax.plot(kl, gold, marker="o", color=color, label=f"{obj}: golden")
                peak = peak_index(gold)[0]
                ax.annotate(f"N={ns[peak]}", (kl[peak], gold[peak]), fontsize=7, textcoords="offset points",
                            xytext=(0, 6), ha="center", color=color)
            if all(v is not None for v in prox):
                ax.plot(kl, prox, linestyle="--", color=color, label=f"{obj}: proxy")
        ax.set_title(f"head: {head}")
        ax.set_xlabel("KL = log N - (N-1)/N  (nats)")
        ax.set_ylabel("best-of-N gain (std units)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def make_plots(rows: list[dict[str, Any]], out_dir: str | Path, ns: Sequence[int]) -> dict[str, Path]:
    """Write the plots for ``rows`` (results rows of one study); returns ``{name: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    heads = sorted({r["head"] for r in rows})
    objectives = sorted({r["objective"] for r in rows})
    files: dict[str, Path] = {}

    # Best-of-N curves
    fig, axes = plt.subplots(1, len(heads), figsize=(5 * len(heads), 3.8), squeeze=False)
    for ax, head in zip(axes[0], heads):
        sub = [r for r in rows if r["head"] == head]
        for obj in objectives:
            pts = [(n, _mean([r.get(f"bon_{n}") for r in sub if r["objective"] == obj])) for n in ns]
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=obj)
        oracle = [(n, _mean([r.get(f"bon_oracle_{n}") for r in sub])) for n in ns]
        oracle = [(n, v) for n, v in oracle if v is not None]
        if oracle:
            ax.plot(*zip(*oracle), linestyle="--", color="grey", label="golden (oracle)")
        ax.set_title(f"head: {head}")
        ax.set_xlabel("N")
        ax.set_ylabel("Best-of-N gain in golden reward")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    files["best_of_n"] = out / "best_of_n.png"
    fig.savefig(files["best_of_n"], dpi=110)
    plt.close(fig)

    n_big = _largest_n(rows, ns)
    metrics = [("pairwise_accuracy", "pairwise accuracy")]
    if n_big is not None:
        metrics.append((f"bon_{n_big}", f"Best-of-{n_big} gain"))
    for name, key, xlabel, logx in (("noise", "beta", "label error rate (annotators)", False),
                                    ("quantity", "quantity", "annotated pairs", True)):
        fig, axes = plt.subplots(len(metrics), len(heads), figsize=(5 * len(heads), 3.4 * len(metrics)),
                                 squeeze=False)
        for col, head in enumerate(heads):
            for row_i, (metric, label) in enumerate(metrics):
                ax = axes[row_i][col]
                for obj in objectives:
                    groups: dict[Any, list[dict]] = defaultdict(list)
                    for r in rows:
                        if r["head"] == head and r["objective"] == obj:
                            groups[r[key]].append(r)
                    pts = []
                    for value, rs in groups.items():
                        y = _mean([r.get(metric) for r in rs])
                        x = _mean([r.get("label_error_rate") for r in rs]) if key == "beta" else value
                        if y is not None and x is not None:
                            pts.append((x, y))
                    if pts:
                        ax.plot(*zip(*sorted(pts)), marker="o", label=obj)
                if logx:
                    ax.set_xscale("log")
                ax.set_xlabel(xlabel)
                ax.set_ylabel(label)
                ax.set_title(f"head: {head}")
                ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        files[name] = out / f"{name}.png"
        fig.savefig(files[name], dpi=110)
        plt.close(fig)
    over = overopt_plot(rows, out / "overoptimisation.png")
    if over is not None:
        files["overoptimisation"] = over
    return files
