"""MetaRM (METHODS §4; Wang et al. 2024, "Secrets of RLHF Part II"): keep the reward model
discriminative on a shifted distribution (e.g. samples of a new policy) while it learns preferences.

The difference objective over the k responses s_1..s_k to one prompt x of the shifted data,

    J(θ) = (2 / k²) Σ_{i<j} σ(|r_θ(x, s_i) − r_θ(x, s_j)|),

is large when the model spreads those responses apart. Each training step, first-order:

    θ′ = θ + η ∇J(θ)            on a meta batch of prompts (gradient *ascent*, plain SGD step η)
    θ  ← θ − α ∇_{θ′} L_BT(θ′)  on a preference batch: the gradient taken at θ′ is applied to θ
                                 by the normal optimizer (α is its learning rate)

This module holds the pieces both users share, the full fine-tuning loop's MetaRM plug-in
(``train/methods/metarm.py``) and the embedding heads (``heads/``): the objective, the
deterministic choice of a meta batch, and the in-place ascent/restore of parameters. The meta
data's grouping by prompt is ``rewardlab.data.groups``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from rewardlab.errors import ConfigError


def difference_objective(rewards: Tensor, mask: Tensor) -> Tensor:
    """Mean over groups of J = (2 / k²) Σ_{i<j} σ(|r_i − r_j|).

    ``rewards`` ``[G, K]`` holds each group's rewards padded to K; ``mask`` ``[G, K]`` (bool) marks
    the real ones, so group g has k_g = mask[g].sum() responses. Padded entries never reach the
    result or its gradient (they may hold anything finite or not). Groups with k_g < 2 have no pair
    and are not allowed. σ(|d|) lies in [0.5, 1), so J is bounded and its gradient too (the
    gradient of |d| at d = 0 is 0, as torch defines it).
    """
    if rewards.shape != mask.shape or rewards.dim() != 2:
        raise ConfigError(f"rewards and mask must both be [groups, k], got {tuple(rewards.shape)} and {tuple(mask.shape)}")
    mask = mask.bool()
    k = mask.sum(1)
    if len(k) == 0 or bool((k < 2).any()):
        raise ConfigError("every group needs at least two responses")
    r = torch.where(mask, rewards, torch.zeros((), dtype=rewards.dtype, device=rewards.device))
    n = r.shape[1]
    upper = torch.ones(n, n, dtype=torch.bool, device=r.device).triu(1)  # i < j
    pairs = mask[:, :, None] & mask[:, None, :] & upper
    s = torch.sigmoid((r[:, :, None] - r[:, None, :]).abs())
    per_group = 2.0 * torch.where(pairs, s, torch.zeros_like(s)).sum((1, 2)) / k.to(r.dtype) ** 2
    return per_group.mean()


def meta_batch_groups(n_groups: int, seed: int, step: int, batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Group indices of step ``step``'s meta batch for one rank: a pure function of
    (seed, step), so a resumed run draws the same batches without saved RNG state. The global
    batch of ``batch * world`` groups is a random sample (repeating groups only when there are
    fewer groups than that); each rank takes its consecutive ``batch``."""
    order = np.random.default_rng([int(seed), 0x4D657461, int(step)]).permutation(n_groups)
    take = np.arange(rank * batch, (rank + 1) * batch) % n_groups
    return order[take]


def ascend(params: Iterable[Tensor], closure: Callable[[], float], eta: float) -> tuple[list[Tensor], list[Tensor], float]:
    """θ′ = θ + η ∇J(θ), in place; returns (the parameters, their saved values θ, J(θ)).

    ``closure()`` computes J and backpropagates it (``J.backward()``, or
    ``accelerator.backward(J)`` so data-parallel gradients are averaged) and returns J as a
    number. The parameters' ``.grad`` must be clear before (the ascent reads them) and are
    cleared after, so the preference loss that follows accumulates its own gradient at θ′.
    Then call :func:`restore` and step the optimizer: the gradient at θ′ is applied to θ.
    """
    params = [p for p in params if p.requires_grad]
    if any(p.grad is not None for p in params):
        raise RuntimeError("the MetaRM ascent needs cleared gradients (call it right after zero_grad)")
    saved = [p.detach().clone() for p in params]
    value = closure()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.add_(p.grad, alpha=eta)
                p.grad = None
    return params, saved, value


@torch.no_grad()
def restore(params: Sequence[Tensor], saved: Sequence[Tensor]) -> None:
    """Put θ back (the gradients computed at θ′ stay in ``.grad``)."""
    for p, s in zip(params, saved):
        p.copy_(s)
