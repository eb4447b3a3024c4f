"""Annotation simulator and golden pools (rewardlab.data.simulate, rewardlab.study.golden)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special

from rewardlab.data import load_preferences
from rewardlab.study.golden import ResponsePool, build_pool, pool_from_table
from rewardlab.data.simulate import annotator_p_correct, golden_scale, simulate_pairs
from rewardlab.errors import ConfigError, DataError


def _pool(n_prompts=50, per_prompt=8, seed=0):
    rng = np.random.default_rng(seed)
    golden = rng.normal(size=n_prompts * per_prompt)
    prompt_ids = np.repeat(np.arange(n_prompts), per_prompt)
    return golden, prompt_ids


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_noise_rate_matches_sigmoid_in_expectation(beta):
    golden, pids = _pool()
    s = golden_scale(golden)
    sim = simulate_pairs(golden, pids, n=40_000, beta=beta, seed=1)
    # P(correct) is exactly sigma(beta * |dr| / s) with s the std of the golden rewards
    np.testing.assert_allclose(sim.p_correct, special.expit(beta * sim.delta / s))
    assert sim.scale == pytest.approx(np.std(golden))
    # the observed correct rate matches the expected one overall ...
    p = sim.p_correct
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(sim.correct.mean() - p.mean()) < 4 * se
    # ... and within bins of P(correct) (calibration, not just the average)
    bins = np.quantile(p, [0, 0.25, 0.5, 0.75, 1.0])
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (p >= lo) & (p <= hi)
        se_bin = np.sqrt(np.sum(p[m] * (1 - p[m]))) / m.sum()
        assert abs(sim.correct[m].mean() - p[m].mean()) < 4 * se_bin + 1e-9
    # the labels record the truth: correct means chosen has the higher golden reward
    assert np.array_equal(sim.correct, golden[sim.chosen] > golden[sim.rejected])


def test_more_beta_fewer_errors_and_noiseless_is_exact():
    golden, pids = _pool()
    rates = [simulate_pairs(golden, pids, n=5000, beta=b, seed=0).label_error_rate for b in (0.5, 1, 3, 10)]
    assert rates == sorted(rates, reverse=True)
    sim = simulate_pairs(golden, pids, n=2000, beta=-1, seed=0)
    assert sim.correct.all() and sim.beta is None and sim.label_error_rate == 0.0
    assert np.array_equal(annotator_p_correct([0.0, 1.0], None, 1.0), [0.5, 1.0])


def test_pairing_and_selection_rules():
    golden, pids = _pool(n_prompts=30, per_prompt=7)
    rank = np.empty(len(golden), dtype=int)
    for p in range(30):
        idx = np.flatnonzero(pids == p)
        rank[idx[np.argsort(golden[idx], kind="stable")]] = np.arange(len(idx))
    same = simulate_pairs(golden, pids, n=3000, pairing="same_prompt", seed=0)
    assert np.all(pids[same.chosen] == pids[same.rejected]) and np.all(same.chosen != same.rejected)
    cross = simulate_pairs(golden, pids, n=3000, pairing="cross_prompt", seed=0)
    assert np.all(pids[cross.chosen] != pids[cross.rejected])
    sim = simulate_pairs(golden, pids, n=500, selection="similar", beta=-1, seed=0)
    assert set(rank[sim.chosen]) == {4} and set(rank[sim.rejected]) == {3}  # middle neighbours of 7
    div = simulate_pairs(golden, pids, n=500, selection="diverse", beta=-1, seed=0)
    assert set(rank[div.chosen]) == {6} and set(rank[div.rejected]) == {0}  # extremes
    xdiv = simulate_pairs(golden, pids, n=500, pairing="cross_prompt", selection="diverse", seed=0)
    assert set(rank[xdiv.chosen]) | set(rank[xdiv.rejected]) == {0, 6}
    rand = simulate_pairs(golden, pids, n=3000, selection="random", seed=0)
    assert len(set(rank[rand.chosen]) | set(rank[rand.rejected])) == 7


def test_seeded_and_validated():
    golden, pids = _pool()
    a = simulate_pairs(golden, pids, n=100, seed=3)
    b = simulate_pairs(golden, pids, n=100, seed=3)
    c = simulate_pairs(golden, pids, n=100, seed=4)
    assert np.array_equal(a.chosen, b.chosen) and not np.array_equal(a.chosen, c.chosen)
    with pytest.raises(ConfigError):
        simulate_pairs(golden, pids, n=10, pairing="sideways")
    with pytest.raises(ConfigError):
        simulate_pairs(golden, pids, n=0)
    with pytest.raises(ConfigError):
        simulate_pairs([1.0, 2.0], [0, 0], n=5, pairing="cross_prompt")  # one prompt only
    with pytest.raises(ConfigError):
        golden_scale(np.ones(4))
    assert golden_scale(golden, 2.5) == 2.5


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_pool_from_table_dedupes_and_takes_golden(tmp_path):
    rows = [
        {"prompt": "p1", "chosen": "a", "rejected": "b", "golden_chosen": 2.0, "golden_rejected": 1.0},
        {"prompt": "p1", "chosen": "a", "rejected": "c", "golden_chosen": 2.0, "golden_rejected": 0.5},
        {"prompt": "p2", "chosen": "x", "rejected": "y", "golden_chosen": 1.0, "golden_rejected": 0.0},
        {"prompt": "p3", "chosen": "a", "rejected": "z", "golden_chosen": 3.0, "golden_rejected": 0.0},
    ]
    table = load_preferences(_write(tmp_path / "d.jsonl", rows))
    pool = pool_from_table(table, golden="column", min_responses=2)
    assert pool.response == ["a", "b", "c", "x", "y", "a", "z"]  # "a" of p3 is another item
    assert pool.prompt_id.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert pool.golden.tolist() == [2.0, 1.0, 0.5, 1.0, 0.0, 3.0, 0.0]
    three = pool_from_table(table, golden="column", min_responses=3)
    assert three.response == ["a", "b", "c"] and three.info["dropped_prompts"] == 2
    labels = pool_from_table(table, golden="labels")
    assert labels.golden.tolist() == [1, 0, 0, 1, 0, 1, 0]
    pool.write(tmp_path / "pool.parquet")
    back = ResponsePool.read(tmp_path / "pool.parquet")
    assert back.response == pool.response and np.array_equal(back.golden, pool.golden)
    assert np.array_equal(back.prompt_id, pool.prompt_id) and back.info["golden"] == "column"
    mask = pool.test_mask(0.5)
    for p in range(pool.n_prompts):  # a prompt is entirely on one side
        assert len(set(mask[pool.prompt_id == p])) == 1
    assert np.array_equal(mask, pool.test_mask(0.5))


def test_pool_golden_conflicts_are_errors(tmp_path):
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "b", "rejected": "a"}]
    spec = _write(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match="both chosen and rejected"):
        build_pool(spec, {"kind": "labels"})
    with pytest.raises(DataError, match="golden_chosen"):
        build_pool(spec, {"kind": "column"})
    with pytest.raises(ConfigError):
        build_pool(spec, {"kind": "oracle"})
    with pytest.raises(ConfigError, match="model"):
        build_pool(spec, {"kind": "reward_model"})


def test_humanevalpack_verifiable_golden(shared_data):
    pool = build_pool(str(shared_data / "humanevalpack.jsonl"), {"kind": "labels"})
    assert pool.n_prompts == 656 and len(pool) == 2 * 656
    assert pool.golden.sum() == 656  # one correct solution per prompt
