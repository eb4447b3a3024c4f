"""Aggregators: per-criterion rubric scores -> one reward and one advantage per rollout.

Every aggregator is a pure function of a ``(groups, rollouts, criteria)`` score tensor whose
scores lie in [0, 1] (the rubric maps each criterion's range onto [0, 1]; a score the rubric could
not obtain is NaN) and the criteria's weights. It returns :class:`Aggregated` with

- ``rewards`` (groups, rollouts): the scalar reward the aggregator assigns, the quantity GRPO's
  group normalisation is applied to (for ``gdpo`` it is TRL's per-criterion-normalised sum
  Σ_k w_k A_k, see below);
- ``advantages`` (groups, rollouts): the GRPO advantages the aggregator implies;
- ``weights`` (criteria,) or (groups, criteria): the effective weights used (normalised to sum 1
  except for ``gdpo``, which uses the weights as given, as TRL does).

The aggregators:

- ``weighted_sum``: R = Σ_k w̄_k r_k with w̄ = w / Σ w (Rubrics as Rewards, arXiv 2507.17746);
  advantages are GRPO's group z-score (R − mean_g) / (std_g + 1e-4).
- ``min``: R = min_k r_k (the worst criterion); same group z-score.
- ``gdpo`` (arXiv 2601.05242): A_k = (r_k − mean_g r_k) / (std_g r_k + 1e-4) per criterion,
  S = Σ_k w_k A_k, advantages = (S − mean_batch S) / (std_batch S + 1e-4). This is line for line
  TRL 1.16's ``GRPOConfig(multi_objective_aggregation="normalize_then_sum")`` (including its
  NaN handling: NaN-aware means and Bessel-corrected stds, NaN terms skipped in the sum, a rollout
  with every criterion NaN gets advantage 0); ``tests/test_rubric_aggregate.py`` checks it against
  the code in the installed trl.
- ``focal``: a *reconstruction* of Focal Reward (arXiv 2605.26579; its formula is unpublished,
  see METHODS.md §6): saturation s_k = mean score of criterion k (scores are in [0, 1], so this is
  (mean − r_min) / (r_max − r_min)), weights w̃_k = w_k (1 − s_k)^γ renormalised to sum 1; then
  either ``level="reward"``: R = Σ_k w̃_k r_k with the group z-score (γ = 0 is ``weighted_sum``),
  or ``level="advantage"``: gdpo's per-criterion advantages summed with w̃ and batch-normalised
  (γ = 0 is ``gdpo`` with weights normalised to sum 1). The saturation is estimated by
  :func:`estimate_saturation` over the batch, per group, or as an EMA across steps (the state is
  the caller's: :class:`rewardlab.rubric.reward.RubricReward` keeps it).

Standard deviations are Bessel-corrected (``unbiased``), as TRL's ``nanstd``, so that the
advantages equal what TRL computes from the same rewards. Group z-scores of a group of one
rollout are NaN in TRL; here they are 0 (no learning signal), which is also what TRL's final
``nan_to_num`` makes of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardlab.errors import ConfigError

EPS = 1e-4  # GRPO's / TRL's std epsilon
AGGREGATORS = ("weighted_sum", "min", "gdpo", "focal")
SATURATION_ESTIMATORS = ("batch", "group", "ema")
FOCAL_LEVELS = ("reward", "advantage")


@dataclass(frozen=True)
class Aggregated:
    """What an aggregator returns (shapes in the module docstring)."""

    rewards: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor
    saturation: torch.Tensor | None = None


# ----------------------------------------------------------------------------- helpers
def _check_scores(scores: torch.Tensor, weights) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.as_tensor(scores)
    if not scores.is_floating_point():
        scores = scores.double()
    if scores.dim() != 3:
        raise ConfigError(f"scores must be (groups, rollouts, criteria), got shape {tuple(scores.shape)}")
    w = torch.as_tensor(weights, dtype=scores.dtype)
    if w.shape != (scores.shape[-1],):
        raise ConfigError(f"need one weight per criterion ({scores.shape[-1]}), got shape {tuple(w.shape)}")
    if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
        raise ConfigError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    return scores, w


def nanstd(x: torch.Tensor, dim=None, keepdim: bool = False) -> torch.Tensor:
    """Bessel-corrected std ignoring NaNs (NaN where fewer than 2 values), as ``trl``'s nanstd."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    var = torch.where(count > 1, var * count / (count - 1).clamp(min=1), torch.full_like(var, float("nan")))
    std = var.sqrt()
    if keepdim:
        return std
    return std.squeeze() if dim is None else std.squeeze(dim)


def group_zscore(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO advantages of (groups, rollouts) rewards: (r − mean_g) / (std_g + 1e-4); NaN rewards
    and groups of one get advantage 0."""
    mean = torch.nanmean(rewards, dim=1, keepdim=True)
    std = nanstd(rewards, dim=1, keepdim=True)
    return torch.nan_to_num((rewards - mean) / (std + EPS), nan=0.0)


def weighted_mean(scores: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k r_k / Σ_k w_k over the criteria a rollout has a score for (NaN if none)."""
    present = ~torch.isnan(scores)
    wk = w.expand_as(scores) * present
    total = wk.sum(-1)
    out = (torch.nan_to_num(scores) * wk).sum(-1) / total
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


# ----------------------------------------------------------------------------- aggregators
def weighted_sum(scores, weights) -> Aggregated:
    """Static weighted mean of the criteria, GRPO group z-score advantages."""
    scores, w = _check_scores(scores, weights)
    rewards = weighted_mean(scores, w)
    return Aggregated(rewards, group_zscore(rewards), w / w.sum())


def minimum(scores, weights=None) -> Aggregated:
    """The worst criterion as the reward (weights ignored except for shape checks)."""
    scores = torch.as_tensor(scores)
    scores, w = _check_scores(scores, torch.ones(scores.shape[-1]) if weights is None else weights)
    rewards = torch.where(torch.isnan(scores), torch.full_like(scores, float("inf")), scores).amin(-1)
    rewards = torch.where(torch.isinf(rewards), torch.full_like(rewards, float("nan")), rewards)
    return Aggregated(rewards, group_zscore(rewards), w / w.sum())


def _criterion_advantages(scores: torch.Tensor) -> torch.Tensor:
    """Per-criterion group z-scores A_k (NaN stays NaN), as TRL's normalize_then_sum."""
    mean = torch.nanmean(scores, dim=1, keepdim=True)
    std = nanstd(scores, dim=1, keepdim=True) if scores.shape[1] > 1 else torch.zeros_like(mean)
    return (scores - mean) / (std + EPS)


def _sum_then_batch_normalise(a_k: torch.Tensor, w: torch.Tensor, unscorable: torch.Tensor):
    """S = Σ_k w_k A_k (NaN terms skipped), then (S − mean) / (std + 1e-4) over the batch."""
    s = (a_k * w).nansum(-1)
    s = torch.where(unscorable, torch.full_like(s, float("nan")), s)
    std = nanstd(s.reshape(-1)) if s.numel() > 1 else torch.zeros((), dtype=s.dtype)
    adv = (s - torch.nanmean(s)) / (std + EPS)
    return s, torch.nan_to_num(adv, nan=0.0)


def gdpo(scores, weights) -> Aggregated:
    """GDPO: per-criterion group z-scores, weighted sum (weights as given), batch z-score."""
    scores, w = _check_scores(scores, weights)
    unscorable = torch.isnan(scores).all(-1)
    rewards, adv = _sum_then_batch_normalise(_criterion_advantages(scores), w, unscorable)
    return Aggregated(rewards, adv, w)


def estimate_saturation(scores, estimator: str = "batch", *, previous: torch.Tensor | None = None,
                        beta: float = 0.9) -> torch.Tensor:
    """Saturation of each criterion, the mean of its [0, 1] scores (NaN scores ignored).

    ``batch``: one value per criterion over every rollout, shape (criteria,); ``group``: per
    group, shape (groups, criteria); ``ema``: ``beta * previous + (1 - beta) * batch`` (the batch
    value when ``previous`` is None). A criterion with no score in the batch keeps ``previous``
    (or 0 for the first batch: unknown counts as unsaturated).
    """
    scores = torch.as_tensor(scores)
    if estimator not in SATURATION_ESTIMATORS:
        raise ConfigError(f"saturation estimator must be one of {SATURATION_ESTIMATORS}, got {estimator!r}")
    if estimator == "group":
        return torch.nan_to_num(torch.nanmean(scores, dim=1), nan=0.0)
    batch = torch.nanmean(scores.reshape(-1, scores.shape[-1]), dim=0)
    if estimator == "batch":
        return torch.nan_to_num(batch, nan=0.0)
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"ema beta must be in [0, 1), got {beta}")
    if previous is None:
        return torch.nan_to_num(batch, nan=0.0)
    previous = torch.as_tensor(previous, dtype=batch.dtype)
    return torch.where(torch.isnan(batch), previous, beta * previous + (1 - beta) * batch)


def focal_weights(weights, saturation, gamma: float) -> torch.Tensor:
    """w̃_k = w_k (1 − s_k)^γ renormalised to sum 1 (over the last dimension).

    If every criterion with a positive weight is saturated (Σ w̃ = 0) the static weights are used:
    nothing is left to focus on, and 0/0 must not reach the policy.
    """
    w = torch.as_tensor(weights, dtype=torch.as_tensor(saturation).dtype)
    s = torch.as_tensor(saturation, dtype=w.dtype)
    if gamma < 0:
        raise ConfigError(f"focal gamma must be >= 0, got {gamma}")
    if ((s < -1e-6) | (s > 1 + 1e-6)).any():
        raise ConfigError(f"saturation must lie in [0, 1], got {s.tolist()}")
    raw = w * (1 - s.clamp(0, 1)) ** gamma  # clamp: float noise only, range checked above
    total = raw.sum(-1, keepdim=True)
    static = (w / w.sum()).expand_as(raw)
    return torch.where(total > 0, raw / total.clamp(min=torch.finfo(raw.dtype).tiny), static)


def focal(scores, weights, *, gamma: float = 1.0, saturation: torch.Tensor | None = None,
          estimator: str = "batch", level: str = "reward") -> Aggregated:
    """Focal Reward (reconstruction): saturation-aware weights, then a reward-level weighted
    sum or an advantage-level (gdpo-style) sum. ``saturation``: precomputed (e.g. the EMA the
    caller keeps); otherwise estimated from ``scores`` with ``estimator`` (batch or group)."""
    scores, w = _check_scores(scores, weights)
    if level not in FOCAL_LEVELS:
        raise ConfigError(f"focal level must be one of {FOCAL_LEVELS}, got {level!r}")
    if saturation is None:
        if estimator == "ema":
            raise ConfigError("focal with the ema estimator needs the running saturation (saturation=)")
        saturation = estimate_saturation(scores, estimator)
    saturation = torch.as_tensor(saturation, dtype=scores.dtype)
    wt = focal_weights(w, saturation, gamma)  # (K,) or (G, K)
    wb = wt if wt.dim() == 1 else wt[:, None, :]
    if level == "reward":
        present = ~torch.isnan(scores)
        wk = wb.expand_as(scores) * present
        total = wk.sum(-1)
        rewards = (torch.nan_to_num(scores) * wk).sum(-1) / total
        rewards = torch.where(total > 0, rewards, torch.full_like(rewards, float("nan")))
        return Aggregated(rewards, group_zscore(rewards), wt, saturation)
    unscorable = torch.isnan(scores).all(-1)
    rewards, adv = _sum_then_batch_normalise(_criterion_advantages(scores), wb, unscorable)
    return Aggregated(rewards, adv, wt, saturation)


def aggregate(name: str, scores, weights, **options) -> Aggregated:
    """Dispatch by name: weighted_sum, min, gdpo, focal (options: gamma, saturation, estimator, level)."""
    if name == "weighted_sum":
        return weighted_sum(scores, weights)
    if name == "min":
        return minimum(scores, weights)
    if name == "gdpo":
        return gdpo(scores, weights)
    if name == "focal":
        return focal(scores, weights, **options)
    raise ConfigError(f"unknown aggregator {name!r}; expected one of {AGGREGATORS}")
