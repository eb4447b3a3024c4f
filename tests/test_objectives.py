"""Pairwise and pointwise objectives, the registry and build_loss (contrastive: separate file).

Expected numbers are written out from METHODS' formulas with ``math`` on 2–3 pairs.
"""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.errors import ConfigError, DataError
from rewardlab.objectives import (
    LossInputs,
    Objective,
    adaptive_margin_loss,
    available,
    bt_loss,
    build_loss,
    centering_penalty,
    flip_mask,
    hinge_loss,
    label_smoothing_loss,
    normbt_weights,
    pointwise_bce,
    register,
)

R_C = [1.0, 0.5, -0.2]
R_R = [0.0, 1.0, -1.0]
D = [c - r for c, r in zip(R_C, R_R)]  # [1.0, -0.5, 0.8]


def nls(x: float) -> float:
    """−log σ(x), written out by hand."""
    return math.log(1.0 + math.exp(-x))


def t(values: list[float], grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def inputs(r_c=R_C, r_r=R_R, h_c=None, h_r=None, **columns) -> LossInputs:
    return LossInputs(
        t(r_c), t(r_r),
        None if h_c is None else t(h_c), None if h_r is None else t(h_r),
        {k: t(v) for k, v in columns.items()},
    )


def run(objective, inp: LossInputs) -> float:
    loss, _ = build_loss(objective)(inp)
    return loss.item()


def mean(xs):
    return sum(xs) / len(xs)


# ---------------------------------------------------------------- Bradley–Terry and variants


def test_bt_against_hand_computation():
    assert run({"name": "bt"}, inputs()) == pytest.approx(mean([nls(d) for d in D]))
    assert bt_loss(t(D)).item() == pytest.approx(mean([nls(d) for d in D]))


def test_bt_reads_margin_column_unless_disabled():
    m = [0.5, 0.0, 1.0]
    expected = mean([nls(d - mi) for d, mi in zip(D, m)])
    assert run({"name": "bt"}, inputs(margin=m)) == pytest.approx(expected)
    plain = mean([nls(d) for d in D])
    assert run({"name": "bt", "use_margin": False}, inputs(margin=m)) == pytest.approx(plain)


def test_bt_weight_column_is_a_weighted_mean():
    w = [2.0, 0.0, 1.0]
    expected = (2 * nls(D[0]) + 1 * nls(D[2])) / 3
    assert run({"name": "bt"}, inputs(weight=w)) == pytest.approx(expected)
    assert bt_loss(t(D), weight=t(w)).item() == pytest.approx(expected)


def test_bt_centering():
    pen = mean([(c + r) ** 2 for c, r in zip(R_C, R_R)])
    assert centering_penalty(t(R_C), t(R_R)).item() == pytest.approx(pen)
    loss, logs = build_loss({"name": "bt", "center": 0.01})(inputs())
    assert loss.item() == pytest.approx(mean([nls(d) for d in D]) + 0.01 * pen)
    assert logs["bt/center"] == pytest.approx(pen)


def test_hinge_against_hand_computation():
    expected = mean([max(0.0, 1.0 - d) for d in D])  # [0, 1.5, 0.2]
    assert run({"name": "hinge"}, inputs()) == pytest.approx(expected)
    assert hinge_loss(t(D), 0.6).item() == pytest.approx(mean([0.0, 1.1, 0.0]))
    assert run({"name": "hinge", "margin": 0.6}, inputs(weight=[0, 1, 1])) == pytest.approx(0.55)


def test_label_smoothing_against_hand_computation():
    a = 0.1
    expected = mean([(1 - a) * nls(d) + a * nls(-d) for d in D])
    assert run({"name": "label_smoothing"}, inputs()) == pytest.approx(expected)
    assert label_smoothing_loss(t(D), a).item() == pytest.approx(expected)


def test_label_smoothing_only_where_strength_is_negative():
    s = [0.3, -1.0, 0.0]  # only the second pair is smoothed
    a = 0.2
    expected = mean([nls(D[0]), (1 - a) * nls(D[1]) + a * nls(-D[1]), nls(D[2])])
    cfg = {"name": "label_smoothing", "alpha": a, "only_negative_strength": True}
    assert run(cfg, inputs(strength_mean=s)) == pytest.approx(expected)
    mask = torch.tensor([False, True, False])
    assert label_smoothing_loss(t(D), a, mask).item() == pytest.approx(expected)
    with pytest.raises(DataError, match="strength_mean"):
        run(cfg, inputs())


def test_adaptive_margin_against_hand_computation():
    s = [0.5, -2.0, 1.0]
    clipped = mean([nls(D[0] - 2 * 0.5), nls(D[1] - 0.0), nls(D[2] - 2 * 1.0)])
    cfg = {"name": "adaptive_margin", "scale": 2.0}
    assert run(cfg, inputs(strength_mean=s)) == pytest.approx(clipped)
    unclipped = mean([nls(d - si) for d, si in zip(D, s)])
    cfg = {"name": "adaptive_margin", "clip_min": None}
    assert run(cfg, inputs(strength_mean=s)) == pytest.approx(unclipped)
    assert adaptive_margin_loss(t(D), t(s), 1.0, None).item() == pytest.approx(unclipped)
    cfg = {"name": "adaptive_margin", "column": "my_strength", "clip_min": None}
    assert run(cfg, inputs(my_strength=s)) == pytest.approx(unclipped)
    with pytest.raises(DataError, match="strength_mean"):
        run({"name": "adaptive_margin"}, inputs())


def test_flip_reads_flip_column_then_strength():
    # flip column present: it decides (pair 0 flipped), strength ignored
    expected = mean([nls(-D[0]), nls(D[1]), nls(D[2])])
    got = run({"name": "flip"}, inputs(flip=[1, 0, 0], strength_mean=[5, -5, -5]))
    assert got == pytest.approx(expected)
    # no flip column: strength < threshold decides (pairs 1 and 2 below 0.5)
    expected = mean([nls(D[0]), nls(-D[1]), nls(-D[2])])
    loss, logs = build_loss({"name": "flip", "threshold": 0.5})(inputs(strength_mean=[1, -1, 0.2]))
    assert loss.item() == pytest.approx(expected)
    assert logs["flip/fraction"] == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="strength_mean"):
        run({"name": "flip"}, inputs())


def test_flip_mask():
    s = torch.tensor([0.3, -1.0, 2.0, -0.5, 0.1, 1.0, 0.0, 0.9, -2.0, 0.5])
    assert flip_mask(s, fraction=0.2).tolist() == [
        False, True, False, False, False, False, False, False, True, False]
    assert flip_mask(s, fraction=0.0).sum() == 0
    assert flip_mask(s, threshold=0.0).tolist() == (s < 0).tolist()
    assert flip_mask([1.0, 1.0, 0.0], fraction=0.67).tolist() == [True, False, True]
    with pytest.raises(ValueError):
        flip_mask(s)
    with pytest.raises(ValueError):
        flip_mask(s, fraction=0.1, threshold=0.0)


# ---------------------------------------------------------------- NormBT


def _normbt_hand(dist: list[float], d: list[float], mu: float, eps: float = 1e-6) -> float:
    return mean([mu / (di + eps) * nls(x) for di, x in zip(dist, d)])


H_C = [[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
H_R = [[0.0, 4.0], [0.0, 0.0], [1.0, -1.0]]  # distances 5, 1, 2 -> batch mean 8/3


def test_normbt_first_batch_against_hand_computation():
    loss, logs = build_loss({"name": "normbt"})(inputs(h_c=H_C, h_r=H_R))
    assert loss.item() == pytest.approx(_normbt_hand([5, 1, 2], D, 8 / 3))
    assert logs["normbt/mu"] == pytest.approx(8 / 3)
    w, coincident = normbt_weights(t(H_C), t(H_R), 2.0, 1e-6)
    assert w.tolist() == pytest.approx([2 / 5, 2 / 1, 2 / 2])
    assert not coincident.any()
    w, coincident = normbt_weights(t(H_C), t(H_R), 2.0, 1e-6, coincide_tol=0.6)  # 1 < 0.6 · 2
    assert w.tolist() == pytest.approx([2 / 5, 0.0, 2 / 2]) and coincident.tolist() == [False, True, False]


def test_normbt_ema_state_dict_and_eval():
    loss_fn = build_loss({"name": "normbt", "beta": 0.9})
    zeros = [[0.0, 0.0], [0.0, 0.0]]
    first = inputs(h_c=[[1.0, 0.0], [3.0, 0.0]], h_r=zeros, r_c=[1, 0], r_r=[0, 1])  # dists 1, 3
    second = inputs(h_c=[[0.0, 4.0], [0.0, 8.0]], h_r=zeros, r_c=[1, 0], r_r=[0, 1])  # dists 4, 8
    loss_fn(first)  # batch mean 2 initialises mu
    assert loss_fn.main.mu.item() == pytest.approx(2.0)
    loss, logs = loss_fn(second)  # uses mu_t = 2, then mu = 0.9 * 2 + 0.1 * 6
    assert logs["normbt/mu"] == pytest.approx(2.0)
    assert loss.item() == pytest.approx(_normbt_hand([4, 8], [1, -1], 2.0))
    assert loss_fn.main.mu.item() == pytest.approx(2.4)

    fresh = build_loss({"name": "normbt", "beta": 0.9})
    fresh.load_state_dict(loss_fn.state_dict())
    assert fresh.main.mu.item() == pytest.approx(2.4)
    restored, original = fresh(first)[0].item(), loss_fn(first)[0].item()
    assert restored == pytest.approx(original)
    assert restored == pytest.approx(_normbt_hand([1, 3], [1, -1], 2.4))

    mu = loss_fn.main.mu.item()
    loss_fn.eval()
    loss_fn(second)
    assert loss_fn.main.mu.item() == mu
    # never trained: eval uses the batch mean and leaves the state uninitialised
    untrained = build_loss({"name": "normbt"}).eval()
    assert untrained(second)[1]["normbt/mu"] == pytest.approx(6.0)
    assert not untrained.main.initialized.item()


def test_normbt_uses_all_reduce_mean():
    loss_fn = build_loss({"name": "normbt"}, all_reduce_mean=lambda x: 3 * x)
    _, logs = loss_fn(inputs(h_c=H_C, h_r=H_R))
    assert logs["normbt/mu"] == pytest.approx(8.0)


def test_normbt_equalises_gradient_norms_across_distances():
    """Linear head r = wᵀh + b: equal d, ‖h_c − h_r‖ 1 vs 10 -> equal grads (normbt), 10x (bt)."""
    h_r = torch.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=torch.float64)
    delta = torch.tensor([[1.0, 0.0], [1.0, math.sqrt(99.0)]], dtype=torch.float64)  # norms 1, 10
    h_c = h_r + delta

    def grad_norms(name: str) -> list[float]:
        norms = []
        for one_hot in ([1.0, 0.0], [0.0, 1.0]):  # each pair's gradient on its own
            w = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
            b = torch.tensor(0.3, dtype=torch.float64)
            inp = LossInputs(h_c @ w + b, h_r @ w + b, h_c, h_r, {"weight": t(one_hot)})
            loss, _ = build_loss({"name": name})(inp)
            (g,) = torch.autograd.grad(loss, w)
            norms.append(g.norm().item())
        return norms

    assert (h_c @ torch.tensor([1.0, 0.0], dtype=torch.float64) - h_r[:, 0]).tolist() == [1, 1]
    bt = grad_norms("bt")
    assert bt[1] / bt[0] == pytest.approx(10.0)
    nb = grad_norms("normbt")
    assert nb[1] / nb[0] == pytest.approx(1.0, rel=1e-5)


def test_normbt_coinciding_pair_gets_zero_weight():
    """Identical representations (d ≡ 0, zero BT gradient) get weight 0, not μ/ε; tol 0 = paper."""
    h_c, h_r = H_C + [[2.0, 2.0]], H_R + [[2.0, 2.0]]  # distances 5, 1, 2, 0 -> mean 2
    d = D + [0.0]
    loss, logs = build_loss({"name": "normbt"})(inputs(r_c=R_C + [0.3], r_r=R_R + [0.3], h_c=h_c, h_r=h_r))
    assert loss.item() == pytest.approx(_normbt_hand([5, 1, 2], D, 2.0) * 3 / 4)
    assert logs["normbt/coincident"] == 1
    paper, logs = build_loss({"name": "normbt", "coincide_tol": 0})(
        inputs(r_c=R_C + [0.3], r_r=R_R + [0.3], h_c=h_c, h_r=h_r))
    assert paper.item() == pytest.approx(_normbt_hand([5, 1, 2, 0], d, 2.0), rel=1e-6)
    assert paper.item() > 1e5 and logs["normbt/coincident"] == 0


def test_normbt_identical_inputs_do_not_corrupt_float32_gradients():
    """With weight μ/ε, identical pairs' ±10⁶-scaled gradients cancel only up to float32 rounding."""

    def grads(dtype: torch.dtype, tol: float) -> torch.Tensor:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.Tanh(), torch.nn.Linear(128, 32)).to(dtype)
        head = torch.nn.Linear(32, 1).to(dtype)
        x_c, x_r = torch.randn(16, 32).to(dtype), torch.randn(16, 32).to(dtype)
        x_r[3], x_r[9] = x_c[3], x_c[9]  # e.g. two code answers that differ only beyond max_length
        h = net(torch.cat([x_c, x_r]))
        r = head(h).squeeze(-1)
        loss, _ = build_loss({"name": "normbt", "coincide_tol": tol})(LossInputs(r[:16], r[16:], h[:16], h[16:], {}))
        params = [*net.parameters(), *head.parameters()]
        return torch.cat([g.flatten().double() for g in torch.autograd.grad(loss, params)])

    exact = grads(torch.float64, 1e-4)
    err = lambda g: ((g - exact).norm() / exact.norm()).item()  # noqa: E731
    assert err(grads(torch.float32, 1e-4)) < 1e-5
    assert err(grads(torch.float32, 0.0)) > 1e-3  # the paper's weight: rounding noise of ~μ/ε scale


def test_normbt_requires_features():
    with pytest.raises(ValueError, match="h_chosen"):
        run({"name": "normbt"}, inputs())


# ---------------------------------------------------------------- classification


def test_classification_against_hand_computation():
    # BCE: label 1 -> −log σ(z), label 0 -> −log σ(−z)
    items = [nls(c) for c in R_C] + [nls(-r) for r in R_R]
    assert run({"name": "classification"}, inputs()) == pytest.approx(mean(items))
    logits, labels = t(R_C + R_R), t([1, 1, 1, 0, 0, 0])
    assert pointwise_bce(logits, labels).item() == pytest.approx(mean(items))
    # the paired form is the same number, and it applies per-pair weights
    assert run({"name": "classification_paired"}, inputs()) == pytest.approx(mean(items))
    w = [1.0, 3.0, 0.0]
    per_pair = [0.5 * (nls(c) + nls(-r)) for c, r in zip(R_C, R_R)]
    expected = (per_pair[0] + 3 * per_pair[1]) / 4
    assert run({"name": "classification_paired"}, inputs(weight=w)) == pytest.approx(expected)
    assert run({"name": "classification"}, inputs(weight=w)) == pytest.approx(expected)


def test_classification_ignores_pairing_but_bt_does_not():
    perm = [2, 0, 1]
    shuffled = inputs(r_r=[R_R[i] for i in perm])
    assert run("classification", shuffled) == pytest.approx(run("classification", inputs()))
    assert run("bt", shuffled) != pytest.approx(run("bt", inputs()))
    # pointwise: chosen and rejected counts may differ
    loss_fn = build_loss("classification")
    assert loss_fn.pointwise and not build_loss("classification_paired").pointwise
    uneven = loss_fn(LossInputs(t([2.0]), t([0.0, -1.0])))[0].item()
    assert uneven == pytest.approx(mean([nls(2.0), nls(0.0), nls(1.0)]))


# ---------------------------------------------------------------- every objective


def _all_main_configs() -> list[dict]:
    pairs = [n for n in available()["main"] if build_loss(n).layout == "pairs"]  # item objectives: test_pointwise
    return [{"name": n} for n in pairs] + [
        {"name": "bt", "center": 0.01},
        {"name": "normbt", "center": 0.01},
        {"name": "label_smoothing", "only_negative_strength": True},
        {"name": "adaptive_margin", "clip_min": None},
    ]


@pytest.mark.parametrize("cfg", _all_main_configs(), ids=lambda c: "-".join(map(str, c.values())))
def test_stable_at_large_reward_gaps(cfg):
    """|r_c − r_r| = 100 in both directions: finite loss and gradients."""
    r_c = t([100.0, -50.0, 0.0], grad=True)
    r_r = t([0.0, 50.0, 0.5], grad=True)
    h_c = t([[300.0, 0.0], [0.0, 1e-4], [1.0, 1.0]], grad=True)
    h_r = t([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], grad=True)  # includes a zero distance
    cols = {k: t(v) for k, v in {"margin": [1, 0, 2], "weight": [1, 2, 1], "flip": [0, 1, 0],
                                   "strength_mean": [50, -50, 0]}.items()}
    loss, logs = build_loss(cfg)(LossInputs(r_c, r_r, h_c, h_r, cols))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(math.isfinite(v) for v in logs.values())
    assert torch.isfinite(r_c.grad).all() and torch.isfinite(r_r.grad).all()


def test_half_precision_rewards_are_upcast():
    r_c, r_r = t(R_C).bfloat16(), t(R_R).bfloat16()
    loss, _ = build_loss("bt")(LossInputs(r_c, r_r, columns={"margin": t([0.0, 0.0, 0.0])}))
    assert loss.dtype == torch.float32


def test_flags():
    assert build_loss("normbt").needs_features and not build_loss("bt").needs_features
    assert build_loss("classification").pointwise and not build_loss("bt").pointwise


def test_shape_errors():
    with pytest.raises(ValueError, match="1-D"):
        build_loss("bt")(LossInputs(t([[1.0]]), t([[0.0]])))
    with pytest.raises(ValueError, match="length"):
        build_loss("bt")(LossInputs(t([1.0, 2.0]), t([0.0])))
    with pytest.raises(DataError, match="weight"):
        build_loss("bt")(inputs(weight=[1.0, 2.0]))


# ---------------------------------------------------------------- configuration


def test_available_names():
    names = available()
    assert set(names["main"]) == {"bt", "normbt", "classification", "classification_paired",
                                  "label_smoothing", "adaptive_margin", "flip", "hinge",
                                  "regression", "correctness", "scaled_bt"}
    assert set(names["aux"]) == {"simcse", "swav"}


@pytest.mark.parametrize(
    ("cfg", "aux", "message"),
    [
        ({"name": "nrombt"}, None, "valid main objectives: adaptive_margin, bt"),
        ({"name": "normbt", "bta": 0.9}, None, "valid parameters: beta, eps, center, coincide_tol"),
        ({"name": "bt", "weight": 1.0}, None, "only for aux"),
        ({"name": "classification", "alpha": 0.1}, None, r"valid parameters: \(none\)"),
        ({"beta": 0.9}, None, "no 'name'"),
        ({"name": "normbt", "beta": 1.0}, None, "beta must be in"),
        ({"name": "normbt", "coincide_tol": 1.0}, None, "coincide_tol must be in"),
        ({"name": "normbt", "beta": True}, None, "'beta' must be a finite float"),
        ({"name": "normbt", "beta": "high"}, None, "'beta' must be a finite float"),
        ({"name": "normbt", "eps": float("nan")}, None, "'eps'"),
        ({"name": "bt", "use_margin": "yes"}, None, "'use_margin' must be a bool"),
        ({"name": "label_smoothing", "alpha": 0.7}, None, "alpha"),
        ({"name": "adaptive_margin", "column": 3}, None, "'column' must be a str"),
        ({"name": "simcse"}, None, "auxiliary"),
        ({"name": "bt"}, [{"name": "hinge"}], "main objective"),
        ({"name": "bt"}, [{"name": "simcse", "weight": -1}], "weight must be >= 0"),
        ({"name": "bt"}, [{"name": "simcse", "tau": 0.1}], "valid parameters: temperature"),
        ({"name": "bt"}, {"name": "simcse"}, "aux must be a list"),
        ("nope", None, "valid auxiliaries: simcse, swav"),
    ],
)
def test_config_errors(cfg, aux, message):
    with pytest.raises(ConfigError, match=message):
        build_loss(cfg, aux)


def test_config_accepts_ints_and_numeric_strings_for_floats():
    loss_fn = build_loss({"name": "normbt", "eps": "1e-6", "center": 0})
    assert loss_fn.main.eps == 1e-6 and isinstance(loss_fn.main.center, float)


def test_register_rejects_duplicates_and_non_objectives():
    with pytest.raises(ValueError, match="already registered"):
        register("bt", kind="main")(type("Other", (Objective,), {}))
    with pytest.raises(TypeError):
        register("not_a_module", kind="main")(int)
    with pytest.raises(ValueError):
        register("x", kind="side")
