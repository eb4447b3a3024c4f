"""SimCSE and SwAV auxiliaries, Sinkhorn, and composite losses built by build_loss.

Reference numbers come from NumPy re-implementations of METHODS §4 (and SwAV's published
exp-domain Sinkhorn), not from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardlab.errors import ConfigError
from rewardlab.objectives import LossInputs, build_loss, info_nce, sinkhorn

RNG = np.random.default_rng(0)
H_C = RNG.normal(size=(3, 4))
H_R = RNG.normal(size=(3, 4))
R_C, R_R = [1.0, 0.5, -0.2], [0.0, 1.0, -1.0]


def t(a, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def inputs(grad: bool = False) -> LossInputs:
    return LossInputs(t(R_C, grad), t(R_R, grad), t(H_C, grad), t(H_R, grad))


def np_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def np_info_nce(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """mean_i −log(exp(s_ii/τ) / Σ_j exp(s_ij/τ)), cosine similarities."""
    s = np_normalize(a) @ np_normalize(b).T / tau
    return float(-np.mean(np.diag(np_log_softmax(s))))


def np_sinkhorn(scores: np.ndarray, eps: float, iters: int) -> np.ndarray:
    """SwAV's distributed_sinkhorn on one process (Caron et al., 2020), in exp space."""
    q = np.exp(scores / eps).T  # K x B
    k, b = q.shape
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


# ---------------------------------------------------------------- SimCSE


def test_info_nce_against_numpy():
    a, b = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    assert info_nce(t(a), t(b), 0.1).item() == pytest.approx(np_info_nce(a, b, 0.1))


@pytest.mark.parametrize("on", ["responses", "differences"])
def test_simcse_without_dropout_is_hand_infonce(on):
    x = np.concatenate([H_C, H_R]) if on == "responses" else H_C - H_R
    cfg = {"name": "simcse", "dropout": 0.0, "temperature": 0.5, "on": on}
    loss, logs = build_loss("bt", [cfg])(inputs())
    assert logs["loss/simcse"] == pytest.approx(np_info_nce(x, x, 0.5))


def test_simcse_gradients_reach_h_and_dropout_stays_on_in_eval():
    inp = inputs(grad=True)
    loss_fn = build_loss("bt", [{"name": "simcse", "dropout": 0.3}])
    loss, _ = loss_fn(inp)
    loss.backward()
    assert inp.h_chosen.grad is not None and inp.h_chosen.grad.abs().sum() > 0
    assert inp.h_rejected.grad.abs().sum() > 0
    torch.manual_seed(0)
    with_dropout = loss_fn.eval()(inputs())[1]["loss/simcse"]
    without = build_loss("bt", [{"name": "simcse", "dropout": 0.0}])(inputs())[1]["loss/simcse"]
    assert with_dropout != pytest.approx(without)


# ---------------------------------------------------------------- Sinkhorn and SwAV


def test_sinkhorn_matches_swav_reference_and_partition_constraints():
    scores = RNG.uniform(-1, 1, size=(8, 4))
    q = sinkhorn(t(scores), 0.05, 3)
    np.testing.assert_allclose(q.numpy(), np_sinkhorn(scores, 0.05, 3), rtol=1e-9)
    assert q.sum(1).tolist() == pytest.approx([1.0] * 8)  # each sample: a distribution
    converged = sinkhorn(t(scores), 0.5, 200)
    assert converged.sum(0).tolist() == pytest.approx([8 / 4] * 4, rel=1e-6)  # equal partition
    assert converged.sum(1).tolist() == pytest.approx([1.0] * 8)


def test_sinkhorn_is_stable_for_large_scores():
    q = sinkhorn(t([[500.0, -500.0], [-500.0, 500.0], [0.0, 0.0]]), 0.01, 3)
    assert torch.isfinite(q).all()
    assert q.sum(1).tolist() == pytest.approx([1.0] * 3)


def test_swav_without_dropout_against_numpy():
    cfg = {"name": "swav", "dropout": 0.0, "num_prototypes": 3, "temperature": 0.1}
    loss_fn = build_loss("bt", [cfg], feature_dim=4)
    c = np_normalize(loss_fn.aux[0].prototypes.detach().double().numpy())
    z = np_normalize(H_C - H_R)
    s = z @ c.T
    q = np_sinkhorn(s, 0.05, 3)
    expected = -np.mean(np.sum(q * np_log_softmax(s / 0.1), axis=1))  # both views coincide
    assert loss_fn(inputs())[1]["loss/swav"] == pytest.approx(expected)


def test_swav_gradient_flows_through_both_views_but_not_the_codes():
    cfg = {"name": "swav", "dropout": 0.0, "num_prototypes": 3}
    loss_fn = build_loss("bt", [cfg], feature_dim=4)
    inp = inputs(grad=True)
    value, _ = loss_fn.aux[0](inp)
    (got,) = torch.autograd.grad(value, inp.h_chosen)
    # reference: the same swapped prediction with the codes as constants (NumPy Sinkhorn)
    c = torch.nn.functional.normalize(loss_fn.aux[0].prototypes.detach().double(), dim=-1)
    h_c = t(H_C, grad=True)
    s = torch.nn.functional.normalize(h_c - t(H_R), dim=-1) @ c.T
    q = t(np_sinkhorn(s.detach().numpy(), 0.05, 3))
    ref = -(q * torch.log_softmax(s / 0.1, dim=-1)).sum(-1).mean()  # ½(view 1 + view 2), equal
    (expected,) = torch.autograd.grad(ref, h_c)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-9)


def test_swav_prototypes_are_trained_state():
    loss_fn = build_loss("bt", [{"name": "swav"}], feature_dim=4)
    protos = loss_fn.aux[0].prototypes
    assert protos.shape == (20, 4)
    assert [p is protos for p in loss_fn.parameters()] == [True]
    inp = inputs(grad=True)
    loss_fn(inp)[0].backward()
    assert protos.grad is not None and protos.grad.abs().sum() > 0
    assert inp.h_chosen.grad.abs().sum() > 0
    state = loss_fn.state_dict()
    assert "aux.0.prototypes" in state
    fresh = build_loss("bt", [{"name": "swav"}], feature_dim=4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.aux[0].prototypes, protos)


def test_swav_defaults_follow_methods_and_config_errors():
    diff = build_loss("bt", [{"name": "swav"}], feature_dim=4)
    resp = build_loss("bt", [{"name": "swav", "on": "responses"}], feature_dim=4)
    assert diff.aux_weights == [0.5] and diff.aux[0].prototypes.shape[0] == 20
    assert resp.aux_weights == [0.1] and resp.aux[0].prototypes.shape[0] == 50
    with pytest.raises(ConfigError, match="feature_dim"):
        build_loss("bt", [{"name": "swav"}])
    with pytest.raises(ConfigError, match="num_prototypes"):
        build_loss("bt", [{"name": "swav", "num_prototypes": 2.5}], feature_dim=4)
    with pytest.raises(ValueError, match="feature_dim=5"):
        build_loss("bt", [{"name": "swav"}], feature_dim=5)(inputs())


# ---------------------------------------------------------------- composite losses


def test_composite_total_and_logs():
    aux = [
        {"name": "simcse", "weight": 0.7, "dropout": 0.0},
        {"name": "swav", "dropout": 0.0},
        {"name": "swav", "on": "responses", "weight": 0.2, "dropout": 0.0},
    ]
    loss_fn = build_loss({"name": "normbt"}, aux, feature_dim=4)
    assert loss_fn.needs_features and loss_fn.labels == ["normbt", "simcse", "swav", "swav_2"]
    total, logs = loss_fn(inputs())
    expected = (logs["loss/normbt"] + 0.7 * logs["loss/simcse"] + 0.5 * logs["loss/swav"]
                + 0.2 * logs["loss/swav_2"])
    assert total.item() == pytest.approx(expected)
    assert logs["loss/total"] == pytest.approx(expected)
    assert set(logs) == {"loss/normbt", "normbt/mu", "normbt/coincident", "loss/simcse", "loss/swav", "loss/swav_2",
                         "loss/total"}
    # each component on its own gives the same number
    bt_alone = build_loss({"name": "normbt"})(inputs())[1]["loss/normbt"]
    assert logs["loss/normbt"] == pytest.approx(bt_alone)
    simcse_alone = np_info_nce(np.concatenate([H_C, H_R]), np.concatenate([H_C, H_R]), 0.05)
    assert logs["loss/simcse"] == pytest.approx(simcse_alone)


@pytest.mark.parametrize("aux", [{"name": "simcse"}, {"name": "swav"},
                                 {"name": "simcse", "on": "differences"},
                                 {"name": "swav", "on": "responses"}],
                         ids=lambda a: "-".join(a.values()))
def test_aux_stable_at_large_gaps(aux):
    r_c, r_r = t([100.0, -100.0], grad=True), t([0.0, 0.0], grad=True)
    h_c = t([[1e3, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], grad=True)
    h_r = t([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], grad=True)  # a zero difference
    loss, logs = build_loss("bt", [aux], feature_dim=4)(LossInputs(r_c, r_r, h_c, h_r))
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in logs.values())
    assert torch.isfinite(h_c.grad).all() and torch.isfinite(h_r.grad).all()
