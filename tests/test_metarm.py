"""MetaRM (rewardlab.objectives.metarm, rewardlab.data.groups, rewardlab.train.methods.metarm): the difference objective, meta data, the meta step in the
fine-tuning loop (η = 0 is plain BT, exact resume, CLI, DDP) and on embedding heads."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_runs import train_env
from safetensors.torch import load_file

from rewardlab.config import parse_config
from rewardlab.data import load_preferences
from rewardlab.errors import ConfigError, DataError
from rewardlab.heads import EnsembleMLP, HeadConfig, fit_head
from rewardlab.data.groups import group_responses, load_meta_groups
from rewardlab.objectives import metarm
from rewardlab.objectives.metarm import difference_objective, meta_batch_groups


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------- the objective
def test_difference_objective_by_hand():
    # k = 3: pairs |1-2| = 1, |1-4| = 3, |2-4| = 2; J = 2/9 (σ(1) + σ(3) + σ(2))
    assert float(difference_objective(torch.tensor([[1.0, 2.0, 4.0]]), torch.ones(1, 3, dtype=torch.bool))) == \
        pytest.approx(2 / 9 * (sig(1) + sig(3) + sig(2)), abs=1e-7)
    # a padded group (k = 2) beside it; the padding holds NaN and must not reach value or gradient
    r = torch.tensor([[1.0, 2.0, 4.0], [0.5, -1.0, float("nan")]], requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    J = difference_objective(r, mask)
    expected = (2 / 9 * (sig(1) + sig(3) + sig(2)) + 2 / 4 * sig(1.5)) / 2
    assert float(J.detach()) == pytest.approx(expected, abs=1e-7)
    J.backward()
    assert torch.isfinite(r.grad).all() and r.grad[1, 2] == 0
    # dJ/dr for the k = 2 group: ½ · 2/4 · σ'(1.5) · sign(r0 - r1)
    s = sig(1.5)
    assert float(r.grad[1, 0]) == pytest.approx(0.5 * 0.5 * s * (1 - s), abs=1e-7)
    assert float(r.grad[1, 1]) == pytest.approx(-0.5 * 0.5 * s * (1 - s), abs=1e-7)
    # far-apart and tied rewards: finite, J bounded by (k-1)/k
    far = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    J = difference_objective(far, torch.ones(1, 3, dtype=torch.bool))
    J.backward()
    assert float(J) == pytest.approx(2 / 3, abs=1e-6) and torch.isfinite(far.grad).all()
    tied = torch.zeros(1, 2, requires_grad=True)
    difference_objective(tied, torch.ones(1, 2, dtype=torch.bool)).backward()
    assert torch.equal(tied.grad, torch.zeros(1, 2))
    with pytest.raises(ConfigError, match="two responses"):
        difference_objective(torch.zeros(1, 3), torch.tensor([[True, False, False]]))


# ---------------------------------------------------------------------- meta data
def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_groups_by_prompt(tmp_path):
    rows = [
        {"prompt": "p1", "chosen": "a", "rejected": "b"},
        {"prompt": "p2", "chosen": "x", "rejected": "x"},  # one distinct response: left out, counted
        {"prompt": "p1", "chosen": "c", "rejected": "a"},
        {"prompt": "p3", "chosen": "d", "rejected": "e"},
        {"prompt": "p3", "chosen": "f", "rejected": "g"},  # four responses, capped at three
    ]
    chat = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": "h1", "rejected": "h2"},
            {"prompt": [{"role": "user", "content": "hi"}], "chosen": "h3", "rejected": "h1"}]
    groups = load_meta_groups([str(_write(tmp_path / "meta.jsonl", rows)), str(_write(tmp_path / "chat.jsonl", chat))],
                              max_responses=3)
    assert groups.prompts == ["p1", "p3", [{"role": "user", "content": "hi"}]]
    assert groups.responses == [["a", "b", "c"], ["d", "e", "f"], ["h1", "h2", "h3"]]
    assert groups.origin[0].endswith("meta.jsonl:1")
    rep = groups.report
    assert (rep["rows"], rep["prompts"], rep["groups"], rep["prompts_with_one_response"]) == (7, 4, 3, 1)
    assert rep["responses_over_cap"] == 1 and rep["responses"] == 9 and rep["k_histogram"] == {3: 3}


def test_meta_data_errors_name_the_file(tmp_path):
    single = _write(tmp_path / "single.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "a"},
                                                 {"prompt": "q", "chosen": "b", "rejected": "b"}])
    with pytest.raises(DataError, match="single.jsonl.*two distinct responses"):
        load_meta_groups(str(single))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": 3, "rejected": "b"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2.*chosen"):
        load_meta_groups(str(bad))
    assert len(load_meta_groups(str(bad), on_error="skip")) == 1
    with pytest.raises(ConfigError, match="max_responses"):
        group_responses(load_preferences(str(bad), on_error="skip"), max_responses=1)


def test_meta_batches_are_a_function_of_seed_and_step():
    a = meta_batch_groups(10, seed=3, step=7, batch=4)
    assert np.array_equal(a, meta_batch_groups(10, seed=3, step=7, batch=4))
    assert not np.array_equal(a, meta_batch_groups(10, seed=3, step=8, batch=4))
    assert len(set(a.tolist())) == 4
    both = meta_batch_groups(10, 3, 7, 4, rank=0, world=2), meta_batch_groups(10, 3, 7, 4, rank=1, world=2)
    assert np.array_equal(np.concatenate(both), meta_batch_groups(10, 3, 7, 8))  # ranks split one global batch
    assert sorted(np.bincount(meta_batch_groups(3, 0, 0, 5))) == [1, 2, 2]  # fewer groups than the batch


# ---------------------------------------------------------------------- heads
def _head_data(m=160, d=8, n=300, G=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d)).astype(np.float32)
    golden = X @ rng.normal(size=d)
    a = rng.integers(0, m, n)
    b = (a + 1 + rng.integers(0, m - 1, n)) % m
    c, r = np.where(golden[a] > golden[b], a, b), np.where(golden[a] > golden[b], b, a)
    groups = rng.integers(0, m, (G, 4))
    groups[::3, 3] = -1  # every third group has three responses
    return X, c, r, groups


def test_head_meta_ascent_increases_J_and_restores():
    X, _, _, groups = _head_data()
    model = EnsembleMLP(X.shape[1], [16], seeds=[1, 2])
    x = torch.from_numpy(X)
    g, mask = torch.from_numpy(np.where(groups >= 0, groups, 0)), torch.from_numpy(groups >= 0)

    def J_of_members():
        r = model(x[g.reshape(-1)]).reshape(2, *g.shape)
        return [difference_objective(r[j], mask) for j in range(2)]

    def closure():
        J = sum(J_of_members())
        J.backward()
        return float(J)

    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        J0 = [float(v) for v in J_of_members()]
    params, saved, value = metarm.ascend(model.parameters(), closure, eta=0.5)
    with torch.no_grad():
        J1 = [float(v) for v in J_of_members()]
    assert value == pytest.approx(sum(J0), abs=1e-6)
    assert all(b > a for a, b in zip(J0, J1)), (J0, J1)  # each member's own J went up
    assert all(p.grad is None for p in params)
    params[0].grad = torch.ones_like(params[0])
    metarm.restore(params, saved)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before)) and params[0].grad is not None
    with pytest.raises(RuntimeError, match="cleared gradients"):
        metarm.ascend(model.parameters(), closure, eta=0.5)


def test_head_eta0_is_plain_bt_and_meta_changes_training():
    X, c, r, groups = _head_data()
    cfg = HeadConfig(kind="mlp", members=2, widths=[32], batch_size=64, epochs=6, patience=2, lr=3e-3)
    plain = fit_head(X, c, r, config=cfg, seed=1)
    zero = fit_head(X, c, r, config=cfg, seed=1, meta={"groups": groups, "eta": 0.0, "batch": 8})
    np.testing.assert_allclose(zero.predict_members(X), plain.predict_members(X), atol=1e-6, rtol=0)
    assert zero.info["epochs"] == plain.info["epochs"] and zero.info["meta"]["steps"] == plain.info["steps"]

    # First-order MetaRM does not maximise J itself: the BT gradient is taken at θ + η∇J
    meta = fit_head(X, c, r, config=cfg, seed=1, meta={"groups": groups, "eta": 5.0, "batch": 8})
    assert np.abs(meta.predict_members(X) - plain.predict_members(X)).max() > 1e-3
    assert 0.5 * 3 / 4 <= meta.info["meta"]["J_first"] < 1
    p = meta.predict(X)
    assert np.mean(p[c] > p[r]) > 0.7  # still learns the preferences
    every2 = fit_head(X, c, r, config=cfg, seed=1, meta={"groups": groups, "eta": 5.0, "batch": 8, "every": 2})
    assert every2.info["meta"]["steps"] == math.ceil(every2.info["steps"] / 2)


def test_head_meta_errors():
    X, c, r, groups = _head_data()
    with pytest.raises(ConfigError, match="two responses"):
        fit_head(X, c, r, config={"kind": "linear"}, meta={"groups": np.array([[0, -1], [1, 2]])})
    with pytest.raises(ConfigError, match="out of range"):
        fit_head(X, c, r, config={"kind": "linear"}, meta={"groups": np.array([[0, 10_000]])})
    with pytest.raises(ConfigError, match="linear or mlp"):
        fit_head(X, c, r, config={"kind": "gbdt"}, meta={"groups": groups})


# ---------------------------------------------------------------------- the fine-tuning loop
@pytest.fixture(scope="module")
def dropout_llama(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama with attention dropout, so the meta forward's own RNG stream is exercised."""
    d = tmp_path_factory.mktemp("dropout_llama")
    for f in tiny_llama_dir.iterdir():
        shutil.copy(f, d / f.name)
    cfg = json.loads((d / "config.json").read_text())
    cfg["attention_dropout"] = 0.2
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module")
def meta_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("meta")
    rows = [{"prompt": f"Question {i}: what is {i} + {i}?", "chosen": f"It is {2 * i}.",
             "rejected": f"Maybe {2 * i + 1}, or {i}."} for i in range(12)]
    rows += [{"prompt": f"Question {i}: what is {i} + {i}?", "chosen": f"{2 * i}", "rejected": "I do not know."}
             for i in range(12)]
    return _write(d / "shifted.jsonl", rows)


def _tree(out: Path, model: Path, meta: dict | None, **train) -> dict:
    from rewardlab.data import sample_path

    tc = {"max_steps": 4, "batch_size": 4, "lr": 1e-3, "scheduler": "constant", "warmup_ratio": 0.0,
          "eval_every": 100, "save_every": 100, "log_every": 1, "progress": False, "reward_stats_max_pairs": 0}
    tc.update(train)
    tree = {"output_dir": str(out), "model": {"name_or_path": str(model), "max_length": 48},
            "data": {"train": str(sample_path()), "val_fraction": 0.0, "max_train_pairs": 16},
            "objective": {"name": "bt"}, "train": tc}
    if meta is not None:
        tree["metarm"] = meta
    return tree


def _weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_finetune_eta0_is_plain_bt(dropout_llama, meta_file, tmp_path):
    from rewardlab.train.loop import train

    train(parse_config(_tree(tmp_path / "plain", dropout_llama, None, max_steps=3)))
    train(parse_config(_tree(tmp_path / "eta0", dropout_llama, {"data": str(meta_file), "eta": 0.0}, max_steps=3)))
    assert _max_diff(_weights(tmp_path / "plain"), _weights(tmp_path / "eta0")) <= 1e-6
    assert all("meta_J" in r for r in _records(tmp_path / "eta0"))


def test_finetune_meta_step_increases_J_and_resumes_exactly(dropout_llama, meta_file, tmp_path):
    from rewardlab.train.loop import train

    meta = {"data": str(meta_file), "eta": 0.05, "meta_batch_prompts": 3, "max_responses": 3}
    summary = train(parse_config(_tree(tmp_path / "full", dropout_llama, meta)))
    records = [r for r in _records(tmp_path / "full") if r["split"] == "train"]
    assert len(records) == 4
    assert all(r["meta_J_after"] > r["meta_J"] for r in records), records  # the ascent raises J on its batch
    assert summary["data"]["metarm"]["groups_used"] == 12
    assert summary["data"]["metarm"]["k_histogram"] == {3: 12}
    # stopped after step 2 (its checkpoint), then resumed: the meta batches come from (seed, step)
    train(parse_config(_tree(tmp_path / "cut", dropout_llama, meta, max_steps=2, save_every=2)))
    train(parse_config(_tree(tmp_path / "cut", dropout_llama, meta)), resume=True)
    assert _max_diff(_weights(tmp_path / "full"), _weights(tmp_path / "cut")) <= 1e-6


def test_cli_train_with_metarm(tiny_llama_dir, meta_file, tmp_path):
    cfg = tmp_path / "metarm.yaml"
    tree = _tree(tmp_path / "cli", tiny_llama_dir, {"data": str(meta_file), "eta": 0.01, "every": 2}, max_steps=3)
    cfg.write_text(yaml.safe_dump(tree))
    res = subprocess.run([sys.executable, "-m", "rewardlab.cli", "train", str(cfg)], capture_output=True,
                         text=True, env=train_env(), check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    records = [r for r in _records(tmp_path / "cli") if r["split"] == "train"]
    # meta steps before steps 1 and 3 (every 2): logged on the records that follow them
    assert [("meta_J" in r, "meta_J_after" in r) for r in records] == [(True, True), (False, False), (True, True)]
    resolved = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert resolved["metarm"]["eta"] == 0.01 and resolved["metarm"]["every"] == 2
    with pytest.raises(ConfigError, match="metarm.eta"):
        parse_config({**tree, "metarm": {"data": str(meta_file), "eta": -1}})
    with pytest.raises(ConfigError, match="metarm.data"):
        parse_config({**tree, "metarm": {"eta": 0.1}})


@pytest.mark.distributed
def test_two_process_ddp_equals_one_process(tiny_llama_dir, meta_file, tmp_path):
    """2 ranks x (2 pairs, 2 meta prompts) = one process with 4 and 4: the same global batches, and
    ∇J averaged across ranks through DDP (an unsynchronised meta step would split the ranks)."""
    from rewardlab.train.loop import train

    meta = {"data": str(meta_file), "eta": 0.05, "meta_batch_prompts": 2, "max_responses": 3}
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(_tree(tmp_path / "ddp", tiny_llama_dir, meta, max_steps=3, batch_size=2)))
    launcher = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu_ddp2.yaml"
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                          "-m", "rewardlab.cli", "train", str(cfg)], capture_output=True, text=True, env=train_env(), check=False,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    single = {**meta, "meta_batch_prompts": 4}
    train(parse_config(_tree(tmp_path / "one", tiny_llama_dir, single, max_steps=3, batch_size=4)))
    # J(θ), J(θ′) and the BT loss at θ′ agree step by step: θ′ is the same on both ranks and here
    ddp, one = _records(tmp_path / "ddp"), _records(tmp_path / "one")
    for key in ("meta_J", "meta_J_after", "loss"):
        np.testing.assert_allclose([r[key] for r in ddp], [r[key] for r in one], atol=1e-5, rtol=0)
    assert ddp[0]["meta_J_after"] > ddp[0]["meta_J"]
    # Adam turns float rounding (gloo sums, padding lengths) into ~1e-4 on a few weights
    assert _max_diff(_weights(tmp_path / "ddp"), _weights(tmp_path / "one")) <= 2e-3
