"""Checkpoints through ``accelerate``'s save_state/load_state, written atomically.

A checkpoint is ``OUT/checkpoints/step-000123/``: model, optimizer, RNG states (Python, NumPy,
torch) and every object registered with ``accelerator.register_for_checkpointing`` (scheduler,
training progress). The loss module (NormBT's EMA, SwAV prototypes) lives inside the trained module,
so its state travels with the model weights. A directory is renamed into place only once complete,
so a run killed while saving resumes from the previous checkpoint.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

_STEP = re.compile(r"^step-(\d+)$")
DONE = "COMPLETE"


@dataclass
class Progress:
    """Training progress, saved with each checkpoint."""

    step: int = 0  # optimizer steps done
    micro: int = 0  # micro-batches consumed (over all epochs)
    pairs_seen: int = 0
    train_seconds: float = 0.0
    tokens: int = 0  # tokens through the model, padding included (estimated as this rank's x processes)
    real_tokens: int = 0  # of which not padding
    # The open logging window (loss sum, correct, pairs since the last train record), summed over
    # processes; checkpoints written before it existed load with an empty window.
    window: list = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and (p / DONE).is_file()]
    return [p for _, p in sorted(found)]


def latest(root: Path) -> Path | None:
    found = checkpoints(root)
    return found[-1] if found else None


def save(accelerator, root: Path, step: int, keep: int) -> Path:
    """Save a checkpoint for ``step``; keep the newest ``keep``. Call on every process."""
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / DONE).write_text(str(step))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
