"""MetaRM (METHODS §4; Wang et al. 2024, "Secrets of RLHF Part II"): keep the reward model
discriminative on a shifted distribution (e.g. samples of a new policy) while it learns preferences.

The difference objective over the k responses s_1..s_k to one prompt x of the shifted data,

    J(θ) = (2 / k²) Σ_{i<j} σ(|r_θ(x, s_i) − r_θ(x, s_j)|),

is large when the model spreads those responses apart. Each training step, first-order:

    θ′ = θ + η ∇J(θ)            on a meta batch of prompts (gradient *ascent*, plain SGD step η)
    θ  ← θ − α ∇_{θ′} L_BT(θ′)  on a preference batch: the gradient taken at θ′ is applied to θ
                                 by the normal optimizer (α is its learning rate)

This module holds the pieces both users share (the full fine-tuning loop in ``train/loop.py`` and
the embedding heads in ``models/heads.py``): the objective, the loader that turns preference data
into groups of responses per prompt, the deterministic choice of a meta batch, and the in-place
ascent/restore of parameters. The fine-tuning loop's own step is :func:`finetune_meta_step`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rewardlab.errors import ConfigError, DataError


# ---------------------------------------------------------------------- the objective
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


# ---------------------------------------------------------------------- meta data
@dataclass
class MetaGroups:
    """Responses grouped by prompt: ``responses[g]`` are the distinct responses to ``prompts[g]``
    (at least two, at most ``max_responses``); ``origin[g]`` where the prompt's first row was read;
    ``report`` the counts of what loading kept and left out."""

    prompts: list[Any]
    responses: list[list[str]]
    origin: list[str]
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)


def group_responses(table, max_responses: int = 4, *, label: str = "meta data") -> MetaGroups:
    """Group a PreferenceTable's responses by prompt: chosen and rejected pooled, duplicates
    removed (first occurrence order), prompts with fewer than two distinct responses left out and
    counted, at most ``max_responses`` per prompt kept (the first ones; the rest counted)."""
    if max_responses < 2:
        raise ConfigError(f"max_responses must be >= 2, got {max_responses}")
    by_prompt: dict[str, int] = {}
    prompts, responses, origin = [], [], []
    for i, (p, c, r) in enumerate(zip(table["prompt"], table["chosen"], table["rejected"])):
        key = table.prompt_key(i)
        g = by_prompt.get(key)
        if g is None:
            g = by_prompt[key] = len(prompts)
            prompts.append(p)
            responses.append([])
            origin.append(table.origin[i])
        for text in (c, r):
            if text not in responses[g]:
                responses[g].append(text)
    keep = [g for g in range(len(prompts)) if len(responses[g]) >= 2]
    capped = sum(max(len(responses[g]) - max_responses, 0) for g in keep)
    report = {"rows": len(table), "prompts": len(prompts), "groups": len(keep),
              "prompts_with_one_response": len(prompts) - len(keep), "responses_over_cap": capped,
              "max_responses": max_responses}
    if not keep:
        sources = ", ".join((table.report.sources if table.report else []) or sorted({o.split(":")[0] for o in table.origin}))
        raise DataError("MetaRM needs several responses to one prompt (rows sharing a prompt, or a chosen "
                        f"and a rejected that differ); {report['prompts']} prompt(s) have one distinct response each",
                        file=sources or label, expected="at least two distinct responses to some prompt",
                        got="one per prompt")
    k = [min(len(responses[g]), max_responses) for g in keep]
    report["responses"] = int(sum(k))
    report["k_histogram"] = {int(v): int(n) for v, n in zip(*np.unique(k, return_counts=True))}
    return MetaGroups([prompts[g] for g in keep], [responses[g][:max_responses] for g in keep],
                      [origin[g] for g in keep], report)


def load_meta_groups(spec, max_responses: int = 4, **load_kwargs) -> MetaGroups:
    """Read a preference data spec (``rewardlab.data.load_preferences``: files, directories,
    ``hf:``; malformed rows raise ``DataError`` naming file and line) and group it by prompt."""
    from rewardlab.data import load_preferences

    return group_responses(load_preferences(spec, **load_kwargs), max_responses, label=str(spec))


def meta_batch_groups(n_groups: int, seed: int, step: int, batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Group indices of step ``step``'s meta batch for one rank: a pure function of
    (seed, step), so a resumed run draws the same batches without saved RNG state. The global
    batch of ``batch * world`` groups is a random sample (repeating groups only when there are
    fewer groups than that); each rank takes its consecutive ``batch``."""
    order = np.random.default_rng([int(seed), 0x4D657461, int(step)]).permutation(n_groups)
    take = np.arange(rank * batch, (rank + 1) * batch) % n_groups
    return order[take]


# ---------------------------------------------------------------------- the meta step, generic
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


# ---------------------------------------------------------------------- the fine-tuning loop's step
@dataclass
class EncodedGroups:
    """Meta groups as token ids (the training encoding) and the counts of what encoding left out."""

    items: list[list]  # Encoded per response, per group
    report: dict


def encode_groups(model, groups: MetaGroups) -> EncodedGroups:
    """Encode each response as training items are (``model.encode``); responses the ``drop``
    over-length policy drops are left out, and groups left with fewer than two, counted."""
    items, dropped, short = [], 0, 0
    for p, responses in zip(groups.prompts, groups.responses):
        enc = [model.encode(p, r) for r in responses]
        kept = [e for e in enc if e.status != "dropped"]
        dropped += len(enc) - len(kept)
        if len(kept) >= 2:
            items.append(kept)
        else:
            short += 1
    report = {**groups.report, "dropped_responses": dropped, "groups_too_short_after_drop": short,
              "groups_used": len(items)}
    if not items:
        raise ConfigError("metarm: no group keeps two responses under the over-length policy 'drop'")
    return EncodedGroups(items, report)


def collate_groups(model, groups: EncodedGroups, idx) -> tuple[dict[str, Tensor], Tensor]:
    """One batch of the responses of groups ``idx`` (group by group) and their mask ``[G, K]``."""
    chosen = [groups.items[g] for g in idx]
    k = max(len(c) for c in chosen)
    mask = torch.zeros(len(chosen), k, dtype=torch.bool)
    for g, c in enumerate(chosen):
        mask[g, :len(c)] = True
    return model.collate([e for c in chosen for e in c]), mask


@contextlib.contextmanager
def _seeded_rng(seed: int, device: torch.device):
    """Run the block under its own torch RNG stream (dropout of the meta forward), leaving the
    training's stream exactly as it was: with η = 0 the run equals plain BT."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def check_backend(accelerator) -> None:
    """The ascent reads ``p.grad``; DeepSpeed keeps gradients elsewhere (tested: one process, DDP)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError("metarm is not supported under DeepSpeed (its gradients are not in .grad); use DDP")


def finetune_meta_step(accelerator, module, inner, groups: EncodedGroups, cfg, *, seed: int, step: int,
                       measure_after: bool) -> tuple[list[Tensor], list[Tensor], dict]:
    """The meta ascent of one optimizer step of the fine-tuning loop.

    J is computed through the prepared (DDP) ``module`` and backpropagated with
    ``accelerator.backward``, so every rank ascends along the same averaged ∇J. Dropout uses a
    stream seeded from (seed, step). Returns (params, saved θ, logs): the caller accumulates the
    preference gradient at θ′, then :func:`restore` (params, saved), then ``optimizer.step()``.
    ``measure_after`` also evaluates J(θ′) on the same batch and dropout masks (one forward).
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    idx = meta_batch_groups(len(groups.items), seed, step, cfg.meta_batch_prompts, rank, world)
    batch, mask = collate_groups(inner.model, groups, idx)
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    mask = mask.to(accelerator.device)
    rng_seed = int(np.random.SeedSequence([int(seed), 0x4D657461, int(step)]).generate_state(1)[0])

    def closure() -> float:
        with _seeded_rng(rng_seed, accelerator.device):
            J = module(batch, meta_mask=mask)
            accelerator.backward(J)
        return float(J.detach())

    params, saved, j_before = ascend(module.parameters(), closure, cfg.eta)
    logs = {"meta_J": j_before}
    if measure_after:
        with torch.no_grad(), accelerator.autocast(), _seeded_rng(rng_seed, accelerator.device):
            logs["meta_J_after"] = float(inner(batch, meta_mask=mask))
    if world > 1:  # each rank saw its share of the meta batch: report the mean over ranks
        t = torch.tensor(list(logs.values()), dtype=torch.float64, device=accelerator.device)
        logs = dict(zip(logs, accelerator.reduce(t, "mean").tolist()))
    return params, saved, logs
