"""Settings of a reward head on embeddings (linear, MLP, GBDT), MetaRM's head settings, member
seeds and the validation split of the training pairs: what every head trainer shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from rewardlab.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class GBDTConfig(_Strict):
    """LightGBM settings of a ``gbdt`` head (see ``rewardlab.heads.gbdt``)."""

    n_estimators: int = Field(1000, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, gt=1)
    min_child_samples: int = Field(20, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    min_hessian: float = Field(1e-3, gt=0)
    early_stopping_rounds: int = Field(30, gt=0)
    num_threads: int = Field(0, ge=0)


class HeadConfig(_Strict):
    """How a reward head is built and trained (one config for linear, MLP and GBDT heads)."""

    kind: Literal["linear", "mlp", "gbdt"] = "mlp"
    members: int = Field(1, ge=1)
    widths: list[Annotated[int, Field(ge=1)]] = [1024, 512]  # hidden layers (each at least 1 unit)
    aggregate: Literal["mean", "min"] = "mean"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(1024, gt=0)
    epochs: int = Field(30, gt=0)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    # True: stop a member after ``patience`` epochs without a better validation loss and keep its
    # best epoch (GBDT: ``gbdt.early_stopping_rounds``, best iteration). False: the paper's rule
    # (Sun et al.'s public code): all ``epochs`` (GBDT: ``n_estimators`` rounds), keep the last
    # parameters; the validation pairs are still held out of training and their loss is logged.
    early_stopping: bool = True
    standardize: bool = True
    dtype: Literal["float32", "float64"] = "float32"
    # h for objectives that read features (NormBT's distance, contrastive terms): the head's last
    # hidden layer, what its output layer reads (the paper's final-layer representation), or the
    # standardised input embedding (a static per-pair weight for NormBT: a different method).
    features: Literal["last_hidden", "input"] = "last_hidden"
    gbdt: GBDTConfig = GBDTConfig()

    def layer_widths(self) -> list[int]:
        """Hidden widths actually used: none for a linear head."""
        return [] if self.kind == "linear" else list(self.widths)


@dataclass
class HeadMeta:
    """MetaRM on a head (METHODS §4, ``rewardlab.objectives.metarm``): before every ``every``-th step,
    θ′ = θ + η ∇J(θ) on ``batch`` groups drawn (from (seed, step)) out of ``groups``, then the
    step's loss gradient is taken at θ′ and Adam applies it to θ.

    ``groups [G, K]`` are row indices into X of the responses to one prompt of the shifted data;
    ``mask [G, K]`` marks the real entries (None: entries < 0 are padding). Each group needs at
    least two responses. Every member ascends its own J on the same meta batch.
    """

    groups: Any
    mask: Any = None
    eta: float = 1.0
    batch: int = 64
    every: int = 1


def as_meta(meta, n_items: int) -> tuple[HeadMeta, Tensor, Tensor] | None:
    """The validated meta settings, the groups (padding pointed at row 0) and the mask."""
    if meta is None:
        return None
    meta = meta if isinstance(meta, HeadMeta) else HeadMeta(**dict(meta))
    groups = np.asarray(meta.groups)
    if groups.ndim != 2 or groups.shape[1] < 2 or not np.issubdtype(groups.dtype, np.integer):
        raise ConfigError(f"meta groups must be a [groups, k >= 2] integer array, got shape {groups.shape}")
    mask = groups >= 0 if meta.mask is None else np.asarray(meta.mask, dtype=bool)
    if mask.shape != groups.shape:
        raise ConfigError(f"meta mask shape {mask.shape} differs from the groups' {groups.shape}")
    if (mask.sum(1) < 2).any():
        raise ConfigError("every meta group needs at least two responses")
    if ((groups[mask] < 0) | (groups[mask] >= n_items)).any():
        raise ConfigError("meta group indices out of range of X")
    if not (meta.eta >= 0 and meta.batch > 0 and meta.every > 0):
        raise ConfigError(f"meta needs eta >= 0, batch > 0 and every > 0, got {meta.eta}, {meta.batch}, {meta.every}")
    return meta, torch.from_numpy(np.where(mask, groups, 0).astype(np.int64)), torch.from_numpy(mask)


def member_seed(seed: int, j: int) -> int:
    """The seed of member ``j`` of an ensemble trained with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(j)]).generate_state(1)[0])


# ---------------------------------------------------------------------- the module


def split_pairs(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) pair indices: a seeded random ``val_fraction`` of the pairs, at least
    one pair on each side when ``val_fraction > 0`` and ``n >= 2``."""
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
