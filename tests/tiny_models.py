"""Small reward models for the evaluation tests: MiniLM with random heads, saved as ``.../NAME/model``."""

from __future__ import annotations

from pathlib import Path

import torch

from rewardlab.models.reward_model import RewardModel


def random_head_minilm(root: Path, seeds: dict[str, int], max_length: int) -> list[Path]:
    """One MiniLM reward model per ``{name: seed}`` whose head is drawn from N(0, 0.5) with that
    seed (distinct, decisive rewards), each saved to ``root/NAME/model``; their paths in order."""
    paths = []
    for name, seed in seeds.items():
        rm = RewardModel.from_backbone("minilm", max_length=max_length)
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in rm.model.classifier.parameters():
                p.normal_(0, 0.5)
        paths.append(rm.save_pretrained(root / name / "model"))
    return paths
