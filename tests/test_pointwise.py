"""Pointwise data and objectives (issue 24): readers, and each objective against a hand
computation; NaN-masked targets leave exactly zero gradient."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.data.pointwise import read_pointwise
from rewardlab.errors import ConfigError
from rewardlab.objectives import ItemInputs, LossInputs, available, build_loss

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_solutions.jsonl"
if not GSM8K.exists():
    GSM8K = Path("/work/shared/data/gsm8k_solutions.jsonl")


def _write(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- readers
def test_score_rows(tmp_path):
    path = _write(tmp_path, [{"prompt": "p", "response": "a", "score": 2},
                             {"prompt": "q", "response": "b", "score": -0.5},
                             {"prompt": "p", "response": "c", "score": 1.0, "source": "s"}])
    t = read_pointwise(path)
    assert t.layout == "score" and t.names == ("score",)
    assert t.target[:, 0].tolist() == [2.0, -0.5, 1.0]
    assert t.group.tolist() == [0, 1, 0]  # the same prompt text is one group across rows
    assert t.origin == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert t.source == ["d", "d", "s"]


def test_correct_rows_one_group_per_row(tmp_path):
    path = _write(tmp_path, [{"prompt": "p", "responses": ["a", "b", "c"], "correct": [True, False, True]},
                             {"prompt": "q", "responses": ["d"], "correct": [False]}])
    t = read_pointwise(path)
    assert t.layout == "correct" and t.names == ("correct",)
    assert t.target[:, 0].tolist() == [1, 0, 1, 0] and t.group.tolist() == [0, 0, 0, 1]
    assert t.response == ["a", "b", "c", "d"]


@pytest.mark.skipif(not GSM8K.exists(), reason="shared data not present")
def test_gsm8k_solutions_read():
    t = read_pointwise(GSM8K)
    assert len(t) == 4 * t.report.n_kept and t.report.n_kept == 666
    assert set(np.unique(t.target)) == {0.0, 1.0}


def test_attributes_missing_values_are_nan(tmp_path):
    path = _write(tmp_path, [{"prompt": "p", "response": "a", "attributes": {"helpful": 1, "safe": None}},
                             {"prompt": "p", "response": "b", "attributes": {"safe": 0.5}},
                             {"prompt": "q", "response": "c", "attributes": {"helpful": float("nan")}}])
    t = read_pointwise(path)
    assert t.names == ("helpful", "safe")
    expected = np.array([[1, np.nan], [np.nan, 0.5], [np.nan, np.nan]])
    np.testing.assert_array_equal(t.target, expected)
    assert t.report.unlabelled == {"helpful": 2, "safe": 2} and t.report.unlabelled_rows == 1
    # declared names fix the column order (and a declared, never-seen name is all NaN)
    t2 = read_pointwise(path, attributes=["safe", "helpful", "verbose"], num_labels=3)
    assert t2.names == ("safe", "helpful", "verbose")
    np.testing.assert_array_equal(t2.target[:, :2], expected[:, ::-1])
    assert np.isnan(t2.target[:, 2]).all()


def test_select_renumbers_groups(tmp_path):
    path = _write(tmp_path, [{"prompt": p, "response": "r", "score": i} for i, p in enumerate("abcab")])
    t = read_pointwise(path).select([4, 2, 3])
    assert t.group.tolist() == [0, 1, 2] and t.target[:, 0].tolist() == [4, 2, 3]


# ----------------------------------------------------------------------------- objectives
def test_item_objectives_registered_and_layout_checked():
    assert {"regression", "correctness", "scaled_bt"} <= set(available()["main"])
    loss = build_loss("regression")
    assert loss.layout == "items"
    with pytest.raises(TypeError, match="ItemInputs"):
        loss(LossInputs(torch.zeros(2), torch.zeros(2)))
    with pytest.raises(ConfigError, match="margin_scale"):
        build_loss({"name": "scaled_bt", "margin_scale": -1})


def test_regression_by_hand():
    r = torch.tensor([[1.0, 0.0], [2.0, 5.0], [0.0, 1.0]])
    t = torch.tensor([[0.0, float("nan")], [1.0, 3.0], [float("nan"), float("nan")]])
    # labelled entries: (1-0)^2, (2-1)^2, (5-3)^2 -> (1 + 1 + 4) / 3
    value, _ = build_loss("regression")(ItemInputs(r, t))
    assert value.item() == pytest.approx(2.0)
    w = torch.tensor([1.0, 3.0, 7.0])  # row weights: (1·1 + 3·1 + 3·4) / (1 + 3 + 3)
    value, _ = build_loss("regression")(ItemInputs(r, t, columns={"weight": w}))
    assert value.item() == pytest.approx(16 / 7)


def test_standardised_regression_by_hand():
    t = torch.tensor([1.0, 2.0, 6.0])
    loss = build_loss({"name": "regression", "standardize": True})
    loss.fit_targets(t)
    mean, std = 3.0, math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2)  # sample std
    r = torch.tensor([0.0, 0.5, 1.0])
    z = [(v - mean) / std for v in (1.0, 2.0, 6.0)]
    expected = sum((a - b) ** 2 for a, b in zip([0.0, 0.5, 1.0], z)) / 3
    assert loss(ItemInputs(r, t))[0].item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(loss.main.mean, torch.tensor([mean])) and torch.allclose(loss.main.std, torch.tensor([std]))
    assert "main.mean" in loss.state_dict()


def test_correctness_by_hand():
    r = torch.tensor([2.0, -1.0, 0.5])
    t = torch.tensor([1.0, 0.0, float("nan")])
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = (-math.log(sig(2.0)) - math.log(1 - sig(-1.0))) / 2
    assert build_loss("correctness")(ItemInputs(r, t))[0].item() == pytest.approx(expected, rel=1e-6)


def test_scaled_bt_by_hand():
    r = torch.tensor([1.0, 0.0, 0.5, 2.0, 1.0])
    t = torch.tensor([3.0, 1.0, 1.0, 0.0, 2.0])
    g = torch.tensor([0, 0, 0, 1, 1])
    sp = lambda z: math.log1p(math.exp(z))  # softplus  # noqa: E731
    # group 0: pairs (0>1, d=2), (0>2, d=2); 1 and 2 tie: no pair. group 1: (4>3, d=2).
    pairs = [(1.0 - 0.0, 2.0), (1.0 - 0.5, 2.0), (1.0 - 2.0, 2.0)]
    for scale in (0.0, 0.5):
        expected = sum(sp(-(dr - scale * dt)) for dr, dt in pairs) / 3
        value, logs = build_loss({"name": "scaled_bt", "margin_scale": scale})(ItemInputs(r, t, g))
        assert value.item() == pytest.approx(expected, rel=1e-6) and logs["scaled_bt/pairs"] == 3
    t2 = torch.tensor([3.0, 1.0, 2.5, 0.0, 2.0])  # weights by difference: d = 2, 0.5, 1.5 (2>1), 2
    value, _ = build_loss({"name": "scaled_bt", "margin_scale": 0.0, "weight_by_difference": True})(
        ItemInputs(r, t2, g))
    terms = [(2.0, sp(-1.0)), (0.5, sp(-0.5)), (1.5, sp(-0.5)), (2.0, sp(1.0))]
    assert value.item() == pytest.approx(sum(w * v for w, v in terms) / sum(w for w, _ in terms), rel=1e-6)
    # no pair at all (one response per group): zero, still differentiable
    r3 = torch.tensor([1.0, 2.0], requires_grad=True)
    value, logs = build_loss("scaled_bt")(ItemInputs(r3, torch.tensor([1.0, 2.0]), torch.tensor([0, 1])))
    value.backward()
    assert value.item() == 0 and logs["scaled_bt/pairs"] == 0 and r3.grad.abs().sum() == 0


@pytest.mark.parametrize("name", ["regression", "correctness", "scaled_bt"])
def test_masked_attributes_get_exactly_zero_gradient(name):
    torch.manual_seed(0)
    r = torch.randn(6, 3, requires_grad=True)
    t = torch.rand(6, 3).round() if name == "correctness" else torch.randn(6, 3)
    t[:, 1] = float("nan")       # attribute 1 unlabelled everywhere
    t[2, 0] = float("nan")       # one more masked entry
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    value, _ = build_loss(name)(ItemInputs(r, t, group))
    value.backward()
    assert torch.isfinite(value)
    assert (r.grad[:, 1] == 0).all() and r.grad[2, 0] == 0
    assert r.grad[~torch.isnan(t)].abs().sum() > 0


def test_aux_of_another_layout_is_refused():
    with pytest.raises(ConfigError, match="one layout"):
        build_loss("regression", [{"name": "centering", "weight": 0.1}] if "centering" in available()["aux"]
                   else [{"name": available()["aux"][0]}])
