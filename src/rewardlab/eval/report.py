"""Self-contained HTML reports and the plots in them.

:func:`write_report` writes one HTML file with no external resources: plain inline CSS, every
plot embedded as a base64 PNG. Plots are drawn on ``matplotlib.figure.Figure`` objects (Agg
rendering, no pyplot state), so this module never changes the global matplotlib backend.

The ``results`` structure::

    {
      "models": {                       # one or more models, shown side by side
        NAME: {
          "suite": score_suite(...),    # optional: summary table rows
          "diagnostics": {              # optional, and so is every key inside
            "pairwise_accuracy": float,
            "margin": margin_summary(...),
            "length_bias": length_bias(...),
            "calibration": {"ece": float, "temperature": float, "ece_at_temperature": float,
                            "reliability": reliability_curve(...)},
            "accuracy_by_quantile": {"value": "‖h_c − h_r‖", "bins": accuracy_by_quantile(...)},
            "rewards": {CATEGORY: {"chosen": reward_summary(...), "rejected": reward_summary(...)}},
            ...                         # other keys are shown as JSON under "Other diagnostics"
          },
        },
      },
      "agreement": [                    # optional (two or more models): pairs of models
        {"models": [A, B], "n": int, "overall": float,
         "by_set": {SET: {"n": int, "rate": float}}, "by_section": {...}},  # by_section optional
      ],
      "meta": {KEY: VALUE},             # optional: run information (config, seed, commit, ...)
    }

A model without ``suite`` but with data-mode results (``"overall": {"n", "correct",
"accuracy"}``, ``"datasets": {NAME: {...}}``, ``"sources": {"NAME/SOURCE": {...}}``, as
``rewardlab eval --data`` writes them) gets a dataset/source summary table instead.

Accuracies and scores are fractions in [0, 1] and are shown as percentages.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rewardlab.eval import metrics

__all__ = [
    "write_report",
    "plot_accuracy_by_quantile",
    "plot_reliability",
    "plot_reward_distributions",
    "plot_model_comparison",
    "plot_length_bias",
    "figure_to_data_uri",
]

_KNOWN_DIAGNOSTICS = {
    "pairwise_accuracy",
    "margin",
    "length_bias",
    "calibration",
    "accuracy_by_quantile",
    "rewards",
}

#: Data-mode summaries list a dataset's sources only up to this many (results.json has all).
_MAX_SOURCE_ROWS = 25

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eee; }
tr.overall td { font-weight: bold; background: #f3f3f3; }
tr.section td { font-weight: bold; }
tr.subset td:first-child { padding-left: 2em; color: #444; }
tr.warn td { background: #fff4e0; }
span.count { color: #777; font-size: .85em; margin-left: .4em; }
p.note { background: #fff6d5; border-left: 4px solid #e0b000; padding: .4em .8em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; }
table.meta td, table.meta th { text-align: left; vertical-align: top; }
table.meta td:last-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
"""


# ----------------------------------------------------------------------------- formatting
def _pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; ``None`` as a dash."""
    return "—" if x is None else f"{100 * x:.1f}"


def _num(x: Any) -> str:
    """A number for a table cell: ints as is, floats to 4 significant digits."""
    if x is None:
        return "—"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.4g}"


def _table(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], css: str = "") -> str:
    """An HTML table; ``rows`` are ``(css_class, cells)``, cells already HTML-safe."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        (f'<tr class="{cls}">' if cls else "<tr>") + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for cls, cells in rows
    )
    table = f'<table class="{css}">' if css else "<table>"
    return f"{table}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_to_data_uri(fig: Figure) -> str:
    """A figure as a ``data:image/png;base64,...`` URI (no metadata chunks)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(fig: Figure, caption: str) -> str:
    """An embedded PNG with a caption."""
    alt = html.escape(caption, quote=True)
    return (
        f'<figure><img alt="{alt}" src="{figure_to_data_uri(fig)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


# ----------------------------------------------------------------------------- plots
def _new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A figure with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def plot_accuracy_by_quantile(
    bins_by_model: Mapping[str, Sequence[Mapping[str, Any]]], *, value: str = r"$\|h_c - h_r\|$"
) -> Figure:
    """Accuracy per quantile bin (output of ``metrics.accuracy_by_quantile``), one line per model."""
    fig = _new_figure()
    ax = fig.subplots()
    for name, bins in bins_by_model.items():
        x = [b["bin"] for b in bins]
        ax.plot(x, [b["accuracy"] for b in bins], marker="o", label=name)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    n_bins = max((len(bins) for bins in bins_by_model.values()), default=0)
    ax.set_xticks(range(n_bins), [f"Q{i + 1}" for i in range(n_bins)])
    ax.set_xlabel(f"quantile bin of {value} (low to high)")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    return fig


def plot_reliability(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Reliability diagram (output of ``metrics.reliability_curve``), one line per model."""
    fig = _new_figure(5.0, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    for name, curve in curves.items():
        ax.plot([b["confidence"] for b in curve], [b["accuracy"] for b in curve], marker="o", label=name)
    ax.set_xlabel("predicted probability that the side wins")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    return fig


def plot_reward_distributions(rewards: Mapping[str, tuple[Any, Any]], bins: int = 30) -> Figure:
    """Histograms of chosen and rejected rewards, one panel per category ``{cat: (r_c, r_r)}``."""
    if not rewards:
        raise ValueError("plot_reward_distributions: expected at least one category")
    n = len(rewards)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _new_figure(4.0 * cols, 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (category, (r_c, r_r)) in zip(axes, rewards.items()):
        c, r = np.asarray(r_c, dtype=float), np.asarray(r_r, dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([c, r]), bins=bins)
        ax.hist(c, bins=edges, alpha=0.6, label="chosen")
        ax.hist(r, bins=edges, alpha=0.6, label="rejected")
        ax.set_title(category)
        ax.set_xlabel("reward")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend()
    return fig


def _yerr(heights: list[float], bounds: list[tuple[float | None, float | None] | None]) -> np.ndarray:
    """Asymmetric error bars (percent) from (low, high) fractions; none where unknown."""
    err = np.zeros((2, len(heights)))
    for k, (h, b) in enumerate(zip(heights, bounds)):
        if b and b[0] is not None and b[1] is not None and np.isfinite(h):
            err[:, k] = [max(h - 100 * b[0], 0.0), max(100 * b[1] - h, 0.0)]
    return err


def plot_model_comparison(scores: Mapping[str, Mapping[str, float]],
                          intervals: Mapping[str, Mapping[str, tuple[float | None, float | None]]] | None = None) -> Figure:
    """Grouped bars of per-category scores (fractions) for two or more models, with their 95%
    intervals as error bars where ``intervals[model][category] = (low, high)`` is given."""
    if len(scores) < 2:
        raise ValueError(f"plot_model_comparison: expected two or more models, got {len(scores)}")
    categories = list(dict.fromkeys(cat for per_model in scores.values() for cat in per_model))
    fig = _new_figure(max(6.4, 1.2 * len(categories) + 2), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(scores)
    x = np.arange(len(categories))
    for i, (name, per_model) in enumerate(scores.items()):
        heights = [100 * per_model.get(cat, np.nan) for cat in categories]
        bounds = [(intervals or {}).get(name, {}).get(cat) for cat in categories]
        ax.bar(x + (i - (len(scores) - 1) / 2) * width, heights, width, label=name,
               yerr=_yerr(heights, bounds), capsize=3)
    ax.set_xticks(x, categories, rotation=20, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    return fig


def plot_scores_with_rules(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """One model's score per subset with its 95% interval (bars, error bars) and what the length
    rules score on the same items (markers: prefer-longer ^, prefer-shorter v, chance -).

    ``rows``: ``{"label", "score", "low", "high", "longer", "shorter", "chance"}`` (fractions)."""
    fig = _new_figure(max(6.4, 0.45 * len(rows) + 2), 4.2)
    ax = fig.subplots()
    x = np.arange(len(rows))
    heights = [100 * r["score"] for r in rows]
    ax.bar(x, heights, 0.6, color="#4c72b0", label="model (95% CI)",
           yerr=_yerr(heights, [(r.get("low"), r.get("high")) for r in rows]), capsize=3)
    for key, marker, color, label in (("longer", "^", "#dd8452", "prefer-longer"),
                                      ("shorter", "v", "#55a868", "prefer-shorter"),
                                      ("chance", "_", "#333333", "chance")):
        ys = [np.nan if r.get(key) is None else 100 * r[key] for r in rows]
        ax.scatter(x, ys, marker=marker, color=color, s=60 if marker == "_" else 30, zorder=3, label=label)
    ax.set_xticks(x, [r["label"] for r in rows], rotation=40, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    return fig


def plot_length_bias(r_c: Any, r_r: Any, len_c: Any, len_r: Any) -> Figure:
    """Reward against response length (all responses) and accuracy by which side is longer."""
    bias = metrics.length_bias(r_c, r_r, len_c, len_r)
    fig = _new_figure(10.0, 4.0)
    ax_scatter, ax_bar = fig.subplots(1, 2, width_ratios=[2, 1])
    ax_scatter.scatter(len_c, r_c, s=6, alpha=0.5, label="chosen")
    ax_scatter.scatter(len_r, r_r, s=6, alpha=0.5, label="rejected")
    rho = bias["spearman_reward_length"]
    ax_scatter.set_title(f"Spearman(reward, length) = {_num(rho)}")
    ax_scatter.set_xlabel("response length")
    ax_scatter.set_ylabel("reward")
    ax_scatter.legend()
    labels = [
        f"chosen shorter\n(n={bias['n_chosen_shorter']})",
        f"chosen longer\n(n={bias['n_chosen_longer']})",
    ]
    accs = [bias["acc_chosen_shorter"], bias["acc_chosen_longer"]]
    ax_bar.bar(labels, [np.nan if a is None else 100 * a for a in accs], color=["#4c72b0", "#dd8452"])
    ax_bar.set_ylabel("pairwise accuracy (%)")
    ax_bar.set_ylim(0, 100)
    return fig


# ----------------------------------------------------------------------------- sections
def _models(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """``results["models"]``, checked to be a non-empty mapping of mappings."""
    models = results.get("models") if isinstance(results, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        raise ValueError("results: expected {'models': {name: {...}, ...}} with at least one model")
    for name, entry in models.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"results['models'][{name!r}]: expected a mapping, got {type(entry).__name__}")
    return models


def _diagnostic(models: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, Any]:
    """``{model: diagnostics[key]}`` for the models that have it."""
    return {
        name: entry["diagnostics"][key]
        for name, entry in models.items()
        if key in (entry.get("diagnostics") or {})
    }


def _ci_text(interval: Mapping[str, Any] | None) -> str:
    if not interval or interval.get("low") is None:
        return ""
    return f'<span class="count">[{_pct(interval["low"])}–{_pct(interval["high"])}]</span>'


def _subset_cell(entry: Mapping[str, Any]) -> str:
    """A subset's accuracy with its 95% interval and raw counts."""
    correct = entry.get("correct")
    count = "" if correct is None else (
        f'<span class="count">{_num(correct) if not float(correct).is_integer() else int(correct)}/{entry["n"]}</span>')
    return f'{_pct(entry["accuracy"])}{_ci_text(entry.get("interval"))}{count}'


def _summary_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Overall, section and subset scores, models side by side."""
    suites = {name: entry["suite"] for name, entry in models.items() if entry.get("suite")}
    if not suites:
        return _data_summary_section(models)
    names = list(models)

    def row(cls: str, label: str, n: Any, cells: list[str]) -> tuple[str, list[str]]:
        return cls, [html.escape(label), _num(n), *cells]

    def first_n(get: Any) -> Any:
        return next((get(s) for s in suites.values() if get(s) is not None), None)

    rows = [
        row("overall", "Overall", first_n(lambda s: sum(v["n"] for k, v in s["sections"].items() if k in s["weights"])),
            [_pct(suites[m]["overall"]) + _ci_text(suites[m].get("overall_interval")) if m in suites else "—"
             for m in names])
    ]
    subset_order = list(dict.fromkeys(sub for s in suites.values() for sub in s["subsets"]))
    section_order = list(dict.fromkeys(sec for s in suites.values() for sec in s["sections"]))
    for section in section_order:
        rows.append(row("section", section, first_n(lambda s: s["sections"].get(section, {}).get("n")),
                        [_pct(suites[m]["sections"][section]["score"])
                         + _ci_text(suites[m]["sections"][section].get("interval"))
                         if m in suites and section in suites[m]["sections"] else "—" for m in names]))
        for sub in subset_order:
            entries = {m: s["subsets"][sub] for m, s in suites.items() if sub in s["subsets"]}
            if not entries or next(iter(entries.values()))["section"] != section:
                continue
            cells = [_subset_cell(entries[m]) if m in entries else "—" for m in names]
            rows.append(row("subset", sub, next(iter(entries.values()))["n"], cells))
    by_note: dict[str, list[str]] = {}
    for m, s in suites.items():
        if s.get("note"):
            by_note.setdefault(s["note"], []).append(m)
    notes = "".join(
        f'<p class="note">{html.escape(", ".join(ms)) + ": " if len(by_note) > 1 or len(ms) < len(suites) else ""}'
        f"{html.escape(note)}</p>"
        for note, ms in by_note.items()
    )
    header = ["Category", "n", *names]
    return (
        "<h2>Summary</h2><p>Scores in % with their 95% intervals in brackets; subsets show correct/n. "
        "A pair is correct only when r(chosen) &gt; r(rejected) strictly; a best-of-N item only when the "
        "chosen is strictly above every rejected.</p>"
        + _table(header, rows) + notes
    )


def _data_summary_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Accuracy overall, per dataset and per source (data-mode results), models side by side."""
    data = {name: entry for name, entry in models.items() if entry.get("datasets")}
    if not data:
        return "<h2>Summary</h2><p>No suite scores in these results.</p>"
    names = list(models)

    def cells(get: Any) -> list[str]:
        out = []
        for m in names:
            entry = get(data[m]) if m in data else None
            out.append(_subset_cell(entry) if entry and "correct" in entry else
                       (_pct(entry["accuracy"]) if entry else "—"))
        return out

    first = next(iter(data.values()))
    rows = []
    if "overall" in first:
        rows.append(("overall", ["All pairs", _num(first["overall"]["n"]),
                                 *(_pct(data[m]["overall"]["accuracy"]) if m in data else "—" for m in names)]))
    datasets = list(dict.fromkeys(d for e in data.values() for d in e["datasets"]))
    for ds in datasets:
        n = next((e["datasets"][ds]["n"] for e in data.values() if ds in e["datasets"]), None)
        rows.append(("section", [html.escape(ds), _num(n), *cells(lambda e: e["datasets"].get(ds))]))
        keys = list(dict.fromkeys(k for e in data.values() for k in (e.get("sources") or {})
                                  if k.startswith(ds + "/")))
        if len(keys) > _MAX_SOURCE_ROWS:
            rows.append(("subset", [f"{len(keys)} sources: per-source results are in results.json", "",
                                    *("" for _ in names)]))
        elif len(keys) > 1:
            for key in keys:
                n = next((e["sources"][key]["n"] for e in data.values() if key in (e.get("sources") or {})), None)
                rows.append(("subset", [html.escape(key[len(ds) + 1:]), _num(n),
                                        *cells(lambda e: (e.get("sources") or {}).get(key))]))
    return (
        "<h2>Summary</h2><p>Pairwise accuracy in %, per dataset and per <code>source</code>; "
        "rows show correct/n. A pair is correct only when r(chosen) &gt; r(rejected) strictly.</p>"
        + _table(["Dataset / source", "n", *names], rows)
    )


def _metric_rows(
    per_model: Mapping[str, Mapping[str, Any]], names: list[str], spec: list[tuple[str, str, Any]]
) -> str:
    """A metrics-by-models table; ``spec`` is ``(label, key, formatter)`` per row."""
    rows = [
        ("", [html.escape(label), *(fmt(per_model[m].get(key)) if m in per_model else "—" for m in names)])
        for label, key, fmt in spec
    ]
    return _table(["Metric", *names], rows)


def _accuracy_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Pairwise accuracy and margin summary."""
    acc, margin = _diagnostic(models, "pairwise_accuracy"), _diagnostic(models, "margin")
    if not acc and not margin:
        return ""
    names = [m for m in models if m in acc or m in margin]
    merged = {m: {"accuracy": acc.get(m), **margin.get(m, {})} for m in names}
    return "<h3>Accuracy and margins</h3>" + _metric_rows(merged, names, [
        ("pairwise accuracy (%)", "accuracy", _pct),
        ("mean margin r_c − r_r", "mean", _num),
        ("std of margin", "std", _num),
        ("median margin", "median", _num),
        ("ties (%)", "frac_tie", _pct),
        ("pairs", "n", _num),
    ])


def _calibration_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """ECE, fitted temperature and the reliability diagram."""
    calib = _diagnostic(models, "calibration")
    if not calib:
        return ""
    out = (
        "<h3>Calibration</h3><p>σ(d/T) read as the probability that the chosen side wins; ECE in "
        "the symmetric formulation (each pair gives p with outcome 1 and 1 − p with outcome 0).</p>"
    )
    spec = [
        ("ECE at T = 1 (%)", "ece", _pct),
        ("fitted temperature T", "temperature", _num),
        ("ECE at fitted T (%)", "ece_at_temperature", _pct),
    ]
    if any("fit_data" in c for c in calib.values()):
        spec += [("temperature fitted on", "fit_data", lambda v: "—" if v is None else html.escape(str(v))),
                 ("pairs in the fit", "fit_n", _num),
                 ("accuracy on the fit data (%)", "fit_accuracy", _pct)]
    spec = [row for row in spec if row[1] == "ece" or any(c.get(row[1]) is not None for c in calib.values())]
    out += _metric_rows(calib, list(calib), spec)
    if not any(c.get("temperature") is not None or c.get("fit_error") for c in calib.values()):
        out += "<p>No temperature fitted (give calibration pairs, e.g. <code>--calibration-data</code>).</p>"
    errors = [f"{m}: {c['fit_error']}" for m, c in calib.items() if c.get("fit_error")]
    if errors:
        out += "".join(f'<p class="note">No temperature for {html.escape(e)}</p>' for e in errors)
    curves = {m: c["reliability"] for m, c in calib.items() if c.get("reliability")}
    if curves:
        out += _owned_figure(plot_reliability(curves), "Reliability diagram at T = 1")
    return out


def _length_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Correlation of reward with length and accuracy split by which side is longer."""
    bias = _diagnostic(models, "length_bias")
    if not bias:
        return ""
    units = list(dict.fromkeys(str(b["unit"]) for b in bias.values() if b.get("unit")))
    unit = f"<p>Lengths in {html.escape(', '.join(units))}.</p>" if units else ""
    rows = [
        ("Spearman(reward, length), all responses", "spearman_reward_length", _num),
        ("95% interval (Fisher z)", "spearman_interval", _span(_num)),
        ("accuracy, chosen shorter (%)", "acc_chosen_shorter", _pct),
        ("95% interval (Wilson)", "acc_chosen_shorter_interval", _span(_pct)),
        ("pairs with chosen shorter", "n_chosen_shorter", _num),
        ("accuracy, chosen longer (%)", "acc_chosen_longer", _pct),
        ("95% interval (Wilson)", "acc_chosen_longer_interval", _span(_pct)),
        ("pairs with chosen longer", "n_chosen_longer", _num),
        ("gap: longer − shorter (points)", "gap_longer_minus_shorter", _gap),
        ("pairs of equal length", "n_equal", _num),
    ]
    rows = [row for row in rows if not row[1].endswith(("_interval", "_minus_shorter"))
            or any(b.get(row[1]) is not None for b in bias.values())]  # results written before the intervals
    out = "<h3>Length bias</h3>" + unit + _metric_rows(bias, list(bias), rows)
    for m, b in bias.items():
        if b.get("by_set"):
            rows = [("", [html.escape(str(name)), _num(d["spearman"]["rho"]),
                          *(f"{_pct(d[k]['accuracy'])} {_span(_pct)(d[k])}" for k in ("chosen_shorter", "chosen_longer")),
                          _num(d["chosen_shorter"]["n"]), _num(d["chosen_longer"]["n"]), _gap(d["gap"])])
                    for name, d in b["by_set"].items()]
            out += f"<p>{html.escape(m)}, per subset (95% intervals):</p>" + _table(
                ["subset", "Spearman", "acc. chosen shorter (%)", "acc. chosen longer (%)", "n shorter",
                 "n longer", "gap (points)"], rows)
    tokens = _diagnostic(models, "length_bias_tokens")
    if tokens:
        out += "<p>The same in the model's tokens:</p>" + _metric_rows(tokens, list(tokens), [
            ("Spearman(reward, length in tokens)", "spearman_reward_length", _num),
            ("accuracy, chosen shorter in tokens (%)", "acc_chosen_shorter", _pct),
            ("accuracy, chosen longer in tokens (%)", "acc_chosen_longer", _pct),
        ])
    return out


def _span(fmt):
    """A formatter of a ``{"low", "high"}`` interval with ``fmt`` for each end."""
    def show(v):
        if not isinstance(v, Mapping) or v.get("low") is None:
            return "—"
        return f"{fmt(v['low'])} – {fmt(v['high'])}"
    return show


def _gap(v) -> str:
    if not isinstance(v, Mapping) or v.get("estimate") is None:
        return "—"
    return f"{100 * v['estimate']:+.1f} [{100 * v['low']:+.1f}, {100 * v['high']:+.1f}]"


def _quantile_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Accuracy per quantile bin of a per-pair value, as a plot and a table per model."""
    by_q = _diagnostic(models, "accuracy_by_quantile")
    if not by_q:
        return ""
    value = next(iter(by_q.values())).get("value", "value")
    out = f"<h3>Accuracy by quantile of {html.escape(value)}</h3>"
    out += _owned_figure(
        plot_accuracy_by_quantile({m: q["bins"] for m, q in by_q.items()}, value=value),
        f"Pairwise accuracy per quantile bin of {value}",
    )
    for m, q in by_q.items():
        rows = [("", [str(b["bin"]), _num(b["lo"]), _num(b["hi"]), _num(b["n"]), _pct(b["accuracy"])])
                for b in q["bins"]]
        out += f"<p>{html.escape(m)}</p>" + _table(["bin", "lo", "hi", "n", "accuracy (%)"], rows)
    return out


def _rewards_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Per-category summaries of chosen and rejected rewards."""
    rewards = _diagnostic(models, "rewards")
    if not rewards:
        return ""
    out = "<h3>Reward distributions</h3>"
    for m, per_cat in rewards.items():
        rows = [
            ("", [html.escape(f"{cat} ({side})"), *(_num(s[k]) for k in ("mean", "std", "min", "max", "n"))])
            for cat, sides in per_cat.items()
            for side, s in sides.items()
        ]
        out += f"<p>{html.escape(m)}</p>" + _table(["category", "mean", "std", "min", "max", "n"], rows)
    return out


def _bounds(interval: Mapping[str, Any] | None) -> tuple[float | None, float | None] | None:
    return (interval.get("low"), interval.get("high")) if interval else None


def _comparison_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Per-section bars with 95% error bars when two or more models have scores."""
    scores = {
        m: {"Overall": e["suite"]["overall"], **{s: v["score"] for s, v in e["suite"]["sections"].items()}}
        for m, e in models.items() if e.get("suite")
    }
    intervals = {
        m: {"Overall": _bounds(e["suite"].get("overall_interval")),
            **{s: _bounds(v.get("interval")) for s, v in e["suite"]["sections"].items()}}
        for m, e in models.items() if e.get("suite")
    }
    caption = "Scores per section (error bars: 95% intervals)"
    if len(scores) < 2:
        scores = {
            m: {"All": e["overall"]["accuracy"], **{d: v["accuracy"] for d, v in e["datasets"].items()}}
            for m, e in models.items() if e.get("datasets") and e.get("overall")
        }
        intervals = {
            m: {"All": _bounds(e["overall"].get("interval")), **{d: _bounds(v.get("interval")) for d, v in e["datasets"].items()}}
            for m, e in models.items() if e.get("datasets") and e.get("overall")
        }
        caption = "Accuracy per dataset (error bars: 95% intervals)"
    if len(scores) < 2:
        return ""
    return "<h3>Model comparison</h3>" + _owned_figure(plot_model_comparison(scores, intervals), caption)


def _rules_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Each model's score per subset beside what the length rules score on the same items."""
    out = []
    for m, e in models.items():
        subsets = (e.get("suite") or {}).get("subsets") or e.get("datasets") or {}
        entries = {k: v for k, v in subsets.items() if v.get("rules")}
        if not entries:
            continue
        rows, fig_rows = [], []
        for sub, v in entries.items():
            r = v["rules"]
            verdict = (v.get("length_rule") or {}).get("verdict")
            flag = {"beats": "a length rule beats or ties it", "matches": "a length rule matches it"}.get(verdict, "")
            rows.append(("warn" if verdict else "", [
                html.escape(sub), _num(v["n"]), _pct(v["accuracy"]) + _ci_text(v.get("interval")),
                *(_pct(r[k]["score"]) + _ci_text(r[k].get("interval")) for k in ("prefer_longer", "prefer_shorter", "chance")),
                html.escape(flag)]))
            iv = v.get("interval") or {}
            fig_rows.append({"label": sub, "score": v["accuracy"], "low": iv.get("low"), "high": iv.get("high"),
                             "longer": r["prefer_longer"]["score"], "shorter": r["prefer_shorter"]["score"],
                             "chance": r["chance"]["score"]})
        out.append(f"<p>{html.escape(m)}</p>" + _table(
            ["subset", "n", "model", "prefer-longer", "prefer-shorter", "chance", "flag"], rows))
        out.append(_owned_figure(plot_scores_with_rules(fig_rows), f"{m}: scores with 95% intervals and the length rules"))
    if not out:
        return ""
    return ("<h3>Length rules</h3><p>What choosing the longer response, the shorter one, or a random one scores on "
            "the same items (lengths in characters, a tie wrong). A subset where a length rule beats, ties or "
            "matches the model (the 95% interval of the model's lead reaches 0) measures length, not "
            "judgement.</p>" + "".join(out))


def _comparisons_section(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """Paired comparisons of models: differences with intervals, tests, Holm-adjusted p-values."""
    out = []
    for c in comparisons:
        a, b = c["models"]
        rows = []
        for r in c["subsets"]:
            ci = "—" if r["low"] is None else f"{100 * r['low']:+.1f}, {100 * r['high']:+.1f}"
            rows.append(("warn" if r["reject"] else "", [
                html.escape(str(r["subset"])), _num(r["n"]), _pct(r["a"]), _pct(r["b"]), f"{100 * r['difference']:+.1f}",
                ci, "exact McNemar" if r["test"] == "mcnemar_exact" else "paired bootstrap",
                f"{r['p_value']:.3g}", f"{r['p_holm']:.3g}", "yes" if r["reject"] else ""]))
        extra = list((c.get("sections") or {}).items())
        if isinstance((c.get("overall") or {}).get("difference"), float):
            extra.append(("overall", c["overall"]))
        for label, r in extra:
            rows.append(("section", [html.escape(label), "", "", "", f"{100 * r['difference']:+.1f}",
                                     f"{100 * r['low']:+.1f}, {100 * r['high']:+.1f}", "paired bootstrap",
                                     f"{r['p_value']:.3g}", "—", ""]))
        out.append(f"<p>{html.escape(a)} − {html.escape(b)}</p>" + _table(
            ["subset", "n", a, b, "A − B (points)", "95% CI", "test", "p", "p (Holm)", "significant"], rows))
    if not out:
        return ""
    return ("<h3>Paired comparisons</h3><p>The same items for both models. Per subset: exact McNemar on the "
            "discordant items (0/1 scores) or the paired bootstrap, Holm-corrected over the subsets; sections "
            "and overall: paired stratified bootstrap of the suite's formula (not corrected).</p>" + "".join(out))


def _agreement_section(models: Mapping[str, Mapping[str, Any]], agreement: Sequence[Mapping[str, Any]]) -> str:
    """Agreement rates of pairs of models (same side picked), overall and per section and set."""
    if not agreement:
        return ""
    header = ["Pairs", "n", *(" vs ".join(a["models"]) for a in agreement)]

    def row(key: str, label: str, cls: str) -> tuple[str, list[str]]:
        n = next(a[key][label]["n"] for a in agreement if label in (a.get(key) or {}))
        return cls, [html.escape(label), _num(n),
                     *(_pct(a[key][label]["rate"]) if label in (a.get(key) or {}) else "—" for a in agreement)]

    sections = list(dict.fromkeys(label for a in agreement for label in (a.get("by_section") or {})))
    sets = list(dict.fromkeys(label for a in agreement for label in (a.get("by_set") or {})))
    section_of = {sub: v["section"] for e in models.values() if e.get("suite")
                  for sub, v in e["suite"]["subsets"].items()}
    body = [("overall", ["All pairs", _num(agreement[0].get("n")), *(_pct(a["overall"]) for a in agreement)])]
    if sections and all(s in section_of for s in sets):
        order = list(dict.fromkeys(sub for e in models.values() if e.get("suite") for sub in e["suite"]["subsets"]))
        for section in sections:
            body.append(row("by_section", section, "section"))
            body += [row("by_set", sub, "subset") for sub in order if sub in sets and section_of[sub] == section]
    else:
        body += [row("by_section", s, "section") for s in sections]
        body += [row("by_set", s, "subset" if sections else "") for s in sets]
    return (
        "<h3>Agreement between models</h3><p>How often two models pick the same side of a pair "
        "(sign of r_c − r_r; a tie agrees only with a tie), in %.</p>" + _table(header, body)
    )


def _other_section(models: Mapping[str, Mapping[str, Any]]) -> str:
    """Diagnostics this writer has no layout for, as JSON."""
    other = {
        m: {k: v for k, v in (e.get("diagnostics") or {}).items() if k not in _KNOWN_DIAGNOSTICS}
        for m, e in models.items()
    }
    other = {m: d for m, d in other.items() if d}
    if not other:
        return ""
    text = json.dumps(other, indent=2, default=str, ensure_ascii=False)
    return f"<h3>Other diagnostics</h3><pre>{html.escape(text)}</pre>"


def _owned_figure(fig: Figure, caption: str) -> str:
    """Embed a figure made here, then free it."""
    out = _figure_html(fig, caption)
    fig.clear()
    return out


def _meta_section(meta: Mapping[str, Any]) -> str:
    """Run information as a key/value table."""
    if not meta:
        return ""
    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return "<br>".join(f"{html.escape(str(k))}: {value(x)}" for k, x in v.items())
        return html.escape(v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False))

    rows = [("", [html.escape(str(k)), value(v)]) for k, v in meta.items()]
    return "<h2>Run information</h2>" + _table(["key", "value"], rows, css="meta")


def write_report(
    results: Mapping[str, Any],
    out_path: str | Path,
    *,
    title: str,
    figures: Mapping[str, Figure] | None = None,
) -> Path:
    """Write ``results`` (structure in the module docstring) as one self-contained HTML file.

    Order: the summary table (overall, sections, subsets; models side by side), then the
    diagnostics that are present (accuracy and margins, calibration, length bias, accuracy by
    quantile, reward distributions, model comparison, agreement, other), then ``figures`` (embedded
    under their names; the caller keeps ownership), then run information from
    ``results["meta"]``. Missing optional parts are skipped. Returns the path written.
    """
    models = _models(results)
    diagnostics = "".join(
        part(models)
        for part in (
            _accuracy_section,
            _calibration_section,
            _length_section,
            _quantile_section,
            _rewards_section,
            _comparison_section,
        )
    )
    diagnostics += (_rules_section(models) + _comparisons_section(results.get("comparisons") or [])
                    + _agreement_section(models, results.get("agreement") or []) + _other_section(models))
    extra = "".join(_figure_html(fig, name) for name, fig in (figures or {}).items())
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Models: {html.escape(', '.join(models))}</p>",
        _summary_section(models),
        f"<h2>Diagnostics</h2>{diagnostics}" if diagnostics else "",
        f"<h2>Figures</h2>{extra}" if extra else "",
        _meta_section(results.get("meta") or {}),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
