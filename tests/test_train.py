"""The training loop end to end: outputs, exact resume after SIGKILL, SIGTERM checkpoints, 2-process DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_runs import invoke, kill9_after_checkpoint, run_cli, train_env
from safetensors.torch import load_file

from rewardlab.config import load_config
from rewardlab.data import sample_path
from rewardlab.errors import ConfigError
from rewardlab.train.loop import train


def small_config(out: Path, **train_overrides) -> dict:
    train_cfg = {"max_steps": 8, "batch_size": 4, "lr": 1e-4, "eval_every": 4, "save_every": 2,
                 "log_every": 2, "progress": False, "reward_stats_max_pairs": 16, "eval_batch_size": 16}
    train_cfg.update(train_overrides)
    return {"output_dir": str(out), "model": {"name_or_path": "minilm", "max_length": 64},
            "data": {"train": str(sample_path()), "val_fraction": 0.2, "max_train_pairs": 64, "max_val_pairs": 24},
            "objective": {"name": "bt"}, "train": train_cfg}


def write_config(tmp_path: Path, name: str, **overrides) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(small_config(tmp_path / name, **overrides)))
    return path




def weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    cfg = write_config(tmp, "base")
    res = run_cli("train", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"outputs in {tmp / 'base'}/: model/" in " ".join(res.stdout.split())  # where the outputs are
    return tmp / "base"


def test_train_writes_every_output(trained_run):
    for name in ("model/config.json", "model/model.safetensors", "metrics.jsonl", "summary.json", "config.yaml"):
        assert (trained_run / name).is_file(), name
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8]
    val = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in val] == [4, 8] and all(r["n"] == 24 for r in val)
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["reward_std"] >= 0 for r in val)
    resolved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert resolved["train"]["seed"] == 42 and "torch" in resolved["run"]["versions"]
    assert resolved["run"]["git_commit"]
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["pairs_per_second"] > 0
    assert summary["pairs_seen"] == 8 * 4 and summary["epochs"] == round(8 * 4 / summary["n_train"], 3)
    assert sum(v["n"] for v in summary["validation_by_source"].values()) == 24
    length = summary["validation"]["length"]  # issue 23: length diagnostics of the validation pairs
    assert length["unit"] == "characters" and length == val[-1]["length"]
    assert sum(length[k]["n"] for k in ("chosen_longer", "chosen_shorter", "equal_length")) == 24
    model_cfg = json.loads((trained_run / "model" / "config.json").read_text())
    assert model_cfg["rewardlab"]["reward_stats_n"] == 32 and model_cfg["rewardlab"]["max_length"] == 64
    # OpenRLHF's normalisation reads the top-level keys (issue 24)
    assert (model_cfg["mean"], model_cfg["std"]) == (model_cfg["rewardlab"]["reward_mean"], model_cfg["rewardlab"]["reward_std"])


def train_records(run: Path) -> dict[int, dict]:
    """The train record of each step; a step logged twice (after a resume) fails."""
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return {r["step"]: r for r in records if r["split"] == "train"}


def test_drop_records_after_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    from rewardlab.train.loop import drop_records_after

    path = tmp_path / "metrics.jsonl"
    lines = [{"step": 3, "split": "train"}, {"step": 4, "split": "validation"}, {"step": 6, "split": "train"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 9, "spl')  # cut short by kill -9
    assert drop_records_after(path, 4) == 2
    assert [json.loads(x) for x in path.read_text().splitlines()] == lines[:2]
    assert drop_records_after(path, 4) == 0 and drop_records_after(tmp_path / "none.jsonl", 4) == 0
    assert drop_records_after(path, 0) == 2 and path.read_text() == ""


def test_kill9_then_resume_equals_uninterrupted(tmp_path):
    # log_every 3, save_every 2: the checkpoints of steps 4 and 8 hold a half-open logging window,
    # which must be restored so that the first train record after --resume is the uninterrupted one.
    full = write_config(tmp_path, "full", max_steps=10, log_every=3)
    assert run_cli("train", str(full)).returncode == 0
    cfg = write_config(tmp_path, "killed", max_steps=10, log_every=3)
    ckpts = tmp_path / "killed" / "checkpoints"
    proc = kill9_after_checkpoint(cfg, ckpts, 4)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    with (tmp_path / "killed" / "metrics.jsonl").open("a") as f:  # a step logged after the checkpoint, then the kill
        f.write(json.dumps({"step": 6, "split": "train", "loss": 99.0, "accuracy": 0.0, "lr": 0.0}) + "\n")
    res = run_cli("train", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr
    assert max_diff(weights(tmp_path / "full"), weights(tmp_path / "killed")) <= 1e-6
    full_rec, resumed_rec = train_records(tmp_path / "full"), train_records(tmp_path / "killed")
    assert sorted(full_rec) == sorted(resumed_rec) == [3, 6, 9, 10]
    for step in full_rec:  # loss and accuracy over the same window of pairs, the same lr
        for key in ("loss", "accuracy", "lr"):
            assert abs(full_rec[step][key] - resumed_rec[step][key]) <= 1e-6, (step, key)


def test_sigterm_saves_a_checkpoint_and_exits(tmp_path):
    cfg = write_config(tmp_path, "term", max_steps=400, save_every=1000)
    proc = subprocess.Popen([sys.executable, "-m", "rewardlab.cli", "train", str(cfg)], env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "term" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in out
    assert list((tmp_path / "term" / "checkpoints").glob("step-*/COMPLETE"))


def test_existing_checkpoints_need_resume(trained_run, tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path / 'again'}", f"data.train={sample_path()}",
                             "train.max_steps=2", "train.save_every=1", "train.progress=false",
                             "model.max_length=32", "data.max_train_pairs=8", "train.batch_size=4"])
    train(cfg)
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg)


def test_bf16_and_gradient_checkpointing_train(tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path / 'bf16'}", f"data.train={sample_path()}",
                             "train.max_steps=2", "train.progress=false", "train.mixed_precision=bf16",
                             "model.gradient_checkpointing=true", "model.max_length=32", "data.max_train_pairs=16",
                             "data.max_val_pairs=8", "train.batch_size=4", "train.eval_every=2",
                             "train.reward_stats_max_pairs=4"])
    summary = train(cfg)
    assert summary["steps"] == 2 and 0.0 <= summary["validation"]["accuracy"] <= 1.0
    records = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["loss"] for r in records if r["split"] == "train")  # not NaN


def test_mixed_precision_no_reads_as_no_in_yaml(tmp_path):
    # PyYAML reads a bare `no` as false; the option's own word must still work, in a file and in --set
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path / 'o'}\ndata:\n  train: {sample_path()}\ntrain:\n  mixed_precision: no\n")
    assert load_config(path, []).train.mixed_precision == "no"
    assert load_config(path, ["train.mixed_precision=bf16"]).train.mixed_precision == "bf16"
    assert load_config(path, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(path, ["train.mixed_precision=yes"])


def test_config_overrides_and_errors(tmp_path):
    path = write_config(tmp_path, "c")
    cfg = load_config(path, ["objective.name=normbt", "objective.beta=0.8", "train.lr=3e-5", "aux=[{name: simcse, weight: 0.5}]"])
    assert cfg.objective == {"name": "normbt", "beta": 0.8} and cfg.train.lr == 3e-5
    assert cfg.aux == [{"name": "simcse", "weight": 0.5}]
    with pytest.raises(ConfigError, match="train.lrr"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["train.lr"])


def test_score_and_eval_commands(trained_run, tmp_path):
    # a slice of the sample keeps its several sources; in this process (the commands' own startup
    # is covered by the subprocess tests above)
    data = tmp_path / "sample_slice.jsonl"
    data.write_text("".join(sample_path().read_text().splitlines(keepends=True)[:120]))
    out = tmp_path / "scored.jsonl"
    res = invoke("score", "--model", trained_run / "model", "--data", data, "--out", out)
    assert res.exit_code == 0, res.stdout + res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    n = 120
    assert len(rows) == n and {"reward_chosen", "reward_rejected", "prompt"} <= rows[0].keys()
    res = invoke("eval", "--model", trained_run / "model", "--data", data, "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.stdout + res.stderr
    (entry,) = json.loads((tmp_path / "ev" / "results.json").read_text())["models"].values()
    acc = sum(r["reward_chosen"] > r["reward_rejected"] for r in rows) / len(rows)
    name = data.stem
    assert entry["datasets"][name]["n"] == n
    assert abs(entry["datasets"][name]["accuracy"] - acc) < 1e-12
    assert sum(v["n"] for v in entry["sources"].values()) == n


def test_bad_data_is_reported_by_the_cli(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": 3, "rejected": "b"}\n')
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**small_config(tmp_path / "o"), "data": {"train": str(bad)}}))
    res = run_cli("train", str(cfg))
    assert res.returncode == 2
    assert "bad.jsonl:2" in res.stderr and "chosen" in res.stderr and "error" not in res.stdout
    assert "Traceback" not in res.stderr


@pytest.mark.distributed
def test_two_process_accelerate_launch(tmp_path):
    cfg = write_config(tmp_path, "ddp", max_steps=4, save_every=2, eval_every=2)
    launcher = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu_ddp2.yaml"
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                          "-m", "rewardlab.cli", "train", str(cfg)],
                         capture_output=True, text=True, env=train_env(), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = tmp_path / "ddp"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_processes"] == 2
    assert summary["pairs_seen"] == 4 * 4 * 2  # steps x per-process batch x processes
    val = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"validation"' in x]
    assert all(r["n"] == 24 for r in val)  # every validation pair counted once across the two ranks
    assert all(sum(r["length"][k]["n"] for k in ("chosen_longer", "chosen_shorter", "equal_length")) == 24
               for r in val)  # the length diagnostics gather every rank's rewards
    assert (run / "model" / "model.safetensors").is_file()
