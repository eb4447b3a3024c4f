"""Intervals, paired tests and corrections (rewardlab.eval.stats) against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from rewardlab.eval.stats import (
    bootstrap_interval,
    compare_models,
    holm,
    mcnemar_exact,
    paired_bootstrap_difference,
    wilson_interval,
)


# ----------------------------------------------------------------------------- Wilson
def _wilson_by_hand(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(7, 10), (0, 20), (20, 20), (141, 200)])
def test_wilson_matches_the_closed_form(k, n):
    z = sps.norm.ppf(0.975)
    low, high = _wilson_by_hand(k, n, z)
    out = wilson_interval(k, n)
    assert out["estimate"] == pytest.approx(k / n)
    assert out["low"] == pytest.approx(max(low, 0.0), abs=1e-12)
    assert out["high"] == pytest.approx(min(high, 1.0), abs=1e-12)
    assert (out["k"], out["n"], out["level"], out["method"]) == (k, n, 0.95, "wilson")


def test_wilson_level_changes_the_width():
    narrow, wide = wilson_interval(30, 50, level=0.8), wilson_interval(30, 50, level=0.99)
    assert wide["low"] < narrow["low"] < 0.6 < narrow["high"] < wide["high"]


def test_wilson_of_nothing_is_undefined():
    out = wilson_interval(0, 0)
    assert out["estimate"] is None and out["low"] is None and out["high"] is None


@pytest.mark.parametrize("k,n,level", [(3, 2, 0.95), (-1, 5, 0.95), (1.5, 5, 0.95), (True, 5, 0.95),
                                       (1, 5, 1.0), (1, 5, 0.0)])
def test_wilson_rejects_bad_input(k, n, level):
    with pytest.raises(ValueError):
        wilson_interval(k, n, level)


# ----------------------------------------------------------------------------- bootstrap
def test_item_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(3).random(300) < 0.6
    out = bootstrap_interval(x, seed=7)
    assert out == bootstrap_interval(x, seed=7)
    assert out != bootstrap_interval(x, seed=8)
    assert out["estimate"] == pytest.approx(x.mean())
    assert out["low"] < out["estimate"] < out["high"]
    assert (out["n"], out["n_boot"], out["n_clusters"], out["method"]) == (300, 2000, None, "percentile bootstrap")
    # about the normal-approximation width 2 * 1.96 * sqrt(p(1-p)/n)
    assert out["high"] - out["low"] == pytest.approx(2 * 1.96 * math.sqrt(0.24 / 300), rel=0.15)


def test_item_bootstrap_matches_a_direct_resampling_loop():
    x = np.array([0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 1.0])
    out = bootstrap_interval(x, n_boot=500, seed=11)
    rng = np.random.default_rng(11)
    idx = rng.integers(0, x.size, size=(500, x.size))
    boot = np.array([x[row].mean() for row in idx])
    assert out["low"] == pytest.approx(np.quantile(boot, 0.025))
    assert out["high"] == pytest.approx(np.quantile(boot, 0.975))


def test_cluster_bootstrap_keeps_clusters_whole():
    # every cluster holds +1 and -1: a resample of whole clusters always has mean 0 and sum 0,
    # a resample that split clusters would not
    x = np.tile([1.0, -1.0], 50)
    clusters = np.repeat(np.arange(50), 2)
    out = bootstrap_interval(x, clusters=clusters, seed=1)
    assert out["low"] == out["high"] == 0.0
    assert out["n_clusters"] == 50 and out["method"] == "cluster percentile bootstrap"
    summed = bootstrap_interval(x, statistic=lambda v, axis=None: np.sum(v, axis=axis), clusters=clusters,
                                n_boot=300, seed=1)
    assert summed["low"] == summed["high"] == 0.0
    items = bootstrap_interval(x, seed=1)
    assert items["high"] - items["low"] > 0.2


def test_cluster_bootstrap_matches_a_direct_loop_over_unequal_clusters():
    x = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0], dtype=float)
    clusters = ["a", "a", "a", "b", "c", "c", "d", "d", "d", "d"]
    members = {"a": [0, 1, 2], "b": [3], "c": [4, 5], "d": [6, 7, 8, 9]}
    out = bootstrap_interval(x, clusters=clusters, n_boot=400, seed=5)
    rng = np.random.default_rng(5)
    draws = rng.integers(0, 4, size=(400, 4))
    names = ["a", "b", "c", "d"]  # order of first appearance
    boot = [np.mean(np.concatenate([x[members[names[g]]] for g in row])) for row in draws]
    assert out["low"] == pytest.approx(np.quantile(boot, 0.025))
    assert out["high"] == pytest.approx(np.quantile(boot, 0.975))


def test_correlated_clusters_widen_the_interval():
    # each prompt's 5 items agree: 40 independent outcomes, not 200
    outcome = np.random.default_rng(2).random(40) < 0.5
    x = np.repeat(outcome, 5)
    clusters = np.repeat(np.arange(40), 5)
    width_items = np.diff([bootstrap_interval(x, seed=0)[k] for k in ("low", "high")])[0]
    width_clusters = np.diff([bootstrap_interval(x, clusters=clusters, seed=0)[k] for k in ("low", "high")])[0]
    assert width_clusters / width_items == pytest.approx(math.sqrt(5), rel=0.2)


def test_bootstrap_general_statistic_on_items():
    x = np.arange(101, dtype=float)
    out = bootstrap_interval(x, statistic=np.median, n_boot=300, seed=0)
    assert out["estimate"] == 50.0 and out["low"] < 50.0 < out["high"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"values": []},
        {"values": [1.0, np.nan]},
        {"values": [[1.0, 0.0]]},
        {"values": ["a", "b"]},
        {"values": [1, 0, 1], "clusters": [0, 1]},
        {"values": [1, 0, 1], "clusters": [0, 0, 0]},
        {"values": [1, 0, 1], "level": 1.5},
        {"values": [1, 0, 1], "n_boot": 0},
        {"values": [1, 0, 1], "statistic": lambda v, axis=None: np.asarray(v).ravel()},
    ],
)
def test_bootstrap_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        bootstrap_interval(**kwargs)


# ----------------------------------------------------------------------------- paired difference
def test_paired_bootstrap_resamples_the_same_items_for_both_models():
    rng = np.random.default_rng(4)
    a = rng.random(200) < 0.5
    b = a.copy()
    b[np.flatnonzero(a)[:10]] = False  # B loses 10 items A wins, nothing else differs
    out = paired_bootstrap_difference(a, b, seed=0)
    assert out["estimate"] == pytest.approx(0.05)
    assert (out["mean_a"], out["mean_b"]) == (pytest.approx(a.mean()), pytest.approx(b.mean()))
    # paired: only the 10 discordant items vary, so the interval is far from 0
    assert 0 < out["low"] < 0.05 < out["high"] < 0.1
    assert out["p_value"] < 0.01  # 3 standard errors away from 0
    # independent resamples of a and b would give a width of about 2 * 1.96 * 0.05 = 0.2
    assert out["high"] - out["low"] < 0.07


def test_paired_bootstrap_without_difference():
    a = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    out = paired_bootstrap_difference(a, a.copy())
    assert out["estimate"] == 0.0 and out["low"] == out["high"] == 0.0 and out["p_value"] == 1.0


def test_paired_bootstrap_p_value_by_hand():
    a = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=float)
    b = np.array([0, 1, 0, 0, 1, 1, 0, 0], dtype=float)
    out = paired_bootstrap_difference(a, b, n_boot=999, seed=3)
    d = a - b
    rng = np.random.default_rng(3)
    boot = d[rng.integers(0, 8, size=(999, 8))].mean(axis=1)
    expected = (1 + np.sum(np.abs(boot - d.mean()) >= abs(d.mean()) - 1e-12)) / 1000
    assert out["p_value"] == pytest.approx(expected)
    assert 0.05 < out["p_value"] < 1


def test_paired_bootstrap_with_clusters_and_bad_input():
    a = np.array([1, 1, 0, 1, 0, 1], dtype=float)
    b = np.array([1, 0, 0, 0, 0, 1], dtype=float)
    out = paired_bootstrap_difference(a, b, clusters=[0, 0, 1, 1, 2, 2], n_boot=200)
    assert out["n_clusters"] == 3 and out["method"] == "paired cluster bootstrap"
    with pytest.raises(ValueError):
        paired_bootstrap_difference(a, b[:-1])
    with pytest.raises(ValueError):
        paired_bootstrap_difference(a, b, clusters=[0, 0, 1])


# ----------------------------------------------------------------------------- McNemar
@pytest.mark.parametrize("b,c,same", [(9, 2, 30), (5, 5, 3), (0, 7, 10), (30, 12, 100), (1, 0, 0)])
def test_mcnemar_matches_scipy_binomtest(b, c, same):
    a = np.array([1] * b + [0] * c + [1] * same + [0] * 4, dtype=bool)
    m = np.array([0] * b + [1] * c + [1] * same + [0] * 4, dtype=bool)
    out = mcnemar_exact(a, m)
    assert (out["b"], out["c"], out["n_discordant"], out["n"]) == (b, c, b + c, a.size)
    expected = sps.binomtest(b, b + c, 0.5).pvalue
    assert out["p_value"] == pytest.approx(expected, rel=1e-9)
    assert out["statistic"] == min(b, c)


def test_mcnemar_without_discordant_pairs_is_one():
    a = np.array([1, 0, 1, 1], dtype=bool)
    out = mcnemar_exact(a, a.copy())
    assert (out["b"], out["c"], out["p_value"]) == (0, 0, 1.0)


@pytest.mark.parametrize("a,b", [([1, 0.5], [1, 0]), ([1, 0, 1], [1, 0]), ([], []), ([2, 0], [1, 0])])
def test_mcnemar_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        mcnemar_exact(a, b)


# ----------------------------------------------------------------------------- Holm
def test_holm_by_hand_keeps_order():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    out = holm([0.01, 0.04, 0.03, 0.005])
    assert out["p_adjusted"] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert out["reject"] == [True, False, False, True]
    assert (out["m"], out["method"], out["alpha"]) == (4, "holm", 0.05)


def test_holm_keeps_dict_keys_and_leaves_none_out():
    out = holm({"chat": 0.02, "safety": None, "math": 0.5, "code": 0.001}, alpha=0.05)
    assert list(out["p_adjusted"]) == ["chat", "safety", "math", "code"]
    assert out["p_adjusted"] == {"chat": pytest.approx(0.04), "safety": None, "math": pytest.approx(0.5),
                                 "code": pytest.approx(0.003)}
    assert out["reject"] == {"chat": True, "safety": False, "math": False, "code": True}
    assert out["m"] == 3


def test_holm_caps_at_one_and_handles_empty():
    assert holm([0.6, 0.7])["p_adjusted"] == [1.0, 1.0]
    assert holm([]) == {"p_adjusted": [], "reject": [], "alpha": 0.05, "m": 0, "method": "holm"}


@pytest.mark.parametrize("p,alpha", [([0.1, 1.2], 0.05), ([np.nan], 0.05), ([-0.1], 0.05), ([0.1], 0.0)])
def test_holm_rejects_bad_input(p, alpha):
    with pytest.raises(ValueError):
        holm(p, alpha)


# ----------------------------------------------------------------------------- compare_models
def test_compare_models_rows_holm_and_json():
    rng = np.random.default_rng(0)
    groups = np.array(["chat"] * 120 + ["math"] * 80 + ["code"] * 60)
    a = rng.random(260) < 0.7
    b = a.copy()
    b[:30] = ~b[:30]  # chat: 30 changed items
    out = compare_models(a, b, groups, n_boot=500, seed=1)
    json.dumps(out)  # plain values only
    assert [row["subset"] for row in out["subsets"]] == ["chat", "math", "code"]
    chat, math_row, code = out["subsets"]
    assert chat["mcnemar"]["b"] + chat["mcnemar"]["c"] == 30
    assert math_row["mcnemar"]["n_discordant"] == 0 and math_row["p_value"] == 1.0
    assert chat["a"]["method"] == "wilson" and chat["a"]["k"] == int(a[:120].sum())
    assert chat["difference"]["estimate"] == pytest.approx(a[:120].mean() - b[:120].mean())
    raw = [row["p_value"] for row in out["subsets"]]
    expected = holm(raw)
    assert [row["p_holm"] for row in out["subsets"]] == pytest.approx(expected["p_adjusted"])
    assert [row["reject"] for row in out["subsets"]] == expected["reject"]
    assert out["overall"]["subset"] == "overall" and out["overall"]["n"] == 260
    assert out["overall"]["mcnemar"]["n_discordant"] == 30
    assert all(row["test"] == "mcnemar_exact" for row in out["subsets"])
    assert out == compare_models(a, b, groups, n_boot=500, seed=1)


def test_compare_models_with_partial_credit_uses_the_bootstrap_p():
    a = np.array([1, 0.5, 1, 0, 1, 1, 0.5, 1], dtype=float)
    b = np.array([0, 0.5, 1, 0, 0, 1, 0, 0], dtype=float)
    out = compare_models(a, b, [0] * 8, clusters=[0, 0, 1, 1, 2, 2, 3, 3], n_boot=300)
    row = out["subsets"][0]
    assert row["mcnemar"] is None and row["test"] == "paired_bootstrap"
    assert row["p_value"] == row["difference"]["p_value"]
    assert row["a"]["method"] == "cluster percentile bootstrap"


def test_compare_models_rejects_bad_input():
    with pytest.raises(ValueError):
        compare_models([1, 0], [1, 0], ["x"])
    with pytest.raises(ValueError):
        compare_models([1, 0], [1], ["x", "y"])


# ----------------------------------------------------------------------------- coverage
def test_intervals_cover_a_known_accuracy():
    """200 simulated subsets of n=200 at p=0.7: the 95% intervals cover p about 95% of the time."""
    rng = np.random.default_rng(2024)
    p, n, reps = 0.7, 200, 200
    data = rng.random((reps, n)) < p
    wilson = bootstrap = 0
    for i, x in enumerate(data):
        w = wilson_interval(int(x.sum()), n)
        wilson += w["low"] <= p <= w["high"]
        bt = bootstrap_interval(x, n_boot=1000, seed=i)
        bootstrap += bt["low"] <= p <= bt["high"]
    # binomial sd of a coverage estimate over 200 subsets: sqrt(.95 * .05 / 200) = 0.015
    assert 0.91 <= wilson / reps <= 0.99
    assert 0.90 <= bootstrap / reps <= 0.99
    # an 80% interval must not pass for a 95% one
    narrow = sum(wilson_interval(int(x.sum()), n, level=0.8)["low"] <= p <= wilson_interval(
        int(x.sum()), n, level=0.8)["high"] for x in data)
    assert narrow / reps < 0.88
