"""Reward heads on embeddings trained on single responses with targets (issue 24): the item
objectives of the registry (``regression``, ``correctness``, ``scaled_bt``) on ``X [n, d]``, a
target matrix ``[n, K]`` (NaN = unlabelled) and a prompt group per response.

A head is ``d → widths… → K`` (ReLU; no widths = linear), Adam, input standardised with the
training rows' mean and std, early stopping on the loss of a validation split *by group* (a
prompt's responses are all on one side). A batch holds whole groups (``batch_size`` responses,
rounded up to the last group), so ``scaled_bt`` sees every pair of a prompt in one batch. One
member: train several seeds by calling again (the ensemble machinery of ``heads.trainer`` is
for pairs). Hand-written rather than sklearn because the objectives are the registry's losses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rewardlab.errors import ConfigError
from rewardlab.heads.config import HeadConfig
from rewardlab.heads.mlp import as_tensor
from rewardlab.heads.trainer import SMALL_STEP_FLOPS, threads
from rewardlab.objectives import ItemInputs, build_loss


def split_groups(group: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: a seeded ``val_fraction`` of the groups (at least one on
    each side when there are two or more groups and ``val_fraction > 0``)."""
    ids = np.unique(group)
    perm = np.random.default_rng([int(seed), 11]).permutation(len(ids))
    n_val = int(round(val_fraction * len(ids))) if val_fraction > 0 else 0
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    val_ids = ids[perm[:n_val]]
    is_val = np.isin(group, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def group_batches(group: np.ndarray, rows: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``rows`` in batches of whole groups (shuffled group order), each up to ``batch_size``
    responses or one group when a group is larger."""
    by_group: dict[int, list[int]] = {}
    for i in rows:
        by_group.setdefault(int(group[i]), []).append(int(i))
    order = rng.permutation(list(by_group))
    batches, cur = [], []
    for g in order:
        members = by_group[int(g)]
        if cur and len(cur) + len(members) > batch_size:
            batches.append(np.asarray(cur))
            cur = []
        cur += members
    if cur:
        batches.append(np.asarray(cur))
    return batches


@dataclass
class PointwiseHead:
    """A trained pointwise head: ``predict(X)`` gives ``[n, K]`` rewards (one per target name)."""

    model: nn.Sequential
    mean: Tensor
    std: Tensor
    names: tuple[str, ...]
    objective: dict
    target_stats: tuple[Tensor, Tensor] | None = None
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def predict(self, X) -> np.ndarray:
        x = (as_tensor(X) - self.mean) / self.std
        return self.model(x).double().numpy()


def _mlp(d: int, widths: Sequence[int], k: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    dims = [d, *widths]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], k))
    return nn.Sequential(*layers)


def fit_pointwise_head(
    X,
    target,
    group,
    *,
    objective: Mapping[str, Any] | str = "regression",
    config: HeadConfig | Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> PointwiseHead:
    """Train a head on ``X [n, d]`` with ``target [n]`` or ``[n, K]`` (NaN = unlabelled) and
    ``group [n]`` (the prompt of each response) under an item objective of the registry."""
    cfg = config if isinstance(config, HeadConfig) else HeadConfig.model_validate(dict(config or {}))
    if cfg.kind == "gbdt":
        raise ConfigError("pointwise heads are linear or mlp (gbdt reads pairs)")
    loss_fn = build_loss(objective)
    if loss_fn.layout != "items":
        raise ConfigError(f"objective '{loss_fn.main.name}' reads pairs; a pointwise head needs an item "
                          f"objective (regression, correctness, scaled_bt); pairs go to fit_head")
    x = as_tensor(X)
    t = torch.as_tensor(np.asarray(target, dtype=np.float32))
    t = t[:, None] if t.ndim == 1 else t
    g = np.asarray(group, dtype=np.int64)
    if x.ndim != 2 or t.shape[0] != len(x) or g.shape != (len(x),):
        raise ConfigError(f"X [n, d], target [n] or [n, K] and group [n] must agree, got "
                          f"{tuple(x.shape)}, {tuple(t.shape)}, {g.shape}")
    k = t.shape[1]
    names = tuple(names) if names is not None else (("reward",) if k == 1 else tuple(f"attr_{i}" for i in range(k)))
    if len(names) != k:
        raise ConfigError(f"{len(names)} names for {k} target columns")
    tr, va = split_groups(g, cfg.val_fraction, seed)
    mean = x[tr].mean(0) if cfg.standardize else torch.zeros(x.shape[1])
    std = x[tr].std(0).clamp_min(1e-6) if cfg.standardize else torch.ones(x.shape[1])
    xs = (x - mean) / std
    loss_fn.fit_targets(t[tr])
    model = _mlp(x.shape[1], cfg.layer_widths(), k, seed)
    dims = [x.shape[1], *cfg.layer_widths(), k]
    work = 2 * min(cfg.batch_size, len(tr)) * sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    # Small steps on one thread, as fit_head: thread hand-offs cost more than the arithmetic.
    with threads(1 if work < SMALL_STEP_FLOPS else None):
        best, best_epoch, history = _train(model, loss_fn, xs, t, g, tr, va, cfg, seed)
    model.eval()
    main = loss_fn.main
    stats = main.target_stats() if hasattr(main, "target_stats") else None
    if log is not None:
        log(f"pointwise head ({main.name}): best validation loss {best:.4f} at epoch {best_epoch}")
    return PointwiseHead(model, mean, std, names, {"name": objective} if isinstance(objective, str) else dict(objective),
                         stats, {"val_loss": history, "best_epoch": best_epoch, "n_train": len(tr), "n_val": len(va)})


def _train(model, loss_fn, xs, t, g, tr, va, cfg, seed) -> tuple[float, int, list[float]]:
    """Epochs of group batches with early stopping; the best epoch's weights are loaded."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([int(seed), 13])
    gt = torch.from_numpy(g)
    best, best_state, best_epoch, bad = float("inf"), None, 0, 0
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        for rows in group_batches(g, tr, cfg.batch_size, rng):
            idx = torch.from_numpy(rows)
            loss, _ = loss_fn(ItemInputs(model(xs[idx]), t[idx], gt[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if len(va):
            model.eval()
            with torch.no_grad():
                idx = torch.from_numpy(va)
                val = float(loss_fn(ItemInputs(model(xs[idx]), t[idx], gt[idx]))[0])
            history.append(val)
            if val < best - cfg.min_delta:
                best, best_epoch, bad = val, epoch + 1, 0
                best_state = {n: p.detach().clone() for n, p in model.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return best, best_epoch, history
