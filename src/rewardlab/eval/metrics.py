"""Metrics on reward-model scores: the one module that training-time validation, ``eval``,
studies and reports all use.

Every function is pure (numpy in, plain Python numbers and dicts out) and takes array-like
inputs. Notation as in METHODS.md: ``r_c``/``r_r`` are the rewards of the chosen/rejected
responses of each pair and ``d = r_c - r_r``.

Conventions:
- A pair is correct only when ``r_c > r_r`` strictly: a tie is wrong, and so is a NaN reward
  (a comparison with NaN is never "greater").
- Functions that need real numbers (summaries, correlations, calibration) reject NaN with a
  ``ValueError``.
- A value that is undefined (an accuracy over zero pairs, a correlation of a constant) is
  ``None`` rather than NaN, so that results serialise as standard JSON.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from rewardlab.data.lengths import length_diagnostics

__all__ = [
    "correct",
    "pairwise_accuracy",
    "accuracy_by_group",
    "quantile_bins",
    "accuracy_by_quantile",
    "reward_summary",
    "margin_summary",
    "length_bias",
    "win_probability",
    "reliability_curve",
    "expected_calibration_error",
    "fit_temperature",
    "agreement_rate",
    "best_of_n_gain",
    "per_prompt_spearman",
    "golden_pairwise_accuracy",
    "diagnostics",
]


# ----------------------------------------------------------------------------- validation
def as_vector(x: Any, name: str, *, finite: bool = False) -> np.ndarray:
    """``x`` as a non-empty 1-D float array; with ``finite``, NaN and infinities are refused."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, got NaN or infinity")
    return arr


def _same_length(**arrays: np.ndarray | Sequence[Any]) -> None:
    """Raise ``ValueError`` unless all arrays have the same length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"expected arrays of equal length, got: {shown}")


def _pairs(r_c: Any, r_r: Any, *, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(r_c, r_r)`` float vectors of equal length."""
    c, r = as_vector(r_c, "r_c", finite=finite), as_vector(r_r, "r_r", finite=finite)
    _same_length(r_c=c, r_r=r)
    return c, r


def _labels(x: Iterable[Hashable], name: str, n: int) -> list[Hashable]:
    """Group labels as a plain list of length ``n`` (numpy scalars become Python scalars)."""
    labels = [v.item() if isinstance(v, np.generic) else v for v in x]
    if len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels (one per pair), got {len(labels)}")
    return labels


def _positive(value: float, name: str) -> float:
    """``value`` as a float, checked to be finite and > 0."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    return value


def _indices_by_label(labels: list[Hashable]) -> dict[Hashable, np.ndarray]:
    """Row indices of each label, labels in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return {label: np.asarray(idx) for label, idx in groups.items()}


def _accuracy(ok: np.ndarray) -> float | None:
    """Mean of a boolean array, ``None`` when it is empty."""
    return float(ok.mean()) if ok.size else None


# ----------------------------------------------------------------------------- accuracy
def correct(r_c: Any, r_r: Any) -> np.ndarray:
    """Boolean array: pair ``i`` is correct when ``r_c[i] > r_r[i]`` strictly (ties are wrong)."""
    c, r = _pairs(r_c, r_r)
    return c > r


def pairwise_accuracy(r_c: Any, r_r: Any) -> float:
    """Fraction of pairs with ``r_c > r_r`` strictly; a tie counts as wrong."""
    return float(correct(r_c, r_r).mean())


def accuracy_by_group(
    r_c: Any, r_r: Any, groups: Iterable[Hashable]
) -> dict[Hashable, dict[str, Any]]:
    """Accuracy of each group of pairs: ``{group: {"n", "correct", "accuracy"}}``.

    Groups appear in order of first appearance; ``correct`` is the raw count, so results
    can be re-aggregated exactly.
    """
    ok = correct(r_c, r_r)
    labels = _labels(groups, "groups", ok.size)
    return {
        label: {"n": int(idx.size), "correct": int(ok[idx].sum()), "accuracy": float(ok[idx].mean())}
        for label, idx in _indices_by_label(labels).items()
    }


def quantile_bins(values: Any, n_bins: int = 4) -> np.ndarray:
    """Bin index (0, 1, ...) of each value into (nearly) equal-count quantile bins.

    Values are ranked with a stable sort and rank ``k`` of ``n`` goes to bin
    ``k * n_bins // n``. Tied values always share one bin, the bin of the lowest rank in the
    tie, so the result does not depend on input order; a bin emptied that way is dropped and
    the remaining bins are renumbered consecutively (fewer than ``n_bins`` bins can result).
    """
    v = as_vector(values, "values", finite=True)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer, got {n_bins}")
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    target = np.arange(v.size) * int(n_bins) // v.size
    unique, first = np.unique(sorted_v, return_index=True)
    tie_start = first[np.searchsorted(unique, sorted_v)]
    _, dense = np.unique(target[tie_start], return_inverse=True)
    bins = np.empty(v.size, dtype=int)
    bins[order] = dense
    return bins


def accuracy_by_quantile(
    r_c: Any, r_r: Any, values: Any, n_bins: int = 4
) -> list[dict[str, Any]]:
    """Accuracy per quantile bin of a per-pair value (e.g. ``‖h_c − h_r‖``).

    Returns one dict per bin, lowest values first: ``{"bin", "lo", "hi", "n", "correct",
    "accuracy"}`` where ``lo``/``hi`` are the smallest/largest value in the bin. Binning as in
    :func:`quantile_bins` (ties share a bin).
    """
    ok = correct(r_c, r_r)
    v = as_vector(values, "values", finite=True)
    _same_length(pairs=ok, values=v)
    bins = quantile_bins(v, n_bins)
    out = []
    for b in range(int(bins.max()) + 1):
        mask = bins == b
        out.append(
            {
                "bin": b,
                "lo": float(v[mask].min()),
                "hi": float(v[mask].max()),
                "n": int(mask.sum()),
                "correct": int(ok[mask].sum()),
                "accuracy": float(ok[mask].mean()),
            }
        )
    return out


# ----------------------------------------------------------------------------- summaries
def reward_summary(r: Any) -> dict[str, float | int]:
    """``{"mean", "std", "min", "max", "n"}`` of rewards (population std, ddof=0)."""
    x = as_vector(r, "r", finite=True)
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(x.size),
    }


def margin_summary(r_c: Any, r_r: Any) -> dict[str, float | int]:
    """Summary of the margins ``d = r_c − r_r``.

    ``{"mean", "std", "median", "min", "max", "n", "frac_positive", "frac_tie"}``;
    ``frac_positive`` equals :func:`pairwise_accuracy`.
    """
    c, r = _pairs(r_c, r_r, finite=True)
    d = c - r
    return {
        "mean": float(d.mean()),
        "std": float(d.std()),
        "median": float(np.median(d)),
        "min": float(d.min()),
        "max": float(d.max()),
        "n": int(d.size),
        "frac_positive": float((d > 0).mean()),
        "frac_tie": float((d == 0).mean()),
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman correlation, ``None`` when either side is constant (undefined)."""
    if np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(stats.spearmanr(x, y).statistic)


def length_bias(r_c: Any, r_r: Any, len_c: Any, len_r: Any) -> dict[str, Any]:
    """How much the rewards follow response length.

    - ``spearman_reward_length``: Spearman correlation of reward with length over all
      responses pooled (chosen and rejected together, 2n values); ``None`` if either is
      constant.
    - ``acc_chosen_shorter`` / ``acc_chosen_longer``: pairwise accuracy on the pairs whose
      chosen response is strictly shorter / longer than the rejected one (``None`` when there
      are none), with their counts ``n_chosen_shorter`` / ``n_chosen_longer``; ``n_equal``
      counts pairs of equal length. A length-biased model scores high on "longer" and low on
      "shorter".
    - intervals (95%, :func:`rewardlab.data.lengths.length_diagnostics`): ``spearman_interval``
      (Fisher z), ``acc_chosen_shorter_interval`` / ``acc_chosen_longer_interval`` (Wilson),
      ``acc_equal`` (accuracy on equal lengths) and ``gap_longer_minus_shorter`` (the difference
      of the two accuracies with Newcombe's interval).
    Lengths are in any unit (characters, tokens) as long as both sides use the same one.
    """
    c, r = _pairs(r_c, r_r, finite=True)
    lc, lr = as_vector(len_c, "len_c", finite=True), as_vector(len_r, "len_r", finite=True)
    _same_length(r_c=c, len_c=lc, len_r=lr)
    ok = c > r
    shorter, longer = lc < lr, lc > lr
    return {
        "spearman_reward_length": _spearman(np.concatenate([c, r]), np.concatenate([lc, lr])),
        "acc_chosen_shorter": _accuracy(ok[shorter]),
        "n_chosen_shorter": int(shorter.sum()),
        "acc_chosen_longer": _accuracy(ok[longer]),
        "n_chosen_longer": int(longer.sum()),
        "n_equal": int((lc == lr).sum()),
        **_length_intervals(length_diagnostics(c, r, lc, lr)),
    }


def _length_intervals(d: dict[str, Any]) -> dict[str, Any]:
    def bounds(v: dict[str, Any]) -> dict[str, Any]:
        return {"low": v["low"], "high": v["high"]}

    return {"spearman_interval": {**bounds(d["spearman"]), "method": d["spearman"]["method"]},
            "acc_chosen_shorter_interval": bounds(d["chosen_shorter"]),
            "acc_chosen_longer_interval": bounds(d["chosen_longer"]),
            "acc_equal": d["equal_length"]["accuracy"], "acc_equal_interval": bounds(d["equal_length"]),
            "gap_longer_minus_shorter": d["gap"]}


# ----------------------------------------------------------------------------- calibration
def win_probability(r_c: Any, r_r: Any, temperature: float = 1.0) -> np.ndarray:
    """``σ((r_c − r_r) / T)``: the model's probability that the chosen side wins.

    Computed with ``scipy.special.expit``, which does not overflow for large margins.
    """
    c, r = _pairs(r_c, r_r, finite=True)
    return special.expit((c - r) / _positive(temperature, "temperature"))


def reliability_curve(d: Any, temperature: float = 1.0, n_bins: int = 10) -> list[dict[str, Any]]:
    """Reliability diagram of ``p = σ(d / T)`` on preference pairs labelled "chosen wins".

    Labels of RewardBench-style data are always "chosen wins", so a curve over ``p`` alone
    would have accuracy 1 everywhere. The symmetric formulation makes it meaningful: each pair
    contributes two predictions, ``p`` that the chosen side wins (outcome 1) and ``1 − p``
    that the rejected side wins (outcome 0). Bins are ``n_bins`` equal-width intervals of
    [0, 1] (``[lo, hi)``, the last one closed). The curve is symmetric about (0.5, 0.5), and
    its upper half is the usual top-label curve (confidence ``max(p, 1 − p)``, correct when
    the more likely side is the chosen one). A tie (``d = 0``) gives ``p = 0.5`` with one win
    and one loss: perfectly calibrated.

    Returns the non-empty bins: ``{"bin", "lo", "hi", "confidence" (mean predicted
    probability), "accuracy" (fraction of outcome 1), "count" (predictions, two per pair)}``.
    """
    x = as_vector(d, "d", finite=True)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer, got {n_bins}")
    p = special.expit(x / _positive(temperature, "temperature"))
    conf = np.concatenate([p, 1.0 - p])
    outcome = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    idx = np.minimum((conf * n_bins).astype(int), int(n_bins) - 1)
    curve = []
    for b in np.unique(idx):
        mask = idx == b
        curve.append(
            {
                "bin": int(b),
                "lo": float(b / n_bins),
                "hi": float((b + 1) / n_bins),
                "confidence": float(conf[mask].mean()),
                "accuracy": float(outcome[mask].mean()),
                "count": int(mask.sum()),
            }
        )
    return curve


def expected_calibration_error(d: Any, temperature: float = 1.0, n_bins: int = 10) -> float:
    """ECE of ``σ(d / T)``: ``Σ_b (count_b / total) · |accuracy_b − confidence_b|``.

    Uses the symmetric formulation of :func:`reliability_curve` (each pair contributes ``p``
    with outcome 1 and ``1 − p`` with outcome 0), which equals the top-label ECE over
    confidence ``max(p, 1 − p)``. Example: every pair at ``p = 0.75`` gives ECE 0.25 (the model
    says 75 % and is always right); three pairs at 0.75 and one at 0.25 give ECE 0.
    """
    curve = reliability_curve(d, temperature, n_bins)
    total = sum(b["count"] for b in curve)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in curve))


def fit_temperature(d_val: Any) -> float:
    """Temperature ``T > 0`` minimising the NLL ``mean(−log σ(d / T))`` on validation margins.

    Each pair's label is "chosen wins", so the likelihood of pair ``i`` is ``σ(d_i / T)``:
    the probability the model gives to the side that actually won. This is well defined with
    all-chosen labels, and the same as the symmetric formulation. The NLL is convex in
    ``s = 1/T``; its minimiser is found as the root of the derivative
    ``−mean(d · σ(−s·d))`` with ``scipy.optimize.brentq``.

    A finite optimum exists only when the margins are positive on average (else the NLL is
    smallest at ``T → ∞``, i.e. the model ranks no better than chance) and at least one pair
    is misranked (else the NLL keeps falling as ``T → 0``). Both cases raise ``ValueError``.
    """
    d = as_vector(d_val, "d_val", finite=True)
    if d.mean() <= 0:
        raise ValueError(
            "fit_temperature: the mean margin is <= 0, so the NLL is minimised at T -> infinity "
            "(the model ranks no better than chance on this data)"
        )
    if not np.any(d < 0):
        raise ValueError(
            "fit_temperature: no pair has d < 0, so the NLL decreases without bound as T -> 0 "
            "(separable data); the temperature is not identifiable"
        )

    def gradient(s: float) -> float:
        return float(-np.mean(d * special.expit(-s * d)))

    hi = 1.0 / float(np.mean(np.abs(d)))
    while gradient(hi) <= 0:
        hi *= 2.0
    s_opt = optimize.brentq(gradient, 0.0, hi, xtol=1e-12, rtol=1e-12)
    return 1.0 / s_opt


# ----------------------------------------------------------------------------- comparisons
def agreement_rate(d_a: Any, d_b: Any) -> float:
    """Fraction of pairs on which two models pick the same side.

    Compares ``sign(d_a)`` and ``sign(d_b)``: a tie agrees only with a tie.
    """
    a, b = as_vector(d_a, "d_a"), as_vector(d_b, "d_b")
    _same_length(d_a=a, d_b=b)
    return float((np.sign(a) == np.sign(b)).mean())


def best_of_n_gain(
    pred: Any,
    golden: Any,
    prompt_ids: Iterable[Hashable],
    ns: Iterable[int],
    n_perm: int = 100,
    seed: int = 0,
) -> dict[int, float | None]:
    """Best-of-N gain in golden reward (METHODS.md §3).

    For each prompt with at least ``N`` candidates and each of ``n_perm`` random
    permutations of its candidates: take the first ``N``, pick the one with the highest
    ``pred`` (the first in permuted order on a tie), and record the golden reward of the pick
    minus the mean golden reward of those ``N``. Average over permutations, then over prompts
    (each prompt counts once). The same permutations serve every ``N``.

    Returns ``{N: gain}``; the gain is ``None`` when no prompt has ``N`` candidates.
    Deterministic for a given ``seed`` (prompts are processed in order of first appearance).
    """
    p = as_vector(pred, "pred", finite=True)
    g = as_vector(golden, "golden", finite=True)
    _same_length(pred=p, golden=g)
    labels = _labels(prompt_ids, "prompt_ids", p.size)
    n_list = list(dict.fromkeys(int(n) for n in ns))
    if not n_list or any(n < 1 for n in n_list):
        raise ValueError(f"ns: expected one or more integers >= 1, got {n_list}")
    if int(n_perm) < 1:
        raise ValueError(f"n_perm: expected an integer >= 1, got {n_perm}")
    rng = np.random.default_rng(seed)
    gains: dict[int, list[float]] = {n: [] for n in n_list}
    rows = np.arange(int(n_perm))
    for idx in _indices_by_label(labels).values():
        perms = idx[rng.random((int(n_perm), idx.size)).argsort(axis=1)]
        for n in n_list:
            if n > idx.size:
                continue
            cand = perms[:, :n]
            picks = cand[rows, np.argmax(p[cand], axis=1)]
            gains[n].append(float(np.mean(g[picks] - g[cand].mean(axis=1))))
    return {n: (float(np.mean(v)) if v else None) for n, v in gains.items()}


def per_prompt_spearman(pred: Any, golden: Any, prompt_ids: Iterable[Hashable]) -> float:
    """Mean over prompts of the Spearman correlation between ``pred`` and ``golden``.

    Only prompts with at least two distinct golden values count. A prompt on which ``pred``
    is constant counts as 0 (the model gives no ordering), so a collapsed model is not
    flattered by leaving such prompts out. Raises ``ValueError`` if no prompt qualifies.
    """
    p = as_vector(pred, "pred", finite=True)
    g = as_vector(golden, "golden", finite=True)
    _same_length(pred=p, golden=g)
    labels = _labels(prompt_ids, "prompt_ids", p.size)
    rhos = []
    for idx in _indices_by_label(labels).values():
        if np.unique(g[idx]).size < 2:
            continue
        rho = _spearman(p[idx], g[idx])
        rhos.append(0.0 if rho is None else rho)
    if not rhos:
        raise ValueError("per_prompt_spearman: no prompt has two or more distinct golden values")
    return float(np.mean(rhos))


TIE_POLICIES = ("wrong", "half", "drop")


def golden_pairwise_accuracy(pred: Any, golden: Any, prompt_ids: Iterable[Hashable], *,
                             ties: str = "wrong") -> float:
    """Pairwise accuracy against a golden reward (METHODS.md §3).

    Over every pair of items of the same prompt whose golden rewards differ, the fraction that
    ``pred`` orders like ``golden``. A tie in ``pred`` counts by ``ties``: ``wrong`` (0, strict,
    as in :func:`pairwise_accuracy`; the default), ``half`` (0.5: the expected score of a coin
    flip, the fair count for ranking against a golden: a constant predictor scores 0.5, not 0)
    or ``drop`` (the pair leaves the denominator). All such pairs of all prompts count equally.
    Raises ``ValueError`` if there is no such pair (with ``drop``: no untied one).
    """
    counts = golden_pair_counts(pred, golden, prompt_ids)
    return accuracy_from_counts(counts, ties)


def golden_pair_counts(pred: Any, golden: Any, prompt_ids: Iterable[Hashable]) -> dict[str, int]:
    """``{"right", "tied", "wrong", "pairs"}``: the same-prompt pairs with different golden
    rewards that ``pred`` orders like ``golden``, ties, or orders the other way."""
    p = as_vector(pred, "pred", finite=True)
    g = as_vector(golden, "golden", finite=True)
    _same_length(pred=p, golden=g)
    labels = _labels(prompt_ids, "prompt_ids", p.size)
    right = tied = n_all = 0
    for idx in _indices_by_label(labels).values():
        i, j = np.triu_indices(idx.size, k=1)
        a, b = idx[i], idx[j]
        diff = g[a] != g[b]
        hi = np.where(g[a] > g[b], a, b)[diff]
        lo = np.where(g[a] > g[b], b, a)[diff]
        right += int((p[hi] > p[lo]).sum())
        tied += int((p[hi] == p[lo]).sum())
        n_all += int(hi.size)
    return {"right": right, "tied": tied, "wrong": n_all - right - tied, "pairs": n_all}


def accuracy_from_counts(counts: dict[str, int], ties: str = "wrong") -> float:
    """Accuracy from :func:`golden_pair_counts` under a tie policy (see :func:`golden_pairwise_accuracy`)."""
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    if counts["pairs"] == 0:
        raise ValueError("golden_pairwise_accuracy: no prompt has two items with different golden rewards")
    if ties == "wrong":
        return counts["right"] / counts["pairs"]
    if ties == "half":
        return (counts["right"] + 0.5 * counts["tied"]) / counts["pairs"]
    untied = counts["pairs"] - counts["tied"]
    if untied == 0:
        raise ValueError("golden_pairwise_accuracy: every pair is tied in pred; nothing left with ties='drop'")
    return counts["right"] / untied


# ----------------------------------------------------------------------------- bundle
def diagnostics(
    r_c: Any,
    r_r: Any,
    *,
    len_c: Any | None = None,
    len_r: Any | None = None,
    distance: Any | None = None,
    distance_name: str = "‖h_c − h_r‖",
    categories: Iterable[Hashable] | None = None,
    temperature: float | None = None,
    n_bins: int = 4,
) -> dict[str, Any]:
    """The per-model ``diagnostics`` block that ``eval.report.write_report`` reads.

    Always: ``pairwise_accuracy``, ``margin`` and ``calibration`` (ECE and reliability curve
    at T = 1, plus ``ece_at_temperature`` when a ``temperature`` is given; fit it on
    validation data with :func:`fit_temperature`, not on the pairs being evaluated). With
    lengths: ``length_bias``. With a per-pair ``distance``: ``accuracy_by_quantile``
    (``{"value": distance_name, "bins": ...}``). With per-pair ``categories``: ``rewards``
    (``{category: {"chosen": reward_summary, "rejected": reward_summary}}``).
    """
    c, r = _pairs(r_c, r_r, finite=True)
    d = c - r
    calibration: dict[str, Any] = {
        "ece": expected_calibration_error(d),
        "reliability": reliability_curve(d),
    }
    if temperature is not None:
        calibration["temperature"] = _positive(temperature, "temperature")
        calibration["ece_at_temperature"] = expected_calibration_error(d, temperature)
    out: dict[str, Any] = {
        "pairwise_accuracy": pairwise_accuracy(c, r),
        "margin": margin_summary(c, r),
        "calibration": calibration,
    }
    if (len_c is None) != (len_r is None):
        raise ValueError("diagnostics: give both len_c and len_r, or neither")
    if len_c is not None:
        out["length_bias"] = length_bias(c, r, len_c, len_r)
    if distance is not None:
        out["accuracy_by_quantile"] = {
            "value": distance_name,
            "bins": accuracy_by_quantile(c, r, distance, n_bins),
        }
    if categories is not None:
        labels = _labels(categories, "categories", c.size)
        out["rewards"] = {
            label: {"chosen": reward_summary(c[idx]), "rejected": reward_summary(r[idx])}
            for label, idx in _indices_by_label(labels).items()
        }
    return out
