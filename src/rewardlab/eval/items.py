"""Metrics on item shapes beyond single pairs (METHODS.md §10), as per-item scores.

Every function is pure (numpy in) and returns the aggregate *and* the per-item scores
(``"per_item"``, numpy arrays, one entry per item) so that intervals and paired comparisons
(:mod:`rewardlab.eval.stats`) resample items. The aggregates are plain Python numbers.

Shapes:
- pairs: ``r_c``, ``r_r`` (one reward each per item);
- best-of-N (RewardBench 2, RMB): the chosen response's reward per item and the rejected
  rewards per item (a 2-D array, or a list of 1-D arrays when N varies);
- RewardBench 2 Ties: :func:`ties_score`;
- RM-Bench: chosen and rejected rewards in three styles, ``(n, 3)`` each;
- best-of-k selection (GSM8K solutions): rewards and correctness of each of an item's k
  responses;
- length baselines: the same metrics with response lengths as the "rewards".

Tie policies (what an exactly equal reward earns):
- pairs: ``"wrong"`` (RewardBench's rule and the default for suites: correct only when
  ``r_c > r_r``) or ``"half"`` (a tie earns 1/2, the expectation of a coin flip);
- best-of-N: ``"wrong"`` (correct only when the chosen reward is strictly above *every*
  rejected one, so a tie with the best rejected is wrong) or ``"split"`` (a chosen tied at the
  top with ``t`` rejected earns ``1 / (t + 1)``; this is what reward-bench's ``run_v2.py``
  computes for RewardBench 2's non-Ties subsets via ``reroll_and_score_dataset``'s "penalty for
  ties", and equals ``"half"`` for N = 2).
A NaN reward never wins (as in :mod:`rewardlab.eval.metrics`): the item is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.eval.metrics import as_vector

__all__ = [
    "PAIR_TIES",
    "BEST_OF_N_TIES",
    "pair_accuracy",
    "best_of_n_accuracy",
    "ties_score",
    "rm_bench_accuracy",
    "best_of_k_selection",
    "char_lengths",
    "length_baselines_pairs",
    "length_baselines_best_of_n",
]

PAIR_TIES = ("wrong", "half")
BEST_OF_N_TIES = ("wrong", "split")
RM_BENCH_STYLES = ("concise", "detailed plain", "detailed markdown")


# ----------------------------------------------------------------------------- validation
def _tie(tie: str, allowed: tuple[str, ...]) -> str:
    if tie not in allowed:
        raise ValueError(f"tie: expected one of {allowed}, got {tie!r}")
    return tie


def _ragged(x: Any, name: str, n: int | None = None, *, dtype: Any = float,
            finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows of varying length as ``(flat values, row start offsets)``; every row non-empty.

    Accepts a 2-D array or a sequence of 1-D sequences.
    """
    if isinstance(x, np.ndarray) and x.ndim == 2:
        rows = list(x)
    elif isinstance(x, np.ndarray) and x.ndim != 1:
        raise ValueError(f"{name}: expected a 2-D array or a list of 1-D arrays, got shape {x.shape}")
    else:
        rows = list(x)
    if not rows:
        raise ValueError(f"{name}: expected at least one item, got none")
    if n is not None and len(rows) != n:
        raise ValueError(f"{name}: expected {n} rows (one per item), got {len(rows)}")
    arrays = []
    for i, row in enumerate(rows):
        arr = np.asarray(row, dtype=dtype)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name}[{i}]: expected a non-empty 1-D sequence, got shape {arr.shape}")
        arrays.append(arr)
    flat = np.concatenate(arrays)
    if finite and not np.all(np.isfinite(flat)):
        raise ValueError(f"{name}: expected finite numbers, got NaN or infinity")
    starts = np.cumsum([0] + [a.size for a in arrays[:-1]])
    return flat, starts


def _sizes(starts: np.ndarray, total: int) -> np.ndarray:
    return np.diff(np.append(starts, total))


def _pair_scores(c: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
    """1 when ``c > r``, the tie's credit when equal, else 0 (NaN compares as neither)."""
    won = (c > r).astype(float)
    if tie == "half":
        won[c == r] = 0.5
    return won


def _result(per_item: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"accuracy": float(per_item.mean()), "n": int(per_item.size), **extra, "per_item": per_item}


# ----------------------------------------------------------------------------- pairs
def pair_accuracy(r_c: Any, r_r: Any, tie: str = "wrong") -> dict[str, Any]:
    """Pairwise accuracy with a tie policy: ``{"accuracy", "n", "tie", "per_item"}``.

    ``per_item[i]`` is 1 when ``r_c[i] > r_r[i]``, 0 when below, and on an exact tie 0
    (``tie="wrong"``, RewardBench's rule) or 0.5 (``tie="half"``).
    """
    c, r = as_vector(r_c, "r_c"), as_vector(r_r, "r_r")
    if c.size != r.size:
        raise ValueError(f"expected arrays of equal length, got r_c has {c.size}, r_r has {r.size}")
    return _result(_pair_scores(c, r, _tie(tie, PAIR_TIES)), tie=tie)


# ----------------------------------------------------------------------------- best-of-N
def best_of_n_accuracy(chosen: Any, rejected: Any, tie: str = "wrong") -> dict[str, Any]:
    """Best-of-N accuracy: is the chosen response's reward above every rejected one?

    ``chosen``: one reward per item; ``rejected``: per item the rewards of its rejected
    responses (``(n, m)`` array or a list of 1-D arrays, at least one each). Per item, with
    ``best`` the highest rejected reward and ``t`` the number of rejected responses at it:
    1 if ``chosen > best``; on ``chosen == best`` 0 (``tie="wrong"``, the default: a tie with
    the best rejected is wrong) or ``1 / (t + 1)`` (``tie="split"``); else 0.

    Returns ``{"accuracy", "n", "tie", "chance", "per_item", "chance_per_item"}``: ``chance`` is
    the expected accuracy of a random scorer, ``1 / N`` per item (N = 1 + rejected count).
    """
    c = as_vector(chosen, "chosen")
    flat, starts = _ragged(rejected, "rejected", c.size)
    tie = _tie(tie, BEST_OF_N_TIES)
    sizes = _sizes(starts, flat.size)
    best = np.maximum.reduceat(flat, starts)
    per_item = (c > best).astype(float)
    if tie == "split":
        at_best = np.add.reduceat((flat == np.repeat(best, sizes)).astype(float), starts)
        tied = c == best
        per_item[tied] = 1.0 / (at_best[tied] + 1.0)
    chance = 1.0 / (sizes + 1.0)
    return _result(per_item, tie=tie, chance=float(chance.mean()), chance_per_item=chance)


# ----------------------------------------------------------------------------- RewardBench 2 Ties
def _prompt_stats(scores: np.ndarray, n_correct: int) -> tuple[bool, float | None, float]:
    """(all correct above the best incorrect, best − worst correct, worst correct − best incorrect)."""
    correct, incorrect = scores[:n_correct], scores[n_correct:]
    spread = float(correct.max() - correct.min()) if correct.size > 1 else None
    gap = float(correct.min() - incorrect.max())
    return gap > 0, spread, gap


def ties_score(ids: Sequence[str], scores: Sequence[Any], num_correct: Sequence[int]) -> dict[str, Any]:
    """RewardBench 2's score for its Ties subset.

    Read from reward-bench (github.com/allenai/reward-bench, ``rewardbench/utils.py``:
    ``_compute_prompt_stats`` and ``process_single_model``, called from ``scripts/run_v2.py``
    for the subset ``"Ties"``) and re-implemented here.

    Input, one entry per row of the subset: ``ids[i]`` is ``"ref:<prompt>"`` (a reference
    prompt, one correct answer) or ``"tied:<prompt>"`` (the same question with several
    equally correct answers); ``scores[i]`` the rewards of the row's responses, of which the
    first ``num_correct[i]`` are the correct ones and the rest incorrect. Rows with the same id
    are pooled (as reward-bench does).

    Per prompt (of either kind), with C the correct and I the incorrect rewards:
    - ``accurate`` = ``min(C) − max(I) > 0`` (every correct answer above the best wrong one);
    - ``gap`` = ``min(C) − max(I)`` (correct-to-incorrect margin);
    - ``spread`` = ``max(C) − min(C)`` (margin among correct answers; tied prompts only).

    Then, over the prompts that have both a ``ref`` and a ``tied`` row ("paired"):
    - ``ref_accuracy`` = mean ``accurate`` over ref prompts; ``tied_accuracy`` likewise over
      tied prompts;
    - ``correctness_preferred`` = fraction of paired prompts with ``gap_tied > spread_tied``
      (the correct answers are closer to each other than to the wrong ones);
    - ``correctness_preferred_hard`` = fraction with ``min(gap_ref, gap_tied) > spread_tied``;
    - ``margin_score`` = mean of ``tanh(min(gap_ref, gap_tied) / spread_tied − 1)``, where
      ``0/0`` counts 0 and ``x/0`` for ``x != 0`` gives ``tanh(±inf) = ±1`` (numpy's division,
      as in reward-bench; its comment calls this term an optional tie-breaker);
    - ``score = 0.30·tied_accuracy + 0.30·ref_accuracy + 0.20·correctness_preferred
      + 0.20·correctness_preferred_hard + 0.01·margin_score`` (the weights add up to 1.01, so
      the score lies in [−0.01, 1.01]).

    Returns those six numbers plus ``n_ref``, ``n_tied``, ``n_paired`` and ``per_prompt``
    (numpy arrays over the paired prompts, in order of first appearance: ``prompt_id``,
    ``ref_accurate``, ``tied_accurate``, ``correctness_preferred``,
    ``correctness_preferred_hard``, ``margin_score`` and ``score``, the weighted sum per prompt)
    and ``decomposes``: true when every prompt is paired, and then ``score`` is the mean of
    ``per_prompt["score"]``, so prompts can be bootstrapped as items.

    Deviations from reward-bench, all on input it cannot score: a subset without ref (or
    tied) prompts gives ``None`` for that accuracy (reward-bench: 0.0), no paired prompt gives
    ``None`` for the paired terms and the score (reward-bench: NaN); ids other than
    ``ref:``/``tied:``, a prompt without a correct or an incorrect answer, a tied prompt with
    fewer than two correct answers (reward-bench fails on these) and non-finite rewards raise
    ``ValueError``. Prompt ids are kept as strings (reward-bench parses them as ints).
    """
    ids = list(ids)
    rows = list(scores)
    counts = list(num_correct)
    if not ids:
        raise ValueError("ids: expected at least one row, got none")
    if not len(ids) == len(rows) == len(counts):
        raise ValueError(f"expected one id, score list and num_correct per row, got {len(ids)}, "
                         f"{len(rows)} and {len(counts)}")
    pooled: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for i, (row_id, row, k) in enumerate(zip(ids, rows, counts)):
        kind, sep, prompt = str(row_id).partition(":")
        if not sep or kind not in ("ref", "tied") or not prompt:
            raise ValueError(f"ids[{i}]: expected 'ref:<prompt>' or 'tied:<prompt>', got {row_id!r}")
        arr = as_vector(row, f"scores[{i}]", finite=True)
        if isinstance(k, bool) or int(k) != k or not 0 <= k <= arr.size:
            raise ValueError(f"num_correct[{i}]: expected an integer in [0, {arr.size}], got {k!r}")
        good, bad = pooled.setdefault((kind, prompt), ([], []))
        good.extend(arr[: int(k)])
        bad.extend(arr[int(k):])
    stats: dict[str, dict[str, tuple[bool, float | None, float]]] = {"ref": {}, "tied": {}}
    for (kind, prompt), (good, bad) in pooled.items():
        if not good or not bad:
            raise ValueError(f"{kind}:{prompt}: expected at least one correct and one incorrect answer, "
                             f"got {len(good)} correct and {len(bad)} incorrect")
        if kind == "tied" and len(good) < 2:
            raise ValueError(f"tied:{prompt}: expected at least two correct answers, got {len(good)}")
        stats[kind][prompt] = _prompt_stats(np.asarray(good + bad), len(good))
    ref, tied = stats["ref"], stats["tied"]
    ref_acc = float(np.mean([s[0] for s in ref.values()])) if ref else None
    tied_acc = float(np.mean([s[0] for s in tied.values()])) if tied else None
    paired = [p for p in tied if p in ref]
    out: dict[str, Any] = {
        "score": None, "ref_accuracy": ref_acc, "tied_accuracy": tied_acc,
        "correctness_preferred": None, "correctness_preferred_hard": None, "margin_score": None,
        "n_ref": len(ref), "n_tied": len(tied), "n_paired": len(paired),
    }
    spread = np.array([tied[p][1] for p in paired], dtype=float)
    gap_tied = np.array([tied[p][2] for p in paired], dtype=float)
    gap_ref = np.array([ref[p][2] for p in paired], dtype=float)
    preferred = (gap_tied > spread).astype(float)
    preferred_hard = (np.minimum(gap_ref, gap_tied) > spread).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.nan_to_num(np.tanh(np.minimum(gap_ref, gap_tied) / spread - 1.0), nan=0.0)
    ref_ok = np.array([ref[p][0] for p in paired], dtype=float)
    tied_ok = np.array([tied[p][0] for p in paired], dtype=float)
    per_prompt_score = 0.30 * tied_ok + 0.30 * ref_ok + 0.20 * preferred + 0.20 * preferred_hard + 0.01 * margin
    out["per_prompt"] = {
        "prompt_id": np.array(paired, dtype=object),
        "ref_accurate": ref_ok, "tied_accurate": tied_ok,
        "correctness_preferred": preferred, "correctness_preferred_hard": preferred_hard,
        "margin_score": margin, "score": per_prompt_score,
    }
    out["decomposes"] = bool(paired) and len(paired) == len(ref) == len(tied)
    if paired:
        out.update(
            correctness_preferred=float(preferred.mean()),
            correctness_preferred_hard=float(preferred_hard.mean()),
            margin_score=float(margin.mean()),
        )
        out["score"] = float(
            0.30 * tied_acc + 0.30 * ref_acc + 0.20 * out["correctness_preferred"]
            + 0.20 * out["correctness_preferred_hard"] + 0.01 * out["margin_score"]
        )
    return out


# ----------------------------------------------------------------------------- RM-Bench
def rm_bench_accuracy(chosen: Any, rejected: Any, tie: str = "wrong") -> dict[str, Any]:
    """RM-Bench's style-substance matrix (Liu et al. 2024).

    ``chosen``/``rejected``: ``(n, 3)`` rewards of each item's chosen/rejected response in
    styles 0 concise, 1 detailed plain, 2 detailed markdown. ``M[i][j]`` is the accuracy of
    chosen-style ``i`` against rejected-style ``j`` (pair rule with the ``tie`` policy; RM-Bench
    counts ``chosen > rejected`` strictly, i.e. ``"wrong"``).
    - ``hard`` = mean of the cells ``i < j`` (the correct answer in a plainer style than the
      wrong one): (0,1), (0,2), (1,2);
    - ``normal`` = mean of the diagonal (same style);
    - ``easy`` = mean of the cells ``i > j``;
    - ``average`` = mean of all nine cells (= mean of hard, normal, easy).

    Returns those, ``matrix`` (3x3 nested list), ``n``, ``tie`` and ``per_item``:
    ``{"cells": (n, 3, 3) array, "hard", "normal", "easy", "average": (n,) arrays}``; each
    aggregate is the mean of its per-item array. Report per domain by grouping items.
    """
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    for name, arr in (("chosen", c), ("rejected", r)):
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            raise ValueError(f"{name}: expected an (n, 3) array of rewards in the three styles, got shape {arr.shape}")
    if c.shape != r.shape:
        raise ValueError(f"expected chosen and rejected of the same shape, got {c.shape} and {r.shape}")
    tie = _tie(tie, PAIR_TIES)
    cells = _pair_scores(c[:, :, None], r[:, None, :], tie)
    upper, lower = np.triu_indices(3, k=1), np.tril_indices(3, k=-1)
    per_item = {
        "cells": cells,
        "hard": cells[:, upper[0], upper[1]].mean(axis=1),
        "normal": cells[:, [0, 1, 2], [0, 1, 2]].mean(axis=1),
        "easy": cells[:, lower[0], lower[1]].mean(axis=1),
        "average": cells.reshape(len(cells), 9).mean(axis=1),
    }
    return {
        "matrix": cells.mean(axis=0).tolist(),
        "hard": float(per_item["hard"].mean()),
        "normal": float(per_item["normal"].mean()),
        "easy": float(per_item["easy"].mean()),
        "average": float(per_item["average"].mean()),
        "n": int(len(cells)),
        "tie": tie,
        "styles": list(RM_BENCH_STYLES),
        "per_item": per_item,
    }


# ----------------------------------------------------------------------------- best-of-k
def best_of_k_selection(scores: Any, correct: Any) -> dict[str, Any]:
    """Best-of-k selection: is the top-scored of an item's k responses a correct one?

    ``scores``/``correct``: per item the rewards and the correctness (booleans) of its k
    responses (``(n, k)`` arrays or lists of 1-D arrays; k may vary). Per item:
    - ``selected``: correctness of the top-scored response. When several responses share the
      top score, the pick among them is taken as uniformly random and ``selected`` is its
      expectation, the fraction of correct responses among the tied ones (so a scorer that
      gives every response the same reward scores exactly ``random``);
    - ``random``: the expectation of a random pick, the item's mean correctness;
    - ``oracle``: 1 if any response is correct (the best a selector can do);
    - ``mixed``: the item has both correct and wrong responses (only there can a scorer
      differ from ``random``); ``n_tied_top``: how many responses share the top score.

    Returns ``{"selected", "random", "gain" (= selected − random), "oracle", "n", "n_mixed",
    "selected_mixed", "random_mixed" (means over mixed items, None if none), "per_item"}``.
    """
    flat, starts = _ragged(scores, "scores", finite=True)
    n = starts.size
    ok_raw, ok_starts = _ragged(correct, "correct", n, dtype=object)
    if not all(isinstance(v, (bool, np.bool_)) for v in ok_raw):
        raise ValueError("correct: expected booleans (one per response)")
    ok = ok_raw.astype(bool)
    sizes = _sizes(starts, flat.size)
    if ok.size != flat.size or not np.array_equal(ok_starts, starts):
        raise ValueError("expected one correctness flag per score in every item")
    top = np.maximum.reduceat(flat, starts)
    at_top = flat == np.repeat(top, sizes)
    n_top = np.add.reduceat(at_top.astype(float), starts)
    selected = np.add.reduceat((at_top & ok).astype(float), starts) / n_top
    n_ok = np.add.reduceat(ok.astype(float), starts)
    random = n_ok / sizes
    oracle = (n_ok > 0).astype(float)
    mixed = (n_ok > 0) & (n_ok < sizes)
    return {
        "selected": float(selected.mean()),
        "random": float(random.mean()),
        "gain": float(selected.mean() - random.mean()),
        "oracle": float(oracle.mean()),
        "n": int(n),
        "n_mixed": int(mixed.sum()),
        "selected_mixed": float(selected[mixed].mean()) if mixed.any() else None,
        "random_mixed": float(random[mixed].mean()) if mixed.any() else None,
        "per_item": {"selected": selected, "random": random, "oracle": oracle, "mixed": mixed,
                     "n_tied_top": n_top.astype(int)},
    }


# ----------------------------------------------------------------------------- length baselines
def char_lengths(texts: Sequence[str]) -> np.ndarray:
    """Length in characters (Unicode code points) of each response text."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}]: expected a string, got {type(text).__name__}")
        out.append(len(text))
    return np.asarray(out, dtype=float)


def length_baselines_pairs(len_c: Any, len_r: Any, tie: str = "wrong") -> dict[str, dict[str, Any]]:
    """What a length rule scores on pairs: ``{"prefer_longer", "prefer_shorter", "chance"}``.

    ``prefer_longer`` is :func:`pair_accuracy` with the lengths as rewards, ``prefer_shorter``
    with the negated lengths, both with the ``tie`` policy (equal lengths are a tie);
    ``chance`` earns 0.5 per item. Lengths in characters (:func:`char_lengths`) or tokens. A
    subset that a length rule solves measures length, not judgement.
    """
    c, r = as_vector(len_c, "len_c", finite=True), as_vector(len_r, "len_r", finite=True)
    longer = pair_accuracy(c, r, tie)
    shorter = pair_accuracy(-c, -r, tie)
    chance = _result(np.full(c.size, 0.5), tie=tie)
    return {"prefer_longer": longer, "prefer_shorter": shorter, "chance": chance}


def length_baselines_best_of_n(len_chosen: Any, len_rejected: Any, tie: str = "wrong") -> dict[str, dict[str, Any]]:
    """Length rules on best-of-N items: ``{"prefer_longer", "prefer_shorter", "chance"}``.

    :func:`best_of_n_accuracy` with the lengths (or negated lengths) as rewards and the ``tie``
    policy; ``chance`` earns ``1 / N`` per item (a random pick).
    """
    c = as_vector(len_chosen, "len_chosen", finite=True)
    flat, starts = _ragged(len_rejected, "len_rejected", c.size, finite=True)
    rows = np.split(flat, starts[1:])
    longer = best_of_n_accuracy(c, rows, tie)
    shorter = best_of_n_accuracy(-c, [-row for row in rows], tie)
    chance = _result(longer["chance_per_item"].copy(), tie=tie)
    return {"prefer_longer": longer, "prefer_shorter": shorter, "chance": chance}
