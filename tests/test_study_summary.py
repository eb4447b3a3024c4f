"""benchmarks/study_summary.py: paired-by-seed t-tests with Holm on a synthetic study table."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

pd = pytest.importorskip("pandas")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "study_summary.py"
_spec = importlib.util.spec_from_file_location("study_summary", _PATH)
study_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study_summary)

SEEDS = range(5)
# Per-seed baselines that differ a lot between seeds: an unpaired comparison (or one that pairs
# rows by position instead of by seed) cannot see a 0.03 difference through this spread.
BASE = [0.60, 0.75, 0.55, 0.70, 0.65]
# BT − classification per seed, by setting (head "mlp", pairing "same_prompt", quantity 1000, β).
DIFFS = {
    0.5: [0.030, 0.032, 0.029, 0.031, 0.030],      # large, consistent BT advantage
    1.0: [0.004, -0.003, 0.001, -0.002, 0.001],    # no difference (mean +0.0002)
    3.0: [0.000, 0.001, 0.000, -0.001, 0.200],     # one outlier seed: mean +0.04, not consistent
    10.0: [0.010, 0.030, 0.005, 0.025, 0.015],     # raw p ~ 0.01, not after Holm over 5 settings
    -1.0: [-0.041, -0.040, -0.039, -0.040, -0.042],  # classification better
}


def _table(shuffle: bool = True) -> pd.DataFrame:
    rows = []
    for beta, diffs in DIFFS.items():
        for seed, base, d in zip(SEEDS, BASE, diffs):
            for obj, value in (("bt", base + d), ("classification", base)):
                rows.append({"head": "mlp", "pairing": "same_prompt", "quantity": 1000, "beta": beta,
                             "seed": seed, "objective": obj, "pairwise_accuracy": value})
    df = pd.DataFrame(rows)
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True) if shuffle else df


def _by_beta(result: dict) -> dict:
    return {row["beta"]: row for row in result["rows"]}


def test_holm_verdicts_on_known_answers():
    res = study_summary.paired_tests(_table(), "pairwise_accuracy", alpha=0.05)
    rows = _by_beta(res)
    assert res["m"] == 5 and len(rows) == 5
    assert rows[0.5]["verdict"] == "BT better"
    assert rows[-1.0]["verdict"] == "classification better"
    assert rows[1.0]["verdict"] == "no detectable difference"
    # One seed carries the whole mean: not a detectable difference.
    assert rows[3.0]["mean"] == pytest.approx(0.04)
    assert rows[3.0]["verdict"] == "no detectable difference"
    # Significant uncorrected, not after Holm: the correction is applied.
    assert rows[10.0]["p"] < 0.05
    assert rows[10.0]["p_holm"] > 0.05 and rows[10.0]["verdict"] == "no detectable difference"
    assert res["counts"] == {"BT better": 1, "classification better": 1, "no detectable difference": 3}
    assert res["sign_count"] == {"bt_ahead": 4, "classification_ahead": 1, "equal": 0}


def test_paired_numbers_match_hand_computation():
    rows = _by_beta(study_summary.paired_tests(_table(), "pairwise_accuracy"))
    ps = []
    for beta, diffs in DIFFS.items():
        d = np.asarray(diffs)
        n, mean, sd = d.size, d.mean(), d.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        row = rows[beta]
        assert row["n_seeds"] == 5
        assert row["mean"] == pytest.approx(mean, abs=1e-12)
        assert row["low"] == pytest.approx(mean - half) and row["high"] == pytest.approx(mean + half)
        p = 2 * stats.t.sf(abs(mean / (sd / math.sqrt(n))), n - 1)
        assert row["p"] == pytest.approx(p, rel=1e-6)
        ps.append(p)
    # Holm by hand: sorted p times (m - i), running maximum, capped at 1.
    order = np.argsort(ps)
    adj = np.minimum(1, np.maximum.accumulate(np.asarray(ps)[order] * (len(ps) - np.arange(len(ps)))))
    for k, i in enumerate(order):
        assert rows[list(DIFFS)[i]]["p_holm"] == pytest.approx(adj[k])


def test_pairs_by_seed_not_by_row_order():
    df = _table(shuffle=False)
    # Drop one classification seed: that seed must leave the pair, not shift the others.
    df = df[~((df["beta"] == 0.5) & (df["objective"] == "classification") & (df["seed"] == 4))]
    row = _by_beta(study_summary.paired_tests(df.iloc[::-1], "pairwise_accuracy"))[0.5]
    assert row["n_seeds"] == 4
    assert row["mean"] == pytest.approx(np.mean(DIFFS[0.5][:4]))


def test_duplicate_cells_are_refused():
    df = _table()
    with pytest.raises(ValueError, match="share"):
        study_summary.paired_tests(pd.concat([df, df.iloc[:1]]), "pairwise_accuracy")


def test_min_detectable_effect_has_the_stated_power():
    n, alpha = 5, 0.05 / 60
    d = study_summary.min_detectable_effect(n, alpha, power=0.8)
    crit = stats.t.ppf(1 - alpha / 2, n - 1)
    assert stats.nct.sf(crit, n - 1, d * math.sqrt(n)) == pytest.approx(0.8, abs=1e-4)
    assert study_summary.min_detectable_effect(n, 0.05) == pytest.approx(1.682, abs=1e-3)
