"""LoRA as a plug-in of the loop (config section ``lora:``): adapters on the backbone after the
model is built, and the ``merged`` / ``adapter`` / ``both`` export (``rewardlab.models.lora``)."""

from __future__ import annotations

from pathlib import Path

from rewardlab.models import lora
from rewardlab.train.methods.base import Method


class LoRA(Method):
    name = "lora"

    def __init__(self, cfg):
        self.cfg = cfg.lora
        self.backbone, self.pooling = cfg.model.name_or_path, cfg.model.pooling

    def check(self) -> None:
        lora.check_rank(self.backbone, self.cfg, self.pooling)  # lora.r against the layer widths, before any work

    def wrap_model(self, model) -> None:
        lora.apply(model, self.cfg)  # the reward head trains in full (modules_to_save)

    def export(self, model, directory: Path) -> dict:
        return {"lora": lora.export(model, self.cfg, directory)}  # the adapter's size goes into the summary
