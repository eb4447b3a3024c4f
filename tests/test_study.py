"""Studies: grid, cell ids, resume, local pool and Ray backends, tables, plots, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardlab.study.golden import ResponsePool
from rewardlab.errors import ConfigError
from rewardlab.eval.metrics import best_of_n_gain, golden_pairwise_accuracy
from rewardlab.study import runners
from rewardlab.study.grid import cells, parse_study_config
from rewardlab.study.runners import read_results, run_study

N_PROMPTS, PER_PROMPT, DIM = 40, 5, 8


@pytest.fixture(scope="module")
def pool_files(tmp_path_factory):
    """A synthetic golden pool (40 prompts x 5 responses) and 8-dim embeddings of its items."""
    d = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    n = N_PROMPTS * PER_PROMPT
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    golden = X @ rng.normal(size=DIM) + 0.5 * np.sin(2 * X[:, 0])
    pool = ResponsePool([f"prompt {i // PER_PROMPT}" for i in range(n)], [f"response {i}" for i in range(n)],
                        np.repeat(np.arange(N_PROMPTS), PER_PROMPT), ["synthetic"] * n, golden,
                        {"golden": "synthetic"})
    pool.write(d / "pool.parquet")
    np.save(d / "emb.npy", X)
    return d


def _config(pool_files, out, **grid):
    tree = {
        "name": "test",
        "output_dir": str(out),
        "pool": {"path": str(pool_files / "pool.parquet"), "test_fraction": 0.25},
        "embeddings": {"syn": {"path": str(pool_files / "emb.npy")}},
        "head": {"members": 2, "widths": [8], "epochs": 3, "batch_size": 64},
        "eval": {"best_of_n": [1, 2, 5], "n_perm": 10},
        "threads_per_worker": 1,
        "grid": {"embedding": "syn", "objective": ["bt", "classification"], "head": ["mlp", "linear"],
                 "beta": [1.0, -1], "quantity": 200, "pairing": "same_prompt", "selection": "random",
                 "seed": [0], **grid},
    }
    return parse_study_config(tree)


def test_grid_cells_and_stable_ids(pool_files, tmp_path):
    cfg = _config(pool_files, tmp_path / "a", seed=[0, 1])
    grid = cells(cfg)
    assert len(grid) == 2 * 2 * 2 * 2  # objective x head x beta x seed
    assert grid[0] == {**grid[0], "embedding": "syn", "objective": {"name": "bt"}, "head": "mlp", "beta": 1.0}
    assert [c["cell_id"] for c in cells(cfg)] == [c["cell_id"] for c in grid]  # stable
    elsewhere = _config(pool_files, tmp_path / "b", seed=[0, 1])  # output_dir does not matter
    assert [c["cell_id"] for c in cells(elsewhere)] == [c["cell_id"] for c in grid]
    changed = parse_study_config({**cfg.model_dump(mode="json"), "head": {**cfg.head.model_dump(), "members": 3}})
    ids = {c["cell_id"] for c in grid}
    assert not ids & {c["cell_id"] for c in cells(changed)}  # a setting that decides results


def test_later_settings_keep_old_cell_ids_at_their_defaults(pool_files, tmp_path):
    """Options added for FIDELITY seed 001 change a cell's id only when set."""
    from rewardlab.study.grid import cell_settings

    cfg = _config(pool_files, tmp_path / "a")
    ids = [c["cell_id"] for c in cells(cfg)]
    settings = cell_settings(cfg, cells(cfg)[0])
    assert "early_stopping" not in settings["head"] and "max_per_item" not in settings["simulation"]
    assert "ties" not in settings["eval"]
    tree = cfg.model_dump(mode="json")
    explicit = parse_study_config({**tree, "simulation": {"scale": "std", "max_per_item": None,
                                                          "each_prompt_once": False}})
    assert [c["cell_id"] for c in cells(explicit)] == ids
    for change in ({"simulation": {"scale": 1.5}}, {"simulation": {"scale": "per_prompt"}},
                   {"simulation": {"max_per_item": 2}}, {"simulation": {"each_prompt_once": True}},
                   {"eval": {**tree["eval"], "ties": "half"}},
                   {"head": {**tree["head"], "early_stopping": False}}):
        other = parse_study_config({**tree, **change})
        assert not set(ids) & {c["cell_id"] for c in cells(other)}, change
    with pytest.raises(ConfigError, match="simulation.scale"):
        parse_study_config({**tree, "simulation": {"scale": -1.0}})
    with pytest.raises(ConfigError, match="eval.ties"):
        parse_study_config({**tree, "eval": {**tree["eval"], "ties": "coin"}})


def test_sparse_fixed_scale_half_ties_cells_run(pool_files, tmp_path):
    tree = _config(pool_files, tmp_path / "s", head=["mlp"], objective=["bt"], beta=[1.0]).model_dump(mode="json")
    tree["simulation"] = {"scale": "per_prompt", "max_per_item": 2}
    tree["eval"] = {**tree["eval"], "ties": "half"}
    tree["head"] = {**tree["head"], "early_stopping": False, "val_fraction": 0.2}
    tree["grid"]["quantity"] = [100]
    cfg = parse_study_config(tree)
    run_study(cfg, plots=False, log=lambda m: None)
    (row,) = read_results(cfg.output_dir)
    assert row["max_comparisons_per_item"] <= 2
    assert row["pairwise_accuracy"] == row["pairwise_accuracy_half"]
    assert 0 <= row["pairwise_tied_fraction"] <= 1
    assert row["epochs_mean"] == 3  # early stopping off: every epoch


def test_study_config_errors(pool_files, tmp_path):
    with pytest.raises(ConfigError, match="forest"):
        _config(pool_files, tmp_path, head=["forest"])
    with pytest.raises(ConfigError, match="unknown objective"):
        _config(pool_files, tmp_path, objective=["nonsense"])
    with pytest.raises(ConfigError, match="pool needs"):
        parse_study_config({"pool": {}, "grid": {"embedding": "x"}})
    with pytest.raises(ConfigError, match="grid.pairing"):
        _config(pool_files, tmp_path, pairing=["sideways"])


def test_interrupted_study_resumes_and_skips_finished_cells(pool_files, tmp_path, monkeypatch):
    cfg = _config(pool_files, tmp_path / "study")
    calls = {"n": 0}
    original = runners.evaluate_cell

    def dies_at_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run is killed while its third cell trains
        return original(*args, **kwargs)

    monkeypatch.setattr(runners, "evaluate_cell", dies_at_third)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, plots=False, log=lambda m: None)
    assert len(read_results(cfg.output_dir)) == 2
    with open(tmp_path / "study" / "results.jsonl", "a") as f:
        f.write('{"cell_id": "torn')  # a line cut by the kill is ignored
    monkeypatch.setattr(runners, "evaluate_cell", original)
    calls["n"] = 0
    summary = run_study(cfg, log=lambda m: None)
    assert summary["skipped"] == 2 and summary["ran"] == 6 and summary["remaining"] == 0
    again = run_study(cfg, plots=False, log=lambda m: None)
    assert again["ran"] == 0 and again["skipped"] == 8

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "study" / "results.parquet").to_pylist()
    assert len(table) == 8 and len({r["cell_id"] for r in table}) == 8
    row = table[0]
    for key in ("embedding", "objective", "head", "beta", "quantity", "pairing", "selection", "seed",
                "pairwise_accuracy", "spearman", "bon_2", "bon_5", "bon_oracle_5", "label_error_rate"):
        assert key in row
    assert row["bon_1"] == 0.0 and row["bon_oracle_5"] >= row["bon_5"]
    header = (tmp_path / "study" / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["cell_id", "embedding"]
    for name in ("best_of_n", "noise", "quantity"):
        assert (tmp_path / "study" / "plots" / f"{name}.png").stat().st_size > 1000
    noiseless = [r for r in table if r["noiseless"]]
    assert noiseless and all(r["label_error_rate"] == 0.0 for r in noiseless)
    assert np.mean([r["pairwise_accuracy"] for r in table if r["head"] == "mlp"]) > 0.5


def test_local_process_pool_gives_the_in_process_results(pool_files, tmp_path):
    one = run_study(_config(pool_files, tmp_path / "one", objective=["bt"]), plots=False, log=lambda m: None)
    two = run_study(_config(pool_files, tmp_path / "two", objective=["bt"]), workers=2, plots=False,
                    log=lambda m: None)
    assert one["ran"] == two["ran"] == 4 and two["failed"] == 0
    a = {r["cell_id"]: r for r in read_results(tmp_path / "one")}
    b = {r["cell_id"]: r for r in read_results(tmp_path / "two")}
    assert a.keys() == b.keys()
    for cid in a:
        assert a[cid]["pairwise_accuracy"] == pytest.approx(b[cid]["pairwise_accuracy"], abs=1e-9)
    assert len({r["pid"] for r in b.values()}) >= 1


def test_ray_backend_on_a_local_instance(pool_files, tmp_path):
    pytest.importorskip("ray")
    cfg = _config(pool_files, tmp_path / "ray", objective=["classification"], head=["linear"])
    summary = run_study(cfg, backend="ray", workers=1, plots=False, log=lambda m: None)
    assert summary["ran"] == 2 and summary["failed"] == 0
    local = run_study(_config(pool_files, tmp_path / "local", objective=["classification"], head=["linear"]),
                      plots=False, log=lambda m: None)
    assert local["ran"] == 2
    a = {r["cell_id"]: r for r in read_results(tmp_path / "ray")}
    b = {r["cell_id"]: r for r in read_results(tmp_path / "local")}
    for cid in a:
        assert a[cid]["spearman"] == pytest.approx(b[cid]["spearman"], abs=1e-9)


def test_best_of_n_and_pairwise_accuracy_hand_made():
    golden = np.array([1.0, 2.0, 3.0, 10.0, 0.0, 5.0])
    prompts = ["a", "a", "a", "a", "b", "b"]
    pred = np.array([0.4, 0.3, 0.2, 0.1, 0.0, 1.0])  # prompt a: exactly reversed; b: right
    gains = best_of_n_gain(pred, golden, prompts, ns=[1, 2, 4], n_perm=2000, seed=0)
    assert gains[1] == 0.0
    assert gains[4] == pytest.approx(1.0 - 4.0)  # only prompt a has 4: picks golden 1, mean 4
    # N = 2: prompt b always picks 5 (mean 2.5, gain +2.5); prompt a picks the lower golden
    # of a random pair: pick minus pair mean is -|g_i - g_j| / 2, on average -(28 / 6) / 2 = -7/3.
    assert gains[2] == pytest.approx((2.5 - 7 / 3) / 2, abs=0.08)
    assert golden_pairwise_accuracy(pred, golden, prompts) == pytest.approx(1 / 7)  # 0 of 6 + 1 of 1
    with pytest.raises(ValueError):
        golden_pairwise_accuracy([1.0, 2.0], [3.0, 3.0], ["a", "a"])


def test_golden_pairwise_accuracy_tie_policies_by_hand():
    from rewardlab.eval.metrics import golden_pair_counts

    golden = [1.0, 2.0, 3.0, 5.0, 0.0, 1.0, 1.0]
    prompts = ["a", "a", "a", "b", "b", "c", "c"]
    pred = [0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0]
    # a: (1,2) tied, (1,3) right, (2,3) right; b: (5 over 0) wrong; c: golden tie, not a pair
    assert golden_pair_counts(pred, golden, prompts) == {"right": 2, "tied": 1, "wrong": 1, "pairs": 4}
    assert golden_pairwise_accuracy(pred, golden, prompts) == pytest.approx(2 / 4)
    assert golden_pairwise_accuracy(pred, golden, prompts, ties="wrong") == pytest.approx(2 / 4)
    assert golden_pairwise_accuracy(pred, golden, prompts, ties="half") == pytest.approx(2.5 / 4)
    assert golden_pairwise_accuracy(pred, golden, prompts, ties="drop") == pytest.approx(2 / 3)
    constant = np.zeros(7)  # a predictor that ties everything: 0 when ties are wrong, chance with half
    assert golden_pairwise_accuracy(constant, golden, prompts) == 0.0
    assert golden_pairwise_accuracy(constant, golden, prompts, ties="half") == 0.5
    with pytest.raises(ValueError, match="drop"):
        golden_pairwise_accuracy(constant, golden, prompts, ties="drop")
    with pytest.raises(ValueError, match="ties"):
        golden_pairwise_accuracy(pred, golden, prompts, ties="coin")


def test_pool_built_from_data_with_golden_column(tmp_path):
    rows = []
    for p in range(12):
        for j in range(3):
            rows.append({"prompt": f"p{p}", "chosen": f"r{p}-{j + 1}", "rejected": f"r{p}-{j}",
                         "golden_chosen": float(j + 1 + p % 3), "golden_rejected": float(j + p % 3)})
    data = tmp_path / "golden.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool_dir = tmp_path / "study"
    cfg = parse_study_config({
        "output_dir": str(pool_dir),
        "pool": {"data": str(data), "golden": {"kind": "column"}, "test_fraction": 0.3},
        "embeddings": {"e": {"path": str(tmp_path / "e.npy")}},
        "grid": {"embedding": "e"},
    })
    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32))
    ctx = runners.prepare(cfg, log=lambda m: None)
    pool = ResponsePool.read(pool_dir / "pool.parquet")
    assert len(pool) == 48 and pool.n_prompts == 12 and pool.info["golden"] == "column"
    assert ctx["scale"] == pytest.approx(np.std(pool.golden))


def test_cli_study_command(pool_files, tmp_path):
    import typer
    import yaml
    from typer.testing import CliRunner

    from rewardlab.cli.embed_study import study

    cfg = _config(pool_files, tmp_path / "cli", objective=["bt"], head=["linear"], beta=[-1])
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    app = typer.Typer()
    app.command()(study)
    app.command("noop")(lambda: None)  # two commands: typer then routes by name
    res = CliRunner().invoke(app, ["study", str(path), "--set", "grid.seed=[0,1]", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "2/2 cells finished" in res.output
    res = CliRunner().invoke(app, ["study", str(path), "--set", "grid.seed=[0,1]", "--no-plots"])
    assert "0 now, 2 before" in res.output
