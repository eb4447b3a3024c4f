"""Preference strength from reward-model ensembles and the denoising recipes that use it."""

from rewardlab.strength.denoise import RECIPES, DenoisePlan, apply_recipe, plan_recipe
from rewardlab.strength.ensemble import (
    StrengthResult,
    crossfit_finetune,
    crossfit_heads,
    decile_groups,
    noise_detection,
    prompt_folds,
    random_flips,
    strength_stats,
    summarize,
    swap_precision,
)

__all__ = [
    "RECIPES", "DenoisePlan", "StrengthResult", "apply_recipe", "crossfit_finetune", "crossfit_heads",
    "decile_groups", "noise_detection", "plan_recipe", "prompt_folds", "random_flips", "strength_stats", "summarize",
    "swap_precision",
]
