"""What ``eval`` says about each subset beyond its score: the interval, the length rules beside it,
and paired comparisons of models, for every item shape (METHODS.md §10).

Everything here works on *units*: one per evaluated pair or item, each with a per-unit score in
[0, 1] (1/0 for right/wrong; the expectation of a random pick where responses tie at the top of
a best-of-k selection), the subset (``set``) it belongs to and its prompt (``cluster``: units
sharing a prompt are resampled together). Pure functions: arrays and lists in, JSON-ready dicts
out; the runner (:mod:`rewardlab.eval.runner`) gathers the units and writes the results.

- :func:`item_unit_scores` turns one item kind's rewards into per-item scores and the
  kind's own metrics (RM-Bench's hard/normal/easy, best-of-k's random pick and oracle).
- :func:`length_rules` scores prefer-longer, prefer-shorter and chance on the same units
  (characters), so every subset shows what a length rule gets on it.
- :func:`set_blocks` gives each subset its interval (Wilson for independent 0/1 units, else a
  cluster bootstrap), the rules' intervals, the paired model-minus-rule difference and a flag
  where a length rule matches or beats the model.
- :func:`suite_intervals` applies a suite's section/overall formula to stratified bootstrap
  replicates (:class:`~rewardlab.eval.stats.StratifiedBootstrap`).
- :func:`compare` compares two models on the same units: exact McNemar (0/1 units) or the paired
  bootstrap per subset, Holm over the subsets, paired intervals of section and overall differences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rewardlab.data.items import Item
from rewardlab.eval import items as item_metrics
from rewardlab.eval import stats

__all__ = ["RULES", "item_unit_scores", "item_mask", "length_rules", "set_blocks", "length_warning",
           "suite_intervals", "compare", "groups_of"]

RULES = ("prefer_longer", "prefer_shorter", "chance")
_RULE_NAMES = {"prefer_longer": "prefer-longer", "prefer_shorter": "prefer-shorter"}


def groups_of(labels: Sequence[Any]) -> dict[Any, np.ndarray]:
    """``{label: indices}`` in order of first appearance."""
    out: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(label, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


# ----------------------------------------------------------------------------- item kinds
def item_unit_scores(kind: str, items: Sequence[Item], rewards: Sequence[np.ndarray]) -> tuple[np.ndarray, dict]:
    """Per-item scores of one item kind from each item's rewards (one per distinct response), and
    the kind's own metrics (means, plus per-item arrays under ``per_item`` for intervals).

    ``best_of_n``: 1 when the chosen reward is strictly above every rejected one (a tie with the
    best rejected is wrong). ``rm_bench``: the mean of the item's nine style cells (chosen-style i
    against rejected-style j, a tie wrong); ``hard``/``normal``/``easy`` beside it. ``pointwise``:
    best-of-k selection, the correctness of the top-scored response (a tie at the top counts the
    expectation of a random pick among the tied), on the items that mix correct and wrong
    responses (elsewhere every selector scores the same); ``random`` is the random-pick
    expectation on those items.
    """
    split = [item.split(r) for item, r in zip(items, rewards)]
    if kind == "best_of_n":
        res = item_metrics.best_of_n_accuracy([s["chosen"][0] for s in split], [s["rejected"] for s in split])
        return res["per_item"], {"chance": res["chance"], "tie": res["tie"]}
    if kind == "rm_bench":
        res = item_metrics.rm_bench_accuracy(np.stack([s["chosen"] for s in split]),
                                             np.stack([s["rejected"] for s in split]))
        details = {k: res[k] for k in ("matrix", "hard", "normal", "easy", "average", "styles", "tie")}
        details["per_item"] = {k: res["per_item"][k] for k in ("hard", "normal", "easy")}
        return res["per_item"]["average"], details
    if kind == "pointwise":
        res = item_metrics.best_of_k_selection([s["scores"] for s in split], [s["correct"] for s in split])
        mixed = res["per_item"]["mixed"]
        details = {"n_items": res["n"], "n_mixed": res["n_mixed"], "selected_all": res["selected"],
                   "random_all": res["random"], "oracle_all": res["oracle"],
                   "random": res["random_mixed"], "selected": res["selected_mixed"],
                   "mixed": mixed, "per_item": {"random": res["per_item"]["random"][mixed]}}
        return res["per_item"]["selected"][mixed], details
    raise ValueError(f"no per-item score for item kind {kind!r}")


def item_mask(kind: str, items: Sequence[Item]) -> np.ndarray:
    """Which items of a kind become units (pointwise: those mixing correct and wrong responses)."""
    if kind == "pointwise":
        return np.asarray([0 < sum(it.correct[i] for i in it.sample_idx) < len(it.sample_idx) for it in items])
    return np.ones(len(items), dtype=bool)


# ----------------------------------------------------------------------------- length rules
def length_rules(kind: str, *, chosen: Sequence[str] = (), rejected: Sequence[str] = (),
                 items: Sequence[Item] = ()) -> dict[str, np.ndarray]:
    """Per-unit scores of prefer-longer, prefer-shorter and chance (lengths in characters; equal
    lengths tie, and a tie is wrong, as for the models)."""
    if kind == "pairs":
        res = item_metrics.length_baselines_pairs(item_metrics.char_lengths([_text(x) for x in chosen]),
                                                  item_metrics.char_lengths([_text(x) for x in rejected]))
        return {name: res[name]["per_item"] for name in RULES}
    lengths = [item_metrics.char_lengths(it.responses) for it in items]
    if kind == "best_of_n":
        res = item_metrics.length_baselines_best_of_n(
            [ln[list(it.chosen_idx)][0] for it, ln in zip(items, lengths)],
            [ln[list(it.rejected_idx)] for it, ln in zip(items, lengths)])
        return {name: res[name]["per_item"] for name in RULES}
    if kind == "rm_bench":
        c = np.stack([ln[list(it.chosen_idx)] for it, ln in zip(items, lengths)])
        r = np.stack([ln[list(it.rejected_idx)] for it, ln in zip(items, lengths)])
        longer = item_metrics.rm_bench_accuracy(c, r)["per_item"]["average"]
        shorter = item_metrics.rm_bench_accuracy(-c, -r)["per_item"]["average"]
        return {"prefer_longer": longer, "prefer_shorter": shorter, "chance": np.full(len(items), 0.5)}
    if kind == "pointwise":
        keep = item_mask(kind, items)
        sel = [it for it, k in zip(items, keep) if k]
        ln = [item_metrics.char_lengths([it.responses[i] for i in it.sample_idx]) for it in sel]
        ok = [np.asarray([it.correct[i] for i in it.sample_idx], dtype=bool) for it in sel]
        longer = item_metrics.best_of_k_selection(ln, ok)["per_item"]
        shorter = item_metrics.best_of_k_selection([-x for x in ln], ok)["per_item"]
        return {"prefer_longer": longer["selected"], "prefer_shorter": shorter["selected"],
                "chance": longer["random"]}
    raise ValueError(f"no length rules for item kind {kind!r}")


def _text(response: Any) -> str:
    """A response as text for its length: a string, or the contents of a list of messages."""
    if isinstance(response, str):
        return response
    return "".join(str(m.get("content", "")) for m in response if isinstance(m, dict))


# ----------------------------------------------------------------------------- per subset
def set_blocks(scores: np.ndarray, sets: Sequence[str], clusters: Sequence[Any],
               rules: Mapping[str, np.ndarray], *, n_boot: int = 2000, level: float = 0.95,
               seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per subset: ``n``, ``score``, ``interval``, ``rules`` (each length rule's score, interval
    and the paired difference model − rule with its interval) and ``length_rule``: the best
    length rule's name and verdict, ``"beats"`` (its score ≥ the model's), ``"matches"`` (below,
    but the 95% interval of the difference reaches 0) or ``None`` (the model is above it beyond
    noise). The rules' differences use the same items and clusters (paired)."""
    out = {}
    for k, (name, idx) in enumerate(groups_of(list(sets)).items()):
        x = scores[idx]
        cl = [clusters[i] for i in idx]
        shared = len(set(cl)) < len(cl)
        block: dict[str, Any] = {"n": int(idx.size), "score": float(x.mean()),
                                 "interval": _interval(x, cl, n_boot, level, seed + k)}
        block["rules"] = {}
        for rule in RULES:
            y = rules[rule][idx]
            diff = (stats.paired_bootstrap_difference(x, y, clusters=cl if shared else None, n_boot=n_boot,
                                                      level=level, seed=seed + k)
                    if len(set(cl)) >= 2 else None)
            block["rules"][rule] = {"score": float(y.mean()), "interval": _interval(y, cl, n_boot, level, seed + k),
                                    "difference": _brief(diff)}
        block["length_rule"] = _length_verdict(block)
        out[name] = block
    return out


def _interval(x: np.ndarray, clusters: list, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    res = stats.accuracy_interval(x, clusters, n_boot=n_boot, level=level, seed=seed)
    return {"low": res["low"], "high": res["high"], "level": res["level"], "method": res["method"]}


def _brief(diff: dict | None) -> dict | None:
    if diff is None:
        return None
    return {k: diff[k] for k in ("estimate", "low", "high", "p_value", "method")}


def _length_verdict(block: dict) -> dict[str, Any]:
    name = max(("prefer_longer", "prefer_shorter"), key=lambda r: block["rules"][r]["score"])
    rule = block["rules"][name]
    if rule["score"] >= block["score"]:
        verdict = "beats"
    elif rule["difference"] is not None and rule["difference"]["low"] is not None and rule["difference"]["low"] <= 0:
        verdict = "matches"
    else:
        verdict = None
    return {"rule": name, "score": rule["score"], "verdict": verdict}


def length_warning(name: str, block: dict) -> str | None:
    """A terminal line when a length rule matches or beats the model on a subset."""
    lr = block["length_rule"]
    if lr["verdict"] is None:
        return None
    how = "beats or ties" if lr["verdict"] == "beats" else "matches (the difference's 95% interval reaches 0)"
    return (f"{name}: {_RULE_NAMES[lr['rule']]} scores {100 * lr['score']:.1f} and {how} the model's "
            f"{100 * block['score']:.1f}: this subset does not show judgement beyond length")


# ----------------------------------------------------------------------------- sections, overall
def suite_intervals(resampler: stats.StratifiedBootstrap, scores: np.ndarray, ns: Mapping[str, int],
                    combine: Callable[[Mapping[str, Any], Mapping[str, int]], dict], point: dict,
                    level: float = 0.95) -> dict[str, Any]:
    """Intervals of each section and of the overall score: the suite's formula (``combine``)
    applied to every stratified bootstrap replicate of the subsets' means."""
    boot = combine(resampler.means(scores), ns)
    out = {"sections": {s: _ci(boot["sections"][s], v, level) for s, v in point["sections"].items()}}
    out["overall"] = _ci(boot["overall"], point["overall"], level) if point["overall"] is not None else None
    return out


def _ci(replicates: np.ndarray, estimate: float, level: float) -> dict[str, Any]:
    res = stats.interval_of(replicates, estimate, level)
    return {"low": res["low"], "high": res["high"], "level": res["level"], "method": "stratified cluster bootstrap"}


# ----------------------------------------------------------------------------- two models
def compare(name_a: str, name_b: str, a: np.ndarray, b: np.ndarray, sets: Sequence[str], clusters: Sequence[Any],
            *, resampler: stats.StratifiedBootstrap | None = None, ns: Mapping[str, int] | None = None,
            combine: Callable | None = None, n_boot: int = 2000, level: float = 0.95, alpha: float = 0.05,
            seed: int = 0) -> dict[str, Any]:
    """Model A against model B on the same units: per subset the difference with its paired
    interval, the test (exact McNemar for 0/1 units, else the paired bootstrap) and its
    Holm-adjusted p-value over the subsets; with a suite's ``combine``, the section and overall
    differences with paired stratified-bootstrap intervals (``p_value`` from the replicates,
    not corrected: they are combinations of the subsets)."""
    res = stats.compare_models(a, b, list(sets), clusters=list(clusters), n_boot=n_boot, level=level,
                               alpha=alpha, seed=seed)
    rows = [_row(r) for r in res["subsets"]]
    out: dict[str, Any] = {"models": [name_a, name_b], "n": int(a.size), "alpha": alpha, "level": level,
                           "correction": "holm over subsets", "subsets": rows,
                           "significant_after_holm": [r["subset"] for r in rows if r["reject"]]}
    if resampler is not None and combine is not None:
        pa, pb = combine({k: float(a[i].mean()) for k, i in groups_of(list(sets)).items()}, ns), \
            combine({k: float(b[i].mean()) for k, i in groups_of(list(sets)).items()}, ns)
        ba, bb = combine(resampler.means(a), ns), combine(resampler.means(b), ns)
        out["sections"] = {s: _diff(ba["sections"][s] - bb["sections"][s], pa["sections"][s] - pb["sections"][s], level)
                           for s in pa["sections"]}
        if pa["overall"] is not None:
            out["overall"] = _diff(ba["overall"] - bb["overall"], pa["overall"] - pb["overall"], level)
    else:
        out["overall"] = _row(res["overall"])
    return out


def _row(r: dict) -> dict[str, Any]:
    d = r["difference"]
    return {"subset": r["subset"], "n": r["n"], "a": r["a"]["estimate"], "b": r["b"]["estimate"],
            "difference": d["estimate"], "low": d["low"], "high": d["high"], "test": r["test"],
            "p_value": r["p_value"], "p_holm": r["p_holm"], "reject": r["reject"],
            **({"discordant": [r["mcnemar"]["b"], r["mcnemar"]["c"]]} if r.get("mcnemar") else {})}


def _diff(replicates: np.ndarray, estimate: float, level: float) -> dict[str, Any]:
    ci = stats.interval_of(replicates, estimate, level)
    extreme = int(np.sum(np.abs(replicates - estimate) >= abs(estimate) - 1e-12))
    return {"difference": float(estimate), "low": ci["low"], "high": ci["high"],
            "p_value": min(1.0, (1 + extreme) / (1 + replicates.size)) if estimate != 0 else 1.0,
            "method": "paired stratified cluster bootstrap"}
