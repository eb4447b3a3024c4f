"""Loading a saved reward model for scoring: a Critic-RM (which writes critiques before it scores)
or a plain :class:`~rewardlab.models.reward_model.RewardModel`; ``score``, ``eval`` and ``serve``
load through :func:`load_model`."""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.critic.model import CriticRewardModel
from rewardlab.errors import ConfigError
from rewardlab.models.ensemble import is_ensemble_dir, load_ensemble
from rewardlab.models.locate import REWARD_MODEL, locate_model
from rewardlab.models.reward_model import load_reward_model


def is_critic_model(directory: str | Path) -> bool:
    """Whether a model directory holds a Critic-RM (config.json has ``rewardlab.critic``)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        return "critic" in (json.loads(path.read_text()).get("rewardlab") or {})
    except (ValueError, AttributeError):
        return False


def load_model(directory: str | Path, *, critiques: int | None = None, cache_dir: str | Path | None = None,
               seed: int | None = None, option: str = "--model", aggregation: str | None = None,
               lam: float | None = None):
    """A saved reward model for scoring: a Critic-RM (with ``critiques`` m, ``seed`` and the
    generation ``cache_dir`` overriding its saved settings), an ensemble directory (``ensemble.json``;
    ``aggregation`` and ``lam`` override its defaults) or a plain RewardModel (through
    :func:`rewardlab.models.reward_model.load_reward_model`). Asking a plain reward model for critiques
    is an error."""
    if is_ensemble_dir(directory):
        if critiques is not None:
            raise ConfigError(f"{directory}: --critiques applies to Critic-RM models only; this is an ensemble")
        return load_ensemble(directory, aggregation=aggregation, lam=lam, option=option)
    if aggregation is not None or lam is not None:
        raise ConfigError(f"{directory}: --aggregation and --ensemble-lambda apply to ensemble directories "
                          "(ensemble.json) only; this is a single reward model")
    if not is_critic_model(directory):
        if critiques is not None:
            raise ConfigError(f"{directory}: --critiques applies to Critic-RM models only "
                              "(trained with a `critic:` section); this is a plain reward model")
        return load_reward_model(directory, option=option)
    if critiques is not None and critiques < 1:
        raise ConfigError(f"--critiques must be >= 1, got {critiques}")
    target = locate_model(directory, kind=REWARD_MODEL, option=option)
    try:
        model = CriticRewardModel.from_pretrained(target)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{option} {str(directory)!r}: cannot load the Critic-RM ({err})") from err
    updates = {k: v for k, v in (("critiques", critiques), ("seed", seed)) if v is not None}
    if updates:
        model.critic = model.critic.model_validate({**model.critic.model_dump(), **updates})
    model.cache_dir = Path(cache_dir) if cache_dir is not None else None
    return model
