"""Best-of-N over-optimisation curves (Gao, Schulman & Hilton 2023, "Scaling Laws for Reward Model
Overoptimization"): as N grows, best-of-N sampling by a proxy reward moves further from the
policy (KL = log N − (N − 1)/N), the proxy's value of the pick keeps rising, and the golden
value of the pick rises, flattens and, when the proxy is wrong where it is most confident, falls.

Here the policy is uniform over a prompt's response pool, N draws are taken with replacement
(so N may exceed the pool) and the pick is the draw with the highest proxy reward. The
expectations are exact, not sampled: with the pool's m responses sorted by proxy, the largest of
N uniform draws has the value of the j-th distinct proxy level with probability
``F_j^N − F_{j−1}^N`` (``F_j``: the share of responses at or below that level; tied responses
share it equally). Each prompt counts once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def bon_kl(n) -> np.ndarray:
    """KL(best-of-N ‖ base policy) = log N − (N − 1)/N (the analytic value Gao et al. use)."""
    n = np.asarray(n, dtype=np.float64)
    return np.log(n) - (n - 1) / n


def _pick_weights(proxy: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """``(len(ns), m)``: the probability that each response is the best-of-N pick (ties split)."""
    m = proxy.size
    levels, inverse, counts = np.unique(proxy, return_inverse=True, return_counts=True)
    cdf = np.cumsum(counts) / m
    lower = np.concatenate([[0.0], cdf[:-1]])
    p_level = cdf[None, :] ** ns[:, None] - lower[None, :] ** ns[:, None]  # (len(ns), levels)
    return p_level[:, inverse] / counts[inverse][None, :]


@dataclass
class OveroptCurve:
    """Mean over prompts of the golden and proxy value of the best-of-N pick, per N; gains are
    relative to N = 1 (the pool's mean), the golden's in units of ``golden_scale``. ``peak_n``: the
    first N of the largest golden gain (a plateau's start); ``saturation_n``: the first N reaching
    99% of it. Over-optimisation shows as a golden gain that falls after ``peak_n``."""

    ns: list[int]
    kl: list[float]
    golden: list[float]
    proxy: list[float]
    golden_gain: list[float]
    proxy_gain: list[float]
    peak_n: int
    peak_gain: float
    saturation_n: int
    n_prompts: int

    def as_dict(self) -> dict:
        return dict(vars(self))


def best_of_n_curve(proxy, golden, prompt_ids: Iterable[Hashable], ns: Sequence[int], *,
                    golden_scale: float = 1.0, proxy_scale: float | None = None) -> OveroptCurve:
    """The curve of the module docstring for the items ``proxy``/``golden`` grouped by ``prompt_ids``.
    ``proxy_scale`` (default: the proxy's std over the items) puts the proxy gain in its own std units."""
    p = np.asarray(proxy, dtype=np.float64)
    g = np.asarray(golden, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 1:
        raise ValueError(f"proxy and golden must be vectors of one length, got {p.shape} and {g.shape}")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("proxy and golden must be finite")
    n_arr = np.asarray(sorted(set(int(n) for n in ns)), dtype=np.float64)
    if n_arr.size == 0 or n_arr[0] < 1:
        raise ValueError(f"ns: expected integers >= 1, got {list(ns)}")
    ids = np.asarray([str(x) for x in prompt_ids])
    if ids.size != p.size:
        raise ValueError(f"prompt_ids: expected {p.size} labels, got {ids.size}")
    gold_sum = np.zeros(n_arr.size)
    prox_sum = np.zeros(n_arr.size)
    groups = [np.flatnonzero(ids == u) for u in dict.fromkeys(ids.tolist())]
    for idx in groups:
        w = _pick_weights(p[idx], n_arr)
        gold_sum += w @ g[idx]
        prox_sum += w @ p[idx]
    gold, prox = gold_sum / len(groups), prox_sum / len(groups)
    base_g = float((sum(g[idx].mean() for idx in groups)) / len(groups))
    base_p = float((sum(p[idx].mean() for idx in groups)) / len(groups))
    ps = float(p.std()) if proxy_scale is None else float(proxy_scale)
    g_gain = (gold - base_g) / golden_scale
    p_gain = (prox - base_p) / (ps if ps > 0 else 1.0)
    k, sat = peak_index(g_gain)
    return OveroptCurve(ns=[int(n) for n in n_arr], kl=bon_kl(n_arr).tolist(), golden=gold.tolist(),
                        proxy=prox.tolist(), golden_gain=g_gain.tolist(), proxy_gain=p_gain.tolist(),
                        peak_n=int(n_arr[k]), peak_gain=float(g_gain[k]), saturation_n=int(n_arr[sat]),
                        n_prompts=len(groups))


def peak_index(gain, *, tol: float = 1e-9, share: float = 0.99) -> tuple[int, int]:
    """(peak, saturation) indices of a gain curve: the first N whose gain is within ``tol`` of the
    largest (a plateau's start, not its rounding noise), and the first N reaching ``share`` of it."""
    g = np.asarray(gain, dtype=np.float64)
    top = g.max()
    peak = int(np.flatnonzero(g >= top - tol)[0])
    sat = int(np.flatnonzero(g >= share * top)[0]) if top > 0 else peak
    return peak, sat
