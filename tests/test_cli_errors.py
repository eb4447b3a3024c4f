"""A newcomer's mistakes (issue 11): every ``--model`` checked by one function, errors on stderr on one
line with exit status 2, column mapping and counts on ``score``, readable ``--help``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.cli.common import plain_type_label, unwrap_paragraphs
from rewardlab.errors import ConfigError
from rewardlab.models import locate
from rewardlab.models.locate import BACKBONE, REWARD_MODEL, locate_model
from rewardlab.models.reward_model import RewardModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args) -> "CliRunner":
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})


def assert_one_line_error(result, *needles: str) -> str:
    """Exit 2, no error on stdout, one ``error:`` line on stderr (not wrapped at 80 columns)."""
    assert result.exit_code == 2, result.output
    assert "error" not in result.stdout  # progress lines ("loading ...") may be there
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert len(lines[0]) > 80  # long enough that a hard wrap at 80 columns would have split it
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> Path:
    """A MiniLM reward model (random head) with max_length 24, so long responses are truncated."""
    rm = RewardModel.from_backbone("minilm", max_length=24)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in rm.model.classifier.parameters():
            p.normal_(0, 0.5)
    return rm.save_pretrained(tmp_path_factory.mktemp("rm") / "run" / "model")


@pytest.fixture
def pairs(tmp_path) -> Path:
    rows = [{"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
            {"prompt": "2 + 2?", "chosen": "", "rejected": "5"},  # empty chosen
            {"prompt": "Say hi", "chosen": "hi", "rejected": "hi"},  # identical
            {"prompt": "Count", "chosen": " ".join(["one two three"] * 20), "rejected": "one"}]  # truncated at 24
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- locate_model: the one check
def test_locate_model_says_what_was_expected(tmp_path, reward_model):
    with pytest.raises(ConfigError, match="names a backbone.*not a trained reward model"):
        locate_model("minilm", kind=REWARD_MODEL)
    assert Path(locate_model("MiniLM", kind=BACKBONE), "config.json").is_file()
    with pytest.raises(ConfigError, match="'runs/nonexistent/model': no such directory; expected a trained"):
        locate_model("runs/nonexistent/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json.*\(the directory is empty\)"):
        locate_model(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no config.json"):
        locate_model(tmp_path / "empty", kind=BACKBONE)
    with pytest.raises(ConfigError, match="did you mean .*run/model"):
        locate_model(reward_model.parent)  # the run directory instead of OUT/model
    with pytest.raises(ConfigError, match="is a file"):
        locate_model(reward_model / "config.json")
    with pytest.raises(ConfigError, match="BertModel, a base model without a reward head"):
        locate_model(locate_model("minilm", kind=BACKBONE), kind=REWARD_MODEL)
    with pytest.raises(ConfigError, match="GGUF file"):
        locate_model("x.gguf", kind=REWARD_MODEL)
    with pytest.raises(ConfigError, match="no such GGUF file"):
        locate_model(tmp_path / "x.gguf", kind=BACKBONE)
    assert locate_model(reward_model) == str(reward_model)
    (tmp_path / "adapter").mkdir()  # a LoRA adapter export: RewardModel.from_pretrained loads it on its base
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert locate_model(tmp_path / "adapter") == str(tmp_path / "adapter")


def test_hub_names_only_when_they_look_like_one():
    assert locate._looks_like_hub_id("org/name") and locate._looks_like_hub_id("gpt2")
    for text in ("runs/nonexistent/model", "./model", "/abs/model", "~/model", "a/b/c", "bad name"):
        assert not locate._looks_like_hub_id(text), text


def test_hub_names_fail_fast_offline_and_work_online(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        locate_model("rewardlab-test/no-such-model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # The real request: offline (this machine) it fails at once; online the Hub says it does not exist.
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="Hub cannot be reached|no such model on the Hugging Face Hub"):
        locate_model("rewardlab-test/no-such-model-9f3a")
    assert time.perf_counter() - started < locate.HUB_TIMEOUT_S + 5
    # What an online user gets: a Hub name that exists goes through unchanged (to from_pretrained).
    monkeypatch.setattr(locate, "hub_model_exists", lambda repo_id, timeout=0: (True, ""))
    assert locate_model("org/reward-model") == "org/reward-model"
    monkeypatch.setattr(locate, "hub_model_exists", lambda repo_id, timeout=0: (None, "ConnectError: no route"))
    with pytest.raises(ConfigError, match=r"cannot be reached \(ConnectError: no route\)"):
        locate_model("org/reward-model")


# ---------------------------------------------------------------- the CLI: stderr, one line, exit 2
def test_wrong_models_are_one_line_errors_on_stderr(tmp_path, pairs):
    out = tmp_path / "scored.jsonl"
    assert_one_line_error(run("score", "--model", "runs/nonexistent/model", "--data", pairs, "--out", out),
                          "no such directory", "a directory saved by rewardlab")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("score", "--model", tmp_path / "empty", "--data", pairs, "--out", out),
                          "the directory is empty")
    assert_one_line_error(run("score", "--model", "minilm", "--data", pairs, "--out", out),
                          "'minilm' names a backbone", "rewardlab demo")
    # eval and golden go through the same check and say the same
    assert_one_line_error(run("eval", "--model", "minilm", "--data", pairs, "--out", tmp_path / "ev"),
                          "'minilm' names a backbone")
    assert_one_line_error(run("golden", pairs, "--model", "runs/nonexistent/model", "--out", tmp_path / "g.parquet"),
                          "no such directory")
    assert_one_line_error(run("embed", pairs, "--model", tmp_path / "empty"), "no config.json")
    assert_one_line_error(run("serve", "runs/nonexistent/model", "--port", "0"),
                          "MODEL_DIR 'runs/nonexistent/model': no such directory")
    assert not out.exists()


def test_bad_data_errors_on_stderr(tmp_path, reward_model):
    out = tmp_path / "scored.jsonl"
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    assert_one_line_error(run("score", "--model", reward_model, "--data", bad, "--out", out),
                          f"{bad}:2", "0xe9 at column 16")
    assert_one_line_error(run("score", "--model", reward_model, "--data", tmp_path / "absent.jsonl", "--out", out),
                          "absent.jsonl: no such file or directory; a data spec is", "[@SPLIT]")
    qa = tmp_path / "qa.csv"
    qa.write_text("question,good,bad\nWhat is 2 + 2?,4,5\n", encoding="utf-8")
    assert_one_line_error(run("eval", "--model", reward_model, "--data", qa, "--out", tmp_path / "ev"),
                          "columns found are: question, good, bad", "--prompt-key")
    res = run("score", "--model", reward_model, "--data", qa, "--out", out,
              "--prompt-key", "question", "--chosen-key", "good", "--rejected-key", "bad")
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["prompt"] == "What is 2 + 2?"


def test_score_prints_the_counts(tmp_path, reward_model, pairs):
    out = tmp_path / "scored.jsonl"
    res = run("score", "--model", reward_model, "--data", pairs, "--out", out)
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "wrote 4 scored pairs" in text
    assert "empty responses (kept): 1 chosen, 0 rejected" in text
    assert "identical pairs (chosen = rejected, kept; they tie): 1" in text
    assert "truncated responses: 1 of 8 (response truncated 1)" in text  # 60 words > 24 tokens
    assert "ties (equal rewards): 1 of 4 pairs" in text
    # bad rows: skipped only when asked, and counted
    with pairs.open("a") as f:
        f.write('{"prompt": "p", "chosen": 3, "rejected": "b"}\n')
    # (the earlier output stays unless --overwrite: issue 25)
    assert_one_line_error(run("score", "--model", reward_model, "--data", pairs, "--out", out), "already exists",
                          "--overwrite")
    assert_one_line_error(run("score", "--model", reward_model, "--data", pairs, "--out", out, "--overwrite"),
                          "pairs.jsonl:5")
    res = run("score", "--model", reward_model, "--data", pairs, "--out", out, "--skip-bad-rows", "--overwrite")
    assert res.exit_code == 0, res.output
    assert "skipped 1 bad row(s) (--skip-bad-rows)" in " ".join(res.stdout.split())
    assert len(out.read_text().splitlines()) == 4


# ---------------------------------------------------------------- help
def test_help_reads_as_words():
    assert plain_type_label("<list[str]>") == "TEXT ..." and plain_type_label("<int>") == "INTEGER"
    assert plain_type_label("<path>") == "PATH" and plain_type_label("<a|b>") == "a|b"
    assert plain_type_label("<int range>") == "INTEGER" and plain_type_label("<float range>") == "FLOAT"
    assert unwrap_paragraphs("One line\n    goes on.\n\n    Next\n    paragraph.") == "One line goes on.\n\nNext paragraph."
    wide = {"COLUMNS": "250"}
    top = CliRunner().invoke(app, ["--help"], env=wide).stdout
    assert "Embed every (prompt, response) of DATA into the on-disk cache." in top
    assert "evaluate it on held-out prompts, print the results and write report.html" in top
    for command in ("train", "score", "eval", "embed", "golden", "strength", "denoise", "study", "demo"):
        page = CliRunner().invoke(app, [command, "--help"], env=wide).stdout
        assert "<bool>" not in page and "<list[str]>" not in page and "<path>" not in page, command
        assert "int range" not in page and "float range" not in page, command  # declared ranges read as words too
        assert "models/inputs.py" not in page
    train_page = " ".join(CliRunner().invoke(app, ["train", "--help"], env=wide).stdout.split())
    assert "output_dir (OUT" in train_page
    golden_page = " ".join(CliRunner().invoke(app, ["golden", "--help"], env=wide).stdout.split())
    assert "Exactly one of --model, --column or --labels" in golden_page


def test_a_cached_hub_model_loads_from_its_snapshot_offline(monkeypatch, reward_model):
    """Offline, transformers given the name retried for minutes (6 min 43 s measured); the cached
    snapshot directory loads at once. Online, the name goes through (a newer revision may exist)."""
    import huggingface_hub

    config = str(reward_model / "config.json")  # stands for <cache>/snapshots/<rev>/config.json
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo_id, filename: config if repo_id == "org/cached" else None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "hub_model_exists", lambda repo_id, timeout=0: (None, "ConnectError"))
    assert locate_model("org/cached") == str(reward_model)
    from rewardlab.models.reward_model import load_reward_model

    rm = load_reward_model("org/cached")
    assert rm.settings.max_length == 24
    monkeypatch.setattr(locate, "hub_model_exists", lambda repo_id, timeout=0: (True, ""))
    assert locate_model("org/cached") == "org/cached"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert locate_model("org/cached") == str(reward_model)
