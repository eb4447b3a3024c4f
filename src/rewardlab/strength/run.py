"""``rewardlab strength``: data in, the same data with ``strength_mean``/``strength_std`` out, plus
a summary (JSON, Markdown, an HTML report with plots).

The summary follows the paper's figure: the pairs of a training split (by prompt hash) are cut
into 10 groups by μ̂, a head is trained on each group alone and evaluated on the validation split
with its given labels. The μ̂ used for this table is cross-fitted *within the training split*
(so the validation labels never shaped the grouping); it is always computed with embedding
heads, whatever backend produced the written strengths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.errors import ConfigError
from rewardlab.strength.ensemble import (
    StrengthResult,
    check_fold_count,
    crossfit_finetune,
    crossfit_heads,
    decile_groups,
    prompt_folds,
    summarize,
)

Log = Callable[[str], None]

REPORT_RESULTS = ("summary.json", "summary.md", "report.html")  # what a finished run leaves in its report directory


def default_report_dir(out: str | Path) -> Path:
    """The summary directory beside OUT: OUT without its suffix + ``_strength``."""
    out = Path(out)
    return out.with_name(out.stem + "_strength")


def decile_accuracy(
    X_chosen: np.ndarray,
    X_rejected: np.ndarray,
    mu: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    n_groups: int = 10,
    members: int = 3,
    head: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per μ̂ group of the training pairs: the validation accuracy of heads trained on that group
    alone (mean and std over ``members`` independently seeded heads), plus the group's μ̂ range.
    ``mu`` is indexed like ``train_idx`` (one value per training pair)."""
    from rewardlab.heads import HeadConfig, fit_head

    xc = np.asarray(X_chosen, dtype=np.float32)
    xr = np.asarray(X_rejected, dtype=np.float32)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    if len(mu) != len(train_idx):
        raise ConfigError(f"{len(mu)} strengths for {len(train_idx)} training pairs")
    if len(val_idx) == 0:
        raise ConfigError("decile accuracies need a non-empty validation split")
    cfg = HeadConfig.model_validate({**dict(head or {}), "members": members})
    groups = decile_groups(mu, n_groups)
    n = len(xc)
    X = np.concatenate([xc, xr])
    rows = []
    for g in range(n_groups):
        sel = train_idx[groups == g]
        fitted = fit_head(X, sel, n + sel, objective="bt", config=cfg, seed=seed * 100 + g)
        r = np.asarray(fitted.predict_members(X), dtype=np.float64)
        acc = (r[:, val_idx] > r[:, n + val_idx]).mean(1)
        m = np.asarray(mu)[groups == g]
        rows.append({"group": g, "n_train": int(len(sel)), "mu_min": float(m.min()), "mu_max": float(m.max()),
                     "mu_mean": float(m.mean()), "val_accuracy": float(acc.mean()),
                     "val_accuracy_std": float(acc.std()), "n_val": int(len(val_idx))})
    return rows


def _plots(mu: np.ndarray, deciles: list[dict] | None, mode: str, full_acc: float | None):
    from matplotlib.figure import Figure

    figs = {}
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    ax.hist(mu[mu >= 0], bins=30, color="#4c72b0", alpha=0.85, label="μ̂ ≥ 0")
    ax.hist(mu[mu < 0], bins=15, color="#c44e52", alpha=0.85, label=f"μ̂ < 0 ({100 * (mu < 0).mean():.1f}%)")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("preference strength μ̂ (mean reward difference)")
    ax.set_ylabel("pairs")
    ax.set_title(f"Preference strength ({mode})")
    ax.legend()
    fig.tight_layout()
    figs["strength_hist"] = fig
    if deciles:
        fig = Figure(figsize=(6.4, 3.8))
        ax = fig.subplots()
        x = [d["group"] + 1 for d in deciles]
        ax.bar(x, [d["val_accuracy"] for d in deciles], yerr=[d["val_accuracy_std"] for d in deciles],
               color="#55a868", capsize=3)
        ax.axhline(0.5, color="black", lw=0.8, ls="--", label="chance")
        if full_acc is not None:
            ax.axhline(full_acc, color="#4c72b0", lw=1, label=f"all training pairs ({full_acc:.3f})")
        ax.set_xticks(x)
        ax.set_xlabel("μ̂ group (1 = weakest 10% of training pairs)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("A head trained on each strength group alone")
        ax.legend(loc="lower right")
        fig.tight_layout()
        figs["deciles"] = fig
    return figs


def write_report(out_dir: Path, summary: dict, figs: dict) -> None:
    """summary.json, summary.md, one PNG per plot and a self-contained report.html (the same
    facts and decile table in Markdown and HTML)."""
    import html

    from rewardlab.eval.report import _table, figure_to_data_uri

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    for name, fig in figs.items():
        fig.savefig(out_dir / f"{name}.png", dpi=110)
    facts = [f"pairs: {summary['n_pairs']}; strengths: **{summary['mode']}** ({summary['backend']} backend, "
             f"{summary['members']} members, {summary['folds']} folds)",
             f"fraction with μ̂ < 0: **{100 * summary['summary']['frac_negative']:.1f}%**",
             "μ̂ quantiles (0, 10, 25, 50, 75, 90, 100%): "
             + ", ".join(f"{v:.3f}" for v in summary["summary"]["mean_quantiles"].values())]
    md = [f"# Preference strength: {summary['data']}", "", *(f"- {f}" for f in facts)]
    body = "".join("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(f)) + "</p>" for f in facts)
    d = summary.get("deciles")
    if d:
        intro = (f"Validation accuracy of a head trained on each μ̂ group of the training split alone "
                 f"({d['n_train']} training / {d['n_val']} validation pairs by prompt hash; μ̂ cross-fitted within "
                 f"the training split; mean ± std over {d['members']} heads). All training pairs: "
                 f"{d['all_pairs_accuracy']:.3f}.")
        header = ["group", "pairs", "μ̂ range", "val accuracy"]
        rows = [[str(r["group"] + 1), str(r["n_train"]), f"[{r['mu_min']:.3f}, {r['mu_max']:.3f}]",
                 f"{r['val_accuracy']:.3f} ± {r['val_accuracy_std']:.3f}"] for r in d["groups"]]
        md += ["", intro, "", "| " + " | ".join(header) + " |", "|---|---|---|---|",
               *("| " + " | ".join(cells) + " |" for cells in rows)]
        body += f"<p>{html.escape(intro)}</p>" + _table(header, [("", [html.escape(c) for c in cells]) for cells in rows])
    (out_dir / "summary.md").write_text("\n".join(md) + "\n")
    imgs = "".join(f'<figure><img src="{figure_to_data_uri(fig)}" alt="{name}"><figcaption>{name}</figcaption></figure>'
                   for name, fig in figs.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rewardlab strength</title>"
            f"<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td,th{{padding:2px 8px;"
            f"border-bottom:1px solid #ddd}}img{{max-width:100%}}</style></head><body>"
            f"<h1>Preference strength: {html.escape(str(summary['data']))}</h1>{body}{imgs}</body></html>")
    (out_dir / "report.html").write_text(page, encoding="utf-8")


def run_strength(
    data: str | list[str],
    out: str | Path,
    *,
    members: int = 10,
    folds: int = 5,
    backend: str = "heads",
    embed: Mapping[str, Any] | None = None,
    head: Mapping[str, Any] | None = None,
    run_config: Any = None,
    deciles: bool = True,
    decile_members: int = 3,
    val_fraction: float = 0.1,
    split_salt: str = "rewardlab",
    split_key: Any = None,
    seed: int = 0,
    report_dir: str | Path | None = None,
    limit: int | None = None,
    on_error: str = "raise",
    log: Log | None = print,
    folds_option: str = "folds",
) -> dict[str, Any]:
    """Compute strengths for the pairs of ``data``, write them to ``out`` (format by suffix) and a
    summary to ``report_dir`` (default: ``OUT`` without suffix + ``_strength``). ``folds=1`` is
    the paper's in-sample variant; more folds than the data's groups fill is an error naming
    ``folds_option``. Folds and the decile table's validation split keep every group of
    ``split_key`` (default: the prompt; ``rewardlab.data.splits``) on one side. Returns the summary."""
    from rewardlab.data import load_preferences
    from rewardlab.data.splits import check_split_key, group_keys
    from rewardlab.embed.extract import EmbedSpec, embed_table

    from pydantic import ValidationError

    from rewardlab.config import format_validation
    from rewardlab.heads import HeadConfig

    # every setting checked before any work (the decile table's split used to fail after all folds trained)
    if backend not in ("heads", "finetune"):
        raise ConfigError(f"backend must be 'heads' or 'finetune', got {backend!r}")
    if members < 1 or decile_members < 1:
        raise ConfigError(f"members must be >= 1, got {members}")
    if folds < 1:
        raise ConfigError(f"folds must be >= 1 (1 = in-sample, >= 2 cross-fitted), got {folds}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    try:
        HeadConfig.model_validate({**dict(head or {}), "members": members})
    except ValidationError as e:
        raise ConfigError(format_validation(e, "strength", what="head settings")) from None
    out = Path(out)
    report_dir = Path(report_dir) if report_dir is not None else default_report_dir(out)
    check_split_key(split_key)
    key_column = split_key if isinstance(split_key, str) else (split_key or {}).get("field")
    keep = [key_column] if key_column not in (None, "prompt", "source") else []
    table = load_preferences(data, limit=limit, on_error=on_error, keep_columns=keep)
    if len(table) < 2:
        raise ConfigError(f"{data}: need at least 2 pairs, got {len(table)}")
    keys = group_keys(table, split_key)
    fold = prompt_folds(keys, folds) if folds > 1 else np.zeros(len(table), dtype=np.int64)
    if folds > 1:
        check_fold_count(keys, fold, folds, option=folds_option)
    emb = None
    if backend == "heads" or deciles:
        emb = embed_table(table, EmbedSpec(**dict(embed or {})), log=log)
    if backend == "heads":
        res: StrengthResult = crossfit_heads(emb["chosen"], emb["rejected"], fold, members=members, head=head,
                                             seed=seed, log=log)
    else:
        if run_config is None:
            raise ConfigError("the finetune backend needs a run config (--config RUN.yaml)")
        res = crossfit_finetune(table, fold, run_config, members=members, work_dir=report_dir / "runs", log=log)
    written = table.with_column("strength_mean", res.mean.tolist()).with_column("strength_std", res.std.tolist())
    written.write(out)
    summary: dict[str, Any] = {
        "data": data if isinstance(data, str) else list(data), "out": str(out), "n_pairs": len(table),
        "mode": res.mode, "backend": backend, "members": members, "folds": folds, "seed": seed,
        "split_key": split_key,
        "embedding": emb["stats"] if emb is not None else None, "summary": summarize(res.mean, res.std),
        "load_report": table.report.to_dict() if table.report is not None else None,
    }
    full_acc = None
    if deciles:
        train_idx, val_idx = (np.asarray(ix, dtype=np.int64) for ix in table.split_indices(val_fraction, split_salt, keys))
        if len(train_idx) < 10 * max(1, folds) or len(val_idx) == 0:
            if log:
                log(f"decile table skipped: {len(train_idx)} training / {len(val_idx)} validation pairs")
        else:
            inner = prompt_folds([keys[i] for i in train_idx], folds) if folds > 1 else np.zeros(len(train_idx), np.int64)
            inner_res = crossfit_heads(emb["chosen"][train_idx], emb["rejected"][train_idx], inner, members=members,
                                       head=head, seed=seed + 1)
            rows = decile_accuracy(emb["chosen"], emb["rejected"], inner_res.mean, train_idx, val_idx,
                                   members=decile_members, head=head, seed=seed)
            full = decile_accuracy(emb["chosen"], emb["rejected"], np.zeros(len(train_idx)), train_idx, val_idx,
                                   n_groups=1, members=decile_members, head=head, seed=seed)
            full_acc = full[0]["val_accuracy"]
            summary["deciles"] = {"groups": rows, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
                                  "members": decile_members, "all_pairs_accuracy": full_acc,
                                  "frac_negative_train": float((inner_res.mean < 0).mean())}
    figs = _plots(res.mean, summary.get("deciles", {}).get("groups"), res.mode, full_acc)
    write_report(report_dir, summary, figs)
    if log:
        log(f"wrote {out} ({len(table)} pairs with strength_mean, strength_std; {res.mode}) and {report_dir}/")
    return summary
