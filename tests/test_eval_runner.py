"""``rewardlab eval``: suite and data mode end to end, hand recomputation, determinism, RewardBench offline."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_models import random_head_minilm
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import load_preferences
from rewardlab.eval.runner import SUBSAMPLE_METHOD, _subsample, evaluate, unique_names, write_outputs
from rewardlab.eval.suites import BUILTIN_DIR
from rewardlab.models.reward_model import RewardModel

PNG_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
SETTINGS_KEYS = {"dtype", "max_length", "overlength", "overlength_in_eval", "render", "chat_template_sha256",
                 "pooling", "padding_side", "batch_size"}
WORDS = "apple river stone cloud paper garden window silver music orange yellow bridge candle forest".split()


def _rows(n: int, source: str, seed: int) -> list[dict]:
    """Short, distinct pairs (well under 64 tokens) of varied lengths."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "prompt": f"Question {source} {i}: describe the {rng.choice(WORDS)}.",
            "chosen": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))),
            "rejected": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))),
            "source": source,
        })
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """Two tiny MiniLM reward models with different random heads, both saved as `.../model`."""
    return random_head_minilm(tmp_path_factory.mktemp("models"), {"a": 1, "b": 2}, max_length=64)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """chat.jsonl (alpha/*, beta/*, and 2 stray rows no subset selects), code.jsonl, prior.jsonl, toy.yaml."""
    root = tmp_path_factory.mktemp("toy")
    _write_jsonl(root / "chat.jsonl", _rows(3, "alpha/1", 1) + _rows(3, "beta/x", 2) + _rows(2, "alpha/2", 3)
                 + _rows(2, "stray/z", 4))
    _write_jsonl(root / "code.jsonl", _rows(4, "code/py", 5))
    _write_jsonl(root / "prior.jsonl", _rows(3, "p1", 6) + _rows(2, "p2", 7))
    suite = {"name": "toy", "subsets": [
        {"name": "chat-alpha", "section": "Chat", "data": "chat.jsonl", "source": "alpha/*"},
        {"name": "chat-hard-beta", "section": "Chat Hard", "data": "chat.jsonl", "source": "beta/*"},
        {"name": "code", "section": "Reasoning", "data": "code.jsonl"},
        {"name": "prior-a", "section": "Prior Sets", "data": "prior.jsonl", "source": "p1"},
        {"name": "prior-b", "section": "Prior Sets", "data": "prior.jsonl", "source": "p2"},
    ]}
    (root / "toy.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    return root


def _cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def suite_run(models, toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("suite_run") / "out"
    result = _cli("eval", "--model", models[0], "--model", models[1], "--suite", toy / "toy.yaml",
                  "--data-root", toy, "--out", out, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    return out, result.output, json.loads((out / "results.json").read_text(encoding="utf-8"))


def _check_report(page: str) -> None:
    assert page.index("<h2>Summary</h2>") < page.index("<table>") < page.index("<h2>Diagnostics</h2>")
    for heading in ("<h3>Accuracy and margins</h3>", "<h3>Calibration</h3>", "<h3>Length bias</h3>",
                    "<h3>Reward distributions</h3>", "<h2>Run information</h2>"):
        assert heading in page, heading
    assert "Accuracy by quantile of" in page
    images = PNG_SRC.findall(page)
    assert len(images) >= 6 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page


# ----------------------------------------------------------------------------- suite mode
def test_suite_mode_end_to_end(suite_run):
    out, output, res = suite_run
    assert res["mode"] == "suite" and res["suite"]["name"] == "toy" and res["n_pairs"] == 17
    assert list(res["models"]) == ["a/model", "b/model"]  # directory names, widened to be distinct
    for entry in res["models"].values():
        assert SETTINGS_KEYS <= set(entry["settings"])
        assert entry["settings"]["render"] == "pair" and entry["settings"]["chat_template_sha256"] is None
        s = entry["suite"]
        assert {k: v["n"] for k, v in s["subsets"].items()} == {
            "chat-alpha": 5, "chat-hard-beta": 3, "code": 4, "prior-a": 3, "prior-b": 2}
        assert list(s["sections"]) == ["Chat", "Chat Hard", "Reasoning", "Prior Sets"]
        assert s["missing_sections"] == ["Safety"] and "Safety" in s["note"]
        d = entry["diagnostics"]
        assert [b["n"] for b in d["accuracy_by_quantile"]["bins"]] and sum(
            b["n"] for b in d["accuracy_by_quantile"]["bins"]) == 17
        assert d["length_bias"]["unit"].startswith("characters")  # as the length rules count
        assert d["length_bias_tokens"]["unit"].startswith("tokens")
        lb = d["length_bias"]
        for side in ("longer", "shorter"):
            if lb[f"acc_chosen_{side}"] is not None:
                iv = lb[f"acc_chosen_{side}_interval"]
                assert iv["low"] <= lb[f"acc_chosen_{side}"] <= iv["high"]
        assert list(lb["by_set"]) == list(s["subsets"])  # per subset, characters, with intervals
        for name, split in lb["by_set"].items():
            assert sum(split[k]["n"] for k in ("chosen_longer", "chosen_shorter", "equal_length")) == s["subsets"][name]["n"]
        assert set(d["rewards"]) == {"Chat", "Chat Hard", "Reasoning", "Prior Sets"}
        assert 0 <= d["calibration"]["ece"] <= 1 and d["calibration"]["reliability"]
        assert set(entry["truncation"]) == {"chat", "code", "prior"}
    # rows no subset selects are reported, not scored
    assert res["data"]["chat"]["unselected"] == {
        "n": 2, "by_source": {"stray/z": 2}, "examples": [f"{res['data']['chat']['spec']}:{i}" for i in (9, 10)]}
    assert res["data"]["chat"]["n_loaded"] == 10 and res["data"]["chat"]["n_evaluated"] == 8
    assert res["subsample"] is None
    # two models: agreement per subset and per section
    (agr,) = res["agreement"]
    assert agr["models"] == ["a/model", "b/model"] and agr["n"] == 17
    assert set(agr["by_set"]) == {"chat-alpha", "chat-hard-beta", "code", "prior-a", "prior-b"}
    assert set(agr["by_section"]) == {"Chat", "Chat Hard", "Reasoning", "Prior Sets"}
    assert res["run"]["git_commit"] and "torch" in res["run"]["versions"]
    # printed summary and files
    assert "a/model: suite toy" in output and "chat-hard-beta" in output and "2 row(s) in no subset" in output
    assert "agreement a/model vs b/model" in output
    page = (out / "report.html").read_text(encoding="utf-8")
    _check_report(page)
    assert "<h3>Model comparison</h3>" in page and "<h3>Agreement between models</h3>" in page
    assert "stray/z" in page  # the unselected rows are named in the report too
    assert (out / "scores.csv").read_text().count("\n") == 18


def test_suite_scores_equal_hand_recomputation(suite_run, models, toy, tmp_path):
    """Per-subset counts, section scores and overall recomputed from `rewardlab score` rewards."""
    out, _, res = suite_run
    for model, name in zip(models, ["a/model", "b/model"]):
        rewards = {}
        for stem in ("chat", "code", "prior"):
            scored = tmp_path / f"{stem}.jsonl"
            result = _cli("score", "--model", model, "--data", toy / f"{stem}.jsonl", "--out", scored, "--overwrite")
            assert result.exit_code == 0, result.output
            rewards[stem] = [json.loads(line) for line in scored.read_text().splitlines()]

        def acc(stem, prefix):
            rows = [r for r in rewards[stem] if r["source"].startswith(prefix)]
            return sum(r["reward_chosen"] > r["reward_rejected"] for r in rows), len(rows)

        counts = {"chat-alpha": acc("chat", "alpha/"), "chat-hard-beta": acc("chat", "beta/"),
                  "code": acc("code", ""), "prior-a": acc("prior", "p1"), "prior-b": acc("prior", "p2")}
        got = res["models"][name]["suite"]
        assert {k: (v["correct"], v["n"]) for k, v in got["subsets"].items()} == counts
        chat, hard, code = (counts[k][0] / counts[k][1] for k in ("chat-alpha", "chat-hard-beta", "code"))
        prior = (counts["prior-a"][0] / 3 + counts["prior-b"][0] / 2) / 2  # Prior Sets: unweighted mean
        assert got["sections"]["Prior Sets"]["score"] == pytest.approx(prior)
        assert got["overall"] == pytest.approx((2 * chat + 2 * hard + 2 * code + prior) / 7)
        # and the per-pair rewards in scores.csv are the ones `rewardlab score` wrote
        import csv

        with (out / "scores.csv").open() as fh:
            table = list(csv.DictReader(fh))
        mine = [float(r[f"{name}:reward_chosen"]) for r in table if r["dataset"] == "code"]
        assert np.allclose(mine, [r["reward_chosen"] for r in rewards["code"]], atol=1e-5)


# ----------------------------------------------------------------------------- data mode
def test_data_mode_two_models(models, toy, tmp_path):
    out = tmp_path / "out"
    result = _cli("eval", "--model", models[0], "--model", models[1], "--data", toy / "chat.jsonl",
                  "--data", toy / "code.jsonl", "--out", out, "--max-pairs-per-subset", 6)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["mode"] == "data" and res["suite"] is None
    assert res["subsample"]["max_pairs_per_subset"] == 6 and res["subsample"]["method"] == SUBSAMPLE_METHOD
    assert res["subsample"]["sets"] == {"chat": {"available": 10, "used": 6}, "code": {"available": 4, "used": 4}}
    for entry in res["models"].values():
        assert entry["overall"]["n"] == 10
        assert {k: v["n"] for k, v in entry["datasets"].items()} == {"chat": 6, "code": 4}
        assert sum(v["n"] for k, v in entry["sources"].items() if k.startswith("chat/")) == 6
        assert entry["overall"]["correct"] == sum(v["correct"] for v in entry["datasets"].values())
        assert set(entry["diagnostics"]["rewards"]) == {"chat", "code"}
    (agr,) = res["agreement"]
    assert set(agr["by_set"]) == {"chat", "code"} and "by_section" not in agr
    assert "dataset / source" in result.output and "alpha/1" in result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    _check_report(page)
    assert "Dataset / source" in page and "Accuracy per dataset" in page


def test_one_model_no_agreement_and_calibration_data(models, toy, tmp_path):
    ev = evaluate([models[0]], data=[str(toy / "code.jsonl")], calibration_data=str(toy / "chat.jsonl"))
    res = ev.results
    assert "agreement" not in res
    cal = res["models"]["a/model"]["diagnostics"]["calibration"]
    assert cal["fit_data"] == str(toy / "chat.jsonl") and cal["fit_n"] == 10
    # either a fitted temperature with the ECE after scaling, or the reason there is none
    assert ("temperature" in cal and "ece_at_temperature" in cal) or cal["fit_error"]
    page = write_outputs(ev, tmp_path / "one")["report"].read_text(encoding="utf-8")
    assert "Agreement" not in page and "Model comparison" not in page and "temperature fitted on" in page


def test_scores_do_not_depend_on_batch_size_or_padding_side(models, toy):
    kwargs = dict(suite=str(toy / "toy.yaml"), data_root=str(toy), max_pairs_per_subset=2)
    runs = [evaluate([models[0]], batch_size=1, **kwargs),
            evaluate([models[0]], batch_size=32, **kwargs),
            evaluate([models[0]], batch_size=32, padding_side="left", **kwargs)]
    assert runs[2].results["models"]["a/model"]["settings"]["padding_side"] == "left"
    assert runs[0].results["models"]["a/model"]["settings"]["batch_size"] == 1
    base = runs[0].scores["a/model"]
    assert len(base["reward_chosen"]) == 2 * 4 + 2  # two per subset, prior-b has 2
    for other in runs[1:]:
        assert other.pairs == runs[0].pairs
        for key in ("reward_chosen", "reward_rejected"):
            assert np.abs(other.scores["a/model"][key] - base[key]).max() < 1e-4


# ----------------------------------------------------------------------------- RewardBench offline
def test_rewardbench_suite_offline_on_a_local_file(models, tmp_path):
    """The rewardbench suite's subset→section map and scoring on a local file in its schema."""
    builtin = (BUILTIN_DIR / "rewardbench.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(builtin)
    names = [s["subset"] for s in spec["subsets"]]
    rows = []
    for k, name in enumerate(names):
        rows += [{"prompt": f"{name} prompt {i}", "chosen": f"good {name} answer {i}",
                  "rejected": "bad " + " ".join(WORDS[: 1 + (i + k) % 6]), "subset": name, "id": len(rows)}
                 for i in range(1 + k % 2)]
    rows.append({"prompt": "p", "chosen": "c", "rejected": "r", "subset": "anthropic_helpful", "id": len(rows)})
    local = _write_jsonl(tmp_path / "reward-bench-filtered.jsonl", rows)
    suite_path = tmp_path / "rewardbench-local.yaml"
    suite_path.write_text(builtin.replace('"hf:allenai/reward-bench@filtered"', json.dumps(str(local))))

    ev = evaluate([models[0]], suite=str(suite_path))
    s = ev.results["models"]["a/model"]["suite"]
    assert s["suite"] == "rewardbench" and len(s["subsets"]) == 23
    assert list(s["sections"]) == ["Chat", "Chat Hard", "Safety", "Reasoning"]
    assert s["missing_sections"] == ["Prior Sets"]
    assert ev.results["data"]["reward-bench-filtered"]["unselected"]["by_source"] == {"reward-bench-filtered": 1}
    assert ev.pairs["id"] == [r["id"] for r in rows[:-1]]
    # Reasoning: math-prm weighs as much as all hep-* together
    sc = ev.scores["a/model"]
    ok = sc["reward_chosen"] > sc["reward_rejected"]
    sets = np.array(ev.pairs["set"])
    math, hep = ok[sets == "math-prm"], ok[np.char.startswith(sets.astype(str), "hep-")]
    assert s["sections"]["Reasoning"]["score"] == pytest.approx((math.mean() + hep.mean()) / 2)
    assert s["overall"] == pytest.approx(sum(v["score"] for v in s["sections"].values()) / 4)


# ----------------------------------------------------------------------------- pieces
def test_subsample_is_deterministic_and_independent_of_file_order(tmp_path):
    rows = _rows(30, "s", 9)
    a = load_preferences(str(_write_jsonl(tmp_path / "a.jsonl", rows)))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    b = load_preferences(str(_write_jsonl(tmp_path / "b.jsonl", shuffled)))
    pick_a = _subsample(a, list(range(30)), 7)
    pick_b = _subsample(b, list(range(30)), 7)
    assert len(pick_a) == 7 and pick_a == sorted(pick_a)
    assert {a["prompt"][i] for i in pick_a} == {b["prompt"][i] for i in pick_b}
    assert _subsample(a, [3, 1], 7) == [3, 1]


def test_unique_names():
    assert unique_names(["runs/x/model", "runs/y/model", "other"]) == ["x/model", "y/model", "other"]
    assert unique_names(["m", "m"]) == ["m", "m#2"]
    assert unique_names(["runs/minilm_hh/model", "model"]) == ["minilm_hh/model", "model"]
    assert unique_names(["a/b/c/model", "d/b/c/model"]) == ["a/b/c/model", "d/b/c/model"]


def test_cli_argument_errors(models, toy, tmp_path):
    both = _cli("eval", "--model", models[0], "--suite", "shared", "--data", toy / "code.jsonl", "--out", tmp_path)
    neither = _cli("eval", "--model", models[0], "--out", tmp_path)
    missing = _cli("eval", "--model", tmp_path / "nope", "--data", toy / "code.jsonl", "--out", tmp_path / "o")
    assert both.exit_code == neither.exit_code == missing.exit_code == 2
    assert "either --suite or --data" in both.output and "no such directory" in " ".join(missing.output.split())
    assert "loading" not in missing.output  # models are checked before any data is read


def test_chat_template_hash_is_recorded(tiny_llama_dir, toy, tmp_path):
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64)
    path = rm.save_pretrained(tmp_path / "llama")
    ev = evaluate([path], data=[str(toy / "code.jsonl")], batch_size=2)
    settings = ev.results["models"]["llama"]["settings"]
    assert settings["render"] == "chat" and settings["chat_template_used"] is True
    assert settings["chat_template_sha256"] == hashlib.sha256(rm.tokenizer.chat_template.encode()).hexdigest()
    assert settings["pooling"] == "last"


# ---------------------------------------------------------------- terminal notes and default output (issue 11)
def test_tie_counts_and_dominance_warnings_by_hand():
    from rewardlab.eval.runner import dominance_warnings, input_notes, tie_counts

    rc = np.array([1.0, 2.0, 0.5, 0.5, 3.0])
    rr = np.array([1.0, 1.0, 0.5, 0.7, 3.0])
    ties = tie_counts(rc, rr, ["a", "a", "b", "b", "b"])
    assert ties == {"a": {"n": 2, "ties": 1}, "b": {"n": 3, "ties": 2}}
    truncation = {"d1": {"ok": 2, "response_truncated": 2}, "d2": {"ok": 6}}
    lines = dominance_warnings(ties, truncation, {"a": "d1", "b": "d2"}, 128)
    assert lines == [
        "a: 1 of 2 pairs (50%) tie (equal rewards), and a tie counts as wrong; 50% of d1's responses were "
        "truncated at max_length 128, so chosen and rejected often become identical inputs",
        "b: 2 of 3 pairs (67%) tie (equal rewards), and a tie counts as wrong",
    ]
    # below the thresholds (10% ties, 25% truncated responses): nothing to say
    assert dominance_warnings({"a": {"n": 20, "ties": 1}}, {"d1": {"ok": 4, "prompt_truncated": 1}}, {"a": "d1"}, 64) == []
    # truncation without ties is said on its own
    assert dominance_warnings({"a": {"n": 20, "ties": 0}}, {"d1": {"ok": 1, "truncated_right": 3}}, {"a": "d1"}, 64) == [
        "d1: 3 of 4 responses (75%) were truncated at max_length 64: the model scored cut texts"]
    assert input_notes({"skipped": {"chosen: expected a string": 2}, "empty_chosen": 1, "empty_rejected": 0,
                        "identical": 3}, {"ok": 5, "prompt_truncated": 1, "response_truncated": 2}) == [
        "skipped 2 bad row(s) (--skip-bad-rows): 2 x chosen: expected a string",
        "empty responses (kept): 1 chosen, 0 rejected",
        "identical pairs (chosen = rejected, kept; they tie): 3",
        "truncated responses: 3 of 8 (prompt truncated 1, response truncated 2)",
    ]
    assert input_notes({}, {"ok": 4}) == []


def test_eval_says_when_ties_dominate_and_writes_under_runs(models, tmp_path, monkeypatch):
    from rewardlab.eval.runner import default_out_dir

    assert default_out_dir(["runs/demo/model"], None, ["../shared/data/humanevalpack.jsonl"]) == \
        Path("runs/eval/demo-model_humanevalpack")
    assert default_out_dir(["a/model", "b/model"], "shared", []) == Path("runs/eval/a-model_b-model_shared")
    rows = _rows(10, "x", 3)
    for r in rows[:6]:
        r["rejected"] = r["chosen"]  # identical: equal rewards, a tie
    data = _write_jsonl(tmp_path / "same.jsonl", rows)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--model", str(models[0]), "--data", str(data)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "warning: same: 6 of 10 pairs (60%) tie (equal rewards), and a tie counts as wrong" in text
    assert "same: identical pairs (chosen = rejected, kept; they tie): 6" in text
    out = tmp_path / "runs" / "eval" / "a-model_same"
    assert (out / "results.json").is_file() and not (tmp_path / "eval").exists()
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["a/model"]["ties"] == {"same": {"n": 10, "ties": 6}}
