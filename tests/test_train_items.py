"""Fine-tuning with item objectives through the one loop (issue 24): regression lowers its loss,
correctness on a GSM8K-shaped file exports a model plain transformers reproduces within 1e-5,
K = 2 attributes with NaN masks leave the masked attribute's head untouched, and resume after
SIGKILL equals the uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_runs import kill9_after_checkpoint, run_cli
from safetensors.torch import load_file

from rewardlab.train.items import item_metrics

WORDS = ["good", "fine", "bad", "poor", "great", "awful", "nice", "weak"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score_rows(n: int, seed: int) -> list[dict]:
    """Score = 3 + the number of positive words (a signal the model can learn), one response per prompt."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=4))
        rows.append({"prompt": f"question {i}", "response": " ".join(words),
                     "score": 3.0 + sum(w in ("good", "fine", "great", "nice") for w in words)})
    return rows


def config(tmp: Path, name: str, data: dict, objective: dict, **train) -> Path:
    tc = {"max_steps": 6, "batch_size": 4, "lr": 1e-3, "eval_every": 3, "save_every": 2, "log_every": 1,
          "progress": False, "reward_stats_max_pairs": 8, "eval_batch_size": 16, "warmup_ratio": 0.0}
    tc.update(train)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp / name), "model": {"name_or_path": "minilm", "max_length": 32},
                                    "data": data, "objective": objective, "train": tc}))
    return path


def records(run: Path, split: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def test_regression_fine_tune_lowers_its_loss(tmp_path):
    data = {"train": str(write_jsonl(tmp_path / "scores.jsonl", score_rows(24, 0))), "val_fraction": 0.0}
    cfg = config(tmp_path, "reg", data, {"name": "regression"}, max_steps=10, lr=3e-4)
    res = run_cli("train", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    losses = [r["loss"] for r in records(tmp_path / "reg")]
    assert len(losses) == 10 and "accuracy" not in records(tmp_path / "reg")[0]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
    summary = json.loads((tmp_path / "reg" / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["n_train"] == 24


PLAIN = textwrap.dedent('''
    import json, sys, torch
    sys.modules["rewardlab"] = None  # any import of rewardlab fails
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    d, prompts, responses = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    with torch.no_grad():
        logits = model(**tok(prompts, responses, padding=True, truncation=True, max_length=32,
                             return_tensors="pt")).logits
    print(json.dumps({"labels": model.config.id2label, "scores": logits.tolist()}))
''')


def test_correctness_fine_tune_exports_a_plain_transformers_model(tmp_path):
    rows = [{"prompt": f"What is {i} + {i}?", "responses": [f"{2 * i}", f"{2 * i + 1}", f"It is {2 * i}."],
             "correct": [True, False, True]} for i in range(16)]
    data = {"train": str(write_jsonl(tmp_path / "gsm8k.jsonl", rows)), "val_fraction": 0.25}
    res = run_cli("train", str(config(tmp_path, "corr", data, {"name": "correctness"})))
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "corr"
    summary = json.loads((run / "summary.json").read_text())
    val = summary["validation"]
    assert val["n"] > 0 and 0.0 <= val["auroc"] <= 1.0 and "accuracy_interval" in val["by_attribute"]["correct"]
    prompts = [r["prompt"] for r in rows[:4] for _ in range(3)]
    responses = [x for r in rows[:4] for x in r["responses"]]
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(run / "model"), json.dumps(prompts), json.dumps(responses)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = json.loads(proc.stdout.strip().splitlines()[-1])
    from rewardlab.models.reward_model import RewardModel

    ours = RewardModel.from_pretrained(run / "model").score(prompts, responses)
    assert np.abs(np.asarray(plain["scores"])[:, 0] - ours).max() <= 1e-5
    assert plain["labels"] == {"0": "reward"}


def attribute_rows(n: int, seed: int, labelled_b: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=3))
        a = float(sum(w in ("good", "great") for w in text.split()))
        rows.append({"prompt": f"p{i}", "response": text,
                     "attributes": {"helpful": a, "verbose": float(len(text)) / 10 if labelled_b else None}})
    return rows


def test_two_attributes_with_nan_masks_train_and_the_masked_one_gets_no_gradient(tmp_path):
    from accelerate.utils import set_seed

    from rewardlab.models.reward_model import RewardModel

    train = write_jsonl(tmp_path / "train.jsonl", attribute_rows(16, 0, labelled_b=False))
    val = write_jsonl(tmp_path / "val.jsonl", attribute_rows(8, 1, labelled_b=True))
    data = {"train": str(train), "validation": str(val), "attributes": ["helpful", "verbose"]}
    res = run_cli("train", str(config(tmp_path, "attr", data, {"name": "regression"}, max_steps=4)))
    assert res.returncode == 0, res.stderr[-3000:]
    trained = load_file(str(tmp_path / "attr" / "model" / "model.safetensors"))
    set_seed(42)  # the loop's seed before it builds the model: the same initial head
    start = RewardModel.from_backbone("minilm", max_length=32, num_labels=2).model.state_dict()
    w0, w1 = start["classifier.weight"], trained["classifier.weight"]
    assert torch.equal(w0[1], w1[1]) and start["classifier.bias"][1] == trained["classifier.bias"][1]
    assert not torch.equal(w0[0], w1[0])  # the labelled attribute did train
    cfg = json.loads((tmp_path / "attr" / "model" / "config.json").read_text())
    assert cfg["id2label"] == {"0": "helpful", "1": "verbose"}
    val_metrics = json.loads((tmp_path / "attr" / "summary.json").read_text())["validation"]
    assert val_metrics["by_attribute"]["verbose"]["n"] == 8 and "mse" in val_metrics["by_attribute"]["helpful"]


def test_item_training_resumes_after_kill9_like_the_uninterrupted_run(tmp_path):
    data = {"train": str(write_jsonl(tmp_path / "scores.jsonl", score_rows(20, 2))), "val_fraction": 0.2}
    objective = {"name": "regression", "standardize": True}
    full = config(tmp_path, "full", data, objective, max_steps=8, log_every=3)
    assert run_cli("train", str(full)).returncode == 0
    cfg = config(tmp_path, "killed", data, objective, max_steps=8, log_every=3)
    proc = kill9_after_checkpoint(cfg, tmp_path / "killed" / "checkpoints", 4)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    res = run_cli("train", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (load_file(str(tmp_path / r / "model" / "model.safetensors")) for r in ("full", "killed"))
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) <= 1e-6
    full_rec, resumed = records(tmp_path / "full"), records(tmp_path / "killed")
    assert [r["step"] for r in full_rec] == [r["step"] for r in resumed] == [3, 6, 8]
    for x, y in zip(full_rec, resumed):
        assert abs(x["loss"] - y["loss"]) <= 1e-6 and abs(x["lr"] - y["lr"]) <= 1e-9


def test_item_metrics_against_hand_computations():
    scores = np.array([[2.0, 0.5], [-1.0, np.nan], [0.5, 1.5], [-2.0, 0.0]])
    target = np.array([[1.0, 1.0], [0.0, np.nan], [0.0, 2.0], [0.0, np.nan]])
    m = item_metrics(scores, target, ("correct", "score"))
    c, s = m["by_attribute"]["correct"], m["by_attribute"]["score"]
    # correct: positives {2.0}, negatives {-1, 0.5, -2}: every pair ranked right -> AUROC 1;
    # logit > 0 on rows 0 and 2 -> 3 of 4 right.
    assert c["auroc"] == 1.0 and c["accuracy"] == 0.75 and c["n"] == 4
    assert c["mse"] == pytest.approx((1 + 1 + 0.25 + 4) / 4)
    assert s["n"] == 2 and s["mse"] == pytest.approx((0.25 + 0.25) / 2) and "auroc" not in s
    lo, hi = c["mse_interval"]
    assert lo <= c["mse"] <= hi


def test_scaled_bt_fine_tune_pairs_responses_within_each_prompt(tmp_path):
    # batch_size counts prompts, each with all of its responses: every micro-batch of 2 prompts
    # with 1 right and 2 wrong answers each implies 2 · 2 = 4 within-prompt pairs.
    rows = [{"prompt": f"What is {i} + {i}?", "responses": [f"{2 * i}", f"{2 * i + 1}", f"{2 * i - 1}"],
             "correct": [True, False, False]} for i in range(8)]
    data = {"train": str(write_jsonl(tmp_path / "gsm8k.jsonl", rows)), "val_fraction": 0.0}
    res = run_cli("train", str(config(tmp_path, "sbt", data, {"name": "scaled_bt"}, max_steps=3, batch_size=2)))
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["scaled_bt/pairs"] for r in records(tmp_path / "sbt")] == [4.0, 4.0, 4.0]
