"""Preference strength (cross-fitted ensembles), noise detection and denoising recipes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rewardlab.data import load_preferences, sample_path
from rewardlab.errors import ConfigError
from rewardlab.heads import fit_head
from rewardlab.strength import (
    apply_recipe,
    crossfit_heads,
    decile_groups,
    noise_detection,
    plan_recipe,
    prompt_folds,
    strength_stats,
    swap_precision,
)


def test_strength_stats_by_hand():
    d = np.array([[1.0, -2.0, 0.5], [3.0, -2.0, -0.5]])
    mu, sd = strength_stats(d)
    np.testing.assert_allclose(mu, [2.0, -2.0, 0.0])
    np.testing.assert_allclose(sd, [1.0, 0.0, 0.5])
    with pytest.raises(ConfigError):
        strength_stats(np.zeros(3))


def test_prompt_folds_keep_prompts_together_and_are_stable():
    keys = [f"prompt {i % 40}" for i in range(200)]
    f = prompt_folds(keys, 5)
    assert set(f.tolist()) == set(range(5))
    for i in range(200):
        assert f[i] == f[i % 40]
    np.testing.assert_array_equal(f, prompt_folds(list(reversed(keys)), 5)[::-1])
    assert (prompt_folds(keys, 1) == 0).all()
    with pytest.raises(ConfigError):
        prompt_folds(keys, 0)


def _synthetic(n=600, d=8, seed=0, min_gap=0.0):
    """Pairs of vectors whose true reward is w·x (|w| = 1); chosen = the higher one; pairs whose
    true reward gap is below ``min_gap`` are redrawn."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    a, b = rng.normal(size=(4 * n, d)), rng.normal(size=(4 * n, d))
    ok = np.flatnonzero(np.abs((a - b) @ w) >= min_gap)[:n]
    assert len(ok) == n
    a, b = a[ok], b[ok]
    better = (a @ w) > (b @ w)
    xc = np.where(better[:, None], a, b).astype(np.float32)
    xr = np.where(better[:, None], b, a).astype(np.float32)
    return xc, xr


def test_crossfit_scores_each_pair_only_with_members_that_did_not_train_on_it(monkeypatch):
    import rewardlab.heads as heads

    calls = []
    real = heads.fit_head

    def spy(X, chosen, rejected, **kw):
        calls.append(np.asarray(chosen).copy())
        return real(X, chosen, rejected, **kw)

    monkeypatch.setattr(heads, "fit_head", spy)
    xc, xr = _synthetic(120)
    fold = np.arange(120) % 3
    res = crossfit_heads(xc, xr, fold, members=2, head={"kind": "linear", "epochs": 2})
    assert res.mode == "crossfit" and res.diffs.shape == (2, 120)
    assert len(calls) == 3
    for f, trained in enumerate(calls):
        assert set(trained.tolist()).isdisjoint(np.flatnonzero(fold == f).tolist())
        assert set(trained.tolist()) == set(np.flatnonzero(fold != f).tolist())
    calls.clear()
    res = crossfit_heads(xc, xr, np.zeros(120, dtype=np.int64), members=2, head={"kind": "linear", "epochs": 2})
    assert res.mode == "in_sample" and len(calls) == 1 and len(calls[0]) == 120
    with pytest.raises(ConfigError, match="every fold"):
        crossfit_heads(xc, xr, np.where(np.arange(120) < 60, 0, 2), members=1)


def test_members_differ_and_strength_finds_flipped_pairs():
    xc, xr = _synthetic(800, min_gap=0.5)
    flipped = np.zeros(800, dtype=bool)
    flipped[np.random.default_rng(1).choice(800, 160, replace=False)] = True
    nc = np.where(flipped[:, None], xr, xc)
    nr = np.where(flipped[:, None], xc, xr)
    res = crossfit_heads(nc, nr, np.arange(800) % 4, members=3, head={"kind": "linear", "epochs": 30, "batch_size": 64})
    assert (res.std > 0).mean() > 0.9  # members differ (seeds, data order)
    det = noise_detection(res.mean, flipped)
    print(det)
    # chance: AUROC 0.5, precision 0.2 (pairs with a tiny true gap could not be told apart, so
    # the synthetic pairs keep a gap of at least 0.5 std)
    assert det["auroc"] > 0.9 and det["precision_at_x"] > 0.7
    assert det["frac_negative_flipped"] > 0.75 and det["frac_negative_clean"] < 0.2


def test_noise_detection_by_hand():
    mu = np.array([-2.0, -1.0, 0.5, 1.0, 2.0])
    flipped = np.array([True, False, True, False, False])
    det = noise_detection(mu, flipped)
    # positives' scores −μ̂: 2, −0.5; negatives': 1, −1, −2 → pairs won: (2>1,2>−1,2>−2)=3, (−0.5>−1,−0.5>−2)=2 → 5/6
    assert det["auroc"] == pytest.approx(5 / 6)
    assert det["precision_at_x"] == pytest.approx(0.5)  # lowest 2: rows 0 (flipped), 1 (clean)
    assert noise_detection(mu, np.zeros(5, bool))["auroc"] is None


def test_swap_precision_by_hand():
    # 10 pairs; swaps at rows 0, 3, 9 (base rate 0.3). Sorted by μ̂ (stable): rows 2, 0, 5, 3, 1, 4, 6, 7, 8, 9
    mu = np.array([-1.0, 0.5, -2.0, 0.0, 0.7, -0.5, 0.9, 1.1, 1.2, 3.0])
    swapped = np.zeros(10, bool)
    swapped[[0, 3, 9]] = True
    weak = swap_precision(mu, swapped, 0.2)  # k = 2: rows 2 (clean), 0 (swap)
    assert (weak["k"], weak["hits"], weak["n_swapped"]) == (2, 1, 3)
    assert weak["precision"] == pytest.approx(1 / 2) and weak["recall"] == pytest.approx(1 / 3)
    assert weak["base_rate"] == pytest.approx(0.3)
    weak4 = swap_precision(mu, swapped, 0.4)  # rows 2, 0, 5, 3: two swaps
    assert weak4["precision"] == pytest.approx(2 / 4) and weak4["recall"] == pytest.approx(2 / 3)
    strong = swap_precision(mu, swapped, 0.3, end="strongest")  # rows 9 (swap), 8, 7
    assert (strong["k"], strong["hits"]) == (3, 1) and strong["precision"] == pytest.approx(1 / 3)
    # ties keep row order: μ̂ all equal, the weakest 30% are rows 0, 1, 2
    assert swap_precision(np.zeros(10), swapped, 0.3)["hits"] == 1
    assert swap_precision(mu, swapped, 0.0)["precision"] is None
    assert swap_precision(mu, np.zeros(10, bool), 0.2)["recall"] is None
    for bad in ({"fraction": 1.5}, {"fraction": 0.2, "end": "middle"}):
        with pytest.raises(ConfigError):
            swap_precision(mu, swapped, **bad)
    with pytest.raises(ConfigError):
        swap_precision(mu, swapped[:5], 0.2)


def test_decile_groups_equal_sizes_in_order():
    mu = np.r_[np.zeros(7), np.arange(13.0)]
    g = decile_groups(mu, 4)
    assert np.bincount(g).tolist() == [5, 5, 5, 5]
    order = np.argsort(mu, kind="stable")
    assert (np.diff(g[order]) >= 0).all()
    with pytest.raises(ConfigError):
        decile_groups(mu[:3], 4)


def test_recipes_plan_what_they_say():
    mu = np.array([0.5, -1.0, 2.0, -0.2, 0.1, 1.0, -3.0, 0.0, 0.3, 0.7])
    p = plan_recipe("flip_fraction", mu, fraction=0.2)
    assert np.flatnonzero(p.columns["flip"]).tolist() == [1, 6] and p.objective == {"name": "flip"}
    p = plan_recipe("flip_negative", mu)
    assert np.flatnonzero(p.columns["flip"]).tolist() == [1, 3, 6]
    p = plan_recipe("smooth_negative", mu, alpha=0.2)
    assert p.objective == {"name": "label_smoothing", "alpha": 0.2, "only_negative_strength": True}
    assert "strength_mean" in p.columns and p.counts["smoothed"] == 3
    p = plan_recipe("smooth_all", mu)
    assert p.objective["only_negative_strength"] is False and p.columns == {}
    p = plan_recipe("adaptive_margin", mu, scale=2.0)
    assert p.objective == {"name": "adaptive_margin", "scale": 2.0, "clip_min": 0.0}
    p = plan_recipe("top_subset", mu, keep=0.3)
    assert np.flatnonzero(p.keep).tolist() == [2, 5, 9]
    with pytest.raises(ConfigError, match="unknown denoising recipe"):
        plan_recipe("nope", mu)
    with pytest.raises(ConfigError, match="takes"):
        plan_recipe("flip_negative", mu, alpha=0.1)
    with pytest.raises(ConfigError, match="not finite at row 1"):
        plan_recipe("bt", np.array([0.0, np.nan]))


@pytest.mark.parametrize("recipe,opts", [("flip_fraction", {"fraction": 0.2}), ("smooth_negative", {}),
                                         ("adaptive_margin", {}), ("top_subset", {"keep": 0.5})])
def test_recipes_train_heads_through_the_registry(recipe, opts):
    xc, xr = _synthetic(200, seed=3)
    mu = np.random.default_rng(0).normal(size=200)
    plan = plan_recipe(recipe, mu, **opts)
    keep = np.flatnonzero(plan.keep)
    X = np.concatenate([xc, xr])
    cols = {k: v[keep] for k, v in plan.columns.items()}
    head = fit_head(X, keep, 200 + keep, objective=plan.objective, columns=cols or None,
                    config={"kind": "linear", "epochs": 3})
    assert np.isfinite(head.predict(X)).all()


def test_flip_plan_equals_swapping_the_pairs():
    """Training with the flip column gives the same head as training on swapped pairs."""
    xc, xr = _synthetic(100, seed=5)
    mu = np.random.default_rng(2).normal(size=100)
    plan = plan_recipe("flip_negative", mu)
    X = np.concatenate([xc, xr]).astype(np.float64)
    cfg = {"kind": "linear", "epochs": 3, "dtype": "float64", "val_fraction": 0.0}
    idx = np.arange(100)
    a = fit_head(X, idx, 100 + idx, objective=plan.objective, columns=plan.columns, config=cfg)
    f = plan.columns["flip"] > 0
    b = fit_head(X, np.where(f, 100 + idx, idx), np.where(f, idx, 100 + idx), objective="bt", config=cfg)
    np.testing.assert_allclose(a.predict(X), b.predict(X), atol=1e-6)


def test_apply_recipe_round_trips_through_a_file(tmp_path):
    table = load_preferences(sample_path(), limit=20)
    with pytest.raises(ConfigError, match="strength_mean"):
        apply_recipe(table, "flip_negative")
    mu = np.linspace(-1, 1, 20)
    table = table.with_column("strength_mean", mu.tolist())
    new, objective, counts = apply_recipe(table, "flip_negative")
    assert objective == {"name": "flip"} and counts["flipped"] == 10
    new.write(tmp_path / "d.jsonl")
    back = load_preferences(tmp_path / "d.jsonl")
    assert back["flip"] == [1.0] * 10 + [0.0] * 10
    sub, _, _ = apply_recipe(table, "top_subset", keep=0.25)
    assert len(sub) == 5 and min(sub["strength_mean"]) > 0.5


def test_bad_flip_values_are_named(tmp_path):
    from rewardlab.errors import DataError

    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "flip": 0.5}) + "\n")
    with pytest.raises(DataError) as e:
        load_preferences(p)
    assert "field 'flip'" in str(e.value) and "bad.jsonl:1" in str(e.value)


def test_strength_cli_on_the_sample(tmp_path):
    out = tmp_path / "strength.jsonl"
    r = subprocess.run([sys.executable, "-m", "rewardlab.cli", "strength", "--data", str(sample_path()),
                        "--out", str(out), "--members", "3", "--folds", "3", "--head", "linear", "--limit", "240",
                        "--max-length", "64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "with μ̂ < 0" in r.stdout
    back = load_preferences(out)
    assert len(back) == 240 and back.has("strength_mean") and back.has("strength_std")
    assert all(np.isfinite(back["strength_mean"]))
    rep = tmp_path / "strength_strength"
    summary = json.loads((rep / "summary.json").read_text())
    assert summary["mode"] == "crossfit" and summary["n_pairs"] == 240
    assert len(summary["deciles"]["groups"]) == 10
    assert "<img src=\"data:image/png;base64," in (rep / "report.html").read_text()
    assert (rep / "strength_hist.png").is_file() and (rep / "deciles.png").is_file()
    # the program-checked sample's labels are right: most pairs are positive
    assert summary["summary"]["frac_negative"] < 0.5
    d = subprocess.run([sys.executable, "-m", "rewardlab.cli", "denoise", str(out), "--out",
                        str(tmp_path / "flipped.jsonl"), "--recipe", "flip_fraction", "--fraction", "0.1"],
                       capture_output=True, text=True)
    assert d.returncode == 0, d.stdout + d.stderr
    assert "objective.name=flip" in d.stdout
    assert sum(load_preferences(tmp_path / "flipped.jsonl")["flip"]) == 24


def test_finetune_backend_crossfits_full_models(tmp_path):
    from rewardlab.config import parse_config
    from rewardlab.strength import crossfit_finetune

    table = load_preferences(sample_path(), limit=24)
    cfg = parse_config({"output_dir": str(tmp_path / "unused"), "model": {"name_or_path": "minilm", "max_length": 48},
                        "data": {"train": "unused.jsonl"},
                        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-4, "progress": False,
                                  "eval_every": 100, "save_every": 100}})
    fold = np.arange(24) % 2
    torch.manual_seed(0)
    res = crossfit_finetune(table, fold, cfg, members=2, work_dir=tmp_path / "w", batch_size=8)
    assert res.diffs.shape == (2, 24) and np.isfinite(res.diffs).all()
    runs = res.info["per_run"]
    assert [(r["fold"], r["member"]) for r in runs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r["n_train"] == 12 and r["n_scored"] == 12 for r in runs)
    assert (res.std > 0).any()  # members with different seeds disagree
