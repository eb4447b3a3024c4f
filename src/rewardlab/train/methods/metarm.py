"""MetaRM as a plug-in of the loop (config section ``metarm:``; METHODS §4): before every
``every``-th optimizer step, θ′ = θ + η ∇J(θ) on a meta batch of the shifted data's responses
grouped by prompt; the step's micro-batches take the preference gradient at θ′; then θ is put back
and the optimizer applies that gradient to θ. The objective, the ascent and the meta-batch choice
are shared with the embedding heads (``rewardlab.objectives.metarm``); the grouping of the meta
data is ``rewardlab.data.groups``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rewardlab.data.groups import MetaGroups, load_meta_groups
from rewardlab.errors import ConfigError
from rewardlab.objectives.metarm import ascend, difference_objective, meta_batch_groups, restore
from rewardlab.train.methods.base import Method, StepContext


class MetaRM(Method):
    name = "metarm"
    find_unused_parameters = True  # the meta forward reads the model only, not the loss's own parameters (SwAV)

    def __init__(self, cfg):
        self.cfg = cfg.metarm
        self.groups: EncodedGroups | None = None
        self._restore: tuple | None = None
        self._logs: dict = {}

    def setup(self, accelerator, model, report: dict) -> None:
        mc = self.cfg
        check_backend(accelerator)
        self.groups = encode_groups(model, load_meta_groups(
            mc.data, mc.max_responses, format=mc.format, prompt_key=mc.prompt_key, chosen_key=mc.chosen_key,
            rejected_key=mc.rejected_key, on_error=mc.on_error))
        report["metarm"] = self.groups.report

    def before_step(self, ctx: StepContext) -> None:
        if ctx.step % self.cfg.every:
            return
        # J(θ′) costs a forward: measured only on the last meta step before a log record.
        next_log = min((ctx.step // ctx.log_every + 1) * ctx.log_every, ctx.total_steps)
        params, saved, self._logs = finetune_meta_step(
            ctx.accelerator, ctx.module, ctx.inner, self.groups, self.cfg, seed=ctx.seed, step=ctx.step,
            measure_after=ctx.step + self.cfg.every >= next_log)
        self._restore = (params, saved)

    def after_backward(self, ctx: StepContext) -> None:
        if self._restore is not None:
            restore(*self._restore)  # back to θ, keeping the gradient taken at θ′
            self._restore = None

    def logs(self) -> dict:
        out, self._logs = self._logs, {}  # J on the last meta batch, before and after the ascent
        return out


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

    def objective(r: Tensor) -> Tensor:  # the batch's rewards, group by group, padded to [G, K]
        rewards = r.new_zeros(mask.shape, dtype=torch.float32).masked_scatter(mask, r.float())
        return difference_objective(rewards, mask)

    def closure() -> float:
        with _seeded_rng(rng_seed, accelerator.device):
            J = module(batch, reduce=objective)
            accelerator.backward(J)
        return float(J.detach())

    params, saved, j_before = ascend(module.parameters(), closure, cfg.eta)
    logs = {"meta_J": j_before}
    if measure_after:
        with torch.no_grad(), accelerator.autocast(), _seeded_rng(rng_seed, accelerator.device):
            logs["meta_J_after"] = float(inner(batch, reduce=objective))
    if world > 1:  # each rank saw its share of the meta batch: report the mean over ranks
        t = torch.tensor(list(logs.values()), dtype=torch.float64, device=accelerator.device)
        logs = dict(zip(logs, accelerator.reduce(t, "mean").tolist()))
    return params, saved, logs
