"""Over-optimisation monitoring (eval/drift.py): trends, the length change point, the warnings,
and the per-step JSONL written through RubricReward."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from rewardlab.eval.drift import DriftMonitor, change_point, drift_warnings, trend
from rewardlab.rubric.reward import RubricReward
from rewardlab.rubric.spec import parse_rubric


def test_trend_against_statsmodels():
    import statsmodels.api as sm

    exact = trend([1.0, 3.0, 5.0, 7.0])
    assert (exact.slope, exact.n) == (pytest.approx(2.0), 4) and exact.low == pytest.approx(2.0) and exact.rising()
    rng = np.random.default_rng(0)
    y = 0.05 * np.arange(30) + rng.normal(0, 1, 30)
    fit = sm.OLS(y, sm.add_constant(np.arange(30.0))).fit()
    t = trend(y)
    assert t.slope == pytest.approx(fit.params[1])
    assert (t.low, t.high) == pytest.approx(tuple(fit.conf_int(0.05)[1]))
    assert np.isnan(trend([1.0, 2.0]).slope) and not trend([1.0, 2.0]).rising()


def test_change_point_by_hand():
    cp = change_point([1, 1.2, 0.8, 1, 1, 5, 5.2, 4.8, 5, 5])
    # segments [0, 5) and [5, 10): means 1 and 5, SSE 0.08 + 0.08, pooled sd sqrt(0.16 / 8)
    assert (cp.index, cp.before, cp.after) == (5, pytest.approx(1.0), pytest.approx(5.0))
    assert cp.shift_sd == pytest.approx(4 / np.sqrt(0.16 / 8))
    assert change_point([3.0, 3.0, 3.0, 7.0, 7.0, 7.0]).shift_sd == np.inf
    assert change_point([1.0, 2.0, 3.0]) is None  # too short for two segments of 3


def test_warnings():
    steps = range(20)
    flat = [{"step": s, "reward": 0.0 + 0.01 * (s % 2), "length": 50.0 + (s % 3), "spread": 0.3} for s in steps]
    assert drift_warnings(flat) == []
    hacked = [{"step": s, "reward": 0.1 * s, "length": 50.0 + (s % 3) + (80 if s >= 12 else 0),
               "spread": 0.3 + 0.02 * s} for s in steps]
    kinds = {w["kind"]: w for w in drift_warnings(hacked)}
    assert set(kinds) == {"length_shift", "spread_rising", "reward_rising_length_rising"}
    assert kinds["length_shift"]["step"] == 12 and kinds["length_shift"]["after"] > kinds["length_shift"]["before"]
    assert drift_warnings(hacked[:5]) == []  # too few steps to say anything


def test_rubric_reward_writes_drift_per_step(tmp_path):
    rubric = parse_rubric({"criteria": [{"name": "tag", "scorer": {"type": "rule", "contains": "<a>"}}]})
    monitor = DriftMonitor(tmp_path / "drift.jsonl")
    fn = RubricReward(rubric, "weighted_sum", num_generations=2, drift=monitor)
    for step in range(12):
        completions = ["<a>" + "x" * step, "no"] * 2
        ids = [[0] * len(c) for c in completions]
        out = fn(prompts=["p", "p", "q", "q"], completions=completions, completion_ids=ids,
                 trainer_state=SimpleNamespace(global_step=step), log_metric=None)
        assert out == [1.0, 0.0, 1.0, 0.0]
    lines = [json.loads(line) for line in (tmp_path / "drift.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(12))
    assert lines[3] == {"step": 3, "reward": 0.5, "reward_std": 0.5, "length": (6 + 2) / 2, "spread": None, "n": 4,
                        "length_unit": "tokens"}
    report = monitor.report()
    assert report["trends"]["length"]["slope"] == pytest.approx(0.5) and report["steps"] == 12
    assert {w["kind"] for w in report["warnings"]} == set()  # reward flat: no rising pair
