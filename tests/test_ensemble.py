"""Reward ensembles (models/ensemble.py), WARM (models/warm.py), ensemble training
(train/ensemble.py), and an ensemble served over HTTP as one model (docs/ensembles.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml

from rewardlab.errors import ConfigError
from rewardlab.models.ensemble import (
    RewardEnsemble,
    aggregate,
    check_aggregation,
    load_ensemble,
    member_spread,
    standardise,
    write_manifest,
)
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.warm import average_state_dicts, warm_export

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOL = 1e-5
PROMPTS = ["What is 2 + 2?", "Name a colour.", "Say hello.", "Write a haiku about rain."]
RESPONSES = ["4", "Blue, like the sky on a clear day.", "Hello!", "Rain on the roof / soft drums in the night / sleep"]


# ------------------------------------------------------------------ aggregation by hand
def test_aggregations_by_hand():
    r = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0], [-1.0, -1.0, -1.0]])
    np.testing.assert_allclose(aggregate(r, "mean"), [2.0, 2.0, -1.0])
    np.testing.assert_allclose(aggregate(r, "min"), [1.0, 0.0, -1.0])
    # sample std (ddof 1): sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1; sqrt((4 + 4 + 16) / 2) = sqrt(12); 0
    np.testing.assert_allclose(member_spread(r), [1.0, 12 ** 0.5, 0.0])
    np.testing.assert_allclose(aggregate(r, "mean_minus_std", 0.5), [1.5, 2.0 - 0.5 * 12 ** 0.5, -1.0])
    np.testing.assert_allclose(aggregate(r, "mean_minus_std", 0.0), aggregate(r, "mean"))
    np.testing.assert_allclose(standardise([[1.0, 10.0]], [0.0, 8.0], [2.0, 4.0]), [[0.5, 0.5]])


@pytest.mark.parametrize("how, lam, words", [("mean_minus_std", -0.1, "lambda: expected a finite number >= 0"),
                                             ("median", 1.0, "aggregation: expected one of mean, min"),
                                             ("mean", float("nan"), "lambda")])
def test_bad_aggregation_named(how, lam, words):
    with pytest.raises(ConfigError, match=words):
        check_aggregation(how, lam)


def test_one_member_refused():
    with pytest.raises(ConfigError, match="members >= 2"):
        member_spread(np.ones((3, 1)))


# ------------------------------------------------------------------ members on the tiny Llama
def make_member(tiny_llama_dir: Path, root: Path, i: int, *, seed: int = 42, stats=(None, None)) -> Path:
    """A tiny-Llama reward model whose score head is drawn with seed 100 + i, saved as
    ``root/member-i/model`` with a run config beside it (model name, ``train.seed``)."""
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=96)
    torch.manual_seed(100 + i)
    with torch.no_grad():
        rm.model.score.weight.normal_(0, 0.5)
    rm.settings.reward_mean, rm.settings.reward_std = stats
    path = rm.save_pretrained(root / f"member-{i}" / "model")
    (root / f"member-{i}" / "config.yaml").write_text(yaml.safe_dump(
        {"model": {"name_or_path": str(tiny_llama_dir), "pooling": "auto"}, "train": {"seed": seed}}))
    return path


@pytest.fixture(scope="module")
def ens_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ens")
    for i, stats in enumerate([(0.5, 2.0), (-1.0, 0.5), (0.0, 1.0)]):
        make_member(tiny_llama_dir, root, i, stats=stats)
    write_manifest(root, {"members": [f"member-{i}/model" for i in range(3)], "aggregation": "mean_minus_std",
                          "lambda": 0.5, "normalize": True})
    return root


def test_ensemble_scores_the_members_by_hand(ens_dir):
    ens = load_ensemble(ens_dir)
    assert (ens.aggregation, ens.lam, len(ens)) == ("mean_minus_std", 0.5, 3)
    raw = np.stack([RewardModel.from_pretrained(ens_dir / f"member-{i}" / "model").score(PROMPTS, RESPONSES)
                    for i in range(3)], axis=1)
    z = (raw - np.array([0.5, -1.0, 0.0])) / np.array([2.0, 0.5, 1.0])
    s = ens.score_members(PROMPTS, RESPONSES)
    np.testing.assert_allclose(s.members, z, atol=1e-9)
    np.testing.assert_allclose(s.spread, z.std(axis=1, ddof=1), atol=1e-9)
    np.testing.assert_allclose(s.reward, z.mean(axis=1) - 0.5 * z.std(axis=1, ddof=1), atol=1e-9)
    np.testing.assert_allclose(ens.score(PROMPTS, RESPONSES), s.reward, atol=1e-12)  # drop-in for RewardModel.score
    assert s.spread.min() > 0  # the members disagree
    # Overrides at loading; no standardisation.
    raw_min = load_ensemble(ens_dir, aggregation="min", normalize=False).score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(raw_min, raw.min(axis=1), atol=1e-9)


def test_score_cli_writes_aggregate_and_spread(ens_dir, tmp_path):
    from typer.testing import CliRunner

    from rewardlab.cli import app

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in zip(PROMPTS, RESPONSES, RESPONSES[::-1])))
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["score", "--model", str(ens_dir), "--data", str(data), "--out", str(out),
                                   "--aggregation", "mean"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    s = load_ensemble(ens_dir, aggregation="mean").score_members(PROMPTS, RESPONSES)
    np.testing.assert_allclose([r["reward_chosen"] for r in rows], s.reward, atol=1e-9)
    np.testing.assert_allclose([r["spread_chosen"] for r in rows], s.spread, atol=1e-9)
    assert len(rows[0]["members_chosen"]) == 3


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rewardlab.cli", *args], capture_output=True, text=True, timeout=300)


def test_bad_ensembles_name_the_field_or_directory(ens_dir, tiny_llama_dir, minilm_reward_model, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    write_manifest(one, {"members": [str(ens_dir / "member-0" / "model")]})
    with pytest.raises(ConfigError, match="members: an ensemble needs at least 2 members, got 1"):
        load_ensemble(one)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_manifest(mixed, {"members": [str(ens_dir / "member-0" / "model"), str(minilm_reward_model)],
                           "normalize": False})
    with pytest.raises(ConfigError, match=rf"ensemble member {minilm_reward_model}: config.json model_type"):
        load_ensemble(mixed)
    # Same backbone, another tokenizer.
    from transformers import AutoTokenizer

    other = make_member(tiny_llama_dir, tmp_path / "tok", 0)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["<a-token-the-others-lack>"])
    tok.save_pretrained(other)
    write_manifest(tmp_path / "tok", {"members": [str(ens_dir / "member-0" / "model"), str(other)],
                                      "normalize": False})
    with pytest.raises(ConfigError, match=rf"ensemble member {other}: its tokenizer differs"):
        load_ensemble(tmp_path / "tok")
    with pytest.raises(ConfigError, match="no training reward statistics"):  # normalize needs them
        write_manifest(tmp_path / "tok", {"members": [str(other), str(other)]})
        load_ensemble(tmp_path / "tok")
    bad_lambda = tmp_path / "lam"
    bad_lambda.mkdir()
    write_manifest(bad_lambda, {"members": ["a", "b"], "lambda": -1})
    res = _cli("serve", str(bad_lambda), "--port", "0")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "ensemble.json: lambda: expected a finite number >= 0" in res.stderr
    res = _cli("score", "--model", str(ens_dir), "--data", "x.jsonl", "--out", str(tmp_path / "o.jsonl"),
               "--ensemble-lambda", "-0.5")
    assert res.returncode == 2 and "--ensemble-lambda" in res.stderr, res.stderr
    res = _cli("serve", str(ens_dir / "member-0" / "model"), "--port", "0", "--aggregation", "min")
    assert res.returncode == 2 and "apply to ensemble directories" in res.stderr, res.stderr


# ------------------------------------------------------------------ served as one model
def test_served_ensemble_equals_offline(ens_dir, shared_data):
    from serving import LIMITS, ThreadServer

    from rewardlab.data.chat import to_messages
    from rewardlab.serve.app import create_app

    rows = []
    with open(shared_data / "hh_rlhf_harmless.jsonl") as f:
        rows = [json.loads(next(f)) for _ in range(6)]
    prompts = [r["prompt"] for r in rows] + PROMPTS
    responses = [r["chosen"] for r in rows] + RESPONSES
    ens = load_ensemble(ens_dir)
    ref = ens.score_members(prompts, responses, batch_size=1)
    server = ThreadServer(create_app(ens, model_name="ens", max_batch=4, max_wait_ms=20, limits=LIMITS))
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            body = c.post("/score", json={"items": [{"prompt": p, "response": r}
                                                    for p, r in zip(prompts, responses)]}).json()
            np.testing.assert_allclose(body["rewards"], ref.reward, atol=TOL, rtol=0)
            np.testing.assert_allclose(body["spread"], ref.spread, atol=TOL, rtol=0)
            np.testing.assert_allclose(body["member_rewards"], ref.members, atol=TOL, rtol=0)
            queries = [ens.tokenizer.apply_chat_template(to_messages(p, r), tokenize=False)
                       for p, r in zip(prompts, responses)]
            body = c.post("/get_reward", json={"query": queries}).json()
            np.testing.assert_allclose(body["rewards"], ref.reward, atol=TOL, rtol=0)
            np.testing.assert_allclose(body["spread"], ref.spread, atol=TOL, rtol=0)
            assert body["scores"] == body["rewards"] and body["extra_logs"] == {}
            health = c.get("/health").json()
            assert health["ensemble"]["aggregation"] == "mean_minus_std" and len(health["ensemble"]["members"]) == 3
        # The client as a TRL reward function: the spread of the call's items, recorded per step.
        from rewardlab.eval.drift import DriftMonitor
        from rewardlab.serve.client import RemoteReward

        remote = RemoteReward(server.url, batch_size=5, drift=DriftMonitor(None))
        got = remote(prompts, responses)
        np.testing.assert_allclose(got, ref.reward, atol=TOL, rtol=0)
        np.testing.assert_allclose(remote.last_spread, ref.spread, atol=TOL, rtol=0)
        rec = remote.drift.records[-1]
        assert rec["spread"] == pytest.approx(ref.spread.mean(), abs=TOL) and rec["length_unit"] == "characters"
        assert rec["length"] == pytest.approx(np.mean([len(r) for r in responses]))
    finally:
        server.stop()


def test_rubric_reward_logs_the_ensemble_spread(ens_dir, tmp_path):
    from rewardlab.eval.drift import DriftMonitor
    from rewardlab.rubric.reward import RubricReward
    from rewardlab.rubric.spec import parse_rubric

    rubric = parse_rubric({"criteria": [{"name": "rm", "scorer": {"type": "reward_model", "path": str(ens_dir)}},
                                        {"name": "tag", "scorer": {"type": "rule", "contains": "!"}}]})
    fn = RubricReward(rubric, "weighted_sum", num_generations=2, drift=DriftMonitor(tmp_path / "d.jsonl"))
    logged = {}
    fn(prompts=[PROMPTS[0]] * 2 + [PROMPTS[2]] * 2, completions=RESPONSES, log_metric=logged.__setitem__)
    spread = load_ensemble(ens_dir).score_members([PROMPTS[0]] * 2 + [PROMPTS[2]] * 2, RESPONSES).spread
    assert logged["rubric/rm/spread"] == pytest.approx(spread.mean())
    assert "rubric/tag/spread" not in logged
    rec = json.loads((tmp_path / "d.jsonl").read_text())
    assert rec["spread"] == pytest.approx(spread.mean()) and rec["step"] == 1


# ------------------------------------------------------------------ WARM
def test_warm_is_the_mean_of_the_members_and_loads_in_plain_transformers(ens_dir, tmp_path):
    from safetensors.torch import load_file

    out = warm_export(ens_dir, tmp_path / "warm")
    got = load_file(str(out / "model.safetensors"))
    members = [load_file(str(ens_dir / f"member-{i}" / "model" / "model.safetensors")) for i in range(3)]
    assert got.keys() == members[0].keys()
    for k in got:
        want = torch.stack([m[k].double() for m in members]).mean(0)
        assert torch.allclose(got[k].double(), want, atol=1e-7), k
    assert any(not torch.equal(members[0][k], members[1][k]) for k in got)  # there was something to average
    np.testing.assert_allclose(average_state_dicts([{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 6.0])}])["w"],
                               [2.0, 4.0])
    ref = RewardModel.from_pretrained(out).score(PROMPTS[:2], RESPONSES[:2])
    code = f"""
import sys, json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
m = AutoModelForSequenceClassification.from_pretrained({str(out)!r}).eval()
t = AutoTokenizer.from_pretrained({str(out)!r})
texts = [t.apply_chat_template([{{"role": "user", "content": p}}, {{"role": "assistant", "content": r}}], tokenize=False)
         for p, r in {list(zip(PROMPTS[:2], RESPONSES[:2]))!r}]
out = []
for x in texts:
    enc = t(x, return_tensors="pt", add_special_tokens=False)
    out.append(float(m(**enc).logits[0, 0]))
assert "rewardlab" not in sys.modules and "peft" not in sys.modules
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(json.loads(res.stdout.strip().splitlines()[-1]), ref, atol=1e-4)


def test_warm_refuses_other_starts_and_adapters(ens_dir, tiny_llama_dir, tmp_path):
    other = make_member(tiny_llama_dir, tmp_path, 5, seed=43)
    with pytest.raises(ConfigError, match=r"WARM member .*member-5/model: starts from .*same initialisation"):
        warm_export([ens_dir / "member-0" / "model", other], tmp_path / "w")
    warm_export([ens_dir / "member-0" / "model", other], tmp_path / "w2", assume_same_start=True)  # told so
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="a LoRA adapter directory; average merged models"):
        warm_export([ens_dir / "member-0" / "model", adapter], tmp_path / "w3")
    res = _cli("warm", str(ens_dir / "member-0" / "model"), "--out", str(tmp_path / "w4"))
    assert res.returncode == 2 and "not an ensemble directory" in res.stderr, res.stderr
    from typer.testing import CliRunner

    from rewardlab.cli import app

    res = CliRunner().invoke(app, ["warm", str(ens_dir), "--out", str(tmp_path / "w2")])  # an earlier export
    assert res.exit_code == 2 and "holds an earlier run's results" in res.output and "--overwrite" in res.output
    res = CliRunner().invoke(app, ["eval", "--model", str(ens_dir), "--data", "x.jsonl", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "it is an ensemble directory (ensemble.json)" in " ".join(res.output.split())


# ------------------------------------------------------------------ training an ensemble
def _ensemble_config(tiny_llama_dir, out: Path, vary: str) -> dict:
    from rewardlab.data import sample_path

    return {"output_dir": str(out), "model": {"name_or_path": str(tiny_llama_dir), "max_length": 64},
            "data": {"train": str(sample_path()), "val_fraction": 0.2, "max_train_pairs": 16, "max_val_pairs": 8},
            "objective": {"name": "bt"},
            "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3, "eval_every": 2, "save_every": 1,
                      "log_every": 1, "progress": False, "reward_stats_max_pairs": 8, "eval_batch_size": 8,
                      "ensemble": {"members": 2, "vary": vary}}}


def test_train_ensemble_member_by_member(tiny_llama_dir, tmp_path):
    from cli_runs import run_cli

    from rewardlab.config import parse_config
    from rewardlab.train.ensemble import member_config, train_model

    cfg = parse_config(_ensemble_config(tiny_llama_dir, tmp_path / "order", "order"))
    assert [(member_config(cfg, i).train.seed, member_config(cfg, i).train.data_seed) for i in range(2)] == \
        [(42, 42), (42, 43)]
    seeded = parse_config(_ensemble_config(tiny_llama_dir, tmp_path / "seed", "seed"))
    assert [(member_config(seeded, i).train.seed, member_config(seeded, i).train.data_seed) for i in range(2)] == \
        [(42, None), (43, None)]
    summary = train_model(cfg)
    out = tmp_path / "order"
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["complete"] and manifest["members"] == ["member-0/model", "member-1/model"]
    assert len(summary["member_validation_accuracy"]) == 2
    for i in range(2):
        assert (out / f"member-{i}" / "metrics.jsonl").is_file()
        assert yaml.safe_load((out / f"member-{i}" / "config.yaml").read_text())["train"]["data_seed"] == 42 + i
    ens = load_ensemble(out)  # trained members carry reward statistics: standardised
    assert ens.score_members(PROMPTS, RESPONSES).spread.max() > 0  # the data order made them differ
    warm_export(out, tmp_path / "warm")  # same start: WARM accepts them

    # Resume: member 1 lost its results (as if killed before its end); member 0 is not retrained.
    stamp = (out / "member-0" / "model" / "model.safetensors").stat().st_mtime_ns
    for name in ("summary.json", "model"):
        p = out / "member-1" / name
        p.unlink() if p.is_file() else __import__("shutil").rmtree(p)
    res = run_cli("train", str(_write(tmp_path, cfg)))  # without --resume: refused, names the way on
    assert res.returncode == 2 and "--resume" in res.stderr, res.stderr
    res = run_cli("train", str(_write(tmp_path, cfg)), "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (out / "member-1" / "model" / "model.safetensors").is_file()
    assert (out / "member-0" / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "ensemble of 2" in " ".join(res.stdout.split())


def _write(tmp_path: Path, cfg) -> Path:
    from rewardlab.config import dump_config

    path = tmp_path / "ens.yaml"
    path.write_text(dump_config(cfg))
    return path


def test_ensemble_config_errors_name_the_field(tmp_path):
    from cli_runs import run_cli

    from rewardlab.data import sample_path

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": str(sample_path())}, "output_dir": str(tmp_path / "o"),
                                    "train": {"ensemble": {"members": 1}}}))
    res = run_cli("train", str(path))
    assert res.returncode == 2 and "train.ensemble.members: Input should be greater than or equal to 2" in res.stderr
    res = run_cli("train", str(path), "--set", "train.ensemble.members=3", "--set", "train.ensemble.lambda=-1")
    assert res.returncode == 2 and "train.ensemble.lambda: Input should be greater than or equal to 0" in res.stderr
