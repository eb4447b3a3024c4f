"""Annotation simulator and golden pools (rewardlab.data.simulate, rewardlab.study.golden)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special

from rewardlab.data import load_preferences
from rewardlab.study.golden import ResponsePool, build_pool, pool_from_table
from rewardlab.data.simulate import annotator_p_correct, golden_scale, scale_for_error_rate, simulate_pairs
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


# ----------------------------------------------------------------------------- noise scale modes
def _two_level(n_prompts=400, spread=(1.0,)):
    """Each prompt has two responses with golden 0 and ``spread`` (cycled over prompts)."""
    golden, pids = [], []
    for p in range(n_prompts):
        golden += [0.0, spread[p % len(spread)]]
        pids += [p, p]
    return np.array(golden), np.array(pids)


@pytest.mark.parametrize("scale, beta", [(2.0, 1.0), (0.5, 3.0)])
def test_fixed_scale_gives_the_stated_error_rate(scale, beta):
    from scipy import stats

    golden, pids = _two_level()  # every same-prompt pair has |Δr| = 1
    n = 20_000
    sim = simulate_pairs(golden, pids, n=n, beta=beta, scale=scale, seed=5)
    p_err = 1 - special.expit(beta * 1.0 / scale)  # by hand: the flip probability σ(-β/s)
    assert sim.scale_mode == "fixed" and sim.scale == scale
    np.testing.assert_allclose(1 - sim.p_correct, p_err)
    lo, hi = stats.binom.interval(0.999, n, p_err)
    assert lo <= (~sim.correct).sum() <= hi
    # the global scale is the std of all golden rewards (0.5 here): a different, lower error rate
    glob = simulate_pairs(golden, pids, n=n, beta=beta, scale="global", seed=5)
    assert glob.scale_mode == "global" and glob.scale == pytest.approx(0.5)
    np.testing.assert_allclose(1 - glob.p_correct, 1 - special.expit(beta / 0.5))


def test_per_prompt_scale_uses_each_prompts_spread():
    from scipy import stats

    # prompt spreads 1 and 4: Δ/s_prompt = 2 for both, so both err at σ(-2β)
    golden, pids = _two_level(spread=(1.0, 4.0))
    beta, n = 0.5, 20_000
    sim = simulate_pairs(golden, pids, n=n, beta=beta, scale="per_prompt", seed=2)
    assert sim.scale_mode == "per_prompt"
    np.testing.assert_allclose(sim.p_correct, special.expit(2 * beta))
    lo, hi = stats.binom.interval(0.999, n, 1 - special.expit(2 * beta))
    assert lo <= (~sim.correct).sum() <= hi
    # the global scale makes the small-spread prompts noisier than the large-spread ones
    glob = simulate_pairs(golden, pids, n=n, beta=beta, scale="std", seed=2)
    small = np.abs(golden[glob.chosen] - golden[glob.rejected]) == 1.0
    assert glob.p_correct[small].mean() < glob.p_correct[~small].mean()
    # cross-prompt: the root mean square of the two prompts' stds (0.5 and 2 here)
    cross = simulate_pairs(golden, pids, n=2000, beta=beta, scale="per_prompt", pairing="cross_prompt", seed=0)
    s_item = np.where(np.arange(len(golden)) // 2 % 2 == 0, 0.5, 2.0)
    s_pair = np.sqrt((s_item[cross.chosen] ** 2 + s_item[cross.rejected] ** 2) / 2)
    np.testing.assert_allclose(cross.scale, s_pair)
    np.testing.assert_allclose(cross.p_correct, special.expit(beta * cross.delta / s_pair))
    with pytest.raises(ConfigError, match="per_prompt"):
        simulate_pairs(np.zeros(4), [0, 0, 1, 1], n=3, scale="per_prompt")
    with pytest.raises(ConfigError):
        simulate_pairs(golden, pids, n=3, scale="per_item")


def test_scale_for_error_rate_by_hand():
    golden, pids = _two_level()
    s = scale_for_error_rate(golden, pids, beta=10, error_rate=0.05, pairing="same_prompt", n=5000)
    assert s == pytest.approx(10 / special.logit(0.95), rel=1e-6)  # 1 − σ(10/s) = 0.05
    sim = simulate_pairs(golden, pids, n=20_000, beta=10, scale=s, seed=1)
    assert 1 - sim.p_correct.mean() == pytest.approx(0.05)
    with pytest.raises(ConfigError):
        scale_for_error_rate(golden, pids, beta=10, error_rate=0.6)


# ----------------------------------------------------------------------------- sparse pairing
@pytest.mark.parametrize("pairing", ["same_prompt", "cross_prompt"])
@pytest.mark.parametrize("selection", ["random", "similar"])
@pytest.mark.parametrize("cap", [1, 2, 3])
def test_cap_holds_for_every_item(pairing, selection, cap):
    golden, pids = _pool(n_prompts=60, per_prompt=6)
    n = {"random": 60 * 6 * cap // 2, "similar": 60 * 2 * cap // 2}[selection] // 2  # half of what fits
    sim = simulate_pairs(golden, pids, n=n, pairing=pairing, selection=selection, max_per_item=cap, seed=3)
    counts = np.bincount(np.concatenate([sim.chosen, sim.rejected]), minlength=len(golden))
    assert len(sim) == n and counts.max() <= cap
    assert np.all(sim.chosen != sim.rejected)
    same = pids[sim.chosen] == pids[sim.rejected]
    assert same.all() if pairing == "same_prompt" else not same.any()
    assert sim.summary()["max_comparisons_per_item"] <= cap
    # without the cap the same quantity repeats items (the premise the cap removes)
    free = simulate_pairs(golden, pids, n=n, pairing=pairing, selection=selection, seed=3)
    assert np.bincount(np.concatenate([free.chosen, free.rejected])).max() > cap


def test_cap_that_cannot_be_met_is_an_error():
    golden, pids = _pool(n_prompts=3, per_prompt=2)
    assert len(simulate_pairs(golden, pids, n=3, max_per_item=1, seed=0)) == 3  # exactly what fits
    with pytest.raises(ConfigError, match="allows only 3"):
        simulate_pairs(golden, pids, n=4, max_per_item=1, seed=0)
    with pytest.raises(ConfigError, match="max_per_item"):
        simulate_pairs(golden, pids, n=2, max_per_item=0)


def test_each_prompt_once_is_one_comparison_per_prompt():
    golden, pids = _pool(n_prompts=40, per_prompt=10)
    sim = simulate_pairs(golden, pids, n=40, each_prompt_once=True, seed=0)
    assert sorted(pids[sim.chosen].tolist()) == list(range(40))  # every prompt exactly once
    cross = simulate_pairs(golden, pids, n=40, pairing="cross_prompt", each_prompt_once=True,
                           max_per_item=1, beta=-1, seed=1)
    counts = np.bincount(np.concatenate([cross.chosen, cross.rejected]), minlength=len(golden))
    assert counts.max() == 1 and len(cross) == 40
    # each prompt is in at most about two comparisons: its own and at most a few as second side
    per_prompt = np.bincount(pids[np.concatenate([cross.chosen, cross.rejected])], minlength=40)
    assert per_prompt.min() >= 1 and per_prompt.sum() == 80
    with pytest.raises(ConfigError, match="each_prompt_once"):
        simulate_pairs(golden, pids, n=41, each_prompt_once=True)


def test_each_prompt_once_keeps_an_item_back_for_prompts_still_to_come():
    # three responses a prompt, one pair each, every item at most once: 2 of 3 items are needed
    # on average, but uniform partner draws used up a prompt before its own turn in 17 of 20 seeds
    golden, pids = _pool(n_prompts=100, per_prompt=3)
    for seed in range(20):
        sim = simulate_pairs(golden, pids, n=100, pairing="cross_prompt", each_prompt_once=True,
                             max_per_item=1, seed=seed)
        counts = np.bincount(np.concatenate([sim.chosen, sim.rejected]), minlength=len(golden))
        assert len(sim) == 100 and counts.max() == 1
        assert not np.any(pids[sim.chosen] == pids[sim.rejected])
