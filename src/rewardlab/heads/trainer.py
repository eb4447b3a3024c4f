"""The trainer of linear and MLP head ensembles: Adam, batches, per-member early stopping,
MetaRM's ascent (``rewardlab.objectives.metarm``); see the package docstring."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch import Tensor

from rewardlab.errors import ConfigError
from rewardlab.heads.config import HeadConfig, split_pairs
from rewardlab.heads.mlp import EnsembleMLP, FittedHead
from rewardlab.objectives import Loss, LossInputs, build_loss
from rewardlab.objectives import metarm

# Objectives whose loss is a plain mean of per-pair (or per-item) terms with no state: the sum of
# k members' means equals k times the mean over all members' pairs, so one call serves all.
MEAN_OBJECTIVES = frozenset({"bt", "classification", "classification_paired", "hinge", "label_smoothing",
                              "adaptive_margin", "flip"})


SMALL_STEP_FLOPS = 5e7


@contextlib.contextmanager
def threads(n: int | None):
    """Run the block with ``n`` torch threads (None: unchanged), restoring the count after."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class Trainer:
    def __init__(self, x, chosen, rejected, objective, aux, cfg: HeadConfig, seed, seeds, columns, log,
                 meta=None):
        self.cfg, self.log = cfg, log
        self.seed, self.meta = int(seed), meta
        self.k = len(seeds)
        self.seeds = seeds
        tr, va = split_pairs(len(chosen), cfg.val_fraction, seed)
        self.tr_c, self.tr_r = chosen[tr], rejected[tr]
        self.va_c, self.va_r = chosen[va], rejected[va]
        dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        x = x.to(dtype)
        cols = {name: np.asarray(v, dtype=np.float64 if cfg.dtype == "float64" else np.float32)
                for name, v in (columns or {}).items()}
        self.tr_cols = {name: v[tr] for name, v in cols.items()}
        self.va_cols = {name: torch.from_numpy(v[va]) for name, v in cols.items()}
        train_items = np.unique(np.concatenate([self.tr_c, self.tr_r]))
        if cfg.standardize:
            sub = x[torch.from_numpy(train_items)]
            self.mean = sub.mean(0)
            self.std = sub.std(0, unbiased=False).clamp_min(1e-6)
        else:
            self.mean = torch.zeros(x.shape[1], dtype=dtype)
            self.std = torch.ones(x.shape[1], dtype=dtype)
        self.x = (x - self.mean) / self.std
        # Members are centred by their mean reward over (at most 1024 of) the training items.
        if len(train_items) > 1024:
            pick = np.random.default_rng([int(seed), 11]).choice(len(train_items), 1024, replace=False)
            train_items = train_items[np.sort(pick)]
        self.offset_items = torch.from_numpy(train_items)
        widths = cfg.layer_widths()
        feature_dim = widths[-1] if widths and cfg.features == "last_hidden" else x.shape[1]
        self.losses = [build_loss(objective, aux, feature_dim=feature_dim) for _ in range(self.k)]
        if self.losses[0].layout != "pairs":
            raise ConfigError(f"objective '{self.losses[0].main.name}' reads single responses with targets: "
                              f"use fit_pointwise_head (rewardlab.heads.pointwise), not fit_head")
        probe = self.losses[0]
        self.pointwise = probe.pointwise
        self.shared_loss = (probe.main.name in MEAN_OBJECTIVES and not len(probe.aux)
                            and "weight" not in cols)
        if self.pointwise and cols:
            raise ConfigError("per-pair columns are not supported with a pointwise objective on heads")
        self.needs_features = probe.needs_features
        self.model = EnsembleMLP(x.shape[1], cfg.layer_widths(), seeds).to(dtype)
        self.rngs = [np.random.default_rng([int(s), 1]) for s in seeds]

    # -- loss of all active members on one batch (sum of the members' losses)
    def _loss(self, losses: list[Loss], r_c: Tensor, r_r: Tensor, h_c, h_r, cols: dict[str, Tensor],
              labels: Tensor | None = None) -> Tensor:
        k = r_c.shape[0]
        if self.pointwise:
            r = r_c  # [k, B] single responses; labels [k, B]
            if self.shared_loss:
                total, _ = losses[0](LossInputs(r[labels], r[~labels]))
                return total * k
            return sum(losses[j](LossInputs(r[j][labels[j]], r[j][~labels[j]]))[0] for j in range(k))
        if self.shared_loss:
            flat = {name: v.reshape(-1) for name, v in cols.items()}
            total, _ = losses[0](LossInputs(r_c.reshape(-1), r_r.reshape(-1), columns=flat))
            return total * k
        out = 0.0
        for j in range(k):
            out = out + losses[j](LossInputs(
                r_c[j], r_r[j], None if h_c is None else h_c[j], None if h_r is None else h_r[j],
                {name: v[j] for name, v in cols.items()}))[0]
        return out

    @torch.no_grad()
    def _val_losses(self, model: EnsembleMLP, losses: list[Loss]) -> list[float]:
        if not hasattr(self, "_va"):
            items, inverse = np.unique(np.concatenate([self.va_c, self.va_r]), return_inverse=True)
            n = len(self.va_c)
            self._va = (torch.from_numpy(items), torch.from_numpy(inverse[:n]), torch.from_numpy(inverse[n:]))
        items, ic, ir = self._va
        r = model(self.x[items])  # [k, m_val]: each validation item once, shared by all members
        h = self._features(model, self.x[items]) if self.needs_features else None
        cols = {} if self.pointwise else self.va_cols
        out = []
        for j, loss in enumerate(losses):
            loss.eval()
            h_c, h_r = (None, None) if h is None else (h[j][ic], h[j][ir])
            value, _ = loss(LossInputs(r[j][ic], r[j][ir], h_c, h_r, cols))
            out.append(float(value))
            loss.train()
        return out

    def _features(self, model: EnsembleMLP, x: Tensor) -> Tensor:
        """h ``[k, n, d]`` of rows ``x`` (``[k, n, d_in]`` or shared ``[n, d_in]``): the last
        hidden layer (``features: last_hidden``) or the standardised input (``input``)."""
        if self.cfg.features == "input":
            return x if x.dim() == 3 else x.expand(model.members, *x.shape)
        return model.hidden(x)

    def _rewards(self, model: EnsembleMLP, items: np.ndarray, full: bool) -> Tensor:
        """Rewards ``[k, n]`` of the item indices ``[k, n]`` of each member's batch.

        Mini-batches: every row through the member's head. Full batches (every member sees all
        training pairs each step): pairs drawn from a pool share items, so each distinct
        training item goes through the heads once (rows shared by all members) and the pairs
        read their rewards from there; several times less arithmetic when the pool is small.
        """
        if not full:
            return model(self.x[torch.from_numpy(items)])
        if not hasattr(self, "_full"):
            uniq = np.unique(items[0])
            lookup = np.full(int(uniq.max()) + 1, -1, dtype=np.int64)
            lookup[uniq] = np.arange(len(uniq))
            self._full = (self.x[torch.from_numpy(uniq)], lookup)
        x_unique, lookup = self._full
        return torch.gather(model(x_unique), 1, torch.from_numpy(lookup[items]))

    def _meta_J(self, model: EnsembleMLP, step: int) -> Tensor:
        """Σ over members of J on step ``step``'s meta batch (each member's gradient is its own J's)."""
        meta, groups, mask = self.meta
        idx = torch.from_numpy(metarm.meta_batch_groups(len(groups), self.seed, step, meta.batch))
        g, m = groups[idx], mask[idx]  # [B, K]
        r = model(self.x[g.reshape(-1)])  # [k, B*K]: the same rows for every member
        k = r.shape[0]
        # members as more groups: the mean over k*B groups is (1/k) Σ_j J_j
        return metarm.difference_objective(r.reshape(k * len(g), -1), m.repeat(k, 1)) * k

    def _meta_ascent(self, model: EnsembleMLP, opt, step: int):
        """θ′ = θ + η∇J in place; returns what restores θ after the step's backward."""
        opt.zero_grad(set_to_none=True)

        def closure() -> float:
            J = self._meta_J(model, step)
            J.backward()
            return float(J.detach()) / model.members

        params, saved, value = metarm.ascend(model.parameters(), closure, self.meta[0].eta)
        self.meta_values.append(value)
        return params, saved

    def _optimizer(self, params) -> torch.optim.Optimizer:
        params = list(params)
        try:  # the fused kernel is several times faster on CPU (torch >= 2.4)
            return torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - older torch
            return torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def run(self) -> FittedHead:
        cfg, k = self.cfg, self.k
        model = self.model
        opt = self._optimizer(model.parameters())
        active = list(range(k))  # global member ids of the model's rows
        best = [p.detach().clone() for p in model.parameters()]  # best parameters, global member order
        best_loss = [float("inf")] * k
        best_epoch = [0] * k
        epochs_run = [0] * k
        bad = [0] * k
        monitor = cfg.val_fraction > 0 and len(self.va_c) > 0  # a validation loss to log
        early = monitor and cfg.early_stopping
        n_tr = len(self.tr_c)
        n_units = 2 * n_tr if self.pointwise else n_tr
        bs = 2 * cfg.batch_size if self.pointwise else cfg.batch_size
        if self.pointwise:
            unit_items = np.concatenate([self.tr_c, self.tr_r])
            unit_labels = np.concatenate([np.ones(n_tr, bool), np.zeros(n_tr, bool)])
        full = bs >= n_units  # every member's batch holds all training pairs
        steps, t0 = 0, time.perf_counter()
        history: list[list[float]] = []
        self.meta_values: list[float] = []  # J (mean over members) before each meta ascent
        for epoch in range(cfg.epochs):
            perms = np.stack([self.rngs[g].permutation(n_units) for g in active])  # [k_act, n_units]
            losses = [self.losses[g] for g in active]
            for start in range(0, n_units, bs):
                idx = perms[:, start:start + bs]
                restore = None
                if self.meta is not None and steps % self.meta[0].every == 0:
                    restore = self._meta_ascent(model, opt, steps)  # the loss below is taken at θ′
                if self.pointwise:
                    labels = torch.from_numpy(unit_labels[idx])
                    r = self._rewards(model, unit_items[idx], full)
                    loss = self._loss(losses, r, None, None, None, {}, labels)
                else:
                    b = idx.shape[1]
                    items = np.concatenate([self.tr_c[idx], self.tr_r[idx]], axis=1)  # [k, 2b]
                    r = self._rewards(model, items, full)
                    h_c = h_r = None
                    if self.needs_features:
                        hb = self._features(model, self.x[torch.from_numpy(items)])
                        h_c, h_r = hb[:, :b], hb[:, b:]
                    cols = {name: torch.from_numpy(v[idx]) for name, v in self.tr_cols.items()}
                    loss = self._loss(losses, r[:, :b], r[:, b:], h_c, h_r, cols)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if restore is not None:
                    metarm.restore(*restore)  # back to θ with the gradient taken at θ′
                opt.step()
                steps += 1
            for g in active:
                epochs_run[g] += 1
            if not monitor:
                continue
            vals = self._val_losses(model, losses)
            history.append([vals[active.index(g)] if g in active else None for g in range(k)])
            if not early:  # the paper's rule: log the validation loss, never stop, keep the last
                best_loss = [vals[active.index(g)] for g in range(k)]
                best_epoch = [epoch + 1] * k
                continue
            params = list(model.parameters())
            stop = []
            for row, g in enumerate(active):
                if vals[row] < best_loss[g] - cfg.min_delta:
                    best_loss[g], best_epoch[g], bad[g] = vals[row], epoch + 1, 0
                    for store, p in zip(best, params):
                        store[g].copy_(p.detach()[row])
                else:
                    bad[g] += 1
                    if bad[g] >= cfg.patience:
                        stop.append(row)
            if stop:
                keep = [row for row in range(len(active)) if row not in stop]
                active = [active[row] for row in keep]
                if not active:
                    break
                model, opt = self._compact(model, opt, keep)
        if not early:  # no validation, or early stopping off: keep the last parameters
            for store, p in zip(best, model.parameters()):
                store[torch.tensor(active)] = p.detach()
        n_layers = len(self.model.weights)
        final = EnsembleMLP.from_parameters(best[:n_layers], best[n_layers:])
        final.eval()
        with torch.no_grad():
            offsets = final(self.x[self.offset_items]).mean(1)
        seconds = time.perf_counter() - t0
        info = {"members": k, "epochs": epochs_run, "best_epoch": best_epoch,
                "best_val_loss": [None if not np.isfinite(v) else v for v in best_loss],
                "steps": steps, "train_seconds": seconds, "n_train_pairs": n_tr, "n_val_pairs": len(self.va_c),
                "history": history, "shared_loss": self.shared_loss}
        if self.meta is not None:
            info["meta"] = {"eta": self.meta[0].eta, "steps": len(self.meta_values),
                            "J_first": self.meta_values[0] if self.meta_values else None,
                            "J_last": self.meta_values[-1] if self.meta_values else None}
        if self.log:
            self.log(f"head {self.cfg.kind} x{k}: {steps} steps in {seconds:.1f} s, "
                     f"epochs {epochs_run}, best val loss {np.mean([v for v in best_loss if np.isfinite(v)] or [np.nan]):.4f}")
        return FittedHead(final, self.mean, self.std, offsets, cfg.aggregate, info)

    def _compact(self, model: EnsembleMLP, opt: torch.optim.Optimizer, keep: list[int]):
        """The model and optimizer restricted to the member rows ``keep`` (Adam state sliced)."""
        rows = torch.tensor(keep)
        new = EnsembleMLP.from_parameters([w.detach()[rows] for w in model.weights],
                                          [b.detach()[rows] for b in model.biases])
        new_opt = self._optimizer(new.parameters())
        for old_p, new_p in zip(model.parameters(), new.parameters()):
            state = opt.state.get(old_p)
            if state:
                new_opt.state[new_p] = {
                    name: (v.clone() if name == "step" else v[rows].clone()) for name, v in state.items()
                }
        return new, new_opt
