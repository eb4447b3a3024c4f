"""Joint Critic-RM training (METHODS §5, step 4): the λ(t) schedule, the joint loss and the pair encoding.

The loss of one batch is ``λ(t) · L_SFT(critique tokens | x, y) + (1 − λ(t)) · L_reward``, where
``L_reward`` is any objective of the registry (bt, normbt, ...; ``objective:`` in the run config)
computed on rewards read at the last token of ``[prompt | response | ask | critique]``, and
``L_SFT`` the mean cross-entropy over the labelled critique tokens of the batch (both sides' by
default). The training loop stays the one loop (``train/loop.py``); its Critic-RM plug-in
(``train/methods/critic.py``) builds a :class:`~rewardlab.critic.model.CriticRewardModel`, encodes
pairs with :func:`encode_pairs`, wraps the loss in :class:`JointLoss` and tells it the step before
each optimizer step.
"""

from __future__ import annotations

import logging

import math

import torch
from torch import nn

from rewardlab.errors import ConfigError, DataError
from rewardlab.models import pairs
from rewardlab.models.pairs import EncodedPairs

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "linear", "cosine")


def lambda_at(step: int, total_steps: int, schedule: str, start: float, end: float) -> float:
    """λ at optimizer step ``step`` (0-based) of ``total_steps``: ``start`` at the first step,
    ``end`` at the last (``constant`` stays at ``start``); linear or half-cosine in between."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"critic.lambda_schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        return float(start)
    frac = min(max(step, 0) / max(total_steps - 1, 1), 1.0)
    if schedule == "linear":
        return float(start + (end - start) * frac)
    return float(end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac)))


class JointLoss(nn.Module):
    """``λ · L_SFT + (1 − λ) · L_reward`` around a registry ``Loss``; λ follows the schedule.

    The loop calls :meth:`set_progress` before each optimizer step (λ is a function of the step,
    so nothing needs checkpointing: resume sets it again). Logs ``loss/sft``, ``loss/reward``,
    ``critic/lambda`` besides the reward loss's own entries; ``loss/total`` is the joint loss.
    """

    def __init__(self, reward_loss: nn.Module, *, schedule: str = "linear", start: float = 0.8, end: float = 0.2):
        super().__init__()
        lambda_at(0, 1, schedule, start, end)  # validates the schedule name
        for name, v in (("lambda_start", start), ("lambda_end", end)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"critic.{name} must lie in [0, 1], got {v}")
        self.reward = reward_loss
        self.schedule, self.start, self.end = schedule, float(start), float(end)
        self.needs_features = getattr(reward_loss, "needs_features", False)
        self.pointwise = getattr(reward_loss, "pointwise", False)
        self.lam = self.start

    def set_progress(self, step: int, total_steps: int) -> None:
        self.lam = lambda_at(step, total_steps, self.schedule, self.start, self.end)

    def forward(self, inputs, lm_loss: torch.Tensor | None = None):
        if lm_loss is None:
            raise ValueError("JointLoss needs the language-model loss: the batch had no labels")
        reward, logs = self.reward(inputs)
        total = self.lam * lm_loss + (1.0 - self.lam) * reward
        logs = dict(logs)
        logs["loss/reward"] = float(reward.detach())
        logs["loss/sft"] = float(lm_loss.detach())
        logs["critic/lambda"] = self.lam
        logs["loss/total"] = float(total.detach())
        return total, logs


def critique_text(value, origin: str, field: str) -> str:
    """One critique string from a data cell, or a DataError naming the row and field."""
    if isinstance(value, (list, tuple)):
        raise DataError("one critique per response is needed for joint training (refine several into one "
                        "first: `rewardlab critique --refine summ|rank`)", file=origin, field=field,
                        expected="a string", got=f"a list of {len(value)}")
    if not isinstance(value, str):
        raise DataError("the critique is missing or not text", file=origin, field=field,
                        expected="a non-empty string", got=type(value).__name__ if value is not None else "null")
    if not value.strip():
        raise DataError("the critique is empty", file=origin, field=field, expected="a non-empty string", got="''")
    return value


def encode_pairs(model, table) -> EncodedPairs:
    """Encode every pair of a table as two joint conversations ``[x, y, ask, critique]``; the
    critique tokens of the sides named by ``critic.sft_on`` are marked for the LM loss."""
    cs = model.critic
    keys = (cs.critique_chosen_key, cs.critique_rejected_key)
    for key in keys:
        if not table.has(key):
            raise DataError("joint Critic-RM training reads one critique per response from this column "
                            "(`rewardlab critique` writes it; see critic.critique_*_key)", file=first_origin(table),
                            field=key, expected="a column of strings", got="no such column")
    sft = {"both": (True, True), "chosen": (True, False), "rejected": (False, True), "none": (False, False)}[cs.sft_on]

    def encode_pair(i, p, c, r):
        origin = table.origin[i]
        cc = critique_text(table[keys[0]][i], origin, keys[0])
        cr = critique_text(table[keys[1]][i], origin, keys[1])
        return model.encode_joint(p, c, cc, sft=sft[0]), model.encode_joint(p, r, cr, sft=sft[1])

    n = sum(1 for t in table.template_kwargs() if t)
    if n:
        log.warning("%d pair(s) carry tools/chat_template_kwargs; Critic-RM's joint conversations do not use them", n)
    return pairs.encode_pairs(model, table, encode_pair)


def first_origin(table) -> str:
    """The file a table's first row came from (its origin without the line), for errors about a column."""
    return table.origin[0].rsplit(":", 1)[0] if len(table) else "<data>"
