"""Reward heads on frozen embeddings: linear and MLP ensembles trained at once (METHODS §3).

An ensemble of k heads is one module whose parameters carry a leading member dimension
(``W: [k, d_in, d_out]``), evaluated with batched matrix products (``torch.baddbmm``), so k
members cost k times the arithmetic of one in a few large kernels rather than k small ones.
Members are independent: each has its own initialisation seed and its own data order, the
ensemble loss is the sum of the members' losses (so each member's gradient is its own), Adam
is elementwise and early stopping is per member (a stopped member's rows of parameters and
Adam state are dropped, so the others continue at the smaller cost). Member j of an ensemble
therefore trains like a single head built with member j's seed: the same arithmetic up to float
rounding, which BLAS does not promise to be the same for a batched and a single matrix product.
Adam magnifies such rounding along flat directions of a loss (BT's rewards are defined up to a
constant), so the equality is tested to ~1e-5 in float64 (``dtype``) and in float32 for losses
without flat directions (classification).

Batches: ``batch_size`` pairs per step (pointwise objectives: twice as many single responses).
A batch at least as large as the training set is a full batch; then each distinct training
item goes through the heads once per step and pairs read their rewards from there, several
times less arithmetic when pairs are drawn from a pool of responses (studies), as with the
paper's batch of 10240 on 10k pairs.

Training (METHODS §3): Adam (lr 1e-3), large batches, up to ``epochs`` epochs with early
stopping on the loss of a validation split of the training pairs (the same split for every
member; ``patience`` epochs without improvement stop a member, and its best epoch is kept).
Objectives come from the shared registry (``rewardlab.objectives``): pairwise objectives get
the rewards (r_c, r_r) and the head's input vectors as features (h_c, h_r) of each member's
pairs; a pointwise objective (``classification``) gets single responses, shuffled, chosen
labelled 1 and rejected 0. Inputs are standardised with the mean and std of the training items
(``standardize``). Aggregation over members: ``mean`` or ``min`` of the members' rewards, each
member centred by its mean reward over (up to 1024 of) the training items (a shift that changes
no member's ordering but makes rewards of BT members, defined up to a constant, comparable).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rewardlab.errors import ConfigError
from rewardlab.objectives import Loss, LossInputs, build_loss
from rewardlab.train import metarm

# Objectives whose loss is a plain mean of per-pair (or per-item) terms with no state: the sum of
# k members' means equals k times the mean over all members' pairs, so one call serves all.
_MEAN_OBJECTIVES = frozenset({"bt", "classification", "classification_paired", "hinge", "label_smoothing",
                              "adaptive_margin", "flip"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class GBDTConfig(_Strict):
    """LightGBM settings of a ``gbdt`` head (see ``rewardlab.models.gbdt``)."""

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
    widths: list[int] = [1024, 512]
    aggregate: Literal["mean", "min"] = "mean"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(1024, gt=0)
    epochs: int = Field(30, gt=0)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    standardize: bool = True
    dtype: Literal["float32", "float64"] = "float32"
    gbdt: GBDTConfig = GBDTConfig()

    def layer_widths(self) -> list[int]:
        """Hidden widths actually used: none for a linear head."""
        return [] if self.kind == "linear" else list(self.widths)


@dataclass
class HeadMeta:
    """MetaRM on a head (METHODS §4, ``rewardlab.train.metarm``): before every ``every``-th step,
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


def _as_meta(meta, n_items: int) -> tuple[HeadMeta, Tensor, Tensor] | None:
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
class EnsembleMLP(nn.Module):
    """k MLPs ``d → widths… → 1`` (ReLU) with member-leading parameters; none hidden = linear.

    ``forward(x)`` takes ``[k, n, d]`` (each member its own rows) or ``[n, d]`` (the same rows
    for every member) and returns rewards ``[k, n]``. Member j is initialised from
    ``torch.Generator().manual_seed(seeds[j])`` exactly as ``nn.Linear`` would (U(±1/√fan_in)
    for weights and biases), layer by layer, weight before bias, whatever k is.
    """

    def __init__(self, in_dim: int, widths: Sequence[int], seeds: Sequence[int]) -> None:
        super().__init__()
        dims = [int(in_dim), *[int(w) for w in widths], 1]
        k = len(seeds)
        weights, biases = [], []
        for a, b in zip(dims[:-1], dims[1:]):
            weights.append(torch.empty(k, a, b))
            biases.append(torch.empty(k, 1, b))
        for j, s in enumerate(seeds):
            g = torch.Generator().manual_seed(int(s))
            for w, bias in zip(weights, biases):
                bound = 1.0 / float(np.sqrt(w.shape[1]))
                w[j] = (torch.rand(w.shape[1:], generator=g) * 2 - 1) * bound
                bias[j] = (torch.rand(bias.shape[1:], generator=g) * 2 - 1) * bound
        self.weights = nn.ParameterList([nn.Parameter(w) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(b) for b in biases])
        self.dims = dims

    @classmethod
    def from_parameters(cls, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> EnsembleMLP:
        """A module holding (copies of) the given member-leading parameters, no initialisation."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.weights = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in weights])
        new.biases = nn.ParameterList([nn.Parameter(b.detach().clone()) for b in biases])
        new.dims = [int(weights[0].shape[1]), *[int(w.shape[2]) for w in weights]]
        return new

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: Tensor) -> Tensor:
        h = x
        *hidden, (w_out, b_out) = zip(self.weights, self.biases)
        for w, b in hidden:
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
            h = h.relu_()  # in place: baddbmm's backward does not need its output
        # The 1-wide output layer as a product and a row sum: a batched matrix-vector product
        # rounds differently for different k, this does not (member j's rewards are the same
        # numbers whether it trains alone or in an ensemble).
        return (h * w_out.transpose(1, 2)).sum(-1) + b_out.squeeze(-1)

    def flops_per_row(self) -> int:
        """Multiply-adds x 2 of one member's forward pass on one input row."""
        return int(sum(2 * a * b for a, b in zip(self.dims[:-1], self.dims[1:])))


# ---------------------------------------------------------------------- fitted head
@dataclass
class FittedHead:
    """A trained ensemble: ``predict(X)`` gives aggregated rewards, ``predict_members(X)`` each
    member's (centred) rewards; ``info`` holds per-member epochs and validation losses."""

    model: EnsembleMLP
    mean: Tensor
    std: Tensor
    offsets: Tensor
    aggregate: str
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def predict_members(self, X, *, chunk: int = 2048) -> np.ndarray:
        x = _as_tensor(X).to(self.mean.dtype)
        outs = []
        for s in range(0, len(x), chunk):
            outs.append(self.model((x[s:s + chunk] - self.mean) / self.std))
        r = torch.cat(outs, dim=1) if outs else torch.zeros(self.model.members, 0)
        return (r - self.offsets[:, None]).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        r = self.predict_members(X)
        return r.mean(0) if self.aggregate == "mean" else r.min(0)

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({"mean": self.mean, "std": self.std, "offsets": self.offsets})
        return out


def _as_tensor(X) -> Tensor:
    if isinstance(X, Tensor):
        return X.detach().to(torch.float32)
    arr = np.ascontiguousarray(X, dtype=np.float32)
    if not arr.flags.writeable:  # e.g. Ray's zero-copy arrays; torch wants writeable memory
        arr = arr.copy()
    return torch.from_numpy(arr)


# ---------------------------------------------------------------------- training
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
        from rewardlab.models.gbdt import fit_gbdt

        return fit_gbdt(X, chosen, rejected, objective=objective, aux=aux, config=cfg, seed=seed,
                        member_seeds=seeds, columns=columns, log=log)
    x = _as_tensor(X)
    if x.ndim != 2:
        raise ConfigError(f"X must be [items, dim], got shape {tuple(x.shape)}")
    if max(chosen.max(), rejected.max()) >= len(x) or min(chosen.min(), rejected.min()) < 0:
        raise ConfigError("pair indices out of range of X")
    trainer = _Trainer(x, chosen, rejected, objective, aux, cfg, seed, seeds, columns, log, _as_meta(meta, len(x)))
    # Small steps are dominated by threading overhead (and by waiting for descheduled threads
    # on a busy machine): train them on one thread. Results do not depend on the thread count
    # beyond float rounding.
    work = len(seeds) * 2 * min(cfg.batch_size, len(chosen)) * trainer.model.flops_per_row()
    with _threads(1 if work < _SMALL_STEP_FLOPS else None):
        return trainer.run()


_SMALL_STEP_FLOPS = 5e7


@contextlib.contextmanager
def _threads(n: int | None):
    """Run the block with ``n`` torch threads (None: unchanged), restoring the count after."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def split_pairs(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) pair indices: a seeded random ``val_fraction`` of the pairs, at least
    one pair on each side when ``val_fraction > 0`` and ``n >= 2``."""
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class _Trainer:
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
        self.losses = [build_loss(objective, aux, feature_dim=x.shape[1]) for _ in range(self.k)]
        probe = self.losses[0]
        self.pointwise = probe.pointwise
        self.shared_loss = (probe.main.name in _MEAN_OBJECTIVES and not len(probe.aux)
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
            h_c = self.x[torch.from_numpy(self.va_c)] if self.needs_features else None
            h_r = self.x[torch.from_numpy(self.va_r)] if self.needs_features else None
            self._va = (torch.from_numpy(items), torch.from_numpy(inverse[:n]), torch.from_numpy(inverse[n:]),
                        h_c, h_r)
        items, ic, ir, h_c, h_r = self._va
        r = model(self.x[items])  # [k, m_val]: each validation item once, shared by all members
        cols = {} if self.pointwise else self.va_cols
        out = []
        for j, loss in enumerate(losses):
            loss.eval()
            value, _ = loss(LossInputs(r[j][ic], r[j][ir], h_c, h_r, cols))
            out.append(float(value))
            loss.train()
        return out

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
        early = cfg.val_fraction > 0 and len(self.va_c) > 0
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
                        xb = self.x[torch.from_numpy(items)]
                        h_c, h_r = xb[:, :b], xb[:, b:]
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
            if not early:
                continue
            vals = self._val_losses(model, losses)
            history.append([vals[active.index(g)] if g in active else None for g in range(k)])
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
        if not early:  # no validation: keep the last parameters
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
