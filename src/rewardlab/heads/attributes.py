"""Multi-attribute reward models on frozen embeddings, after ArmoRM (Wang et al. 2024, RLHFlow):

- **stage 1** (:func:`fit_attribute_ridge`): one ridge regression per attribute from the
  response embedding to the attribute's value, on that attribute's labelled rows only (NaN =
  unlabelled), ``alpha`` chosen per attribute by R² on a validation split by prompt group and
  the model refitted on all labelled rows. The closed form is hand-written so that every alpha
  comes from one eigendecomposition of the centred Gram matrix (scikit-learn's ``Ridge`` would
  refactorise per alpha); tests check it against ``sklearn.linear_model.Ridge``.
- **stage 2** (:func:`fit_gating`): a prompt-conditioned gating network ``g(h_prompt) →
  softmax weights over the attributes`` mixing the (frozen) stage-1 scores into one reward
  ``β · Σ_k w_k(x) · a'_k``, trained with the registry's BT loss on preference pairs. With
  ``decorrelate`` naming a verbosity attribute v, every other attribute is first adjusted as
  ``a'_k = a_k − λ_k a_v`` with λ_k the least-squares slope of a_k on a_v over the reference
  responses, so each adjusted attribute has zero (Pearson) correlation with verbosity there
  (ArmoRM targets zero Spearman correlation; the Pearson slope is its closed-form stand-in) and
  v itself is left out of the mixture.

Everything a plain-torch user needs to recompute the gated reward is in
:meth:`FittedGating.tensors` (see docs/attributes.md for the one-liner).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from rewardlab.errors import ConfigError
from rewardlab.heads.mlp import as_tensor
from rewardlab.heads.pointwise import split_groups
from rewardlab.heads.trainer import threads
from rewardlab.objectives import LossInputs, build_loss

DEFAULT_ALPHAS = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0)


# ----------------------------------------------------------------------------- stage 1
@dataclass
class AttributeRidge:
    """Stage 1: ``predict(X) = X @ coef.T + intercept``, ``[n, K]``, one column per name."""

    names: tuple[str, ...]
    coef: np.ndarray        # [K, d]
    intercept: np.ndarray   # [K]
    alpha: np.ndarray       # [K] the chosen alpha per attribute
    info: dict = field(default_factory=dict)

    def predict(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef.T + self.intercept


def ridge_path(X, y, alphas: Sequence[float]) -> list[tuple[np.ndarray, float]]:
    """(coef [d], intercept) of ridge regression with an (unpenalised) intercept for each alpha:
    w = (Xc'Xc + αI)⁻¹ Xc'yc on centred data, b = ȳ − x̄·w, as ``sklearn.linear_model.Ridge``.
    One eigendecomposition Xc'Xc = V diag(s) V' serves every alpha: w = V diag(1/(s+α)) V'Xc'yc."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean, y_mean = X.mean(0), y.mean()
    Xc = X - x_mean
    s, V = np.linalg.eigh(Xc.T @ Xc)
    s = np.clip(s, 0.0, None)
    proj = V.T @ (Xc.T @ (y - y_mean))
    out = []
    for a in alphas:
        w = V @ (proj / (s + a))
        out.append((w, float(y_mean - x_mean @ w)))
    return out


def ridge(X, y, alpha: float) -> tuple[np.ndarray, float]:
    """(coef [d], intercept) of ridge regression with an intercept (see :func:`ridge_path`)."""
    return ridge_path(X, y, [alpha])[0]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")


def fit_attribute_ridge(
    X,
    Y,
    names: Sequence[str],
    *,
    group=None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> AttributeRidge:
    """Ridge per attribute on its labelled rows of ``Y [n, K]`` (NaN = unlabelled).

    ``alpha`` per attribute: the best validation R² over ``alphas`` on a split by ``group``
    (rows default to their own group); then refitted on all labelled rows. ``info`` holds the
    validation R² per alpha and attribute, rows used, and seconds.
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # d x d factorisations up to a few thousand are milliseconds on one thread; several BLAS
    # threads on a busy machine wait on each other (eigh of 384 x 384: 8 s on 2 threads under
    # load vs 0.1 s on one).
    with threadpool_limits(limits=1 if np.shape(X)[-1] <= 2048 else None, user_api="blas"):
        return _fit_attribute_ridge(X, Y, names, group, alphas, val_fraction, seed)


def _fit_attribute_ridge(X, Y, names, group, alphas, val_fraction, seed) -> AttributeRidge:
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    names = tuple(names)
    if X.ndim != 2 or len(X) != len(Y) or Y.shape[1] != len(names):
        raise ConfigError(f"X [n, d], Y [n, K] and K names must agree, got {X.shape}, {Y.shape}, {len(names)}")
    if not alphas or any(not a > 0 for a in alphas):
        raise ConfigError(f"alphas must be positive, got {list(alphas)}")
    g = np.arange(len(X)) if group is None else np.asarray(group)
    coef, intercept, chosen = np.zeros((len(names), X.shape[1])), np.zeros(len(names)), np.zeros(len(names))
    info: dict = {"val_r2": {}, "n_labelled": {}}
    for k, name in enumerate(names):
        rows = np.flatnonzero(~np.isnan(Y[:, k]))
        if len(rows) < 2:
            raise ConfigError(f"attribute '{name}' has {len(rows)} labelled rows; ridge needs at least 2")
        info["n_labelled"][name] = int(len(rows))
        tr, va = split_groups(g[rows], val_fraction, seed)
        scores = {}
        if len(va) >= 2 and len(alphas) > 1:
            for a, (w, b) in zip(alphas, ridge_path(X[rows[tr]], Y[rows[tr], k], alphas)):
                scores[a] = _r2(Y[rows[va], k], X[rows[va]] @ w + b)
            finite = {a: s for a, s in scores.items() if np.isfinite(s)}
            best = max(finite, key=finite.get) if finite else alphas[0]
        else:
            best = alphas[0]
        info["val_r2"][name] = {str(a): s for a, s in scores.items()}
        coef[k], intercept[k] = ridge(X[rows], Y[rows, k], best)
        chosen[k] = best
    info["seconds"] = time.perf_counter() - t0
    return AttributeRidge(names, coef, intercept, chosen, info)


# ----------------------------------------------------------------------------- stage 2
class GatingNet(nn.Module):
    """``h_prompt [n, d] → softmax(logits / temperature) [n, K]``; attributes outside ``mask``
    (verbosity when decorrelated) get weight 0."""

    def __init__(self, in_dim: int, k: int, hidden: Sequence[int] = (256,), temperature: float = 1.0,
                 mask: Tensor | None = None) -> None:
        super().__init__()
        dims = [in_dim, *hidden, k]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-2], dims[-1]))
        self.net = nn.Sequential(*layers)
        self.temperature = temperature
        self.register_buffer("mask", torch.ones(k, dtype=torch.bool) if mask is None else mask.bool())

    def forward(self, h: Tensor) -> Tensor:
        logits = self.net(h) / self.temperature
        return torch.softmax(logits.masked_fill(~self.mask, float("-inf")), dim=-1)


@dataclass
class FittedGating:
    """Stage 2: ``reward(P, A) = scale · Σ_k weights(P)_k · (A − A[:, v] λ)_k``."""

    net: GatingNet
    names: tuple[str, ...]
    decorrelation: Tensor        # [K] λ_k (0 when off; the verbosity attribute's own is 0)
    scale: Tensor                # β, learnt
    prompt_mean: Tensor
    prompt_std: Tensor
    verbosity: str | None = None
    info: dict = field(default_factory=dict)

    def adjusted(self, A: Tensor) -> Tensor:
        if self.verbosity is None:
            return A
        v = self.names.index(self.verbosity)
        return A - A[:, v:v + 1] * self.decorrelation

    def weights_t(self, P: Tensor) -> Tensor:
        return self.net((P - self.prompt_mean) / self.prompt_std)

    def reward_t(self, P: Tensor, A: Tensor) -> Tensor:
        return self.scale * (self.weights_t(P) * self.adjusted(A)).sum(-1)

    @torch.no_grad()
    def weights(self, P) -> np.ndarray:
        return self.weights_t(as_tensor(P)).double().numpy()

    @torch.no_grad()
    def reward(self, P, A) -> np.ndarray:
        return self.reward_t(as_tensor(P), as_tensor(A)).double().numpy()

    def tensors(self) -> dict[str, Tensor]:
        """Everything the gated reward needs, as plain tensors (for safetensors)."""
        out = {f"net.{k}": v.detach().contiguous() for k, v in self.net.net.state_dict().items()}
        out.update({"mask": self.net.mask.to(torch.float32), "decorrelation": self.decorrelation.detach(),
                    "scale": self.scale.detach().reshape(1), "prompt_mean": self.prompt_mean,
                    "prompt_std": self.prompt_std})
        return {k: v.float().contiguous() for k, v in out.items()}


def decorrelation_slopes(A: np.ndarray, v: int) -> np.ndarray:
    """λ_k = cov(a_k, a_v) / var(a_v) over the rows of ``A [n, K]`` (λ_v = 0): a_k − λ_k a_v then
    has zero sample correlation with a_v."""
    A = np.asarray(A, dtype=np.float64)
    av = A[:, v] - A[:, v].mean()
    var = float(av @ av)
    if var == 0:
        raise ConfigError("the verbosity attribute is constant on the reference rows; nothing to decorrelate")
    lam = ((A - A.mean(0)).T @ av) / var
    lam[v] = 0.0
    return lam


def fit_gating(
    P,
    A_chosen,
    A_rejected,
    names: Sequence[str],
    *,
    hidden: Sequence[int] = (256,),
    temperature: float = 1.0,
    decorrelate: str | None = None,
    reference=None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    epochs: int = 300,
    patience: int = 20,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> FittedGating:
    """Train the gating network on pairs: ``P [n, dp]`` the prompt embedding of each pair,
    ``A_chosen``/``A_rejected [n, K]`` the stage-1 attribute scores of its two responses.

    Full-batch AdamW on BT (the registry's ``bt``), early stopping on a validation split of the
    pairs (``patience`` epochs), best epoch kept. ``decorrelate`` names the verbosity attribute
    (see the module doc); ``reference`` ``[m, K]`` are the scores the slopes are computed on
    (default: every chosen and rejected row).
    """
    names = tuple(names)
    P, Ac, Ar = as_tensor(P), as_tensor(A_chosen), as_tensor(A_rejected)
    k = len(names)
    if P.ndim != 2 or Ac.shape != (len(P), k) or Ar.shape != Ac.shape:
        raise ConfigError(f"P [n, d] and A_chosen/A_rejected [n, {k}] must agree, got {tuple(P.shape)}, "
                          f"{tuple(Ac.shape)}, {tuple(Ar.shape)}")
    if decorrelate is not None and decorrelate not in names:
        raise ConfigError(f"decorrelate: '{decorrelate}' is not an attribute ({', '.join(names)})")
    lam = torch.zeros(k)
    mask = torch.ones(k, dtype=torch.bool)
    if decorrelate is not None:
        v = names.index(decorrelate)
        ref = np.concatenate([Ac.numpy(), Ar.numpy()]) if reference is None else np.asarray(reference)
        lam = torch.as_tensor(decorrelation_slopes(ref, v), dtype=torch.float32)
        mask[v] = False
    torch.manual_seed(seed)
    net = GatingNet(P.shape[1], k, hidden, temperature, mask)
    scale = nn.Parameter(torch.ones(()))
    gate = FittedGating(net, names, lam, scale, P.mean(0), P.std(0).clamp_min(1e-6), decorrelate)
    n = len(P)
    perm = np.random.default_rng([int(seed), 17]).permutation(n)
    n_val = min(max(int(round(val_fraction * n)), 1), n - 1) if val_fraction > 0 and n >= 2 else 0
    va, tr = torch.from_numpy(np.sort(perm[:n_val])), torch.from_numpy(np.sort(perm[n_val:]))
    loss_fn = build_loss("bt")
    opt = torch.optim.AdamW([*net.parameters(), scale], lr=lr, weight_decay=weight_decay)

    with threads(1 if n * P.shape[1] * (hidden[0] if hidden else k) < 5e7 else None):
        history = _train_gating(gate, net, scale, loss_fn, opt, P, Ac, Ar, tr, va, n_val, epochs, patience)
    net.eval()
    gate.info = {"epochs": len(history) or epochs, "best_val_loss": min(history, default=float("nan")),
                 "n_train": len(tr), "n_val": n_val}
    return gate


def _train_gating(gate, net, scale, loss_fn, opt, P, Ac, Ar, tr, va, n_val, epochs, patience) -> list[float]:
    """Full-batch epochs with early stopping; the best epoch's weights (and scale) are kept."""
    best, best_state, bad, history = float("inf"), None, 0, []

    def loss_on(idx):
        return loss_fn(LossInputs(gate.reward_t(P[idx], Ac[idx]), gate.reward_t(P[idx], Ar[idx])))[0]

    for epoch in range(epochs):
        net.train()
        loss = loss_on(tr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if n_val:
            net.eval()
            with torch.no_grad():
                val = float(loss_on(va))
            history.append(val)
            if val < best:
                best, bad = val, 0
                best_state = ({k2: v.clone() for k2, v in net.state_dict().items()}, scale.detach().clone())
            else:
                bad += 1
                if bad >= patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state[0])
        with torch.no_grad():
            scale.copy_(best_state[1])
    return history
