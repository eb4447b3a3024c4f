"""Suite loading, row selection and RewardBench v1 scoring, checked against hand arithmetic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from rewardlab.errors import ConfigError, DataError
from rewardlab.eval.metrics import accuracy_by_group
from rewardlab.eval.suites import (
    SubsetSpec,
    builtin_suites,
    load_suite,
    rows_by_subset,
    score_suite,
    select_rows,
)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

RB_SECTIONS = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}


def _write_suite(tmp_path: Path, subsets: list[dict], name: str = "toy") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "test", "subsets": subsets}))
    return path


@pytest.fixture
def toy_suite(tmp_path):
    subsets = [
        ("chat-a", "Chat"), ("chat-b", "Chat"), ("hard-a", "Chat Hard"), ("safety-a", "Safety"),
        ("math-prm", "Reasoning"), ("hep-python", "Reasoning"), ("hep-go", "Reasoning"),
        ("prior-a", "Prior Sets"), ("prior-b", "Prior Sets"),
    ]
    return load_suite(
        _write_suite(tmp_path, [{"name": n, "section": s, "data": "toy.jsonl"} for n, s in subsets]),
        data_root=tmp_path,
    )


# ----------------------------------------------------------------------------- scoring
def test_score_suite_matches_hand_computation(toy_suite):
    # chat-a from per-pair rewards: 10 pairs, 2 of them ties (wrong) and 0 misranked -> 8/10
    r_c = [1.0] * 10
    r_r = [0.0] * 8 + [1.0, 1.0]
    chat_a = accuracy_by_group(r_c, r_r, ["chat-a"] * 10)["chat-a"]
    assert (chat_a["correct"], chat_a["n"]) == (8, 10)
    results = {
        "chat-a": (chat_a["correct"], chat_a["n"]),
        "chat-b": (15, 30),
        "hard-a": (10, 20),
        "math-prm": (15, 20),
        "hep-python": (9, 10),
        "hep-go": (15, 30),
        "prior-a": (60, 100),
        "prior-b": (9, 10),
        # safety-a left out: Safety is missing
    }
    out = score_suite(results, toy_suite)

    chat = (8 + 15) / (10 + 30)  # 23/40 = 0.575, count-weighted
    chat_hard = 10 / 20  # 0.5
    reasoning = (15 / 20 + (9 + 15) / (10 + 30)) / 2  # (0.75 + 0.6) / 2 = 0.675 (pooled would be 39/60 = 0.65)
    prior = (60 / 100 + 9 / 10) / 2  # (0.6 + 0.9) / 2 = 0.75 (pooled would be 69/110)
    overall = (2 * chat + 2 * chat_hard + 2 * reasoning + 1 * prior) / 7  # 4.25 / 7
    assert overall == pytest.approx(4.25 / 7)

    assert out["sections"]["Chat"] == {"score": pytest.approx(chat), "n": 40}
    assert out["sections"]["Chat Hard"] == {"score": pytest.approx(chat_hard), "n": 20}
    assert out["sections"]["Reasoning"] == {"score": pytest.approx(reasoning), "n": 60}
    assert out["sections"]["Prior Sets"] == {"score": pytest.approx(prior), "n": 110}
    assert out["overall"] == pytest.approx(overall)
    assert out["weights"] == {"Chat": 2, "Chat Hard": 2, "Reasoning": 2, "Prior Sets": 1}
    assert out["missing_sections"] == ["Safety"]
    assert out["missing_subsets"] == ["safety-a"]
    assert "Safety" in out["note"]
    assert out["subsets"]["chat-a"] == {"section": "Chat", "n": 10, "correct": 8, "accuracy": 0.8}
    assert out["subsets"]["hep-go"] == {"section": "Reasoning", "n": 30, "correct": 15, "accuracy": 0.5}
    json.dumps(out)  # plain JSON


def test_score_suite_all_sections_and_reasoning_variants(toy_suite):
    full = {"chat-a": (1, 2), "hard-a": (1, 4), "safety-a": (3, 4), "hep-python": (9, 10),
            "hep-go": (15, 30), "prior-a": (1, 2)}
    out = score_suite(full, toy_suite)
    # Reasoning without math-prm: pooled hep = 24/40 = 0.6
    assert out["sections"]["Reasoning"]["score"] == pytest.approx(0.6)
    # overall = (2*.5 + 2*.25 + 2*.75 + 2*.6 + 1*.5) / 9 = 4.7 / 9
    assert out["overall"] == pytest.approx(4.7 / 9)
    assert out["missing_sections"] == [] and out["note"] is None
    only_math = score_suite({"math-prm": (3, 4)}, toy_suite)
    assert only_math["sections"]["Reasoning"]["score"] == 0.75
    assert only_math["overall"] == 0.75


@pytest.mark.parametrize(
    ("results", "match"),
    [
        ({}, "at least one"),
        ({"nope": (1, 2)}, "not in suite"),
        ({"chat-a": (3, 2)}, "correct <= n"),
        ({"chat-a": (0, 0)}, "n >= 1"),
        ({"chat-a": 5}, r"\(correct, n\)"),
    ],
)
def test_score_suite_rejects_bad_counts(toy_suite, results, match):
    with pytest.raises(ValueError, match=match):
        score_suite(results, toy_suite)


# ----------------------------------------------------------------------------- loading
def test_builtin_suites_load():
    assert builtin_suites() == ["rewardbench", "rewardbench2", "shared"]
    shared = load_suite("shared")
    assert {s.section for s in shared.subsets} == {"Chat", "Safety", "Reasoning", "Prior Sets", "Best-of-N"}
    assert {s.section for s in shared.subsets if s.kind == "pairs"} == {"Chat", "Safety", "Reasoning", "Prior Sets"}
    assert {s.name for s in shared.subsets if s.name.startswith("llmbar")} <= {
        s.name for s in shared.subsets if s.section == "Chat"}
    rb = load_suite("rewardbench")
    assert rb.data_specs() == ["hf:allenai/reward-bench@filtered"]
    assert rb.keep_columns(rb.data_specs()[0]) == ["subset"]
    assert shared.keep_columns(shared.data_specs()[0]) == []


def test_relative_data_resolves_against_data_root(tmp_path, monkeypatch):
    path = _write_suite(tmp_path, [
        {"name": "rel", "section": "Chat", "data": "x.jsonl"},
        {"name": "abs", "section": "Chat", "data": "/abs/y.jsonl"},
        {"name": "hub", "section": "Chat", "data": "hf:org/set@test"},
    ])
    suite = load_suite(path, data_root=tmp_path / "root")
    assert suite.subset("rel").data == str(tmp_path / "root" / "x.jsonl")
    assert suite.subset("abs").data == "/abs/y.jsonl"
    assert suite.subset("hub").data == "hf:org/set@test"
    monkeypatch.chdir(tmp_path)
    default = load_suite(path)  # ../shared/data relative to the current directory
    assert default.subset("rel").data == os.path.abspath(tmp_path / ".." / "shared" / "data" / "x.jsonl")


@pytest.mark.parametrize(
    ("subset", "match"),
    [
        ({"name": "a", "section": "Chatty", "data": "x"}, "not one of"),
        ({"name": "a", "section": "Chat"}, "'data' is required"),
        ({"name": "a", "section": "Chat", "data": "x", "colour": "red"}, "unknown key"),
        ({"name": "a", "section": "Chat", "data": "x", "subset": "s"}, "go together"),
        ({"name": "a", "section": "Chat", "data": "x", "source": "s*", "subset_column": "subset",
          "subset": "s"}, "not both"),
    ],
)
def test_malformed_suites_raise_config_error(tmp_path, subset, match):
    with pytest.raises(ConfigError, match=match):
        load_suite(_write_suite(tmp_path, [subset]))


def test_duplicate_names_and_unknown_suite(tmp_path):
    dup = [{"name": "a", "section": "Chat", "data": "x"}] * 2
    with pytest.raises(ConfigError, match="duplicate"):
        load_suite(_write_suite(tmp_path, dup))
    with pytest.raises(ConfigError, match="not a built-in suite"):
        load_suite("no-such-suite")


# ----------------------------------------------------------------------------- selection
def test_select_rows_by_source_glob_and_column():
    table = {"source": ["xstest/should-refuse/a", "xstest/should-respond/b", "xstest/should-refuse/c"],
             "subset": ["p", "q", "p"]}
    glob = SubsetSpec("refuse", "Safety", "t.jsonl", source="xstest/should-refuse/*")
    column = SubsetSpec("q", "Safety", "t.jsonl", subset_column="subset", subset="q")
    everything = SubsetSpec("all", "Safety", "t.jsonl")
    assert select_rows(table, glob) == [0, 2]
    assert select_rows(table, column) == [1]
    assert select_rows(table, everything) == [0, 1, 2]


def test_select_rows_errors_name_the_problem():
    spec = SubsetSpec("refuse", "Safety", "t.jsonl", source="x*")
    with pytest.raises(DataError, match="field 'source'"):
        select_rows({"prompt": ["a"]}, spec)
    with pytest.raises(DataError, match="row 1"):
        select_rows({"source": ["x1", None]}, spec)


def test_rows_by_subset_reports_overlap_and_unselected():
    table = {"source": ["a/1", "b/1", "c/1"]}
    a = SubsetSpec("a", "Chat", "t.jsonl", source="a/*")
    b = SubsetSpec("b", "Chat", "t.jsonl", source="b/*")
    selected, unselected = rows_by_subset(table, [a, b])
    assert selected == {"a": [0], "b": [1]} and unselected == [2]
    with pytest.raises(DataError, match="both subsets"):
        rows_by_subset(table, [a, SubsetSpec("any", "Chat", "t.jsonl", source="*")])


def test_rewardbench_mapping_on_a_local_file_in_its_schema(tmp_path):
    """The rewardbench suite maps RewardBench's `subset` column to the v1 sections."""
    rows = []
    for section, names in RB_SECTIONS.items():
        for k, name in enumerate(names):
            rows += [{"prompt": f"{name} {i}", "chosen": "c", "rejected": "r", "subset": name, "id": len(rows)}
                     for i in range(1 + k % 3)]
    rows += [{"prompt": "x", "chosen": "c", "rejected": "r", "subset": "anthropic_helpful", "id": len(rows)}]
    path = tmp_path / "reward-bench-filtered.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = [json.loads(line) for line in path.read_text().splitlines()]
    table = {key: [r[key] for r in loaded] for key in loaded[0]}

    suite = load_suite("rewardbench")
    assert {s: [x.name for x in suite.subsets if x.section == s] for s in RB_SECTIONS} == RB_SECTIONS
    assert len(suite.subsets) == 23
    selected, unselected = rows_by_subset(table, suite.subsets_for(suite.data_specs()[0]))
    for name, idx in selected.items():
        assert idx and all(table["subset"][i] == name for i in idx)
    assert [table["subset"][i] for i in unselected] == ["anthropic_helpful"]

    counts = {name: (len(idx), len(idx)) for name, idx in selected.items()}
    scored = score_suite(counts, suite)
    assert scored["missing_sections"] == ["Prior Sets"]
    assert scored["overall"] == pytest.approx(1.0)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data directory {SHARED_DATA} is absent")
def test_shared_suite_selectors_cover_the_real_files():
    suite = load_suite("shared", data_root=SHARED_DATA)
    expected_files = {
        "alpacaeval_gpt4_judged.jsonl", "alpacaeval_modelpairs.jsonl", "hh_rlhf_harmless.jsonl",
        "humanevalpack.jsonl", "llmbar_processed.jsonl", "pandalm_test.jsonl", "xstest_pairs.jsonl",
        "gsm8k_solutions.jsonl",
    }
    assert {Path(d).name for d in suite.data_specs()} == expected_files
    for data in suite.data_specs():
        with open(data, encoding="utf-8") as fh:
            sources = [json.loads(line)["source"] for line in fh]
        selected, unselected = rows_by_subset({"source": sources}, suite.subsets_for(data))
        assert unselected == [], f"{data}: rows in no subset"
        assert all(selected.values()), f"{data}: a subset selects nothing: {selected.keys()}"
    sections = {s.name: s.section for s in suite.subsets}
    assert sections["hep-python"] == "Reasoning" and sections["xstest-should-refuse"] == "Safety"
    assert sections["llmbar-mtbench"] == "Chat" and sections["pandalm"] == "Chat"  # the data README: llmbar_processed is Chat
    assert sections["anthropic_harmless"] == "Prior Sets"
