"""ODIN as a plug-in of the loop (config section ``odin:``; docs/robust.md): a length head beside
the model's own reward head (the quality head), pairs encoded with each response's length in
tokens, the run's objective on the sum of the two heads plus ODIN's penalties
(``rewardlab.objectives.odin``), correlations on the global batch, and the length head written
beside the exported model (``rewardlab.models.odin``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rewardlab.errors import ConfigError
from rewardlab.models import odin as heads
from rewardlab.models.pairs import encode_pairs
from rewardlab.objectives.odin import LENGTH_COLUMNS, OdinLoss
from rewardlab.train.methods.base import Method


class Odin(Method):
    name = "odin"

    def __init__(self, cfg):
        self.cfg = cfg.odin
        self.pooling = cfg.model.pooling
        self.model = None
        self.world = 1

    def check(self) -> None:
        if self.pooling == "native":  # the resolved pooling ('auto') is checked again on the model
            raise ConfigError("odin: model.pooling 'native' reads the model's own head, which need not be one "
                              "linear map of h; ODIN needs two linear heads on h: use model.pooling last, cls or mean")

    def wrap_model(self, model) -> None:
        heads.add_length_head(model)  # after LoRA's wrap: the quality head is looked up at every call
        self.model = model

    def encode_pairs(self, model, table):
        pairs = encode_pairs(model, table)
        for side, column in zip(("chosen", "rejected"), LENGTH_COLUMNS):
            lengths = heads.response_token_lengths(model.tokenizer, table[side])
            pairs.columns[column] = lengths[pairs.rows] if len(pairs.rows) else np.zeros(0)
        return pairs

    def setup(self, accelerator, model, report: dict) -> None:
        self.world = accelerator.num_processes

    def wrap_loss(self, loss):
        model = self.model
        return OdinLoss(loss, length_head=lambda h: getattr(model, heads.ATTRIBUTE)(h),
                        quality_weight=lambda: heads.quality_head(model).weight,
                        length_weight_vector=lambda: getattr(model, heads.ATTRIBUTE).weight,
                        length_weight=self.cfg.length_weight, ortho_weight=self.cfg.ortho_weight,
                        gather=gather_with_grad if self.world > 1 else None)

    def after_export(self, model, directory: Path) -> dict:
        info = {"length_weight": self.cfg.length_weight, "ortho_weight": self.cfg.ortho_weight}
        return {"odin": heads.save_length_head(getattr(model, heads.ATTRIBUTE), directory, info)}


def gather_with_grad(t):
    """Concatenate ``t`` over the data-parallel processes in rank order, keeping the gradient.

    The backward sums each process's gradient for this process's slice, so every process computes
    the same global loss and DDP's mean of the parameter gradients equals that loss's gradient.
    ``torch.distributed.nn.functional.all_gather`` is marked deprecated in favour of a private
    functional API; it is the public one with autograd, so it is used (its warning silenced here).
    """
    import torch
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(t.contiguous()))
