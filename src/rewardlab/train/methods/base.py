"""The protocol of a training method plugged into the one loop (see ``rewardlab.train.methods``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class StepContext:
    """What a step hook may read: the accelerator, the prepared (DDP) module and the unwrapped one,
    the optimizer step about to run (0-based), the step count, the logging interval and the seed."""

    accelerator: Any
    module: Any
    inner: Any
    step: int
    total_steps: int
    log_every: int
    seed: int


class Method:
    """The hooks a training method may implement (see the module docstring); all default to no-ops."""

    name = "method"
    find_unused_parameters = False
    # The objective layouts it works with ("pairs"; "items": single responses with targets).
    layouts: tuple[str, ...] = ("pairs",)

    def check(self) -> None:
        return None

    def columns(self) -> tuple[str, ...]:
        return ()

    def build_model(self):
        return None

    def wrap_model(self, model) -> None:
        return None

    def encode_pairs(self, model, table):
        return None

    def setup(self, accelerator, model, report: dict) -> None:
        return None

    def wrap_loss(self, loss):
        return loss

    def before_step(self, ctx: StepContext) -> None:
        return None

    def after_backward(self, ctx: StepContext) -> None:
        return None

    def logs(self) -> dict:
        return {}

    def export(self, model, directory: Path) -> dict | None:
        return None

    def after_export(self, model, directory: Path) -> dict | None:
        return None
