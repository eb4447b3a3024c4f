"""Pointwise objectives: classification on pairs' responses, and objectives on single responses
with targets (``ItemInputs``: regression, correctness, scaled BT).

Classification reward models (METHODS §3): BCE on single responses, chosen = 1, rejected = 0.

The reward is the classifier's logit. ``classification`` discards the pairing (a mean over the
2B single responses, so the loop may shuffle single responses); ``classification_paired`` is the
same BCE computed per pair, so per-pair columns such as ``weight`` apply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.pairwise import weighted_mean
from rewardlab.errors import DataError
from rewardlab.objectives.registry import ItemInputs, LossInputs, Objective, check, get_column, register


def pointwise_bce(logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
    """(Weighted) mean BCE with logits: softplus(−z) for label 1, softplus(z) for label 0."""
    per_item = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return weighted_mean(per_item, weight)


@register("classification", kind="main")
class Classification(Objective):
    """Pointwise BCE over all chosen (label 1) and rejected (label 0) responses, pairing discarded.

    ``r_chosen`` and ``r_rejected`` may differ in length. A ``weight`` column, when given, holds
    one weight per pair and is applied to both of its responses (the lengths must then agree).
    """

    pointwise = True

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        r_c, r_r = inputs.r_chosen, inputs.r_rejected
        logits = torch.cat([r_c, r_r])
        labels = torch.cat([torch.ones_like(r_c), torch.zeros_like(r_r)])
        weight = get_column(inputs, "weight")
        if weight is not None:
            if r_c.shape != r_r.shape:
                raise ValueError("classification: a per-pair 'weight' column needs as many "
                                 "rejected as chosen responses")
            weight = torch.cat([weight, weight])
        return pointwise_bce(logits, labels, weight), {}


@register("classification_paired", kind="main")
class ClassificationPaired(Objective):
    """The classification BCE per pair: 0.5 · (softplus(−r_c) + softplus(r_r)), weighted mean."""

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        per_pair = 0.5 * (F.softplus(-inputs.r_chosen) + F.softplus(inputs.r_rejected))
        return weighted_mean(per_pair, get_column(inputs, "weight")), {}


# ----------------------------------------------------------------------------- item layout
# Objectives on single responses with targets (rewardlab.data.pointwise): ItemInputs, r and
# target [N] or [N, K]; NaN targets are unlabelled and masked with torch.where, so a masked
# entry's gradient is exactly zero (a product with a 0/1 mask would turn NaN·0 into NaN).


def masked_mse(r: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean of (r − t)² over the labelled entries (t not NaN); 0 when none is labelled.

    ``weight`` (per response, ``[N]``) weighs every labelled entry of its row.
    """
    mask = ~torch.isnan(target)
    diff = torch.where(mask, r - torch.nan_to_num(target), torch.zeros_like(r))
    w = mask.to(r.dtype) if weight is None else mask.to(r.dtype) * _rows(weight, r)
    return (w * diff.square()).sum() / w.sum().clamp_min(1.0 if weight is None else torch.finfo(r.dtype).tiny)


def masked_bce(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean BCE with logits over the labelled entries (targets in [0, 1], NaN = unlabelled)."""
    mask = ~torch.isnan(target)
    t = torch.nan_to_num(target)
    per = F.binary_cross_entropy_with_logits(logits, t.to(logits.dtype), reduction="none")
    per = torch.where(mask, per, torch.zeros_like(per))
    w = mask.to(logits.dtype) if weight is None else mask.to(logits.dtype) * _rows(weight, logits)
    return (w * per).sum() / w.sum().clamp_min(1.0 if weight is None else torch.finfo(logits.dtype).tiny)


def _rows(weight: Tensor, like: Tensor) -> Tensor:
    return weight if like.ndim == 1 else weight[:, None].expand_as(like)


def within_group_pairs(target: Tensor, group: Tensor, min_difference: float = 0.0) -> tuple[Tensor, Tensor]:
    """Index pairs (i, j) of one target column with the same group, both labelled and
    t_i − t_j > ``min_difference`` (ties never form a pair): ``(i, j)`` as two [P] tensors."""
    same = group[:, None] == group[None, :]
    diff = target[:, None] - target[None, :]
    ok = same & (diff > min_difference) & ~torch.isnan(diff)
    i, j = ok.nonzero(as_tuple=True)
    return i, j


def scaled_bt_loss(r: Tensor, target: Tensor, group: Tensor, *, margin_scale: float = 1.0,
                   weight_by_difference: bool = False, min_difference: float = 0.0) -> tuple[Tensor, int]:
    """BT on the pairs a score column implies within each group: for t_i > t_j,
    softplus(−(r_i − r_j − margin_scale · (t_i − t_j))), weighted by (t_i − t_j) when
    ``weight_by_difference`` (HelpSteer2-Preference's scaled BT); mean over pairs of every
    column. Returns (loss, number of pairs); no pair gives 0 (with a graph to r)."""
    r2 = r if r.ndim == 2 else r[:, None]
    t2 = target if target.ndim == 2 else target[:, None]
    losses, weights = [], []
    for k in range(r2.shape[1]):
        i, j = within_group_pairs(t2[:, k], group, min_difference)
        d = t2[i, k] - t2[j, k]
        losses.append(F.softplus(-(r2[i, k] - r2[j, k] - margin_scale * d)))
        weights.append(d if weight_by_difference else torch.ones_like(d))
    per, w = torch.cat(losses), torch.cat(weights)
    if per.numel() == 0:
        return r.sum() * 0.0, 0
    return (w * per).sum() / w.sum(), int(per.numel())


class _ItemObjective(Objective):
    layout = "items"

    def _weight(self, inputs: ItemInputs) -> Tensor | None:
        w = inputs.columns.get("weight")
        if w is not None and w.shape != inputs.r.shape[:1]:
            raise DataError("column 'weight' must hold one value per response", field="weight",
                            expected=f"shape {tuple(inputs.r.shape[:1])}", got=f"shape {tuple(w.shape)}")
        return w


@register("regression", kind="main")
class Regression(_ItemObjective):
    """MSE between the reward and a real-valued target (NaN-masked, per output column).

    ``standardize``: the targets are standardised per column with the training targets' mean and
    standard deviation (``fit_targets``), so the reward is in standard units of the score; the
    two are buffers of the loss, saved with it, and returned by ``target_stats``.
    """

    def __init__(self, *, standardize: bool = False) -> None:
        super().__init__()
        self.standardize = standardize
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("std", torch.ones(0))

    def fit_targets(self, target: Tensor) -> None:
        if not self.standardize:
            return
        t = target.double() if target.ndim == 2 else target.double()[:, None]
        mask = ~torch.isnan(t)
        n = mask.sum(0).clamp_min(1)
        mean = torch.where(mask, t, 0.0).sum(0) / n
        var = torch.where(mask, (t - mean).square(), 0.0).sum(0) / (n - 1).clamp_min(1)
        std = var.sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))  # a constant column is left unscaled
        self.mean, self.std = mean.float(), std.float()

    def target_stats(self) -> tuple[Tensor, Tensor] | None:
        return (self.mean, self.std) if self.standardize and self.mean.numel() else None

    def forward(self, inputs: ItemInputs) -> tuple[Tensor, dict[str, Tensor]]:
        t = inputs.target
        if self.standardize:
            if not self.mean.numel():
                raise ValueError("regression(standardize=True): call Loss.fit_targets(train targets) first")
            mean, std = self.mean.to(t), self.std.to(t)
            t = (t - mean) / std if t.ndim == 2 else (t - mean[0]) / std[0]
        return masked_mse(inputs.r, t, self._weight(inputs)), {}


@register("correctness", kind="main")
class Correctness(_ItemObjective):
    """Binary correctness: BCE with logits of the reward against 0/1 targets (NaN-masked);
    the reward is the logit of P(correct)."""

    def forward(self, inputs: ItemInputs) -> tuple[Tensor, dict[str, Tensor]]:
        t = inputs.target
        bad = ~torch.isnan(t) & ((t < 0) | (t > 1))
        if bad.any():
            raise DataError("correctness targets are probabilities", field="target",
                            expected="values in [0, 1]", got=f"{float(t[bad][0])}")
        return masked_bce(inputs.r, t, self._weight(inputs)), {}


@register("scaled_bt", kind="main")
class ScaledBT(_ItemObjective):
    """BT on pairs formed within a prompt from score differences (see :func:`scaled_bt_loss`):
    the better-scored response is chosen, the margin is ``margin_scale`` × the difference
    (0 = plain BT on the implied pairs), ``weight_by_difference`` weighs each pair by it."""

    def __init__(self, *, margin_scale: float = 1.0, weight_by_difference: bool = False,
                 min_difference: float = 0.0) -> None:
        super().__init__()
        check(margin_scale >= 0, "objective 'scaled_bt'", f"margin_scale must be >= 0, got {margin_scale}")
        check(min_difference >= 0, "objective 'scaled_bt'", f"min_difference must be >= 0, got {min_difference}")
        self.margin_scale, self.weight_by_difference = margin_scale, weight_by_difference
        self.min_difference = min_difference

    def forward(self, inputs: ItemInputs) -> tuple[Tensor, dict[str, Tensor]]:
        if inputs.group is None:
            raise ValueError("scaled_bt pairs responses within a prompt: ItemInputs.group is needed")
        loss, n = scaled_bt_loss(inputs.r, inputs.target, inputs.group, margin_scale=self.margin_scale,
                                 weight_by_difference=self.weight_by_difference,
                                 min_difference=self.min_difference)
        return loss, {"pairs": torch.tensor(float(n), device=inputs.r.device)}
