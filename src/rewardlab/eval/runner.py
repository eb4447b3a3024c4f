"""``rewardlab eval``: score saved reward models on a suite or on data sets, with diagnostics.

One call, :func:`evaluate`, does the whole evaluation:

1. load the pairs once: in *suite mode* each distinct data spec of the suite once, rows assigned
   to subsets (rows no subset selects are counted and reported, not scored); in *data mode*
   each ``--data`` spec is one set, reported per dataset and per ``source``;
2. optionally keep at most N pairs per subset (dataset in data mode), chosen by a hash of the
   pair's text so the choice does not depend on file order, machine or Python version;
3. for each model: score every pair once (rewards and the pooled features ``h``), then the
   suite scores (RewardBench v1 rules, :func:`rewardlab.eval.suites.score_suite`) or the
   per-dataset/per-source accuracies, and the diagnostics of :func:`rewardlab.eval.metrics.diagnostics`
   (accuracy per quartile of ``‖h_c − h_r‖``, length bias in tokens, calibration, reward
   summaries per section or dataset);
4. beside every subset (dataset in data mode), section and overall score: its 95% interval
   (Wilson for independent 0/1 items, a cluster bootstrap where items share a prompt, a
   stratified bootstrap of the suite's formula for sections and the overall score), and the
   length rules prefer-longer, prefer-shorter and chance with their intervals; a subset a
   length rule matches or beats is flagged (:mod:`rewardlab.eval.assess`);
5. with two or more models: how often each pair of models picks the same side, per set, and a
   paired comparison (exact McNemar or paired bootstrap per subset, Holm over the subsets,
   paired intervals of section and overall differences).

Items beyond pairs (``rewardlab.data.items``: best-of-N, RM-Bench, pointwise correctness such
as GSM8K's best-of-4) are read from suite subsets with a ``kind`` or from ``--data`` files whose
rows have that shape; each distinct (prompt, response) is scored once.

:func:`write_outputs` writes ``results.json`` (schema in docs/evaluation.md), ``report.html`` and
``scores.csv`` (every evaluated pair with each model's two rewards).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data import load_preferences
from rewardlab.data.items import is_item_spec, read_items, unique_inputs
from rewardlab.data.lengths import length_diagnostics, response_lengths
from rewardlab.data.readers import HubUnreachable
from rewardlab.errors import ConfigError, DataError
from rewardlab.eval import assess, metrics, stats
from rewardlab.eval import items as item_metrics
from rewardlab.eval.suites import combine as suite_combine
from rewardlab.eval.suites import load_suite, rows_by_subset, score_suite
from rewardlab.critic.load import load_model
from rewardlab.models.locate import REWARD_MODEL, locate_model
from rewardlab.models.reward_model import RewardModel
from rewardlab.runinfo import run_info

__all__ = [
    "RESULTS_FORMAT",
    "SUBSAMPLE_METHOD",
    "LENGTH_UNIT",
    "Evaluation",
    "evaluate",
    "write_outputs",
    "dataset_name",
    "unique_names",
    "model_settings",
    "write_json",
    "tie_counts",
    "dominance_warnings",
    "input_notes",
    "default_out_dir",
]

RESULTS_FORMAT = "rewardlab.eval/2"
SUBSAMPLE_METHOD = (
    "per subset (per dataset in data mode): the N pairs with the smallest SHA-256 of "
    "(prompt, chosen, rejected), kept in file order"
)
LENGTH_UNIT = "characters (response text; a message list: its contents)"  # as the length rules count
TOKEN_LENGTH_UNIT = "tokens (model tokenizer, response text only, before truncation)"
_EXAMPLES = 5

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- names
def dataset_name(spec: str) -> str:
    """A short display name for a data spec (file stem, directory name or Hub name)."""
    if spec.startswith("hf:"):
        return spec[3:]
    return Path(spec.split("@")[0]).stem or spec


def unique_names(paths: Sequence[str | Path], base: Callable[[str], str] | None = None) -> list[str]:
    """Display names for ``paths``: the last path component, widened to the shortest distinguishing
    tail (``a/model``, ``b/model``) where two collide; the very same path twice gets ``#2``, ...

    ``base`` maps a path to its short name (default: the last component, with its parent when it
    is the generic ``model`` of a training run's ``OUT/model``: ``runs/minilm_hh/model`` →
    ``minilm_hh/model``).
    """
    parts = [Path(str(p)).parts or (str(p),) for p in paths]
    depth = [2 if base is None and len(pp) >= 2 and pp[-1] == "model" else 1 for pp in parts]
    names = [base(str(p)) if base else "/".join(pp[-d:]) for p, pp, d in zip(paths, parts, depth)]
    while True:
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n, []).append(i)
        widened = False
        for idx in groups.values():
            if len(idx) < 2 or len({parts[i] for i in idx}) < 2:
                continue
            for i in idx:
                if depth[i] < len(parts[i]):
                    depth[i] += 1
                    names[i] = "/".join(parts[i][-depth[i]:])
                    widened = True
        if not widened:
            break
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


# ----------------------------------------------------------------------------- the pairs
@dataclass
class _Part:
    """The evaluated rows of one loaded data spec: pairs (``table``) or items (``items``)."""

    spec: str
    name: str  # dataset display name
    table: Any  # PreferenceTable of the evaluated rows only (pairs), None for items
    sets: list[str]  # per evaluated row: its subset (suite mode) or dataset (data mode)
    categories: list[str]  # per evaluated row: its section (suite mode) or dataset (data mode)
    items: list = field(default_factory=list)  # item parts: the evaluated items (rewardlab.data.items.Item)
    kinds: list[str] = field(default_factory=list)  # item parts: per item, its subset's kind


@dataclass
class _ItemSet:
    """The items of one subset (dataset) of an item kind, and their rewards per model."""

    name: str
    kind: str
    category: str
    dataset: str
    items: list
    rewards: dict[str, list] = field(default_factory=dict)  # model -> per item, its responses' rewards


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the JSON-ready ``results`` and the per-pair arrays.

    ``scores[model]`` has ``reward_chosen``/``reward_rejected`` (float64, one per evaluated
    pair, in ``pairs`` order), ``distance``, ``len_chosen``/``len_rejected`` (characters) and
    ``tokens_chosen``/``tokens_rejected`` (the model's tokens); ``pairs`` has
    per-pair ``dataset``, ``set``, ``category``, ``source``, ``id`` and ``origin`` lists.
    """

    results: dict[str, Any]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    pairs: dict[str, list] = field(default_factory=dict)
    units: dict[str, list] = field(default_factory=dict)  # per unit (pair or item): set, category, cluster
    unit_scores: dict[str, np.ndarray] = field(default_factory=dict)  # model -> per-unit score


def _pair_hash(table, i: int) -> str:
    text = json.dumps([table.prompt_key(i), table["chosen"][i], table["rejected"][i]], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _subsample(table, rows: list[int], limit: int | None) -> list[int]:
    """At most ``limit`` of ``rows``: the smallest pair hashes, returned in file order."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    ranked = sorted(rows, key=lambda i: (_pair_hash(table, i), i))
    return sorted(ranked[:limit])


def _load(spec: str, keep: Sequence[str] = ()):
    return load_preferences(spec, keep_columns=list(keep))


def _unselected_info(table, rows: list[int]) -> dict[str, Any]:
    sources = Counter(table["source"][i] for i in rows)
    return {"n": len(rows), "by_source": dict(sources.most_common()),
            "examples": [table.origin[i] for i in rows[:_EXAMPLES]]}


def _load_report(table) -> dict[str, Any]:
    rep = table.report
    if rep is None:
        return {}
    keep = ("n_read", "n_kept", "skipped", "empty_chosen", "empty_rejected", "identical", "ignored_columns")
    return {k: v for k, v in rep.to_dict().items() if k in keep}


def _item_hash(item) -> str:
    text = json.dumps([item.prompt, list(item.responses)], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prepare_items(spec: str, name: str, subsets: list | None, limit: int | None, layout: str = "auto",
                   on_error: str = "raise") -> tuple[_Part, dict, dict]:
    """An item part: the items of ``spec`` selected by ``subsets`` (suite mode; by the item's
    ``source`` or its benchmark ``group``) or all of them as one set (data mode, ``subsets`` None)."""
    from rewardlab.eval.suites import rows_by_subset

    items, report = read_items(spec, layout=layout, on_error=on_error)
    if subsets is None:
        selected, unselected = {name: list(range(len(items)))}, []
        kinds = {name: next(iter(report.kinds))}
        if len(report.kinds) > 1:
            raise DataError(f"items of several kinds in one data set: {report.kinds}", file=spec)
        sections = {name: name}
    else:
        columns = {"source": [it.source for it in items]}
        for sub in subsets:
            if sub.subset_column is not None:
                columns[sub.subset_column] = [it.group for it in items]
        selected, unselected = rows_by_subset(columns, subsets)
        kinds = {sub.name: sub.kind for sub in subsets}
        sections = {sub.name: sub.section for sub in subsets}
        for sub in subsets:
            wanted = "best_of_n" if sub.kind == "ties" else sub.kind
            bad = next((items[i] for i in selected[sub.name] if items[i].kind != wanted), None)
            if bad is not None:
                raise DataError(f"subset {sub.name!r} is of kind {sub.kind}", file=bad.origin,
                                expected=f"{wanted} items", got=f"a {bad.kind} item")
    rows, sets, cats, row_kinds, sub_info = [], [], [], [], {}
    for sub_name, idx in selected.items():
        keep = idx if limit is None or len(idx) <= limit else sorted(
            sorted(idx, key=lambda i: (_item_hash(items[i]), i))[:limit])
        sub_info[sub_name] = {"available": len(idx), "used": len(keep)}
        rows += keep
        sets += [sub_name] * len(keep)
        cats += [sections[sub_name]] * len(keep)
        row_kinds += [kinds[sub_name]] * len(keep)
    order = sorted(range(len(rows)), key=rows.__getitem__)
    rows = [rows[k] for k in order]
    part = _Part(spec, name, None, [sets[k] for k in order], [cats[k] for k in order],
                 items=[items[i] for i in rows], kinds=[row_kinds[k] for k in order])
    info = {"spec": spec, "n_loaded": len(items), "n_evaluated": len(rows), "kind": "items",
            "unselected": {"n": len(unselected), "by_source": dict(Counter(items[i].source for i in unselected)),
                           "examples": [items[i].origin for i in unselected[:_EXAMPLES]]},
            "load": {k: v for k, v in report.to_dict().items()
                     if k in ("n_read", "n_kept", "skipped", "layout", "kinds", "merged_duplicates", "empty_responses")}}
    return part, info, sub_info


def _prepare_suite(suite, limit: int | None, log: Log) -> tuple[list[_Part], dict, dict]:
    parts, data_info, sub_info = [], {}, {}
    names = unique_names(suite.data_specs(), base=dataset_name)
    for spec, name in zip(suite.data_specs(), names):
        log(f"loading {name}")
        try:
            part, info = _prepare_suite_spec(suite, spec, name, limit, sub_info)
        except HubUnreachable as e:  # rewardbench offline: say so at once, not a ConnectionError
            raise ConfigError(f"suite {suite.name} needs the Hugging Face Hub ({e.file}), which cannot be reached "
                              f"({e.reason}); {e.HINT}") from None
        parts.append(part)
        data_info[name] = info
    return parts, data_info, sub_info


def _prepare_suite_spec(suite, spec: str, name: str, limit: int | None, sub_info: dict) -> tuple[_Part, dict]:
    """One data spec of a suite: its part and data info; its subsets' counts go into ``sub_info``."""
    subsets = suite.subsets_for(spec)
    item_kinds = {s.kind for s in subsets if s.kind != "pairs"}
    if item_kinds:
        if len(item_kinds) < len({s.kind for s in subsets}):
            raise ConfigError(f"suite {suite.name}: {spec} is read as pairs by some subsets and as items by others")
        layouts = {s.layout for s in subsets}
        part, info, subs = _prepare_items(spec, name, subsets, limit, layout=layouts.pop() if len(layouts) == 1 else "auto")
        sub_info.update(subs)
        return part, info
    table = _load(spec, suite.keep_columns(spec))
    selected, unselected = rows_by_subset(table.columns, subsets)
    rows, sets, cats = [], [], []
    for sub in subsets:
        chosen = _subsample(table, selected[sub.name], limit)
        sub_info[sub.name] = {"available": len(selected[sub.name]), "used": len(chosen)}
        rows += chosen
        sets += [sub.name] * len(chosen)
        cats += [sub.section] * len(chosen)
    order = sorted(range(len(rows)), key=rows.__getitem__)  # file order
    rows, sets, cats = [rows[k] for k in order], [sets[k] for k in order], [cats[k] for k in order]
    info = {"spec": spec, "n_loaded": len(table), "n_evaluated": len(rows),
            "unselected": _unselected_info(table, unselected), "load": _load_report(table)}
    return _Part(spec, name, table.select(rows), sets, cats), info


def _prepare_data(specs: Sequence[str], limit: int | None, log: Log,
                  options: dict | None = None) -> tuple[list[_Part], dict, dict]:
    parts, data_info, sub_info = [], {}, {}
    for spec, name in zip(specs, unique_names(list(specs), base=dataset_name)):
        log(f"loading {name}")
        if is_item_spec(spec):  # best-of-N, RM-Bench or pointwise rows
            part, info, subs = _prepare_items(spec, name, None, limit,
                                              on_error=(options or {}).get("on_error", "raise"))
            parts.append(part)
            data_info[name] = info
            sub_info.update(subs)
            continue
        table = load_preferences(spec, **(options or {}))
        rows = _subsample(table, list(range(len(table))), limit)
        sub_info[name] = {"available": len(table), "used": len(rows)}
        data_info[name] = {"spec": spec, "n_loaded": len(table), "n_evaluated": len(rows),
                           "unselected": _unselected_info(table, []), "load": _load_report(table)}
        parts.append(_Part(spec, name, table.select(rows), [name] * len(rows), [name] * len(rows)))
    return parts, data_info, sub_info


# ----------------------------------------------------------------------------- one model
def model_settings(model: RewardModel, batch_size: int) -> dict[str, Any]:
    """Everything besides the weights that decides the rewards, as recorded in results.json."""
    s = model.settings
    template = getattr(model.tokenizer, "chat_template", None)
    if template is not None and not isinstance(template, str):
        template = json.dumps(template, sort_keys=True)
    param = next(model.parameters())
    return {
        "base_model": s.base_model,
        "dtype": str(param.dtype).replace("torch.", ""),
        "device": str(param.device),
        "max_length": s.max_length,
        "overlength": s.overlength,
        # RewardModel.score never drops an item at evaluation time: `drop` becomes truncate_right.
        "overlength_in_eval": "truncate_right" if s.overlength == "drop" else s.overlength,
        "render": s.render,
        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest() if template else None,
        "chat_template_used": s.render == "chat",
        "pooling": s.pooling,
        "padding_side": s.padding_side,
        "batch_size": batch_size,
        "hf_compatible": s.hf_compatible,
        "tokenizer": type(model.tokenizer).__name__,
        **({"critiques": model.critique_settings()} if hasattr(model, "critique_settings") else {}),
    }


def _token_lengths(tokenizer, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0)
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return np.asarray([len(x) for x in ids], dtype=float)


def _score_parts(model: RewardModel, parts: list[_Part], batch_size: int, progress: bool,
                 log: Log, name: str) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """Rewards, ‖h_c − h_r‖ and response lengths (characters; tokens as ``tokens_*``) of every
    evaluated pair (``parts`` order)."""
    keys = ("reward_chosen", "reward_rejected", "distance", "len_chosen", "len_rejected", "tokens_chosen",
            "tokens_rejected")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    truncation = {}
    for part in parts:
        if part.table is None or len(part.table) == 0:
            continue
        log(f"scoring {part.name} ({len(part.table)} pairs) with {name}")
        s = model.score_pairs(part.table, batch_size=batch_size, return_features=True, progress=progress)
        truncation[part.name] = dict(sorted(model.last_truncation.items()))
        if np.ndim(s["reward_chosen"]) == 2:  # a multi-attribute export: its gated scalar is the reward
            prompts = list(part.table["prompt"])
            s["reward_chosen"], s["reward_rejected"] = gated_scalar(
                model, prompts + prompts, np.concatenate([s["reward_chosen"], s["reward_rejected"]]),
                batch_size).reshape(2, -1)
        out["reward_chosen"].append(s["reward_chosen"])
        out["reward_rejected"].append(s["reward_rejected"])
        diff = s["features_chosen"].astype(np.float64) - s["features_rejected"].astype(np.float64)
        out["distance"].append(np.linalg.norm(diff, axis=1))
        out["len_chosen"].append(response_lengths(part.table["chosen"]))  # characters
        out["len_rejected"].append(response_lengths(part.table["rejected"]))
        out["tokens_chosen"].append(_token_lengths(model.tokenizer, part.table["chosen"]))
        out["tokens_rejected"].append(_token_lengths(model.tokenizer, part.table["rejected"]))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}, truncation


def gated_scalar(model: RewardModel, prompts: Sequence, scores: np.ndarray, batch_size: int) -> np.ndarray:
    """A multi-attribute export's scalar reward: its attribute ``scores [N, K]`` mixed by its
    gating (ArmoRM's preference score, what RewardBench ranks it by). Each distinct prompt is
    encoded once (the gating reads the prompt alone)."""
    keys = [_prompt_key(p) for p in prompts]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    distinct = list(first.values())
    feats = model.prompt_features([prompts[i] for i in distinct], batch_size=batch_size)
    row = {k: j for j, k in enumerate(first)}
    return model.gated(prompts, scores, features=feats[[row[k] for k in keys]])


def check_scalar(model, name: str) -> None:
    """A model eval can rank with: one reward, or K attributes and a gating that mixes them.
    ``model``: a loaded model, or a model directory (its stored settings; nothing loaded)."""
    if isinstance(model, (str, Path)):
        from rewardlab.models.reward_model import _stored_settings

        attrs = _stored_settings(str(model)).get("attributes") or {}
        names, gated = list(attrs.get("names") or []), bool(attrs.get("gating"))
        k = len(names)
    else:
        names = getattr(model, "attribute_names", None) or []
        k, gated = getattr(model, "num_labels", 1), getattr(model, "gating", None) is not None
    if k > 1 and not gated:
        raise ConfigError(f"{name}: a multi-attribute model ({', '.join(names)}) without a gating has no "
                          "scalar reward to rank pairs by; export it with its stage-2 gating, or score its "
                          "attributes with `rewardlab score`")


def length_by_set(s: dict[str, np.ndarray], sets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per subset (suite) or dataset (data mode): :func:`rewardlab.data.lengths.length_diagnostics`
    of its pairs (characters): where a model's length preference helps and where it hurts."""
    out = {}
    for name in dict.fromkeys(sets):
        idx = np.asarray([i for i, x in enumerate(sets) if x == name])
        out[name] = length_diagnostics(s["reward_chosen"][idx], s["reward_rejected"][idx],
                                       s["len_chosen"][idx], s["len_rejected"][idx])
    return out


def _fit_temperature(model: RewardModel, spec: str, table, batch_size: int, progress: bool) -> dict[str, Any]:
    s = model.score_pairs(table, batch_size=batch_size, progress=progress)
    d = s["reward_chosen"] - s["reward_rejected"]
    info: dict[str, Any] = {"fit_data": spec, "fit_n": int(len(d)),
                            "fit_accuracy": metrics.pairwise_accuracy(s["reward_chosen"], s["reward_rejected"])}
    try:
        info["temperature"] = metrics.fit_temperature(d)
    except ValueError as err:
        info["fit_error"] = str(err)
    return info


def _data_mode_block(s: dict[str, np.ndarray], pairs: dict[str, list]) -> dict[str, Any]:
    rc, rr = s["reward_chosen"], s["reward_rejected"]
    datasets = {}
    if rc.size:
        for name, v in metrics.accuracy_by_group(rc, rr, pairs["dataset"]).items():
            idx = np.asarray([i for i, d in enumerate(pairs["dataset"]) if d == name])
            datasets[name] = {**v, "kind": "pairs", "margin": metrics.margin_summary(rc[idx], rr[idx])}
    sources = metrics.accuracy_by_group(rc, rr, [f"{d}/{src}" for d, src in zip(pairs["dataset"], pairs["source"])]) \
        if rc.size else {}
    for key, v in sources.items():
        v["interval"] = {k: w for k, w in stats.wilson_interval(v["correct"], v["n"]).items() if k in ("low", "high")}
    return {"datasets": datasets, "sources": sources}


def _item_details(details: dict) -> dict[str, Any]:
    """An item kind's metrics without the per-item arrays (results.json)."""
    return {k: v for k, v in details.items() if k not in ("per_item", "mixed")}


def _ties_block(item_set: _ItemSet, model: str) -> dict[str, Any]:
    """RewardBench 2's Ties score of one model, with a percentile interval from resampling prompts."""
    ids, scores, n_correct = _ties_inputs(item_set, model)
    point = item_metrics.ties_score(ids, scores, n_correct)
    prompt_of = [i.split(":", 1)[1] if ":" in i else i for i in ids]
    groups = assess.groups_of(prompt_of)
    keys = list(groups)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(_TIES_BOOT):  # ties_score is a formula over prompts: resample prompts, rescore
        pick = rng.integers(0, len(keys), len(keys))
        rows = [(f"{ids[i].split(':', 1)[0]}:{b}", scores[i], n_correct[i])
                for b, k in enumerate(pick) for i in groups[keys[k]]]
        boot.append(item_metrics.ties_score([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])["score"])
    ci = stats.interval_of(np.asarray(boot, dtype=float), point["score"])
    return {"score": point["score"], "n": len(item_set.items), "replicates": np.asarray(boot, dtype=float),
            "details": {k: v for k, v in point.items() if k != "per_prompt"},
            "interval": {"low": ci["low"], "high": ci["high"], "level": ci["level"],
                         "method": f"percentile bootstrap over prompts ({_TIES_BOOT} resamples)"}}


_TIES_BOOT = 1000


def _ties_inputs(item_set: _ItemSet, model: str) -> tuple[list[str], list[np.ndarray], list[int]]:
    ids, scores, n_correct = [], [], []
    for item, r in zip(item_set.items, item_set.rewards[model]):
        if not item.id or ":" not in item.id:
            raise DataError("a Ties row needs an id 'ref:<prompt>' or 'tied:<prompt>' (RewardBench 2's)",
                            file=item.origin, field="id", expected="ref:... or tied:...", got=repr(item.id))
        split = item.split(r)
        ids.append(item.id)
        scores.append(np.concatenate([split["chosen"], split["rejected"]]))
        n_correct.append(len(item.chosen_idx))
    return ids, scores, n_correct


# ----------------------------------------------------------------------------- units
def _item_sets(parts: list[_Part]) -> list[_ItemSet]:
    """The items of every item part, one :class:`_ItemSet` per subset (dataset), in order."""
    out = []
    for part in parts:
        if part.table is not None:
            continue
        for set_name, idx in assess.groups_of(part.sets).items():
            out.append(_ItemSet(set_name, part.kinds[idx[0]], part.categories[idx[0]], part.name,
                                [part.items[i] for i in idx]))
    return out


def _prompt_key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def _units(pair_parts: list[_Part], item_sets: list[_ItemSet]) -> tuple[dict[str, list], dict[str, np.ndarray]]:
    """Every scored unit (a pair, or an item of a best-of-N / RM-Bench / pointwise set; Ties items
    are scored by their own formula, not as units) with its set, section, dataset, kind and
    cluster (its prompt), and the length rules' per-unit scores."""
    units: dict[str, list] = {"set": [], "category": [], "dataset": [], "kind": [], "cluster": []}
    rules: dict[str, list] = {r: [] for r in assess.RULES}
    for part in pair_parts:
        n = len(part.table)
        units["set"] += part.sets
        units["category"] += part.categories
        units["dataset"] += [part.name] * n
        units["kind"] += ["pairs"] * n
        units["cluster"] += [part.table.prompt_key(i) for i in range(n)]
        for r, v in assess.length_rules("pairs", chosen=part.table["chosen"], rejected=part.table["rejected"]).items():
            rules[r].append(v)
    for it in item_sets:
        if it.kind == "ties":
            continue
        kept = [item for item, k in zip(it.items, assess.item_mask(it.kind, it.items)) if k]
        if not kept:
            raise DataError(f"set {it.name!r}: no item can tell scorers apart (pointwise items need both correct "
                            "and wrong responses)", file=it.dataset, expected="at least one such item")
        units["set"] += [it.name] * len(kept)
        units["category"] += [it.category] * len(kept)
        units["dataset"] += [it.dataset] * len(kept)
        units["kind"] += [it.kind] * len(kept)
        units["cluster"] += [_prompt_key(item.prompt) for item in kept]
        for r, v in assess.length_rules(it.kind, items=it.items).items():
            rules[r].append(v)
    return units, {r: np.concatenate(v) if v else np.zeros(0) for r, v in rules.items()}


def _score_items(model: RewardModel, item_sets: list[_ItemSet], name: str, batch_size: int, progress: bool,
                 log: Log) -> dict[str, Any]:
    """Score every distinct (prompt, response) of all item sets once; each set's items get their
    rewards. Returns the scoring cost (distinct responses scored, responses the items hold, time)."""
    items = [item for it in item_sets for item in it.items]
    if not items:
        return {}
    inputs, index = unique_inputs(items)
    log(f"scoring {len(items)} items ({len(inputs)} distinct responses) with {name}")
    t0 = time.perf_counter()
    r = np.asarray(model.score([p for p, _ in inputs], [t for _, t in inputs], batch_size=batch_size,
                               progress=progress), dtype=np.float64)
    if r.ndim == 2:  # a multi-attribute export: its gated scalar is the reward
        r = gated_scalar(model, [p for p, _ in inputs], r, batch_size)
    seconds = time.perf_counter() - t0
    k = 0
    for it in item_sets:
        it.rewards[name] = [r[index[k + j]] for j in range(len(it.items))]
        k += len(it.items)
    held = sum(len(item.sample_idx) if item.kind == "pointwise" else len(item.chosen_idx) + len(item.rejected_idx)
               for item in items)
    return {"items": len(items), "distinct_responses": len(inputs), "responses_in_items": held,
            "seconds": round(seconds, 3), "responses_per_second": len(inputs) / max(seconds, 1e-9)}


def _unit_scores(s: dict[str, np.ndarray], item_sets: list[_ItemSet], name: str) -> tuple[np.ndarray, dict]:
    """One model's per-unit scores (pairs first, then item sets, as :func:`_units` orders them)
    and each item set's own metrics."""
    parts = [metrics.correct(s["reward_chosen"], s["reward_rejected"]).astype(float)] if s["reward_chosen"].size else []
    details = {}
    for it in item_sets:
        if it.kind == "ties":
            continue
        values, details[it.name] = assess.item_unit_scores(it.kind, it.items, it.rewards[name])
        parts.append(np.asarray(values, dtype=float))
    return (np.concatenate(parts) if parts else np.zeros(0)), details


def _suite_block(scores: np.ndarray, units: dict[str, list], blocks: dict, ties: dict, suite,
                 resampler: stats.StratifiedBootstrap | None) -> dict[str, Any]:
    """The suite's scores (RewardBench rules or the suite's own) with each subset's interval,
    length rules and item metrics, and the sections' and overall score's intervals."""
    groups = assess.groups_of(units["set"])
    counts = {k: (float(scores[i].sum()), int(i.size)) for k, i in groups.items()}
    counts.update({k: (None, v["n"]) for k, v in ties.items()})
    block = score_suite(counts, suite, scores={k: v["score"] for k, v in ties.items()})
    for name, sub in block["subsets"].items():
        if name in ties:
            sub.update(kind="ties", interval=ties[name]["interval"], details=ties[name]["details"])
        else:
            sub.update({k: v for k, v in blocks[name].items() if k not in ("n", "score")})
    ns = {k: v["n"] for k, v in block["subsets"].items()}
    point = {"sections": {k: v["score"] for k, v in block["sections"].items()}, "overall": block["overall"]}
    if resampler is not None:  # Ties subsets enter the formula with their own replicates
        def combine(means, n):
            return suite_combine({**means, **{k: v["replicates"] for k, v in ties.items()}}, n, suite)
        ci = assess.suite_intervals(resampler, scores, ns, combine, point)
        for sec, v in ci["sections"].items():
            block["sections"][sec]["interval"] = v
        block["overall_interval"] = ci["overall"]
    return block


def _data_blocks(datasets: dict, blocks: dict, ties: dict) -> dict[str, Any]:
    """Data mode: each dataset's entry with its interval, length rules and (items) metrics."""
    out = {}
    for name, block in blocks.items():
        entry = datasets.get(name) or {"n": block["n"], "correct": None, "accuracy": block["score"]}
        entry.update({k: v for k, v in block.items() if k not in ("n", "score")})
        if entry.get("correct") is None:
            entry["correct"] = block["score"] * block["n"]
        out[name] = entry
    for name, t in ties.items():
        out[name] = {"kind": "ties", "n": t["n"], "accuracy": t["score"],
                     "interval": t["interval"], "details": t["details"]}
    return out


def _pooled(means: dict, ns: dict) -> dict[str, Any]:
    total = sum(ns.values())
    return {"sections": {}, "overall": sum(ns[k] * m for k, m in means.items()) / total}


def _pooled_block(scores: np.ndarray, units: dict[str, list], resampler) -> dict[str, Any]:
    """Data mode: every unit pooled (pairs and items), with its stratified bootstrap interval."""
    if not scores.size:
        return {"n": 0, "correct": 0, "accuracy": None}
    ns = {k: int(i.size) for k, i in assess.groups_of(units["set"]).items()}
    out = {"n": int(scores.size), "correct": float(scores.sum()), "accuracy": float(scores.mean())}
    if float(out["correct"]).is_integer():
        out["correct"] = int(out["correct"])
    if resampler is not None:
        ci = assess.suite_intervals(resampler, scores, ns, _pooled, {"sections": {}, "overall": out["accuracy"]})
        out["interval"] = ci["overall"]
    return out


def _comparisons(names: list[str], unit_scores: dict[str, np.ndarray], units: dict[str, list], suite,
                 resampler, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Every pair of models compared on the same units (Ties subsets, scored by a formula over
    prompts, are left out)."""
    if not units["set"]:
        return []
    ns = {k: int(i.size) for k, i in assess.groups_of(units["set"]).items()}
    combine = (lambda means, n: suite_combine(means, n, suite)) if suite is not None else _pooled
    return [assess.compare(a, b, unit_scores[a], unit_scores[b], units["set"], units["cluster"],
                           resampler=resampler, ns=ns, combine=combine, n_boot=n_boot, seed=seed)
            for a, b in itertools.combinations(names, 2)]


# ----------------------------------------------------------------------------- agreement
def _agreement(names: list[str], scores: dict[str, dict[str, np.ndarray]], pairs: dict[str, list],
               with_sections: bool) -> list[dict[str, Any]]:
    """How often each pair of models picks the same side, overall, per set (and per section)."""
    def by(labels: list[str], da: np.ndarray, db: np.ndarray) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        return {label: {"n": len(idx), "rate": metrics.agreement_rate(da[idx], db[idx])}
                for label, idx in groups.items()}

    out = []
    for a, b in itertools.combinations(names, 2):
        da = scores[a]["reward_chosen"] - scores[a]["reward_rejected"]
        db = scores[b]["reward_chosen"] - scores[b]["reward_rejected"]
        entry = {"models": [a, b], "n": int(da.size), "overall": metrics.agreement_rate(da, db),
                 "by_set": by(pairs["set"], da, db)}
        if with_sections:
            entry["by_section"] = by(pairs["category"], da, db)
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- terminal notes
TIE_WARN_SHARE = 0.10  # a tie counts as wrong: 10% ties cost up to 10 points of a subset's score
TRUNCATION_WARN_SHARE = 0.25


def tie_counts(rc: np.ndarray, rr: np.ndarray, sets: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per set (subset or dataset): pairs ``n`` and ``ties`` (equal rewards, counted as wrong)."""
    out: dict[str, dict[str, int]] = {}
    for name, tie in zip(sets, np.asarray(rc) == np.asarray(rr)):
        c = out.setdefault(name, {"n": 0, "ties": 0})
        c["n"] += 1
        c["ties"] += int(tie)
    return out


def _truncated(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k != "ok")


def dominance_warnings(ties: dict[str, dict[str, int]], truncation: dict[str, dict[str, int]],
                       set_dataset: dict[str, str], max_length: int | None, *,
                       tie_share: float = TIE_WARN_SHARE,
                       truncation_share: float = TRUNCATION_WARN_SHARE) -> list[str]:
    """Lines for the terminal where ties or truncation decide a set's score.

    ``ties`` as from :func:`tie_counts`; ``truncation`` maps a dataset to truncation status counts
    over its responses (chosen and rejected); ``set_dataset`` maps each set to its dataset.
    """
    lines, explained = [], set()
    for name, c in ties.items():
        if not c["n"] or c["ties"] / c["n"] < tie_share:
            continue
        ds = set_dataset.get(name, name)
        counts = truncation.get(ds, {})
        total = sum(counts.values())
        why = ""
        if total and _truncated(counts) / total >= truncation_share:
            explained.add(ds)
            why = (f"; {100 * _truncated(counts) / total:.0f}% of {ds}'s responses were truncated at max_length "
                   f"{max_length}, so chosen and rejected often become identical inputs")
        lines.append(f"{name}: {c['ties']} of {c['n']} pairs ({100 * c['ties'] / c['n']:.0f}%) tie "
                     f"(equal rewards), and a tie counts as wrong{why}")
    for ds, counts in truncation.items():
        total = sum(counts.values())
        if ds not in explained and total and _truncated(counts) / total >= truncation_share:
            lines.append(f"{ds}: {_truncated(counts)} of {total} responses ({100 * _truncated(counts) / total:.0f}%) "
                         f"were truncated at max_length {max_length}: the model scored cut texts")
    return lines


def input_notes(load: dict[str, Any], truncation: dict[str, int]) -> list[str]:
    """What ``score`` and ``eval`` print about their input: skipped rows, empty responses, identical
    pairs (from a LoadReport dict) and truncated responses (status counts over chosen and rejected)."""
    notes = []
    skipped = load.get("skipped") or {}
    if skipped:
        reasons = "; ".join(f"{n} x {why}" for why, n in sorted(skipped.items()))
        notes.append(f"skipped {sum(skipped.values())} bad row(s) (--skip-bad-rows): {reasons}")
    if load.get("empty_chosen") or load.get("empty_rejected"):
        notes.append(f"empty responses (kept): {load.get('empty_chosen', 0)} chosen, "
                     f"{load.get('empty_rejected', 0)} rejected")
    if load.get("identical"):
        notes.append(f"identical pairs (chosen = rejected, kept; they tie): {load['identical']}")
    total = sum(truncation.values())
    if _truncated(truncation):
        kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(truncation.items()) if k != "ok")
        notes.append(f"truncated responses: {_truncated(truncation)} of {total} ({kinds})")
    return notes


def default_out_dir(models: Sequence[str | Path], suite: str | Path | None, data: Sequence[str]) -> Path:
    """``runs/eval/<models>_<suite or datasets>``: under runs/ (git-ignored), like training runs."""
    import re

    what = [Path(str(suite)).stem] if suite is not None else [dataset_name(d) for d in data]
    parts = [n.replace("/", "-") for n in unique_names(list(models))] + what
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-") or "eval"
    return Path("runs") / "eval" / slug[:120]


# ----------------------------------------------------------------------------- the whole run
def evaluate(
    models: Sequence[str | Path | RewardModel],
    *,
    suite: str | Path | None = None,
    data: Sequence[str] = (),
    data_root: str | Path | None = None,
    batch_size: int = 16,
    calibration_data: str | None = None,
    max_pairs_per_subset: int | None = None,
    padding_side: str | None = None,
    data_options: dict | None = None,
    progress: bool = False,
    log: Log | None = None,
    critiques: int | None = None,
    critique_seed: int | None = None,
    critique_cache: str | Path | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Evaluation:
    """Evaluate one or more reward models on a suite (``suite``) or on data specs (``data``).

    ``models`` are model directories (names in the results: directory names, widened where two
    collide) or loaded :class:`RewardModel` objects. ``padding_side`` overrides the models' own
    (for determinism checks). ``data_options`` are :func:`load_preferences` keywords for the
    ``data`` specs (``format``, ``prompt_key``, ``chosen_key``, ``rejected_key``, ``on_error``).
    Critic-RM directories write ``critiques`` (m) critiques per response
    (default: the model's own setting) with ``critique_seed``, cached under ``critique_cache``.
    Intervals and paired comparisons use ``n_boot`` bootstrap resamples drawn from ``seed``.
    Returns an :class:`Evaluation`; :func:`write_outputs` writes it.
    """
    log = log or (lambda message: None)
    if (suite is None) == (not data):
        raise ConfigError("give either a suite or one or more data specs, not both and not neither")
    if not models:
        raise ConfigError("give at least one model")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if max_pairs_per_subset is not None and max_pairs_per_subset < 1:
        raise ConfigError(f"max_pairs_per_subset must be >= 1, got {max_pairs_per_subset}")
    if padding_side not in (None, "left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if n_boot < 100:
        raise ConfigError(f"n_boot must be >= 100 (bootstrap resamples for the intervals), got {n_boot}")
    # every --model checked before any data is read (a Hub name may become its cached directory)
    located = [m if isinstance(m, RewardModel) else locate_model(m, kind=REWARD_MODEL, option="--model")
               for m in models]
    for m, target in zip(models, located):
        check_scalar(m if isinstance(m, RewardModel) else target, str(m))
    started = time.time()

    suite_obj = load_suite(suite, data_root) if suite is not None else None
    if suite_obj is not None:
        parts, data_info, sub_info = _prepare_suite(suite_obj, max_pairs_per_subset, log)
    else:
        parts, data_info, sub_info = _prepare_data(list(data), max_pairs_per_subset, log, data_options)
    pair_parts = [p for p in parts if p.table is not None]
    pairs = {
        "dataset": [p.name for p in pair_parts for _ in range(len(p.table))],
        "set": [s for p in pair_parts for s in p.sets],
        "category": [c for p in pair_parts for c in p.categories],
        "source": [s for p in pair_parts for s in p.table["source"]],
        "id": [x for p in pair_parts for x in (p.table["id"] if p.table.has("id") else [None] * len(p.table))],
        "origin": [o for p in pair_parts for o in p.table.origin],
    }
    item_sets = _item_sets(parts)
    if not pairs["set"] and not item_sets:
        raise DataError("nothing to evaluate: no subset selected any row", expected="at least one pair or item")
    units, rules = _units(pair_parts, item_sets)
    # one set of stratified resamples for every model: intervals of sections, paired comparisons
    resampler = (stats.StratifiedBootstrap(units["set"], units["cluster"], n_boot=n_boot, seed=seed)
                 if units["set"] else None)
    cal_table = load_preferences(calibration_data) if calibration_data else None

    paths = [m if not isinstance(m, RewardModel) else (m.settings.base_model or "model") for m in models]
    names = unique_names(paths)
    model_results: dict[str, Any] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    unit_scores: dict[str, np.ndarray] = {}
    item_details: dict[str, dict[str, dict]] = {}
    scoring_cost: dict[str, dict] = {}
    for name, given, target in zip(names, models, located):
        if isinstance(given, RewardModel):
            model, where = given, None
        else:
            where = Path(given)
            log(f"loading model {name} from {where}")
            model = load_model(target, critiques=critiques, seed=critique_seed, cache_dir=critique_cache)
        saved_side = model.settings.padding_side
        if padding_side is not None:
            model.settings.padding_side = padding_side
        try:
            s, truncation = _score_parts(model, pair_parts, batch_size, progress, log, name)
            scoring_cost[name] = _score_items(model, item_sets, name, batch_size, progress, log)
            settings = model_settings(model, batch_size)
            calib = (_fit_temperature(model, calibration_data, cal_table, batch_size, progress)
                     if cal_table is not None and s["reward_chosen"].size else None)
        finally:
            model.settings.padding_side = saved_side
        scores[name] = s
        unit_scores[name], item_details[name] = _unit_scores(s, item_sets, name)
        path = (str(where.resolve()) if where.exists() else str(given)) if where else None  # or a Hub name
        entry: dict[str, Any] = {"path": path, "settings": settings, "truncation": truncation}
        entry["ties"] = tie_counts(s["reward_chosen"], s["reward_rejected"], pairs["set"])
        set_dataset = dict(zip(pairs["set"], pairs["dataset"]))
        entry["warnings"] = dominance_warnings(entry["ties"], truncation, set_dataset, settings["max_length"])
        blocks = assess.set_blocks(unit_scores[name], units["set"], units["cluster"], rules, n_boot=n_boot, seed=seed)
        for set_name, block in blocks.items():
            block["kind"] = units["kind"][units["set"].index(set_name)]
            if set_name in item_details[name]:
                block["details"] = _item_details(item_details[name][set_name])
            line = assess.length_warning(set_name, block)
            if line:
                entry["warnings"].append(line)
        ties = {it.name: _ties_block(it, name) for it in item_sets if it.kind == "ties"}
        if suite_obj is not None:
            entry["suite"] = _suite_block(unit_scores[name], units, blocks, ties, suite_obj, resampler)
        else:
            entry.update(_data_mode_block(s, pairs))
            entry["datasets"] = _data_blocks(entry["datasets"], blocks, ties)
            entry["overall"] = _pooled_block(unit_scores[name], units, resampler)
        if s["reward_chosen"].size:
            diag = metrics.diagnostics(
                s["reward_chosen"], s["reward_rejected"], len_c=s["len_chosen"], len_r=s["len_rejected"],
                distance=s["distance"], categories=pairs["category"],
                temperature=(calib or {}).get("temperature"), n_bins=4,
            )
            diag["length_bias"]["unit"] = LENGTH_UNIT
            diag["length_bias"]["by_set"] = length_by_set(s, pairs["set"])
            diag["length_bias_tokens"] = {**metrics.length_bias(s["reward_chosen"], s["reward_rejected"],
                                                                s["tokens_chosen"], s["tokens_rejected"]),
                                          "unit": TOKEN_LENGTH_UNIT}
            if calib:
                diag["calibration"].update({k: v for k, v in calib.items() if k != "temperature"})
            entry["diagnostics"] = diag
        else:
            entry["diagnostics"] = {}
        if scoring_cost[name]:
            entry["item_scoring"] = scoring_cost[name]
        model_results[name] = entry

    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "mode": "suite" if suite_obj is not None else "data",
        "suite": ({"name": suite_obj.name, "path": str(suite_obj.path), "description": suite_obj.description,
                   "scoring": suite_obj.scoring,
                   "data_root": str(Path(suite_obj.data_root).resolve())} if suite_obj is not None else None),
        "data": data_info,
        "n_pairs": len(pairs["set"]),
        "n_units": len(units["set"]),
        "subsample": ({"max_pairs_per_subset": max_pairs_per_subset, "method": SUBSAMPLE_METHOD,
                       "sets": sub_info} if max_pairs_per_subset is not None else None),
        "calibration_data": calibration_data,
        "statistics": {"level": 0.95, "n_boot": n_boot, "seed": seed, "length_unit": "characters",
                       "tie": "a tie counts as wrong (strictly above every rejected)",
                       "intervals": "Wilson for independent 0/1 items; cluster (prompt) percentile bootstrap "
                                    "where items share a prompt; sections and overall: the suite's formula on "
                                    "stratified cluster bootstrap replicates",
                       "comparison": "exact McNemar (0/1 items) or paired bootstrap per subset, Holm over "
                                     "subsets; sections and overall: paired stratified bootstrap"},
        "models": model_results,
    }
    if len(names) >= 2:
        if pairs["set"]:
            results["agreement"] = _agreement(names, scores, pairs, with_sections=suite_obj is not None)
        results["comparisons"] = _comparisons(names, unit_scores, units, suite_obj, resampler, n_boot, seed)
    results["run"] = {**run_info(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "seconds": round(time.time() - started, 1)}
    return Evaluation(results, scores, pairs, units, unit_scores)


# ----------------------------------------------------------------------------- outputs
def _report_meta(results: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"mode": results["mode"]}
    if results["suite"]:
        meta["suite"] = f"{results['suite']['name']} ({results['suite']['path']})"
        meta["data root"] = results["suite"]["data_root"]
    meta["pairs evaluated"] = results["n_pairs"]
    for name, d in results["data"].items():
        text = f"{d['spec']}: {d['n_evaluated']} of {d['n_loaded']} pairs evaluated"
        if d["unselected"]["n"]:
            text += f"; {d['unselected']['n']} rows in no subset (not evaluated): {d['unselected']['by_source']}"
        meta[f"data {name}"] = text
    if results["subsample"]:
        meta["subsample"] = f"max {results['subsample']['max_pairs_per_subset']} pairs: {SUBSAMPLE_METHOD}"
    if results["calibration_data"]:
        meta["calibration data"] = results["calibration_data"]
    for name, m in results["models"].items():
        meta[f"model {name}"] = {"path": m["path"], **m["settings"]}
        meta[f"truncation {name}"] = {
            ds: ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
            + f" (of {sum(counts.values())} responses)"
            for ds, counts in m["truncation"].items()}
    run = results["run"]
    meta["git commit"] = run["git_commit"]
    meta["versions"] = run["versions"]
    meta["platform"] = run["platform"]
    meta["created"] = run["created"]
    meta["seconds"] = run["seconds"]
    return meta


def _figures(evaluation: Evaluation) -> dict[str, Any]:
    from rewardlab.eval.report import plot_length_bias, plot_reward_distributions

    figs = {}
    cats = evaluation.pairs["category"]
    for name, s in evaluation.scores.items():
        if not s["reward_chosen"].size:  # items only: these figures are about pairs
            continue
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(cats):
            groups.setdefault(c, []).append(i)
        figs[f"Reward distributions by {'section' if evaluation.results['mode'] == 'suite' else 'dataset'}"
             f" — {name}"] = plot_reward_distributions(
            {c: (s["reward_chosen"][idx], s["reward_rejected"][idx]) for c, idx in groups.items()})
        fig = plot_length_bias(s["reward_chosen"], s["reward_rejected"], s["len_chosen"], s["len_rejected"])
        fig.axes[0].set_xscale("symlog", linthresh=10)  # a few very long responses squash the rest
        fig.axes[0].set_xlabel("response length (tokens, log scale above 10)")
        figs[f"Length bias — {name}"] = fig
    return figs


def write_scores_csv(evaluation: Evaluation, path: Path) -> Path:
    """Every evaluated pair (dataset, set, category, source, id, origin) with each model's rewards."""
    names = list(evaluation.scores)
    cols = ["dataset", "set", "category", "source", "id", "origin"]
    header = cols + [f"{n}:{side}" for n in names for side in ("reward_chosen", "reward_rejected")]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(len(evaluation.pairs["set"])):
            row = ["" if evaluation.pairs[c][i] is None else evaluation.pairs[c][i] for c in cols]
            for n in names:
                row += [repr(float(evaluation.scores[n]["reward_chosen"][i])),
                        repr(float(evaluation.scores[n]["reward_rejected"][i]))]
            w.writerow(row)
    return path


def write_outputs(evaluation: Evaluation, out_dir: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``report.html`` and ``scores.csv`` into ``out_dir``."""
    from rewardlab.eval.report import write_report

    out = Path(out_dir)
    if out.suffix.lower() in (".json", ".html"):
        raise ConfigError(f"--out {out}: expected a directory (results.json and report.html go inside)")
    out.mkdir(parents=True, exist_ok=True)
    res = evaluation.results
    paths = {"results": write_json(res, out / "results.json")}
    if title is None:
        what = f"suite {res['suite']['name']}" if res["suite"] else ", ".join(res["data"])
        title = f"rewardlab eval: {what}"
    figures = _figures(evaluation)
    try:
        paths["report"] = write_report({**res, "meta": _report_meta(res)}, out / "report.html",
                                       title=title, figures=figures)
    finally:
        for fig in figures.values():
            fig.clear()
    paths["scores"] = write_scores_csv(evaluation, out / "scores.csv")
    return paths


def write_json(obj: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
