"""``fit_head``: train a reward head (linear, MLP or GBDT ensemble) on item vectors from pairs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rewardlab.errors import ConfigError
from rewardlab.heads.config import HeadConfig, HeadMeta, as_meta, member_seed
from rewardlab.heads.mlp import as_tensor
from rewardlab.heads.trainer import SMALL_STEP_FLOPS, Trainer, threads


def fit_head(
    X,
    chosen,
    rejected,
    *,
    objective: Mapping[str, Any] | str = "bt",
    aux: list[Mapping[str, Any]] | None = None,
    config: HeadConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    member_seeds: Sequence[int] | None = None,
    columns: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    meta: HeadMeta | Mapping[str, Any] | None = None,
):
    """Train a reward head on item vectors ``X [m, d]`` from pairs (``chosen[i]``, ``rejected[i]``)
    of row indices into ``X``.

    ``seed`` decides the validation split and, through :func:`member_seed`, the members' seeds
    unless ``member_seeds`` gives them (their number then sets the ensemble size). ``columns``
    are optional per-pair float columns passed to the objective (``margin``, ``weight``…).
    ``meta`` turns on MetaRM (:class:`HeadMeta`; linear and MLP heads; ``eta = 0`` trains as
    without it). Returns a :class:`FittedHead` (linear, MLP) or a ``GBDTHead`` (gbdt).
    """
    cfg = config if isinstance(config, HeadConfig) else HeadConfig.model_validate(dict(config or {}))
    chosen = np.asarray(chosen, dtype=np.int64)
    rejected = np.asarray(rejected, dtype=np.int64)
    if chosen.shape != rejected.shape or chosen.ndim != 1 or len(chosen) == 0:
        raise ConfigError("chosen and rejected must be equal-length, non-empty 1-D index arrays")
    seeds = list(member_seeds) if member_seeds is not None else [member_seed(seed, j) for j in range(cfg.members)]
    if cfg.kind == "gbdt":
        if meta is not None:
            raise ConfigError("MetaRM (meta=...) needs a gradient-trained head: linear or mlp")
        from rewardlab.heads.gbdt import fit_gbdt

        return fit_gbdt(X, chosen, rejected, objective=objective, aux=aux, config=cfg, seed=seed,
                        member_seeds=seeds, columns=columns, log=log)
    x = as_tensor(X)
    if x.ndim != 2:
        raise ConfigError(f"X must be [items, dim], got shape {tuple(x.shape)}")
    if max(chosen.max(), rejected.max()) >= len(x) or min(chosen.min(), rejected.min()) < 0:
        raise ConfigError("pair indices out of range of X")
    trainer = Trainer(x, chosen, rejected, objective, aux, cfg, seed, seeds, columns, log, as_meta(meta, len(x)))
    # Small steps are dominated by threading overhead (and by waiting for descheduled threads
    # on a busy machine): train them on one thread. Results do not depend on the thread count
    # beyond float rounding.
    work = len(seeds) * 2 * min(cfg.batch_size, len(chosen)) * trainer.model.flops_per_row()
    with threads(1 if work < SMALL_STEP_FLOPS else None):
        return trainer.run()
