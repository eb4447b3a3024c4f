"""Length diagnostics of rewards: does a reward follow response length, and is it right when the
chosen response is the shorter one? Pure functions (numbers in, plain dicts out), used wherever a
reward is judged: training-time validation (``summary.json`` and ``metrics.jsonl``), ``eval``
(``diagnostics.length_bias``) and its report.

Lengths are **characters** of the response text (a message list: its contents), as ``eval``'s
length rules count them. They live in ``data/`` (the lowest floor) because the training loop may
not import ``eval`` (docs/architecture.md); the intervals are the libraries' own
(``statsmodels``' Wilson and Newcombe intervals, the Fisher z interval of Spearman's rho with
Bonett and Wright's standard error), as in :mod:`rewardlab.eval.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

UNIT = "characters"


def response_length(response: str | Sequence[dict]) -> int:
    """Characters of a response: a string, or the contents of a list of ``{role, content}`` messages."""
    if isinstance(response, str):
        return len(response)
    return sum(len(str(m.get("content", ""))) for m in response)


def response_lengths(responses) -> np.ndarray:
    """:func:`response_length` of each response, as a float array."""
    return np.asarray([response_length(r) for r in responses], dtype=float)


def _split(ok: np.ndarray, mask: np.ndarray, level: float) -> dict[str, Any]:
    """Accuracy on the pairs of ``mask`` with its Wilson interval (None when there are none)."""
    n, k = int(mask.sum()), int(ok[mask].sum())
    out: dict[str, Any] = {"n": n, "correct": k, "accuracy": None, "low": None, "high": None}
    if n:
        low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
        out.update(accuracy=k / n, low=float(max(low, 0.0)), high=float(min(high, 1.0)))
    return out


def spearman_interval(x: Any, y: Any, level: float = 0.95) -> dict[str, Any]:
    """Spearman's rho of ``x`` and ``y`` (``scipy.stats.spearmanr``) with a Fisher z interval:
    ``tanh(atanh(rho) ± z · sqrt((1 + rho²/2) / (n − 3)))`` (Bonett & Wright 2000). ``rho`` is
    None when either side is constant; the interval is None below 4 values or at |rho| = 1."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman_interval: expected two 1-D arrays of one length, got {x.shape} and {y.shape}")
    out: dict[str, Any] = {"rho": None, "low": None, "high": None, "n": int(x.size), "method": "fisher_z_bonett_wright"}
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return out
    rho = float(stats.spearmanr(x, y).statistic)
    out["rho"] = rho
    if x.size > 3 and abs(rho) < 1:
        half = stats.norm.ppf(0.5 + level / 2) * math.sqrt((1 + rho ** 2 / 2) / (x.size - 3))
        out["low"], out["high"] = math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)
    return out


def length_diagnostics(r_c: Any, r_r: Any, len_c: Any, len_r: Any, level: float = 0.95) -> dict[str, Any]:
    """How much rewards follow length, with 95% intervals.

    - ``spearman``: Spearman(reward, length) over all 2n responses (chosen and rejected pooled),
      with its interval (:func:`spearman_interval`; it counts the 2n responses as independent,
      which two responses to one prompt are not: read it as approximate);
    - ``chosen_longer`` / ``chosen_shorter`` / ``equal_length``: accuracy (a tie is wrong) on the
      pairs whose chosen response is strictly longer / shorter than / as long as the rejected
      one, each ``{"n", "correct", "accuracy", "low", "high"}`` (Wilson);
    - ``gap``: accuracy(chosen longer) − accuracy(chosen shorter), the length-bias gap, with
      Newcombe's interval for a difference of two independent proportions (None unless both
      groups have pairs).
    """
    c, r = np.asarray(r_c, dtype=float), np.asarray(r_r, dtype=float)
    lc, lr = np.asarray(len_c, dtype=float), np.asarray(len_r, dtype=float)
    if not (c.shape == r.shape == lc.shape == lr.shape) or c.ndim != 1:
        raise ValueError(f"length_diagnostics: expected four 1-D arrays of one length, got "
                         f"{c.shape}, {r.shape}, {lc.shape}, {lr.shape}")
    ok = c > r
    longer, shorter = _split(ok, lc > lr, level), _split(ok, lc < lr, level)
    gap: dict[str, Any] = {"estimate": None, "low": None, "high": None, "method": "newcomb"}
    if longer["n"] and shorter["n"]:
        low, high = confint_proportions_2indep(longer["correct"], longer["n"], shorter["correct"], shorter["n"],
                                               method="newcomb", alpha=1 - level)
        gap.update(estimate=longer["accuracy"] - shorter["accuracy"], low=float(low), high=float(high))
    return {
        "unit": UNIT,
        "level": level,
        "spearman": spearman_interval(np.concatenate([c, r]), np.concatenate([lc, lr]), level),
        "chosen_longer": longer,
        "chosen_shorter": shorter,
        "equal_length": _split(ok, lc == lr, level),
        "gap": gap,
    }


def length_summary_line(d: dict[str, Any]) -> str:
    """One readable line of :func:`length_diagnostics` (training log, terminal)."""
    def pct(v):
        return "—" if v.get("accuracy") is None else (
            f"{100 * v['accuracy']:.1f}% [{100 * v['low']:.1f}, {100 * v['high']:.1f}] of {v['n']}")
    rho = d["spearman"]
    r = "—" if rho["rho"] is None else f"{rho['rho']:+.2f}" + (
        f" [{rho['low']:+.2f}, {rho['high']:+.2f}]" if rho["low"] is not None else "")
    return (f"Spearman(reward, length in {d['unit']}) {r}; accuracy when chosen is longer {pct(d['chosen_longer'])}, "
            f"shorter {pct(d['chosen_shorter'])}")
