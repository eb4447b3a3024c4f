"""Length diagnostics (issue 23, item 3): Spearman(reward, length) and accuracy split by which side
is longer, with intervals, against hand computations, scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rewardlab.data.lengths import length_diagnostics, length_summary_line, response_length, spearman_interval
from rewardlab.eval import metrics


def test_response_length_counts_characters():
    assert response_length("héllo") == 5
    assert response_length([{"role": "assistant", "content": "ab"}, {"role": "user", "content": "cde"}]) == 5


def test_split_by_longer_side_by_hand():
    # pairs: chosen longer & right, chosen longer & wrong, chosen shorter & right, equal & tie (wrong)
    r_c, r_r = [2.0, 0.0, 1.0, 1.0], [1.0, 3.0, 0.5, 1.0]
    len_c, len_r = [10, 30, 5, 7], [4, 20, 9, 7]
    d = length_diagnostics(r_c, r_r, len_c, len_r)
    assert (d["chosen_longer"]["n"], d["chosen_longer"]["correct"], d["chosen_longer"]["accuracy"]) == (2, 1, 0.5)
    assert (d["chosen_shorter"]["n"], d["chosen_shorter"]["accuracy"]) == (1, 1.0)
    assert (d["equal_length"]["n"], d["equal_length"]["accuracy"]) == (1, 0.0)  # a tie is wrong
    assert d["gap"]["estimate"] == pytest.approx(-0.5)
    # Wilson for 1 of 2 by hand: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    z, n, p = stats.norm.ppf(0.975), 2, 0.5
    centre, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert d["chosen_longer"]["low"] == pytest.approx((centre - half) / (1 + z * z / n))
    assert d["chosen_longer"]["high"] == pytest.approx((centre + half) / (1 + z * z / n))
    assert d["unit"] == "characters" and "Spearman" in length_summary_line(d)


def test_spearman_pools_both_sides_and_matches_scipy():
    rng = np.random.default_rng(0)
    r_c, r_r = rng.normal(size=40), rng.normal(size=40)
    len_c, len_r = rng.integers(1, 500, 40), rng.integers(1, 500, 40)
    d = length_diagnostics(r_c, r_r, len_c, len_r)
    rho = stats.spearmanr(np.r_[r_c, r_r], np.r_[len_c, len_r]).statistic
    assert d["spearman"]["rho"] == pytest.approx(rho) and d["spearman"]["n"] == 80
    se = math.sqrt((1 + rho ** 2 / 2) / (80 - 3))  # Bonett & Wright
    assert d["spearman"]["low"] == pytest.approx(math.tanh(math.atanh(rho) - 1.959964 * se), abs=1e-6)
    assert d["spearman"]["low"] < rho < d["spearman"]["high"]
    lb = metrics.length_bias(r_c, r_r, len_c, len_r)  # eval's block carries the same numbers
    assert lb["spearman_reward_length"] == pytest.approx(rho)
    assert lb["acc_chosen_longer_interval"]["low"] == d["chosen_longer"]["low"]
    assert lb["gap_longer_minus_shorter"] == d["gap"]


def test_gap_interval_is_newcombes():
    from statsmodels.stats.proportion import confint_proportions_2indep

    r_c = [1] * 10 + [0] * 10
    r_r = [0] * 7 + [1] * 3 + [-1] * 4 + [1] * 6  # longer: 7 of 10 right; shorter: 4 of 10 right
    len_c, len_r = [9] * 10 + [1] * 10, [1] * 10 + [9] * 10
    g = length_diagnostics(r_c, r_r, len_c, len_r)["gap"]
    low, high = confint_proportions_2indep(7, 10, 4, 10, method="newcomb")
    assert g["estimate"] == pytest.approx(0.3) and (g["low"], g["high"]) == pytest.approx((low, high))


def test_undefined_values_are_none():
    assert spearman_interval([1, 2, 3], [5, 5, 5])["rho"] is None  # constant length
    d = length_diagnostics([1.0], [0.0], [3], [3])
    assert d["chosen_longer"]["accuracy"] is None and d["gap"]["estimate"] is None
    with pytest.raises(ValueError):
        length_diagnostics([1.0, 2.0], [0.0], [3], [3])
