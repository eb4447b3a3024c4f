"""Rubric rewards: criteria and scorers, aggregators (weighted_sum, min, gdpo, focal), a TRL
GRPO reward function. See docs/rubric.md."""

from rewardlab.rubric.aggregators import Aggregated, aggregate, estimate_saturation, focal, focal_weights, gdpo, minimum, weighted_sum
from rewardlab.rubric.reward import RubricReward
from rewardlab.rubric.scoring import RubricScores, score_items
from rewardlab.rubric.spec import Criterion, Rubric, load_rubric, parse_rubric

__all__ = [
    "Aggregated", "Criterion", "Rubric", "RubricReward", "RubricScores", "aggregate", "estimate_saturation",
    "focal", "focal_weights", "gdpo", "load_rubric", "minimum", "parse_rubric", "score_items", "weighted_sum",
]
