"""Pairwise objectives on d = r_chosen − r_rejected (METHODS §1, §2, §4).

Pure functions compute each loss from tensors; the registered modules read rewards, features and
per-pair columns from ``LossInputs`` and call them. Every loss takes an optional per-pair
``weight`` and then returns the weighted mean Σ wᵢ ℓᵢ / Σ wᵢ (the plain mean without one).
Only numerically stable forms are used (``softplus``/``logsigmoid``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import (
    LossInputs,
    Objective,
    check,
    get_column,
    get_features,
    register,
)


def weighted_mean(values: Tensor, weight: Tensor | None = None) -> Tensor:
    """Σ wᵢ xᵢ / Σ wᵢ, or the plain mean when ``weight`` is None (all-zero weights give 0)."""
    if weight is None:
        return values.mean()
    return (weight * values).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


def bt_loss(d: Tensor, margin: Tensor | None = None, weight: Tensor | None = None) -> Tensor:
    """Bradley–Terry: mean softplus(−(d − m)) = −mean log σ(d − m)."""
    z = d if margin is None else d - margin
    return weighted_mean(F.softplus(-z), weight)


def centering_penalty(r_c: Tensor, r_r: Tensor) -> Tensor:
    """Reward centering: mean((r_c + r_r)²) (scaled by the ``center`` coefficient by callers)."""
    return ((r_c + r_r) ** 2).mean()


def pair_distance(h_c: Tensor, h_r: Tensor) -> Tensor:
    """‖h_c − h_r‖₂ per pair, without gradient: ``[B]``."""
    return torch.linalg.vector_norm((h_c - h_r).detach(), dim=-1)


def normbt_weights(
    h_c: Tensor, h_r: Tensor, mu: Tensor | float, eps: float, coincide_tol: float = 0.0
) -> tuple[Tensor, Tensor]:
    """NormBT pair weights w̃ = sg(μ / (‖h_c − h_r‖₂ + ε)), ``[B]``, and the bool mask of the
    coinciding pairs (‖h_c − h_r‖ < ``coincide_tol`` · μ), whose weight is 0 instead (see
    :class:`NormBT`; the default 0 is the paper's formula: no pair coincides)."""
    dist = pair_distance(h_c, h_r)
    coincident = dist < coincide_tol * mu
    return (mu / (dist + eps)).detach().masked_fill(coincident, 0.0), coincident


def label_smoothing_loss(
    d: Tensor, alpha: float, mask: Tensor | None = None, weight: Tensor | None = None
) -> Tensor:
    """−mean[(1 − α) log σ(d) + α log σ(−d)]; with ``mask``, α applies only where mask is true."""
    a = torch.full_like(d, alpha) if mask is None else alpha * mask.to(d.dtype)
    return weighted_mean(-((1 - a) * F.logsigmoid(d) + a * F.logsigmoid(-d)), weight)


def adaptive_margin_loss(
    d: Tensor,
    strength: Tensor,
    scale: float,
    clip_min: float | None,
    weight: Tensor | None = None,
) -> Tensor:
    """−mean log σ(d − scale · clip(μ̂)), clip(μ̂) = max(μ̂, clip_min) (no clipping when None)."""
    m = strength if clip_min is None else strength.clamp_min(clip_min)
    return bt_loss(d, scale * m, weight)


def hinge_loss(d: Tensor, margin: float, weight: Tensor | None = None) -> Tensor:
    """mean relu(margin − d)."""
    return weighted_mean(F.relu(margin - d), weight)


def flip_mask(
    strength: Tensor, fraction: float | None = None, threshold: float | None = None
) -> Tensor:
    """Bool mask of the pairs whose labels to flip, from their preference strength μ̂.

    Give exactly one of ``fraction`` (the round(fraction · N) lowest strengths; ties go to the
    earlier pair) or ``threshold`` (strength < threshold). Accepts anything ``torch.as_tensor``
    does; returns a bool tensor of the same length.
    """
    if (fraction is None) == (threshold is None):
        raise ValueError("flip_mask needs exactly one of fraction= or threshold=")
    s = torch.as_tensor(strength)
    if threshold is not None:
        return s < threshold
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    mask = torch.zeros(s.shape, dtype=torch.bool, device=s.device)
    mask[torch.argsort(s, stable=True)[: round(fraction * len(s))]] = True
    return mask


def _d(inputs: LossInputs) -> Tensor:
    return inputs.r_chosen - inputs.r_rejected


def _center(inputs: LossInputs, coef: float) -> tuple[Tensor | float, dict[str, Tensor]]:
    """The ``center`` term and its log entry (nothing when the coefficient is 0)."""
    if coef == 0.0:
        return 0.0, {}
    penalty = centering_penalty(inputs.r_chosen, inputs.r_rejected)
    return coef * penalty, {"center": penalty}


@register("bt", kind="main")
class BT(Objective):
    """Bradley–Terry, with the ``margin`` column as m (``use_margin``) and optional centering."""

    def __init__(self, *, use_margin: bool = True, center: float = 0.0) -> None:
        super().__init__()
        check(center >= 0, "objective 'bt'", f"center must be >= 0, got {center}")
        self.use_margin, self.center = use_margin, center

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        margin = get_column(inputs, "margin") if self.use_margin else None
        loss = bt_loss(_d(inputs), margin, get_column(inputs, "weight"))
        penalty, logs = _center(inputs, self.center)
        return loss + penalty, logs


@register("normbt", kind="main")
class NormBT(Objective):
    """BT with pairs weighted by μ_t / ‖h_c − h_r‖ (μ an EMA of the batch-mean distance).

    State: buffers ``mu`` and ``initialized``. In training mode each call uses μ_t (the first
    call initialises it to that batch's mean) and then sets μ ← β μ_t + (1 − β) μ̂_t. In eval
    mode μ is read, never written (before any training call the batch mean stands in for it).

    Coinciding pairs: a pair with ‖h_c − h_r‖ < ``coincide_tol`` · μ_t (in practice identical
    inputs, e.g. two code answers that differ only beyond ``max_length``, in a model without
    dropout) gets weight 0 instead of μ_t / ε ≈ 10⁶ μ_t. Its BT gradient is zero anyway (d ≡ 0),
    so the paper's weight would only add ≈ 10⁶ μ_t · log 2 to the loss and, in float32, rounding
    noise to every other pair's gradient (4% relative error with 2 such pairs in 16 in the regression test).
    ``coincide_tol: 0`` keeps the paper's formula exactly. Logged as ``normbt/coincident``.
    """

    needs_features = True

    def __init__(
        self,
        *,
        beta: float = 0.9,
        eps: float = 1e-6,
        center: float = 0.0,
        coincide_tol: float = 1e-4,
        all_reduce_mean: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        who = "objective 'normbt'"
        check(0.0 <= beta < 1.0, who, f"beta must be in [0, 1), got {beta}")
        check(eps > 0, who, f"eps must be > 0, got {eps}")
        check(center >= 0, who, f"center must be >= 0, got {center}")
        check(0.0 <= coincide_tol < 1.0, who, f"coincide_tol must be in [0, 1), got {coincide_tol}")
        self.beta, self.eps, self.center, self.coincide_tol = beta, eps, center, coincide_tol
        self.all_reduce_mean = all_reduce_mean
        self.register_buffer("mu", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        h_c, h_r = get_features(inputs, "objective 'normbt'")
        batch_mu = pair_distance(h_c, h_r).mean()
        if self.all_reduce_mean is not None:
            batch_mu = self.all_reduce_mean(batch_mu)
        mu_t = torch.where(self.initialized, self.mu.to(batch_mu.dtype), batch_mu)
        if self.training:
            self.mu.copy_(self.beta * mu_t + (1 - self.beta) * batch_mu)
            self.initialized.fill_(True)
        w, coincident = normbt_weights(h_c, h_r, mu_t, self.eps, self.coincide_tol)
        loss = weighted_mean(w * F.softplus(-_d(inputs)), get_column(inputs, "weight"))
        penalty, logs = _center(inputs, self.center)
        return loss + penalty, {"mu": mu_t, "coincident": coincident.sum().to(mu_t.dtype), **logs}


@register("label_smoothing", kind="main")
class LabelSmoothing(Objective):
    """BT with label smoothing α, on all pairs or only where the strength column is < 0."""

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        only_negative_strength: bool = False,
        column: str = "strength_mean",
    ) -> None:
        super().__init__()
        who = "objective 'label_smoothing'"
        check(0.0 <= alpha <= 0.5, who, f"alpha must be in [0, 0.5], got {alpha}")
        self.alpha, self.only_negative_strength, self.column = alpha, only_negative_strength, column

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        mask = None
        if self.only_negative_strength:
            who = "objective 'label_smoothing' with only_negative_strength"
            mask = get_column(inputs, self.column, required_by=who) < 0
        return label_smoothing_loss(_d(inputs), self.alpha, mask, get_column(inputs, "weight")), {}


@register("adaptive_margin", kind="main")
class AdaptiveMargin(Objective):
    """BT with a per-pair margin scale · clip(strength) read from ``column``."""

    def __init__(
        self, *, scale: float = 1.0, clip_min: float | None = 0.0, column: str = "strength_mean"
    ) -> None:
        super().__init__()
        self.scale, self.clip_min, self.column = scale, clip_min, column

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        strength = get_column(inputs, self.column, required_by="objective 'adaptive_margin'")
        loss = adaptive_margin_loss(
            _d(inputs), strength, self.scale, self.clip_min, get_column(inputs, "weight")
        )
        return loss, {}


@register("flip", kind="main")
class Flip(Objective):
    """BT with d negated on flipped pairs: the ``flip`` column (1 = flip) when present,
    otherwise ``column`` < ``threshold``."""

    def __init__(self, *, threshold: float = 0.0, column: str = "strength_mean") -> None:
        super().__init__()
        self.threshold, self.column = threshold, column

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        flip = get_column(inputs, "flip")
        if flip is not None:
            mask = flip > 0.5
        else:
            who = "objective 'flip' (without a 'flip' column)"
            strength = get_column(inputs, self.column, required_by=who)
            mask = flip_mask(strength, threshold=self.threshold)
        d = _d(inputs)
        loss = bt_loss(torch.where(mask, -d, d), weight=get_column(inputs, "weight"))
        return loss, {"fraction": mask.to(d.dtype).mean()}


@register("hinge", kind="main")
class Hinge(Objective):
    """Hinge loss mean relu(margin − d)."""

    def __init__(self, *, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        return hinge_loss(_d(inputs), self.margin, get_column(inputs, "weight")), {}
