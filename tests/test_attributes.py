"""Pointwise heads and multi-attribute models on embeddings (issue 24): stage 1 ridge against
scikit-learn and a closed form, recovery of known linear maps, stage 2 gating on a simulated
two-task set, verbosity decorrelation."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score

from rewardlab.errors import ConfigError
from rewardlab.heads.attributes import decorrelation_slopes, fit_attribute_ridge, fit_gating
from rewardlab.heads.pointwise import fit_pointwise_head, group_batches, split_groups


def _linear_data(n=600, d=20, k=3, noise=0.05, seed=0, nan_fraction=0.3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(k, d)) / np.sqrt(d)  # unit-variance attributes
    b = rng.normal(size=k)
    Y = X @ W.T + b + noise * rng.normal(size=(n, k))
    Y[rng.random((n, k)) < nan_fraction] = np.nan
    return X, Y, W, b


def test_stage1_equals_sklearn_ridge_on_each_attributes_labelled_rows():
    X, Y, _, _ = _linear_data(noise=1.0)
    fit = fit_attribute_ridge(X, Y, ["a", "b", "c"], alphas=[3.0])
    for k in range(3):
        rows = ~np.isnan(Y[:, k])
        ref = Ridge(alpha=3.0).fit(X[rows], Y[rows, k])
        np.testing.assert_allclose(fit.coef[k], ref.coef_, rtol=1e-8, atol=1e-10)
        assert fit.intercept[k] == pytest.approx(ref.intercept_, abs=1e-10)
        # and the closed form on centred data: (Xc'Xc + αI)^-1 Xc'yc
        Xr, yr = X[rows], Y[rows, k]
        Xc, yc = Xr - Xr.mean(0), yr - yr.mean()
        w = np.linalg.solve(Xc.T @ Xc + 3.0 * np.eye(X.shape[1]), Xc.T @ yc)
        np.testing.assert_allclose(fit.coef[k], w, rtol=1e-7, atol=1e-9)
        assert fit.intercept[k] == pytest.approx(yr.mean() - Xr.mean(0) @ w, abs=1e-9)
    np.testing.assert_allclose(fit.predict(X[:5]), X[:5] @ fit.coef.T + fit.intercept)


def test_alpha_chosen_by_validation():
    rng = np.random.default_rng(1)
    n, d = 120, 100  # few rows, many dimensions, pure noise target: strong shrinkage wins
    X = rng.normal(size=(n, d))
    noisy = rng.normal(size=(n, 1))
    clean = X[:, :1] * 2.0  # a clean linear target: little shrinkage wins
    fit = fit_attribute_ridge(X, np.hstack([noisy, clean]), ["noise", "clean"], alphas=[1e-3, 1.0, 1e4])
    assert fit.alpha[0] == 1e4 and fit.alpha[1] < 1e4
    r2 = fit.info["val_r2"]["clean"]
    assert fit.alpha[1] == float(max(r2, key=r2.get))


def test_stage1_recovers_known_linear_maps_in_seconds():
    X, Y, W, b = _linear_data(n=5000, d=384, k=5, noise=0.3, seed=2)
    t0 = time.perf_counter()
    fit = fit_attribute_ridge(X[:4000], Y[:4000], [f"a{i}" for i in range(5)])
    seconds = time.perf_counter() - t0
    truth = X[4000:] @ W.T + b
    pred = fit.predict(X[4000:])
    r2 = 1 - ((truth - pred) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)
    assert (r2 > 0.95).all(), r2
    assert seconds < 10, seconds


def test_stage1_errors():
    X, Y, _, _ = _linear_data()
    with pytest.raises(ConfigError, match="names"):
        fit_attribute_ridge(X, Y, ["a", "b"])
    Y2 = Y.copy()
    Y2[:, 1] = np.nan
    with pytest.raises(ConfigError, match="'b' has 0 labelled rows"):
        fit_attribute_ridge(X, Y2, ["a", "b", "c"])


def test_decorrelation_slopes_zero_the_correlation():
    rng = np.random.default_rng(3)
    v = rng.normal(size=500)
    A = np.stack([0.8 * v + rng.normal(size=500), -0.3 * v + rng.normal(size=500), v], axis=1)
    lam = decorrelation_slopes(A, 2)
    assert lam[2] == 0
    adjusted = A - A[:, 2:3] * lam
    for k in (0, 1):
        assert abs(np.corrcoef(adjusted[:, k], v)[0, 1]) < 1e-10
        assert abs(np.corrcoef(A[:, k], v)[0, 1]) > 0.2  # it was correlated before


def _two_tasks(n=1500, d=16, seed=0):
    """Task A prompts near e_0, task B near e_1; in A the chosen response has the higher
    attribute 0, in B the higher attribute 1 (BT-sampled preferences)."""
    rng = np.random.default_rng(seed)
    task = rng.integers(0, 2, size=n)
    P = rng.normal(scale=0.3, size=(n, d))
    P[np.arange(n), task] += 2.0
    A1, A2 = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))  # attribute 2 is irrelevant
    u1, u2 = A1[np.arange(n), task], A2[np.arange(n), task]
    first = rng.random(n) < 1 / (1 + np.exp(-3 * (u1 - u2)))
    Ac = np.where(first[:, None], A1, A2)
    Ar = np.where(first[:, None], A2, A1)
    return P, Ac, Ar, task


def test_gating_recovers_task_dependent_weights():
    P, Ac, Ar, task = _two_tasks()
    gate = fit_gating(P, Ac, Ar, ["a0", "a1", "noise"], hidden=(32,), lr=1e-2, epochs=400, seed=0)
    Pt, _, _, task_t = _two_tasks(n=400, seed=1)
    w = gate.weights(Pt)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert w[task_t == 0, 0].mean() > 0.8 and w[task_t == 1, 1].mean() > 0.8, (
        w[task_t == 0].mean(0), w[task_t == 1].mean(0))
    assert w[:, 2].mean() < 0.1


def test_gating_with_decorrelation_leaves_verbosity_out():
    P, Ac, Ar, _ = _two_tasks(n=300)
    gate = fit_gating(P, Ac, Ar, ["a0", "a1", "length"], decorrelate="length", hidden=(), epochs=50, seed=0)
    w = gate.weights(P[:10])
    assert (w[:, 2] == 0).all()
    tensors = gate.tensors()
    assert tensors["decorrelation"][2] == 0 and tensors["mask"].tolist() == [1.0, 1.0, 0.0]
    # the reward recomputed from the saved tensors alone (what docs/attributes.md shows)
    p, a = torch.as_tensor(P[:10], dtype=torch.float32), torch.as_tensor(Ac[:10], dtype=torch.float32)
    h = (p - tensors["prompt_mean"]) / tensors["prompt_std"]
    logits = (h @ tensors["net.0.weight"].T + tensors["net.0.bias"]).masked_fill(tensors["mask"] == 0, -torch.inf)
    adj = a - a[:, 2:3] * tensors["decorrelation"]
    r = tensors["scale"] * (torch.softmax(logits, -1) * adj).sum(-1)
    np.testing.assert_allclose(r.numpy(), gate.reward(P[:10], Ac[:10]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="not an attribute"):
        fit_gating(P, Ac, Ar, ["a0", "a1", "length"], decorrelate="verbosity")


# ----------------------------------------------------------------------------- pointwise heads
def test_group_split_and_batches_keep_groups_whole():
    group = np.repeat(np.arange(20), 4)
    tr, va = split_groups(group, 0.25, seed=0)
    assert not set(group[tr]) & set(group[va]) and len(set(group[va])) == 5
    for batch in group_batches(group, tr, 10, np.random.default_rng(0)):
        for g in set(group[batch]):
            assert (group[batch] == g).sum() == 4


@pytest.mark.parametrize("objective", ["correctness", "scaled_bt"])
def test_correctness_heads_rank_correct_solutions(objective):
    rng = np.random.default_rng(4)
    n, d = 2000, 10
    X = rng.normal(size=(n, d))
    logit = 2.5 * X[:, 0] - 1.5 * X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    group = np.repeat(np.arange(n // 4), 4)
    head = fit_pointwise_head(X[:1600], y[:1600], group[:1600], objective=objective,
                              config={"kind": "linear", "lr": 1e-2, "batch_size": 64, "epochs": 40}, seed=0)
    r = head.predict(X[1600:])
    assert r.shape == (400, 1)
    assert roc_auc_score(y[1600:], r[:, 0]) > 0.8


def test_regression_head_with_masked_attributes():
    X, Y, W, b = _linear_data(n=1500, d=8, k=2, noise=0.1, seed=5)
    head = fit_pointwise_head(X[:1200], Y[:1200], np.arange(1200), objective="regression",
                              config={"kind": "linear", "lr": 1e-2, "batch_size": 128, "epochs": 60},
                              names=["x", "y"], seed=0)
    truth = X[1200:] @ W.T + b
    pred = head.predict(X[1200:])
    r2 = 1 - ((truth - pred) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)
    assert head.names == ("x", "y") and (r2 > 0.95).all(), r2


def test_pointwise_head_refuses_a_pair_objective():
    with pytest.raises(ConfigError, match="reads pairs"):
        fit_pointwise_head(np.zeros((4, 2)), np.zeros(4), np.arange(4), objective="bt")
