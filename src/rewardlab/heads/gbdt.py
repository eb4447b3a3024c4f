"""Gradient-boosted tree reward heads (LightGBM; ``pip install 'rewardlab[gbdt]'``), METHODS §3.

The trees score single items (one embedding row each). Objectives come from the shared registry:

- ``classification`` (alone): LightGBM's native ``binary`` objective on single responses,
  chosen labelled 1 and rejected 0; the reward is the raw score (the logit).
- any other objective (bt, normbt, hinge, …, with auxiliaries): a custom LightGBM objective.
  Each boosting round evaluates the registry loss on all training pairs (scaled to a sum over
  pairs, as gradient boosting expects) and takes by autograd, per pair, the gradient and the
  diagonal second derivative with respect to r_c and r_r; an item's gradient and hessian are
  the sums over the pairs it occurs in (the LambdaMART approximation: cross-pair terms
  dropped). Hessians are floored at ``min_hessian`` (the hinge loss has none). Features h
  (NormBT) are the item embeddings.

Early stopping watches the registry loss on the validation split of the pairs (the same split
as the neural heads); ``early_stopping: false`` trains all ``n_estimators`` rounds and keeps
the last. An ensemble is k boosters with their members' seeds (bagging and feature
subsampling differ), trained one after another; aggregation as for the neural heads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rewardlab.errors import ConfigError
from rewardlab.heads.config import HeadConfig, split_pairs
from rewardlab.objectives import LossInputs, build_loss


def _lightgbm():
    try:
        import lightgbm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("gbdt heads need LightGBM: pip install 'rewardlab[gbdt]'") from e
    return lightgbm


@dataclass
class GBDTHead:
    """Trained boosters: ``predict(X)`` aggregates members' raw scores (each centred by its mean
    over the training items); ``predict_members(X)`` gives them all."""

    boosters: list
    offsets: np.ndarray
    aggregate: str
    info: dict = field(default_factory=dict)

    def predict_members(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        r = np.stack([b.predict(X, raw_score=True, num_iteration=b.best_iteration or None) for b in self.boosters])
        return r.astype(np.float64) - self.offsets[:, None]

    def predict(self, X) -> np.ndarray:
        r = self.predict_members(X)
        return r.mean(0) if self.aggregate == "mean" else r.min(0)


def _positions(chosen: np.ndarray, rejected: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique items of the pairs and each pair's positions among them."""
    items, inverse = np.unique(np.concatenate([chosen, rejected]), return_inverse=True)
    n = len(chosen)
    return items, inverse[:n], inverse[n:]


def fit_gbdt(
    X,
    chosen: np.ndarray,
    rejected: np.ndarray,
    *,
    objective: Mapping[str, Any] | str = "bt",
    aux: list[Mapping[str, Any]] | None = None,
    config: HeadConfig,
    seed: int = 0,
    member_seeds: Sequence[int],
    columns: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> GBDTHead:
    """Train ``len(member_seeds)`` LightGBM boosters on pairs of rows of ``X`` (see module doc)."""
    lgb = _lightgbm()
    X = np.ascontiguousarray(X, dtype=np.float32)
    g = config.gbdt
    tr, va = split_pairs(len(chosen), config.val_fraction, seed)
    cols = {name: np.asarray(v, dtype=np.float64) for name, v in (columns or {}).items()}
    probe = build_loss(objective, aux, feature_dim=X.shape[1])
    if probe.layout != "pairs":
        raise ConfigError(f"objective '{probe.main.name}' reads single responses with targets; gbdt heads "
                          f"train on pairs (use fit_pointwise_head with a linear or mlp head)")
    native = probe.main.name == "classification" and not len(probe.aux) and "weight" not in cols
    base = {
        "learning_rate": g.learning_rate, "num_leaves": g.num_leaves, "min_child_samples": g.min_child_samples,
        "feature_fraction": g.feature_fraction, "bagging_fraction": g.bagging_fraction,
        "bagging_freq": g.bagging_freq, "lambda_l2": g.lambda_l2, "verbose": -1, "deterministic": True,
        "force_col_wise": True,
    }
    if g.num_threads:
        base["num_threads"] = g.num_threads
    early = len(va) > 0  # validation pairs held out (their loss is watched)
    stop = early and config.early_stopping  # False: all n_estimators rounds, the last iteration kept
    t0 = time.perf_counter()
    if native:
        rows = np.concatenate([chosen[tr], rejected[tr]])
        labels = np.concatenate([np.ones(len(tr)), np.zeros(len(tr))])
        train_set = lgb.Dataset(X[rows], label=labels, free_raw_data=False)
        valid = []
        if early:
            vrows = np.concatenate([chosen[va], rejected[va]])
            vlabels = np.concatenate([np.ones(len(va)), np.zeros(len(va))])
            valid = [lgb.Dataset(X[vrows], label=vlabels, reference=train_set)]
        params = {**base, "objective": "binary", "metric": "binary_logloss"}
        feval = None
    else:
        items, pc, pr = _positions(chosen[tr], rejected[tr])
        train_set = lgb.Dataset(X[items], label=np.zeros(len(items)), free_raw_data=False)
        train_cols = {k: torch.from_numpy(v[tr]) for k, v in cols.items()}
        hc = torch.from_numpy(X[chosen[tr]]).double() if probe.needs_features else None
        hr = torch.from_numpy(X[rejected[tr]]).double() if probe.needs_features else None
        valid, feval = [], None
        if early:
            vitems, vpc, vpr = _positions(chosen[va], rejected[va])
            valid = [lgb.Dataset(X[vitems], label=np.zeros(len(vitems)), reference=train_set)]
            val_cols = {k: torch.from_numpy(v[va]) for k, v in cols.items()}
            vhc = torch.from_numpy(X[chosen[va]]).double() if probe.needs_features else None
            vhr = torch.from_numpy(X[rejected[va]]).double() if probe.needs_features else None
        params = {**base, "metric": "None"}
    boosters, offsets, best_iters, val_losses = [], [], [], []
    train_items = np.unique(np.concatenate([chosen[tr], rejected[tr]]))
    for s in member_seeds:
        member_params = {**params, "seed": int(s) % (2**31 - 1)}
        if not native:
            loss = build_loss(objective, aux, feature_dim=X.shape[1]).double()
            member_params["objective"] = _custom_objective(loss, pc, pr, hc, hr, train_cols, g.min_hessian)
            if early:
                feval = _registry_metric(loss, vpc, vpr, vhc, vhr, val_cols)
        callbacks = [lgb.early_stopping(g.early_stopping_rounds, verbose=False)] if stop else []
        booster = lgb.train(member_params, train_set, num_boost_round=g.n_estimators, valid_sets=valid,
                            feval=feval, callbacks=callbacks)
        boosters.append(booster)
        best_iters.append(int(booster.best_iteration or booster.current_iteration()))
        score = booster.best_score.get("valid_0", {}) if stop else {}
        val_losses.append(float(next(iter(score.values()))) if score else None)
        raw = booster.predict(X[train_items], raw_score=True, num_iteration=booster.best_iteration or None)
        offsets.append(float(np.mean(raw)))
    seconds = time.perf_counter() - t0
    info = {"members": len(boosters), "best_iteration": best_iters, "best_val_loss": val_losses,
            "train_seconds": seconds, "n_train_pairs": len(tr), "n_val_pairs": len(va),
            "objective_path": "native_binary" if native else "registry_autograd"}
    if log:
        log(f"head gbdt x{len(boosters)}: {seconds:.1f} s, best iterations {best_iters}")
    return GBDTHead(boosters, np.asarray(offsets), config.aggregate, info)


def _pair_derivatives(loss, preds: np.ndarray, pc, pr, hc, hr, cols, n_pairs: int):
    """Per-pair gradient and diagonal second derivative of ``n_pairs · loss`` wrt r_c and r_r."""
    r = torch.from_numpy(np.asarray(preds, dtype=np.float64))
    rc = r[pc].clone().requires_grad_(True)
    rr = r[pr].clone().requires_grad_(True)
    total, _ = loss(LossInputs(rc, rr, hc, hr, dict(cols)))
    total = total * n_pairs
    gc, gr = torch.autograd.grad(total, [rc, rr], create_graph=True)
    hcc = torch.autograd.grad(gc.sum(), rc, retain_graph=True, allow_unused=True)[0] if gc.requires_grad else None
    hrr = torch.autograd.grad(gr.sum(), rr, allow_unused=True)[0] if gr.requires_grad else None
    zeros = torch.zeros_like(rc)
    return (gc.detach().numpy(), gr.detach().numpy(), (hcc if hcc is not None else zeros).detach().numpy(),
            (hrr if hrr is not None else zeros).detach().numpy())


def _custom_objective(loss, pc, pr, hc, hr, cols, min_hessian: float):
    n_pairs = len(pc)

    def objective(preds: np.ndarray, data) -> tuple[np.ndarray, np.ndarray]:
        m = len(preds)
        gc, gr, hcc, hrr = _pair_derivatives(loss, preds, pc, pr, hc, hr, cols, n_pairs)
        grad = np.bincount(pc, gc, minlength=m) + np.bincount(pr, gr, minlength=m)
        hess = np.bincount(pc, hcc, minlength=m) + np.bincount(pr, hrr, minlength=m)
        return grad, np.maximum(hess, min_hessian)

    return objective


def _registry_metric(loss, pc, pr, hc, hr, cols):
    def metric(preds: np.ndarray, data) -> tuple[str, float, bool]:
        r = torch.from_numpy(np.asarray(preds, dtype=np.float64))
        loss.eval()
        with torch.no_grad():
            value, _ = loss(LossInputs(r[pc], r[pr], hc, hr, dict(cols)))
        loss.train()
        return "registry_loss", float(value), False

    return metric
