"""``rewardlab rubric score``: score completions offline per criterion; table, summary, HTML report.

Input rows (JSONL/JSON/CSV/Parquet) hold ``prompt`` (text or chat messages) and ``completion``
(text, or chat messages whose last message is scored); other columns are carried into the table.
Outputs in OUT/: ``scores.csv`` (one row per item: row, the [0, 1] score of every criterion, empty
where invalid), ``summary.json`` (per criterion: mean, std, saturation, share of items at 1 and at
0, invalid and unparsed counts; the weighted mean and the worst criterion; run information) and
``report.html`` (the summary table, score histograms, saturation bars).
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np

from rewardlab.errors import DataError

RESULTS = ("scores.csv", "summary.json", "report.html")  # what `rubric score` writes into OUT


def read_completions(path: str | Path, prompt_key: str = "prompt", completion_key: str = "completion"):
    """(prompts, completions) of a file; errors name the file, line (or row) and field."""
    from rewardlab.data.chat import type_name, validate_messages
    from rewardlab.data.readers import file_unit

    path = Path(path)
    expected = "a .jsonl, .json, .csv or .parquet file"
    if path.is_dir():
        raise DataError(f"is a directory; expected {expected} of prompts and completions", file=str(path))
    if not path.is_file():
        raise DataError("no such file", file=str(path), expected=expected)
    unit = file_unit(path)
    prompts, completions = [], []
    for loc, rec in unit.rows:
        where = {"line": loc} if unit.text else {"row": loc}
        if isinstance(rec, DataError):
            raise DataError(rec.message, file=unit.label, field=rec.field, expected=rec.expected, got=rec.got, **where)
        if not isinstance(rec, dict):
            raise DataError(file=unit.label, expected="an object", got=type(rec).__name__, **where)
        for key in (prompt_key, completion_key):
            v = rec.get(key)
            if isinstance(v, list):  # chat messages: {role, content} with a known role and text content
                try:
                    validate_messages(v, key)
                except DataError as e:
                    raise DataError(file=unit.label, field=e.field, expected=e.expected, got=e.got, **where) from None
            elif not isinstance(v, str):
                raise DataError(file=unit.label, field=key, expected="a string or a list of chat messages",
                                got="missing" if v is None else type_name(v), **where)
        prompts.append(rec[prompt_key])
        completions.append(rec[completion_key])
    if not completions:
        raise DataError("no rows", file=unit.label)
    return prompts, completions


def criterion_summary(scores: np.ndarray, names: list[str], weights: list[float]) -> dict:
    """Per-criterion statistics of [0, 1] scores (NaN = invalid), the weighted mean, the worst criterion."""
    from rewardlab.rubric.grpo import score_summary

    out = {}
    for j, name in enumerate(names):
        col = scores[:, j]
        ok = col[~np.isnan(col)]
        out[name] = {"n": int(ok.size), "mean": float(ok.mean()) if ok.size else None,
                     "std": float(ok.std()) if ok.size else None,
                     "saturation": float(ok.mean()) if ok.size else None,  # (mean − low)/(high − low) on [0, 1]
                     "at_max": float((ok == 1.0).mean()) if ok.size else None,
                     "at_min": float((ok == 0.0).mean()) if ok.size else None}
    overall = score_summary(names, weights, scores)
    return {"criteria": out, "weighted_mean": overall["weighted_mean"], "worst_criterion": overall["worst_criterion"]}


def write_outputs(out: Path, rubric, res, meta: dict) -> dict:
    """scores.csv, summary.json and report.html for scored items."""
    from matplotlib.figure import Figure

    from rewardlab.eval.report import _CSS, _figure_html, _meta_section, _num, _table

    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", *rubric.names])
        for i, row in enumerate(res.scores):
            w.writerow([i, *("" if np.isnan(v) else f"{v:.6g}" for v in row)])
    summary = criterion_summary(res.scores, rubric.names, rubric.weights)
    summary.update({"n": int(res.scores.shape[0]), "weights": dict(zip(rubric.names, rubric.weights)),
                    "on_invalid": rubric.on_invalid, "invalid": res.invalid, "unparsed": res.unparsed, "meta": meta})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")

    rows = []
    for name in rubric.names:
        c = summary["criteria"][name]
        bad = sum(res.invalid[name].values())
        rows.append(("", [html.escape(name), _num(summary["weights"][name]), _num(c["mean"]), _num(c["std"]),
                          _num(c["saturation"]), _num(c["at_max"]), _num(c["at_min"]), str(bad),
                          str(res.unparsed[name])]))
    table = _table(["criterion", "weight", "mean", "std", "saturation", "share at 1", "share at 0", "invalid",
                    "unparsed"], rows)
    k = len(rubric.names)
    hist = Figure(figsize=(3.2 * min(k, 4), 2.6 * ((k + 3) // 4)), layout="constrained")
    for j, name in enumerate(rubric.names):
        ax = hist.add_subplot((k + 3) // 4, min(k, 4), j + 1)
        col = res.scores[:, j]
        ax.hist(col[~np.isnan(col)], bins=np.linspace(0, 1, 11), color="#4477aa")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
    sat = Figure(figsize=(6.4, 0.5 + 0.35 * k), layout="constrained")
    ax = sat.add_subplot()
    vals = [summary["criteria"][n]["saturation"] or 0.0 for n in rubric.names]
    ax.barh(rubric.names[::-1], vals[::-1], color="#cc6677")
    ax.set_xlim(0, 1)
    ax.set_xlabel("saturation (mean score on [0, 1])")
    title = f"Rubric scores: {rubric.name or Path(rubric.source).name}"
    facts = (f"<p>{summary['n']} items; weighted mean {_num(summary['weighted_mean'])}; worst criterion "
             f"{_num(summary['worst_criterion'])}; invalid scores: policy <b>{rubric.on_invalid}</b>.</p>")
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{facts}{table}<h2>Figures</h2>"
            f"{_figure_html(hist, 'score distribution per criterion')}{_figure_html(sat, 'saturation per criterion')}"
            f"{_meta_section(meta)}</body></html>\n")
    (out / "report.html").write_text(page, encoding="utf-8")
    return summary


def score_file(rubric_path: str | Path, data: str | Path, out: str | Path, *, generator=None, progress: bool = False,
               prompt_key: str = "prompt", completion_key: str = "completion") -> dict:
    """Load a rubric, score a completions file, write the outputs; returns the summary."""
    from rewardlab.rubric.spec import load_rubric
    from rewardlab.runinfo import run_info

    rubric = load_rubric(rubric_path, generator=generator)
    prompts, completions = read_completions(data, prompt_key, completion_key)
    res = rubric.score(prompts, completions, progress=progress)
    meta = {"rubric": str(rubric_path), "data": str(data), **run_info()}
    return write_outputs(Path(out), rubric, res, meta)
