"""Reward heads on embeddings: vectorised ensembles, GBDT (rewardlab.heads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.errors import ConfigError
from rewardlab.heads import EnsembleMLP, HeadConfig, fit_head, member_seed


def _data(m=240, d=10, n=400, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d)).astype(np.float32)
    golden = X @ rng.normal(size=d) + np.sin(2 * X[:, 0])
    a = rng.integers(0, m, n)
    b = (a + 1 + rng.integers(0, m - 1, n)) % m  # never the same item twice in a pair
    hi, lo = np.where(golden[a] > golden[b], a, b), np.where(golden[a] > golden[b], b, a)
    flip = rng.random(n) < noise
    return X, golden, np.where(flip, lo, hi), np.where(flip, hi, lo)


@pytest.mark.parametrize("kind,objective,dtype", [
    ("mlp", "bt", "float64"), ("mlp", "normbt", "float64"), ("linear", "hinge", "float64"),
    ("mlp", "classification", "float32"), ("linear", "bt", "float32"),
])
def test_vectorised_ensemble_equals_independent_heads(kind, objective, dtype):
    """Member j of a k-member ensemble trains exactly like a head trained alone with member j's
    seed. BT-type losses are invariant to shifting all rewards, so Adam turns float32 rounding
    differences between batched and single matrix products (which BLAS kernels do not promise
    to avoid) into visible ones along those flat directions; float64 shows the equality itself."""
    X, _, c, r = _data(n=160, noise=0.2)
    # few noisy pairs, a high learning rate and patience 1: members stop at different epochs, so
    # the ensemble drops stopped members mid-training (their rows of parameters and Adam state)
    cfg = HeadConfig(kind=kind, members=4, widths=[32, 16], batch_size=32, epochs=15, patience=1,
                     val_fraction=0.25, lr=1e-2, dtype=dtype)
    ens = fit_head(X, c, r, objective=objective, config=cfg, seed=5)
    joint = ens.predict_members(X)
    for j in range(4):
        alone = fit_head(X, c, r, objective=objective, config=cfg, seed=5, member_seeds=[member_seed(5, j)])
        np.testing.assert_allclose(alone.predict_members(X)[0], joint[j], atol=1e-5, rtol=0)
        assert alone.info["epochs"][0] == ens.info["epochs"][j]
        assert alone.info["best_val_loss"][0] == pytest.approx(ens.info["best_val_loss"][j], abs=1e-6)
    assert len(set(ens.info["epochs"])) > 1


def test_full_batch_path_equals_independent_heads():
    """Full batches run each distinct pool item through the heads once (rows shared by members)."""
    X, _, c, r = _data(m=60, n=300)
    cfg = HeadConfig(kind="mlp", members=3, widths=[16], batch_size=10_000, epochs=8, dtype="float64")
    ens = fit_head(X, c, r, objective="bt", config=cfg, seed=2)
    for j in range(3):
        alone = fit_head(X, c, r, objective="bt", config=cfg, seed=2, member_seeds=[member_seed(2, j)])
        np.testing.assert_allclose(alone.predict_members(X)[0], ens.predict_members(X)[j], atol=1e-8)
    from rewardlab.heads.trainer import Trainer

    t = Trainer(torch.from_numpy(X), c, r, "bt", None, cfg, 2, [1, 2, 3], None, None)
    items = np.stack([np.concatenate([t.tr_c, t.tr_r])[np.random.default_rng(j).permutation(2 * len(t.tr_c))]
                      for j in range(3)])
    with torch.no_grad():  # the shared-rows path gives each row the reward it would get on its own
        torch.testing.assert_close(t._rewards(t.model, items, True), t._rewards(t.model, items, False))


def test_ensemble_module_is_batched_matmuls_over_members():
    model = EnsembleMLP(6, [5, 4], seeds=[1, 2, 3])
    assert [tuple(w.shape) for w in model.weights] == [(3, 6, 5), (3, 5, 4), (3, 4, 1)]
    x = torch.randn(7, 6)
    shared = model(x)  # the same rows for every member
    per_member = model(x.expand(3, 7, 6).contiguous())
    assert shared.shape == (3, 7)
    torch.testing.assert_close(shared, per_member)
    one = EnsembleMLP(6, [5, 4], seeds=[2])  # member init depends on its seed only
    torch.testing.assert_close(one(x)[0], shared[1])


def test_aggregation_and_early_stopping_bookkeeping():
    X, golden, c, r = _data()
    cfg = HeadConfig(kind="mlp", members=3, widths=[16], batch_size=64, epochs=6, patience=2)
    mean_head = fit_head(X, c, r, config=cfg, seed=0)
    members = mean_head.predict_members(X)
    np.testing.assert_allclose(mean_head.predict(X), members.mean(0))
    min_head = fit_head(X, c, r, config=cfg.model_copy(update={"aggregate": "min"}), seed=0)
    np.testing.assert_allclose(min_head.predict(X), members.min(0))
    info = mean_head.info
    assert all(1 <= b <= e <= 6 for b, e in zip(info["best_epoch"], info["epochs"]))
    assert len(info["history"]) == max(info["epochs"])


@pytest.mark.parametrize("objective", ["bt", "classification"])
def test_heads_learn_the_ordering(objective):
    X, golden, c, r = _data(noise=0.0, n=600)
    cfg = HeadConfig(kind="mlp", members=2, widths=[32], batch_size=128, epochs=40, patience=5, lr=3e-3)
    head = fit_head(X, c, r, objective=objective, config=cfg, seed=1)
    p = head.predict(X)
    assert np.mean(p[c] > p[r]) > 0.85
    assert np.corrcoef(p, golden)[0, 1] > 0.8


@pytest.mark.parametrize("objective", ["classification", "bt", "normbt"])
def test_gbdt_head(objective):
    pytest.importorskip("lightgbm")
    X, golden, c, r = _data(noise=0.0, n=600)
    cfg = HeadConfig.model_validate({"kind": "gbdt", "members": 2, "aggregate": "min",
                                     "gbdt": {"n_estimators": 150, "num_threads": 1}})
    head = fit_head(X, c, r, objective=objective, config=cfg, seed=0)
    p = head.predict(X)
    assert np.mean(p[c] > p[r]) > 0.8
    np.testing.assert_allclose(p, head.predict_members(X).min(0))
    assert head.info["objective_path"] == ("native_binary" if objective == "classification" else "registry_autograd")


def test_gbdt_registry_derivatives_are_bt_analytic():
    from rewardlab.heads.gbdt import _pair_derivatives
    from rewardlab.objectives import build_loss

    rng = np.random.default_rng(0)
    preds = rng.normal(size=6)
    pc, pr = np.array([0, 1, 2]), np.array([3, 4, 5])
    gc, gr, hcc, hrr = _pair_derivatives(build_loss("bt").double(), preds, pc, pr, None, None, {}, 3)
    d = preds[pc] - preds[pr]
    sig = 1 / (1 + np.exp(-d))
    np.testing.assert_allclose(gc, -(1 - sig))
    np.testing.assert_allclose(gr, 1 - sig)
    np.testing.assert_allclose(hcc, sig * (1 - sig))
    np.testing.assert_allclose(hrr, sig * (1 - sig))


def test_bad_inputs_are_config_errors():
    X, _, c, r = _data()
    with pytest.raises(ConfigError):
        fit_head(X, c, r, objective="nonsense", config={"kind": "linear"})
    with pytest.raises(ConfigError):
        fit_head(X, c, r[:-1], config={"kind": "linear"})
    with pytest.raises(ConfigError):
        fit_head(X, c + 1000, r, config={"kind": "linear"})
    with pytest.raises(Exception):
        HeadConfig(kind="forest")


def test_normbt_on_heads_reads_the_last_hidden_layer():
    """features: last_hidden (default) gives NormBT the representation the head's output layer
    reads (relu(x W1 + b1) for one hidden layer; the input for a linear head), not the input."""
    from rewardlab.heads.trainer import Trainer

    torch.manual_seed(0)
    x = torch.randn(40, 6, dtype=torch.float64)
    c, r = np.arange(0, 20), np.arange(20, 40)
    mlp = EnsembleMLP(6, [5], seeds=[1, 2]).double()
    h = mlp.hidden(x)
    by_hand = torch.stack([torch.relu(x @ mlp.weights[0][j] + mlp.biases[0][j]) for j in range(2)])
    torch.testing.assert_close(h, by_hand)
    assert torch.equal(EnsembleMLP(6, [], seeds=[1]).double().hidden(x)[0], x)  # linear: the input
    for features, dim in (("last_hidden", 5), ("input", 6)):
        cfg = HeadConfig(kind="mlp", widths=[5], members=2, features=features, dtype="float64", epochs=1)
        t = Trainer(x, c, r, "normbt", None, cfg, 0, [1, 2], None, None)
        assert t._features(t.model, t.x[:3]).shape == (2, 3, dim)
    fitted = fit_head(x.numpy(), c, r, objective="normbt", config={"kind": "mlp", "widths": [5], "epochs": 2,
                                                                    "dtype": "float64"}, seed=0)
    assert np.isfinite(fitted.predict(x.numpy())).all()


@pytest.mark.parametrize("kind", ["mlp", "gbdt"])
def test_early_stopping_off_runs_every_epoch_and_keeps_the_last(kind):
    """The paper's rule (Sun et al.'s public code): a fixed number of epochs, the last weights,
    the validation fifth held out but unused. Noisy labels make early stopping stop early."""
    if kind == "gbdt":
        pytest.importorskip("lightgbm")
    X, _, c, r = _data(n=200, noise=0.45)
    base = dict(kind=kind, members=1, widths=[32], batch_size=32, epochs=12, patience=1, val_fraction=0.2,
                lr=1e-2, gbdt={"n_estimators": 40, "early_stopping_rounds": 2, "num_threads": 1,
                               "min_child_samples": 5})
    stopped = fit_head(X, c, r, objective="bt", config=HeadConfig(**base), seed=0)
    fixed = fit_head(X, c, r, objective="bt", config=HeadConfig(**base, early_stopping=False), seed=0)
    if kind == "mlp":
        assert stopped.info["epochs"][0] < 12
        assert fixed.info["epochs"] == [12] and fixed.info["best_epoch"] == [12]
        assert len(fixed.info["history"]) == 12 and fixed.info["n_val_pairs"] == 40  # held out, logged
        # the last parameters: the same as training 12 epochs with nothing watched on the same pairs
        cont = fit_head(X, c, r, objective="bt", config=HeadConfig(**{**base, "patience": 100}), seed=0)
        assert not np.allclose(cont.predict(X), fixed.predict(X)) or cont.info["best_epoch"] == [12]
    else:
        assert stopped.info["best_iteration"][0] < 40
        assert fixed.info["best_iteration"] == [40] and fixed.info["n_val_pairs"] == 40
