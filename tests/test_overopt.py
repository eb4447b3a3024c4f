"""Best-of-N over-optimisation curves (eval/overopt.py) by hand and against sampling, and the
study's columns and plot."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.eval.overopt import best_of_n_curve, bon_kl


def test_kl_by_hand():
    np.testing.assert_allclose(bon_kl([1, 2, 4]), [0.0, np.log(2) - 0.5, np.log(4) - 0.75])


def test_curve_by_hand_peaks_inside():
    # proxy order 0 < 1 < 2, golden 0, 3, 1: N=2 picks rank 1, 2, 3 with probability 1/9, 3/9, 5/9
    c = best_of_n_curve([0.0, 1.0, 2.0], [0.0, 3.0, 1.0], ["a"] * 3, [1, 2, 1000], proxy_scale=1.0)
    np.testing.assert_allclose(c.golden, [4 / 3, 0 + 3 * 3 / 9 + 1 * 5 / 9, 1.0], atol=1e-9)
    np.testing.assert_allclose(c.golden_gain, [0.0, 14 / 9 - 4 / 3, 1.0 - 4 / 3], atol=1e-9)
    np.testing.assert_allclose(c.proxy, [1.0, 3 / 9 + 2 * 5 / 9, 2.0], atol=1e-9)
    assert (c.peak_n, c.n_prompts) == (2, 1)
    from rewardlab.eval.overopt import peak_index

    # a plateau peaks where it starts, whatever rounding follows; 99% of 1.0 is first reached at index 2
    assert peak_index([0.0, 0.5, 0.995, 1.0, 1.0 - 1e-12, 1.0]) == (3, 2)
    # a tie: two responses share the top proxy level and split its probability
    t = best_of_n_curve([0.0, 1.0, 1.0], [0.0, 2.0, 4.0], ["a"] * 3, [1000])
    assert t.golden == pytest.approx([3.0])


def test_curve_equals_sampling():
    rng = np.random.default_rng(0)
    proxy, golden = rng.normal(size=7), rng.normal(size=7)
    proxy2, golden2 = rng.normal(size=4), rng.normal(size=4)
    c = best_of_n_curve(np.r_[proxy, proxy2], np.r_[golden, golden2], [0] * 7 + [1] * 4, [5], golden_scale=2.0)
    draws = 200_000
    est = []
    for p, g in ((proxy, golden), (proxy2, golden2)):
        idx = rng.integers(0, p.size, size=(draws, 5))
        est.append(g[idx[np.arange(draws), p[idx].argmax(1)]].mean() - g.mean())
    assert c.golden_gain[0] == pytest.approx(np.mean(est) / 2.0, abs=0.01)


def test_study_rows_and_plot(tmp_path):
    from rewardlab.study.plots import make_plots, overopt_ns

    rows = [{"head": "mlp", "objective": "bt", "label_error_rate": 0.1, "beta": 1.0, "quantity": 10,
             "pairwise_accuracy": 0.7, "bon_1": 0.0, **{f"overopt_golden_{n}": v for n, v in ((1, 0.0), (4, 0.3), (64, 0.2))},
             **{f"overopt_proxy_{n}": v for n, v in ((1, 0.0), (4, 0.8), (64, 1.5))}}]
    assert overopt_ns(rows) == [1, 4, 64]
    files = make_plots(rows, tmp_path, [1])
    assert files["overoptimisation"].stat().st_size > 1000
