"""Aggregators against hand computations and against TRL's own normalize_then_sum code."""

from __future__ import annotations

import inspect
import math
import textwrap
from types import SimpleNamespace

import pytest
import torch

from rewardlab.errors import ConfigError
from rewardlab.rubric import aggregators as agg

# one group of 3 rollouts, 2 criteria; weights 3 and 1
S = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.5]]], dtype=torch.float64)
W = [3.0, 1.0]


def _z(values):
    """Hand group z-score with Bessel's std and GRPO's 1e-4."""
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return [(v - m) / (sd + 1e-4) for v in values]


def test_weighted_sum_by_hand():
    out = agg.weighted_sum(S, W)
    expected = [0.75, 1.0, 0.125]  # (3*r1 + r2) / 4
    assert out.rewards[0].tolist() == pytest.approx(expected)
    assert out.advantages[0].tolist() == pytest.approx(_z(expected))
    assert out.weights.tolist() == pytest.approx([0.75, 0.25])


def test_weighted_sum_skips_nan_criteria():
    s = torch.tensor([[[1.0, float("nan")], [0.0, 1.0], [float("nan"), float("nan")]]])
    out = agg.weighted_sum(s, W)
    assert out.rewards[0, 0] == 1.0 and out.rewards[0, 1] == pytest.approx(0.25)
    assert math.isnan(out.rewards[0, 2]) and out.advantages[0, 2] == 0.0


def test_min_by_hand():
    out = agg.minimum(S, W)
    assert out.rewards[0].tolist() == [0.0, 1.0, 0.0]
    assert out.advantages[0].tolist() == pytest.approx(_z([0.0, 1.0, 0.0]))


def test_gdpo_by_hand():
    out = agg.gdpo(S, W)
    a1, a2 = _z([1.0, 1.0, 0.0]), _z([0.0, 1.0, 0.5])
    s = [3 * x + y for x, y in zip(a1, a2)]
    m = sum(s) / 3
    sd = math.sqrt(sum((v - m) ** 2 for v in s) / 2)
    assert out.rewards[0].tolist() == pytest.approx(s)
    assert out.advantages[0].tolist() == pytest.approx([(v - m) / (sd + 1e-4) for v in s])


def test_focal_by_hand():
    # saturation = batch means: s1 = 2/3, s2 = 1/2; gamma 2: 3*(1/3)^2 = 1/3, 1*(1/2)^2 = 1/4
    out = agg.focal(S, W, gamma=2.0)
    w = [(1 / 3) / (1 / 3 + 1 / 4), (1 / 4) / (1 / 3 + 1 / 4)]
    assert out.saturation.tolist() == pytest.approx([2 / 3, 1 / 2])
    assert out.weights.tolist() == pytest.approx(w)
    r = [w[0] * a + w[1] * b for a, b in S[0].tolist()]
    assert out.rewards[0].tolist() == pytest.approx(r)
    assert out.advantages[0].tolist() == pytest.approx(_z(r))


def test_focal_gamma_zero_is_weighted_sum_and_gdpo():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(4, 5, 3, generator=g, dtype=torch.float64)
    w = [2.0, 1.0, 0.5]
    for est in ("batch", "group"):
        f = agg.focal(s, w, gamma=0.0, estimator=est)
        ws = agg.weighted_sum(s, w)
        torch.testing.assert_close(f.rewards, ws.rewards)
        torch.testing.assert_close(f.advantages, ws.advantages)
        fa = agg.focal(s, w, gamma=0.0, estimator=est, level="advantage")
        gd = agg.gdpo(s, torch.tensor(w) / sum(w))
        torch.testing.assert_close(fa.advantages, gd.advantages)


def test_saturated_weight_falls_unsaturated_rises():
    w = [1.0, 1.0]
    low = torch.tensor([[[0.5, 0.1], [0.5, 0.0]]], dtype=torch.float64)   # criterion 0 half saturated
    high = torch.tensor([[[1.0, 0.1], [0.9, 0.0]]], dtype=torch.float64)  # criterion 0 near saturated
    before = agg.focal(low, w, gamma=1.0).weights
    after = agg.focal(high, w, gamma=1.0).weights
    assert after[0] < before[0] and after[1] > before[1]
    # a fully saturated criterion gets weight 0; all saturated falls back to the static weights
    assert agg.focal_weights(w, torch.tensor([1.0, 0.2]), 1.0).tolist() == [0.0, 1.0]
    assert agg.focal_weights([3.0, 1.0], torch.tensor([1.0, 1.0]), 1.0).tolist() == [0.75, 0.25]


def test_group_saturation_gives_weights_per_group():
    s = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], dtype=torch.float64)
    out = agg.focal(s, [1.0, 1.0], gamma=1.0, estimator="group")
    assert out.weights.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_ema_saturation():
    s = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    first = agg.estimate_saturation(s, "ema", previous=None, beta=0.5)
    assert first.tolist() == [1.0, 0.0]
    second = agg.estimate_saturation(torch.zeros_like(s), "ema", previous=first, beta=0.5)
    assert second.tolist() == [0.5, 0.0]
    with pytest.raises(ConfigError, match="needs the running saturation"):
        agg.focal(s, [1.0, 1.0], estimator="ema")


def test_bad_inputs():
    with pytest.raises(ConfigError, match="one weight per criterion"):
        agg.weighted_sum(S, [1.0])
    with pytest.raises(ConfigError, match=">= 0"):
        agg.weighted_sum(S, [1.0, -1.0])
    with pytest.raises(ConfigError, match="groups, rollouts, criteria"):
        agg.weighted_sum(S[0], W)
    with pytest.raises(ConfigError, match="unknown aggregator"):
        agg.aggregate("mean", S, W)


def _trl_normalize_then_sum(rewards_per_func, weights, num_generations):
    """Run the normalize_then_sum block of the installed trl's GRPOTrainer on these rewards."""
    from trl.trainer import grpo_trainer

    src = inspect.getsource(grpo_trainer.GRPOTrainer._generate_and_score_completions)
    lines = src.splitlines()
    start = next(i for i, l in enumerate(lines) if 'multi_objective_aggregation == "normalize_then_sum"' in l)
    body = []
    for line in lines[start + 1:]:
        if line.strip().startswith("else:") or line.strip().startswith("elif "):
            break
        body.append(line)
    code = textwrap.dedent("\n".join(body))
    ns = {"torch": torch, "nanstd": grpo_trainer.nanstd, "rewards_per_func": rewards_per_func,
          "num_generations": num_generations, "device": "cpu",
          "unscorable_mask": torch.isnan(rewards_per_func).all(dim=1),
          "self": SimpleNamespace(reward_funcs=[None] * rewards_per_func.shape[1],
                                  reward_weights=torch.tensor(weights, dtype=torch.float32))}
    exec(code, ns)  # noqa: S102 - trl's own code, read from the installed package
    return torch.nan_to_num(ns["advantages"], nan=0.0)


def test_gdpo_equals_trl_normalize_then_sum():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(3, 4, 3, generator=g)
    scores[0, :, 1] = 1.0  # a saturated criterion (zero std)
    scores[1, 2, 0] = float("nan")  # an invalid score
    weights = [2.0, 1.0, 0.5]
    trl_adv = _trl_normalize_then_sum(scores.reshape(12, 3), weights, 4)
    ours = agg.gdpo(scores, weights).advantages.reshape(-1)
    torch.testing.assert_close(ours, trl_adv)
