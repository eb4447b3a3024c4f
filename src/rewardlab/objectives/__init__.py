"""Training objectives for reward models: a registry of main losses and weighted auxiliaries.

``build_loss({"name": "normbt", "beta": 0.9}, [{"name": "simcse", "weight": 1.0}])`` returns a
``Loss`` module; ``available()`` lists the registered names. See docs/objectives.md.
"""

from rewardlab.objectives.contrastive import SimCSE, SwAV, info_nce, sinkhorn
from rewardlab.objectives.pairwise import (
    BT,
    AdaptiveMargin,
    Flip,
    Hinge,
    LabelSmoothing,
    NormBT,
    adaptive_margin_loss,
    bt_loss,
    centering_penalty,
    flip_mask,
    hinge_loss,
    label_smoothing_loss,
    normbt_weights,
    weighted_mean,
)
from rewardlab.objectives.pointwise import (
    Classification,
    ClassificationPaired,
    Correctness,
    Regression,
    ScaledBT,
    masked_bce,
    masked_mse,
    pointwise_bce,
    scaled_bt_loss,
    within_group_pairs,
)
from rewardlab.objectives.registry import (
    ItemInputs,
    Loss,
    LossInputs,
    Objective,
    available,
    build_loss,
    register,
)

__all__ = [
    "BT",
    "AdaptiveMargin",
    "Classification",
    "ClassificationPaired",
    "Correctness",
    "ItemInputs",
    "Flip",
    "Hinge",
    "LabelSmoothing",
    "Loss",
    "LossInputs",
    "NormBT",
    "Objective",
    "Regression",
    "ScaledBT",
    "SimCSE",
    "SwAV",
    "adaptive_margin_loss",
    "available",
    "bt_loss",
    "build_loss",
    "centering_penalty",
    "flip_mask",
    "hinge_loss",
    "info_nce",
    "label_smoothing_loss",
    "masked_bce",
    "masked_mse",
    "normbt_weights",
    "pointwise_bce",
    "register",
    "scaled_bt_loss",
    "sinkhorn",
    "weighted_mean",
    "within_group_pairs",
]
