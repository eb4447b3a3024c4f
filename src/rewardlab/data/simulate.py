"""Annotation simulator (METHODS §3): preference pairs labelled by a noisy annotator of a golden reward.

Given items (responses) with a golden reward and the prompt each answers, ``simulate_pairs``
draws ``n`` comparisons and labels each with a simulated annotator:

- **pairing** ``same_prompt``: both responses answer the same prompt; ``cross_prompt``: they
  answer two different prompts (drawn uniformly, without repeating the prompt).
- **selection** decides which responses of a prompt are candidates for comparison, with
  responses ranked by golden reward within their prompt (ties broken by item order):
  ``random``: two distinct responses drawn uniformly; ``similar``: the two neighbouring
  middle ranks (``⌊(m−1)/2⌋`` and the next one, m responses; the paper's ranks 4 and 5 of 10);
  ``diverse``: the two extreme ranks (lowest and highest). For ``same_prompt`` the pair is the
  two candidates; for ``cross_prompt`` it is one candidate of prompt i and one of prompt j
  (each picked uniformly from its two), so "similar" cross-prompt pairs compare middle-ranked
  responses of two prompts and "diverse" ones extreme-ranked responses.
- **annotator**: the response with the higher golden reward is labelled chosen with
  probability P(correct) = σ(β · |Δr| / s); ``beta < 0`` (or None) is a noiseless annotator
  (P = 1). ``s``, the noise scale (``scale``), is one of
  ``"std"`` / ``"global"`` (the default): the population std of all golden rewards given, so
  between-prompt variance is included and same-prompt pairs are noisier than cross-prompt
  ones at the same β; a **number** (``fixed``: the paper's constant c per golden; see
  :func:`scale_for_error_rate` to choose it for a target error rate); ``"per_prompt"``: each
  prompt's own population std (a cross-prompt pair uses the root mean square of its two
  prompts' stds; a prompt whose golden rewards are all equal takes the pooled within-prompt
  std).
- **quantity**: by default every pair is an independent draw (prompt first, uniformly among
  prompts with at least two responses, then the candidates), so pairs may repeat once ``n``
  exceeds the distinct pairs available; each repeat gets its own annotator draw, as a second
  annotation of the same comparison would.
- **sparse pairing** (the paper's premise that items are rarely compared twice):
  ``max_per_item=k`` caps how many pairs any item occurs in (each draw picks among prompts and
  candidates that still have room, uniformly); ``each_prompt_once=True`` is the paper's schedule
  (one comparison per prompt): the first prompt of pair t is the t-th prompt of a seeded
  permutation, so ``n`` may not exceed the number of prompts and each prompt starts exactly
  one pair (a cross-prompt pair's second prompt is drawn uniformly among the others that have an
  item to spare, a prompt whose own pair is still to come keeping one back for it). Either
  switches to a sequential sampler (a different random stream from the default one); a draw
  that the cap makes impossible is a ``ConfigError`` naming how many pairs fit, never a
  silently shorter list.

Each pair records whether its label is correct (``golden[chosen] >= golden[rejected]``; a
golden tie has no wrong label and gets P(correct) = 0.5) and its P(correct).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from rewardlab.errors import ConfigError

Pairing = Literal["same_prompt", "cross_prompt"]
Selection = Literal["random", "similar", "diverse"]
PAIRINGS = ("same_prompt", "cross_prompt")
SELECTIONS = ("random", "similar", "diverse")


@dataclass
class SimulatedPairs:
    """Simulated comparisons as item indices into the arrays given to :func:`simulate_pairs`.

    ``chosen``/``rejected``: the labelled pair (after annotator noise); ``correct``: whether the
    label agrees with the golden reward; ``p_correct``: the annotator's P(correct);
    ``delta``: |golden difference|; ``scale``: the s used (per pair for ``per_prompt``);
    ``beta``: the β used (None = noiseless); ``scale_mode``: ``global``, ``fixed`` or ``per_prompt``.
    """

    chosen: np.ndarray
    rejected: np.ndarray
    correct: np.ndarray
    p_correct: np.ndarray
    delta: np.ndarray
    scale: float | np.ndarray
    beta: float | None
    scale_mode: str = "global"

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def label_error_rate(self) -> float:
        """Fraction of pairs whose label disagrees with the golden reward."""
        return float(1.0 - self.correct.mean()) if len(self) else 0.0

    def summary(self) -> dict[str, float | int | None]:
        return {
            "n_pairs": len(self),
            "label_error_rate": self.label_error_rate,
            "expected_error_rate": float(1.0 - self.p_correct.mean()) if len(self) else 0.0,
            "mean_delta_over_scale": float((self.delta / self.scale).mean()) if len(self) else 0.0,
            "scale": float(np.mean(self.scale)),
            "scale_mode": self.scale_mode,
            "beta": self.beta,
            "max_comparisons_per_item": int(np.bincount(np.concatenate([self.chosen, self.rejected])).max())
            if len(self) else 0,
        }


def annotator_p_correct(delta: np.ndarray, beta: float | None, scale) -> np.ndarray:
    """P(label correct) = σ(β · |Δr| / s); 1 for a noiseless annotator (β None or < 0).

    A golden tie (Δr = 0) gives 0.5 under any noise level, and also for the noiseless annotator.
    ``scale`` is a number or one per pair.
    """
    delta = np.abs(np.asarray(delta, dtype=float))
    if beta is None or beta < 0:
        return np.where(delta > 0, 1.0, 0.5)
    return special.expit(float(beta) * delta / scale)


SCALE_MODES = ("std", "global", "per_prompt")


def scale_mode(scale: float | str | None) -> str:
    """``global`` (std of all golden rewards), ``fixed`` (a number) or ``per_prompt``."""
    if scale is None or scale in ("std", "global"):
        return "global"
    if scale == "per_prompt":
        return "per_prompt"
    if isinstance(scale, str):
        raise ConfigError(f"scale must be 'std', 'global', 'per_prompt' or a positive number, got {scale!r}")
    return "fixed"


def golden_scale(golden: np.ndarray, scale: float | str | None = "std") -> float:
    """The s of σ(β Δr / s): the population std of ``golden`` for ``"std"``/``"global"``/None,
    else the number (``per_prompt`` has no single s: see :func:`per_prompt_scales`)."""
    if scale is None or scale in ("std", "global"):
        s = float(np.std(np.asarray(golden, dtype=float)))
        if not np.isfinite(s) or s <= 0:
            raise ConfigError("the golden rewards are constant: their std cannot scale annotator noise; "
                              "give simulation.scale as a number")
        return s
    if isinstance(scale, str):
        raise ConfigError(f"scale must be 'std', 'global' or a positive number here, got {scale!r}")
    s = float(scale)
    if not np.isfinite(s) or s <= 0:
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    return s


def per_prompt_scales(golden, prompt_ids) -> np.ndarray:
    """Each item's prompt's population std of golden rewards (``per_prompt`` noise scale).

    A prompt whose golden rewards are all equal (or that has one item) takes the pooled
    within-prompt std, sqrt(mean over items of (r − prompt mean)²); if that is 0 too the
    rewards carry no within-prompt signal and a ``ConfigError`` says so.
    """
    g = np.asarray(golden, dtype=float)
    _, pid = np.unique(np.asarray(prompt_ids), return_inverse=True)
    pid = pid.reshape(-1)
    counts = np.bincount(pid)
    means = np.bincount(pid, g) / counts
    dev2 = (g - means[pid]) ** 2
    var = np.bincount(pid, dev2) / counts
    pooled = float(np.sqrt(dev2.mean()))
    if not pooled > 0:
        raise ConfigError("every prompt's golden rewards are constant: a per_prompt scale is undefined; "
                          "give simulation.scale as a number")
    std = np.sqrt(var)
    std = np.where(std > 0, std, pooled)
    return std[pid]


def scale_for_error_rate(golden, prompt_ids, *, beta: float, error_rate: float,
                         pairing: str = "cross_prompt", n: int = 200_000, seed: int = 0) -> float:
    """The fixed s at which the annotator's expected error rate is ``error_rate`` at ``beta``
    over pairs drawn as :func:`simulate_pairs` draws them (random selection, ``pairing``).

    Expected error at s is mean(1 − σ(β |Δr| / s)) over ``n`` drawn pairs, monotone in s;
    solved with ``scipy.optimize.brentq``. FIDELITY's design: cross-prompt error 5% at β = 10.
    """
    from scipy import optimize

    if not 0 < error_rate < 0.5:
        raise ConfigError(f"error_rate must be in (0, 0.5), got {error_rate!r}")
    if not beta > 0:
        raise ConfigError(f"beta must be > 0 to calibrate a scale, got {beta!r}")
    sim = simulate_pairs(golden, prompt_ids, n=n, pairing=pairing, beta=-1, seed=seed)
    delta = sim.delta[sim.delta > 0]
    if not len(delta):
        raise ConfigError("no drawn pair has a golden difference: nothing to calibrate")
    # pairs with Δr = 0 are wrong half the time at any s: they count in the rate, not in the root
    ties = float(np.mean(sim.delta == 0))

    def excess(log_s: float) -> float:
        err = 1.0 - special.expit(beta * delta / np.exp(log_s))
        return (1 - ties) * float(err.mean()) + 0.5 * ties - error_rate

    lo, hi = np.log(delta.max()) - 30, np.log(delta.max()) + 30
    if ties * 0.5 >= error_rate or excess(hi) < 0:
        raise ConfigError(f"an error rate of {error_rate} is not reachable at beta {beta} on these rewards")
    return float(np.exp(optimize.brentq(excess, lo, hi, xtol=1e-10)))


def _groups(golden: np.ndarray, prompt_ids: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Item indices of each prompt with >= 2 items, each sorted by golden (stable), and sizes."""
    order = np.lexsort((np.arange(len(golden)), golden, prompt_ids))  # by prompt, golden, index
    _, starts, counts = np.unique(prompt_ids[order], return_index=True, return_counts=True)
    groups = [order[s:s + c] for s, c in zip(starts, counts) if c >= 2]
    return groups, np.array([len(g) for g in groups], dtype=np.int64)


def _candidates(rng: np.random.Generator, groups: list[np.ndarray], sizes: np.ndarray,
                prompt: np.ndarray, selection: str) -> tuple[np.ndarray, np.ndarray]:
    """Two candidate items (a, b) of each drawn prompt, by selection rule (vectorised)."""
    m = sizes[prompt]
    if selection == "random":
        ra = (rng.random(len(prompt)) * m).astype(np.int64)
        rb = (rng.random(len(prompt)) * (m - 1)).astype(np.int64)
        rb = rb + (rb >= ra)  # a distinct second rank
    elif selection == "similar":
        ra = (m - 1) // 2
        rb = ra + 1
    elif selection == "diverse":
        ra = np.zeros_like(m)
        rb = m - 1
    else:
        raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    flat, offsets = _flatten(groups)
    return flat[offsets[prompt] + ra], flat[offsets[prompt] + rb]


def _flatten(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return np.concatenate(groups), offsets


def _candidate_sets(groups: list[np.ndarray], selection: str) -> list[np.ndarray]:
    """Per prompt, the items the selection rule may compare (sorted by golden within prompt)."""
    if selection == "random":
        return groups
    if selection == "similar":
        return [g[[(len(g) - 1) // 2, (len(g) - 1) // 2 + 1]] for g in groups]
    return [g[[0, len(g) - 1]] for g in groups]


def _sparse_draws(rng: np.random.Generator, groups: list[np.ndarray], n: int, pairing: str, selection: str,
                  max_per_item: int | None, each_prompt_once: bool, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) drawn one after another so that no item exceeds ``max_per_item`` pairs.

    Hand-written loop (no library draws under a per-item cap): each step keeps only the
    prompts and candidates with room left and draws uniformly among them.
    """
    cands = _candidate_sets(groups, selection)
    cap = np.inf if max_per_item is None else int(max_per_item)
    used = np.zeros(n_items, dtype=np.int64)
    order = rng.permutation(len(groups)) if each_prompt_once else None
    a = np.empty(n, dtype=np.int64)
    b = np.empty(n, dtype=np.int64)
    need_i = 2 if pairing == "same_prompt" else 1

    def free(p: int) -> np.ndarray:
        c = cands[p]
        return c[used[c] < cap]

    room = np.array([len(free(p)) for p in range(len(groups))])
    # each_prompt_once: a prompt whose own pair is still to come keeps one item back from being
    # drawn as another prompt's partner (without this a 3-response prompt at cap 1 is used up
    # before its turn in most seeds of a cross-prompt schedule)
    pending = np.zeros(len(groups), dtype=np.int64)
    if each_prompt_once:
        pending[order[:n]] = need_i
    for t in range(n):
        if each_prompt_once:
            p_i = int(order[t])
            pending[p_i] = 0
            if room[p_i] < need_i:
                raise ConfigError(f"max_per_item={max_per_item}: prompt {p_i}'s responses are used up before its "
                                  f"own pair ({t} of {n} pairs drawn); raise the cap or lower n")
        else:
            eligible = np.flatnonzero(room >= need_i)
            if pairing == "cross_prompt" and len(np.flatnonzero(room >= 1)) < 2:
                eligible = eligible[:0]
            if not len(eligible):
                raise ConfigError(f"max_per_item={max_per_item} allows only {t} {pairing} pairs here "
                                  f"({selection} selection), fewer than the {n} asked for")
            p_i = int(eligible[rng.integers(len(eligible))])
        f_i = free(p_i)
        if pairing == "same_prompt":
            x, y = rng.choice(len(f_i), size=2, replace=False)
            a[t], b[t] = f_i[x], f_i[y]
        else:
            others = np.flatnonzero(room - pending >= 1)
            others = others[others != p_i]
            if not len(others):
                raise ConfigError(f"max_per_item={max_per_item} allows only {t} cross_prompt pairs here, "
                                  f"fewer than the {n} asked for")
            p_j = int(others[rng.integers(len(others))])
            f_j = free(p_j)
            a[t], b[t] = f_i[rng.integers(len(f_i))], f_j[rng.integers(len(f_j))]
        for item, p in ((a[t], p_i), (b[t], p_i if pairing == "same_prompt" else p_j)):
            used[item] += 1
            if used[item] == cap:
                room[p] -= 1
    return a, b


def simulate_pairs(
    golden,
    prompt_ids,
    *,
    n: int,
    pairing: str = "same_prompt",
    selection: str = "random",
    beta: float | None = 1.0,
    scale: float | str | None = "std",
    seed: int = 0,
    max_per_item: int | None = None,
    each_prompt_once: bool = False,
) -> SimulatedPairs:
    """Draw ``n`` annotated pairs over items with ``golden`` rewards answering ``prompt_ids``.

    ``prompt_ids`` may be any hashable labels (one per item). See the module docstring for
    pairing, selection, the annotator, ``scale`` and sparse pairing (``max_per_item``,
    ``each_prompt_once``). Deterministic for a given ``seed``.
    """
    g = np.asarray(golden, dtype=float)
    if g.ndim != 1 or not np.all(np.isfinite(g)):
        raise ConfigError("golden must be a 1-D array of finite numbers")
    _, pid = np.unique(np.asarray(prompt_ids), return_inverse=True)
    pid = pid.reshape(-1)
    if len(pid) != len(g):
        raise ConfigError(f"golden has {len(g)} items but prompt_ids has {len(pid)}")
    if pairing not in PAIRINGS:
        raise ConfigError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if selection not in SELECTIONS:
        raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if int(n) != n or n < 1:
        raise ConfigError(f"n (quantity) must be a positive integer, got {n!r}")
    if max_per_item is not None and (int(max_per_item) != max_per_item or max_per_item < 1):
        raise ConfigError(f"max_per_item must be a positive integer or None, got {max_per_item!r}")
    n = int(n)
    mode = scale_mode(scale)
    s = per_prompt_scales(g, pid) if mode == "per_prompt" else golden_scale(g, scale)
    noiseless = beta is None or beta < 0
    groups, sizes = _groups(g, pid)
    need = 2 if pairing == "cross_prompt" else 1
    if len(groups) < need:
        raise ConfigError(f"{pairing} pairs need at least {need} prompt(s) with two or more responses; "
                          f"got {len(groups)}")
    if each_prompt_once and n > len(groups):
        raise ConfigError(f"each_prompt_once: n = {n} pairs but only {len(groups)} prompts have two or more "
                          f"responses (one pair per prompt)")
    rng = np.random.default_rng(seed)
    if max_per_item is not None or each_prompt_once:
        a, b = _sparse_draws(rng, groups, n, pairing, selection, max_per_item, each_prompt_once, len(g))
    else:
        p_i = rng.integers(0, len(groups), size=n)
        a, b = _candidates(rng, groups, sizes, p_i, selection)
        if pairing == "cross_prompt":
            p_j = rng.integers(0, len(groups) - 1, size=n)
            p_j = p_j + (p_j >= p_i)  # a different prompt
            a2, b2 = _candidates(rng, groups, sizes, p_j, selection)
            a = np.where(rng.random(n) < 0.5, a, b)
            b = np.where(rng.random(n) < 0.5, a2, b2)
    hi = np.where(g[a] >= g[b], a, b)
    lo = np.where(g[a] >= g[b], b, a)
    delta = g[hi] - g[lo]
    if mode == "per_prompt":
        s = np.sqrt((s[a] ** 2 + s[b] ** 2) / 2)  # = the prompt's own std for a same-prompt pair
    p = annotator_p_correct(delta, None if noiseless else float(beta), s)
    right = rng.random(n) < p
    chosen = np.where(right, hi, lo)
    rejected = np.where(right, lo, hi)
    correct = g[chosen] >= g[rejected]
    return SimulatedPairs(chosen=chosen.astype(np.int64), rejected=rejected.astype(np.int64),
                          correct=correct, p_correct=p, delta=delta, scale=s,
                          beta=None if noiseless else float(beta), scale_mode=mode)
