"""Critic-RM as a plug-in of the loop (config section ``critic:``; METHODS §5, step 4): its own
model (the backbone's causal LM plus a reward head), pairs encoded as ``[x, y, ask, critique]``
with the critique columns, and the joint loss ``λ(t) · L_SFT + (1 − λ(t)) · L_reward`` whose λ
follows the step (``rewardlab.critic.joint``)."""

from __future__ import annotations

import torch

from rewardlab.critic import joint
from rewardlab.critic.model import CriticRewardModel
from rewardlab.errors import ConfigError
from rewardlab.train.methods.base import Method, StepContext


class CriticRM(Method):
    name = "critic"

    def __init__(self, cfg):
        if cfg.metarm is not None:
            raise ConfigError("critic and metarm cannot be combined (MetaRM scores responses without critiques)")
        self.run, self.cfg = cfg, cfg.critic
        self.loss: joint.JointLoss | None = None

    def columns(self) -> tuple[str, ...]:
        return self.cfg.critique_chosen_key, self.cfg.critique_rejected_key

    def build_model(self) -> CriticRewardModel:
        m = self.run.model
        if m.pooling not in ("auto", "last") or m.render not in ("auto", "chat"):
            raise ConfigError("a Critic-RM reads the last token of the chat-rendered conversation: "
                              f"model.pooling must be auto or last (got {m.pooling}) and model.render "
                              f"auto or chat (got {m.render})")
        return CriticRewardModel.from_backbone(
            m.name_or_path, critic=self.cfg, max_length=m.max_length, overlength=m.overlength,
            padding_side=m.padding_side, dtype=torch.bfloat16 if m.dtype == "bfloat16" else None)

    def encode_pairs(self, model, table):
        return joint.encode_pairs(model, table)

    def wrap_loss(self, loss):
        self.loss = joint.JointLoss(loss, schedule=self.cfg.lambda_schedule, start=self.cfg.lambda_start,
                                    end=self.cfg.lambda_end)
        return self.loss

    def before_step(self, ctx: StepContext) -> None:
        self.loss.set_progress(ctx.step, ctx.total_steps)  # λ is a function of the step: nothing to checkpoint
