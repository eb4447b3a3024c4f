"""ODIN's disentangled reward (Chen et al. 2024, "ODIN: Disentangled Reward Mitigates Hacking in
RLHF"): the math, as small pure functions, and the loss module that wraps a registry loss.

Two linear heads read the same pooled representation h: the quality head (the model's own reward
head, the reward at inference) and a length head. With r = r_Q + r_L,

    L = L_pref(r_c, r_r) + λ_L · ( |ρ(r_Q, len)| + 1 − ρ(r_L, len) ) + λ_O · |cos(w_Q, w_L)|

- ``L_pref`` is the run's registry objective (BT by default) on the *sum* of the two heads;
- ρ is Pearson's correlation over every response of the batch (chosen and rejected together; under
  DDP the global batch, gathered with gradient), ``len`` the response length in tokens;
- ``1 − ρ(r_L, len)`` has the gradient of the paper's ``−ρ(r_L, len)`` and is ≥ 0 (RLHFlow's
  reference writes it so too);
- the orthogonality term is the absolute cosine of the two heads' weight vectors: the paper's
  ``|w_Qᵀ w_L|`` made scale-free, so it cannot be lowered by shrinking the weights (RLHFlow's
  reference normalises the weights as well).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor, nn

from rewardlab.objectives.registry import LossInputs, get_column, get_features

__all__ = ["LENGTH_COLUMNS", "pearson", "length_penalties", "orthogonality", "OdinLoss"]

# The per-pair columns ODIN reads: each response's length in tokens (train/methods/odin.py adds them).
LENGTH_COLUMNS = ("length_chosen", "length_rejected")


def pearson(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson's correlation of two 1-D tensors, differentiable; 0 when either is constant.

    Hand-written (not ``torch.corrcoef``) because a constant side must give 0 with a finite
    gradient, not NaN: a batch whose responses all have one length says nothing about length.
    """
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"pearson needs two 1-D tensors of one length, got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    xc, yc = x - x.mean(), y - y.mean()
    denom = (xc.pow(2).sum() * yc.pow(2).sum()).clamp_min(eps * eps).sqrt()  # clamped before sqrt: finite gradient
    return (xc * yc).sum() / denom


def length_penalties(r_quality: Tensor, r_length: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(|ρ(r_Q, len)|, 1 − ρ(r_L, len)): the quality head decorrelated from length, the length head
    correlated with it. All three are per response ``[N]`` (chosen and rejected together)."""
    return pearson(r_quality, lengths).abs(), 1.0 - pearson(r_length, lengths)


def orthogonality(w_quality: Tensor, w_length: Tensor, eps: float = 1e-8) -> Tensor:
    """|cos(w_Q, w_L)| of the two heads' weight vectors (any shape, flattened)."""
    a, b = _wide(w_quality.reshape(-1)), _wide(w_length.reshape(-1))
    return ((a * b).sum() / (a.norm() * b.norm()).clamp_min(eps)).abs()


def _wide(t: Tensor) -> Tensor:
    """float32 at least (half precision upcast; float64 kept)."""
    return t if t.dtype == torch.float64 else t.float()


class OdinLoss(nn.Module):
    """A registry loss on r_Q + r_L plus ODIN's penalties (see the module docstring).

    ``length_head`` maps h ``[B, d]`` to r_L ``[B, 1]``; ``quality_weight`` / ``length_weight_vector``
    return the heads' current weights (the quality head may be a peft wrapper's copy, so it is looked
    up at every call); ``gather`` concatenates a ``[n]`` tensor over the data-parallel processes
    keeping the gradient (identity on one process). The heads are *not* registered here: they belong
    to the model, which the checkpoint and DDP already see.
    """

    def __init__(self, inner: nn.Module, *, length_head: Callable[[Tensor], Tensor],
                 quality_weight: Callable[[], Tensor], length_weight_vector: Callable[[], Tensor],
                 length_weight: float = 1.0, ortho_weight: float = 1.0,
                 gather: Callable[[Tensor], Tensor] | None = None):
        super().__init__()
        if length_weight < 0 or ortho_weight < 0:
            raise ValueError(f"odin: weights must be >= 0, got length_weight={length_weight}, ortho_weight={ortho_weight}")
        self.inner = inner
        self.needs_features = True
        self.pointwise = getattr(inner, "pointwise", False)
        self._length_head, self._w_q, self._w_l = length_head, quality_weight, length_weight_vector
        self.length_weight, self.ortho_weight = float(length_weight), float(ortho_weight)
        self._gather = gather or (lambda t: t)

    def forward(self, inputs: LossInputs, *extra) -> tuple[Tensor, dict[str, float]]:
        h_c, h_r = get_features(inputs, "odin")
        len_c = get_column(inputs, LENGTH_COLUMNS[0], required_by="odin")
        len_r = get_column(inputs, LENGTH_COLUMNS[1], required_by="odin")
        rl_c = self._length_head(h_c).squeeze(-1)
        rl_r = self._length_head(h_r).squeeze(-1)
        summed = replace(inputs, r_chosen=inputs.r_chosen + rl_c.to(inputs.r_chosen.dtype),
                         r_rejected=inputs.r_rejected + rl_r.to(inputs.r_rejected.dtype))
        pref, logs = self.inner(summed, *extra)
        r_q = self._gather(_wide(torch.cat([inputs.r_chosen, inputs.r_rejected])))
        r_l = self._gather(_wide(torch.cat([rl_c, rl_r])))
        lengths = self._gather(_wide(torch.cat([len_c, len_r])).to(r_q.device))
        decor, corr = length_penalties(r_q, r_l, lengths)
        ortho = orthogonality(self._w_q(), self._w_l())
        total = pref + self.length_weight * (decor + corr) + self.ortho_weight * ortho
        logs = dict(logs)
        logs.update({"loss/odin_preference": float(pref.detach()), "odin/rho_quality_length": float(
            pearson(r_q.detach(), lengths)), "odin/rho_length_length": float(1.0 - corr.detach()),
            "odin/abs_cos_heads": float(ortho.detach()), "loss/total": float(total.detach())})
        return total, logs
