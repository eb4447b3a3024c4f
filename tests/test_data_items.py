"""Item readers (rewardlab.data.items): layouts, deduplication, errors, skipping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardlab.data.items import Item, detect_layout, item_from_row, items_from_rows, read_items, unique_inputs
from rewardlab.errors import ConfigError, DataError
from rewardlab.eval.items import best_of_k_selection, best_of_n_accuracy, rm_bench_accuracy

RB2 = {"id": "42", "prompt": "p", "chosen": ["good"], "rejected": ["bad1", "bad2", "bad1"], "subset": "Math"}
TIES = {"id": "tied:7", "prompt": "name a prime", "chosen": ["2", "3", "5"], "rejected": ["4", "6"],
        "num_correct": 3, "subset": "Ties"}
RMB = {
    "conversation_input": [{"content": "How do I stay safe?", "language": "English", "role": "user"}],
    "bon_best": {"llm_name": "m1", "answer": "carefully"},
    "loser_list": [{"llm_name": "m2", "answer": "recklessly"}, {"llm_name": "m3", "answer": "never"}],
    "bon_uid": "3294",
    "category_path": "BoN_set/Harmlessness/S1",
}
RMBENCH = {"id": 3, "prompt": "q", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", "r2"], "domain": "math"}
POINTWISE = {"prompt": "1+1?", "responses": ["2", "3", "two", "2"], "correct": [True, False, True, True]}


def _rows(*rows):
    return [(f"f.jsonl:{i + 1}", row) for i, row in enumerate(rows)]


def _error(row, layout="auto") -> DataError:
    with pytest.raises(DataError) as info:
        item_from_row(row, "data.jsonl:12", layout)
    return info.value


# ----------------------------------------------------------------------------- layouts
def test_rewardbench2_best_of_n_row():
    item = item_from_row(RB2, "f.jsonl:1", source="rb2")
    assert item.kind == "best_of_n" and item.responses == ("good", "bad1", "bad2")
    assert item.chosen_idx == (0,) and item.rejected_idx == (1, 2)
    assert (item.id, item.group, item.source, item.origin) == ("42", "Math", "rb2", "f.jsonl:1")
    parts = item.split([3.0, 1.0, 2.0])
    assert parts["chosen"].tolist() == [3.0] and parts["rejected"].tolist() == [1.0, 2.0]


def test_rewardbench2_ties_row_keeps_several_chosen():
    item = item_from_row(TIES)
    assert item.chosen_idx == (0, 1, 2) and item.rejected_idx == (3, 4) and item.id == "tied:7"
    err = _error({**TIES, "num_correct": 2})
    assert err.field == "num_correct"


def test_rmb_best_of_n_row():
    item = item_from_row(RMB)
    assert detect_layout(RMB) == "rmb" and item.kind == "best_of_n"
    assert item.prompt == [{"role": "user", "content": "How do I stay safe?"}]
    assert item.responses == ("carefully", "recklessly", "never")
    assert item.chosen_idx == (0,) and item.rejected_idx == (1, 2)
    assert (item.id, item.group) == ("3294", "BoN_set/Harmlessness/S1")


def test_rm_bench_row_and_shared_styles():
    item = item_from_row(RMBENCH)
    assert detect_layout(RMBENCH) == "rm_bench" and item.kind == "rm_bench"
    assert item.chosen_idx == (0, 1, 2) and item.rejected_idx == (3, 4, 5) and item.group == "math"
    same = item_from_row({**RMBENCH, "chosen": ["c", "c", "c2"]})
    assert same.responses == ("c", "c2", "r0", "r1", "r2") and same.chosen_idx == (0, 0, 1)
    parts = same.split([5.0, 4.0, 1.0, 2.0, 3.0])
    assert parts["chosen"].tolist() == [5.0, 5.0, 4.0] and parts["rejected"].tolist() == [1.0, 2.0, 3.0]


def test_pointwise_row_scores_a_repeated_text_once_but_counts_it_twice():
    item = item_from_row(POINTWISE)
    assert item.kind == "pointwise" and item.responses == ("2", "3", "two")
    assert item.correct == (True, False, True) and item.sample_idx == (0, 1, 2, 0)
    parts = item.split([1.0, 0.5, 0.2])
    assert parts["scores"].tolist() == [1.0, 0.5, 0.2, 1.0]
    assert parts["correct"].tolist() == [True, False, True, True]
    with pytest.raises(ValueError):
        item.split([1.0, 0.5])


def test_layout_is_detected_once_per_stream():
    items, report = items_from_rows(_rows(RMBENCH, RMBENCH))
    assert report.layout == "rm_bench" and report.kinds == {"rm_bench": 2}
    # a later row with two styles is an RM-Bench row without three variants, not best-of-N
    bad = {**RMBENCH, "rejected": ["r0", "r1"]}
    with pytest.raises(DataError) as info:
        items_from_rows(_rows(RMBENCH, bad))
    assert info.value.line == 2 and info.value.field == "rejected"
    assert "layout 'rm_bench' detected from f.jsonl:1" in str(info.value)


# ----------------------------------------------------------------------------- errors
def test_missing_field():
    err = _error({"prompt": "p", "chosen": ["a"]}, layout="best_of_n")
    assert (err.file, err.line, err.field, err.got) == ("data.jsonl", 12, "rejected", "no such field")
    assert "data.jsonl:12: field 'rejected'" in str(err)
    assert _error({"chosen": ["a"], "rejected": ["b"]}).field == "prompt"
    assert _error({"text": "?"}).expected.startswith("a best-of-N row")
    assert _error({**RMB, "bon_best": {"llm_name": "x"}}).field == "bon_best.answer"
    assert _error({"prompt": "p", "responses": ["a"]}).field == "correct"


def test_empty_rejected_list():
    err = _error({**RB2, "rejected": []})
    assert err.field == "rejected" and err.got == "an empty list"
    assert _error({**RMB, "loser_list": []}).field == "loser_list"


def test_chosen_equal_to_a_rejected():
    err = _error({**RB2, "rejected": ["bad", "good"]})
    assert err.field == "rejected[1]" and err.got == "the same text as chosen[0]"
    rmb = {**RMB, "loser_list": [{"answer": "x"}, {"answer": "carefully"}]}
    assert _error(rmb).field == "loser_list[1].answer"
    assert _error({**RMBENCH, "rejected": ["r0", "c2", "r2"]}).field == "rejected[1]"


def test_correct_flags_must_match_responses():
    err = _error({**POINTWISE, "correct": [True, False]})
    assert err.field == "correct" and err.got == "2 values" and "4 booleans" in err.expected
    err = _error({**POINTWISE, "correct": [True, False, 1, True]})
    assert err.field == "correct[2]" and err.got == "1"
    err = _error({**POINTWISE, "correct": [True, False, True, False]})  # "2" both right and wrong
    assert err.field == "correct[3]"
    assert _error({**POINTWISE, "correct": "yes"}).field == "correct"


def test_rm_bench_needs_three_variants():
    err = _error({**RMBENCH, "chosen": ["a", "b"]}, layout="rm_bench")
    assert err.field == "chosen" and err.got == "2 responses" and "3 responses" in err.expected


def test_bad_types():
    assert _error({**RB2, "chosen": "good"}).field == "chosen"  # a pair belongs to load_preferences
    assert _error({**RB2, "rejected": ["a", 3]}).field == "rejected[1]"
    assert _error({**RB2, "prompt": 5}).field == "prompt"
    assert _error({**RMB, "conversation_input": [{"role": "robot", "content": "x"}]}).field == "conversation_input[0].role"
    assert _error(["not", "an", "object"]).expected == "a JSON object"
    with pytest.raises(ConfigError):
        item_from_row(RB2, layout="pairs")
    with pytest.raises(ConfigError):
        items_from_rows(_rows(RB2), on_error="ignore")


# ----------------------------------------------------------------------------- skipping
def test_skip_counts_every_reason():
    rows = _rows(RB2, {**RB2, "rejected": []}, {**RB2, "rejected": ["good"]}, {**RB2, "rejected": []},
                 {"prompt": "p", "chosen": ["x"]}, {**RB2, "chosen": ["", "g2"]})
    items, report = items_from_rows(rows, on_error="skip", label="f.jsonl")
    assert len(items) == 2 and (report.n_read, report.n_kept) == (6, 2)
    assert report.skipped == {
        "rejected: expected at least 1 response": 2,
        "rejected[]: expected a response different from every chosen one": 1,
        "rejected: expected a list of rejected responses": 1,
    }
    assert sum(report.skipped.values()) == report.n_read - report.n_kept
    assert report.skipped_examples[0].startswith("f.jsonl:2: field 'rejected'")
    assert report.merged_duplicates == 2 and report.empty_responses == 1
    summary = report.summary()
    assert "skipped 4" in summary and "kept 2 items" in summary and "merged 2" in summary
    json.dumps(report.to_dict())


def test_all_rows_skipped_is_an_error():
    with pytest.raises(DataError, match="all 1 rows were skipped"):
        items_from_rows(_rows({**RB2, "rejected": []}), on_error="skip")


# ----------------------------------------------------------------------------- files
def test_read_jsonl_names_the_line_and_skips_bad_json(tmp_path):
    path = tmp_path / "bon.jsonl"
    path.write_text(json.dumps(RB2) + "\n{not json\n\n" + json.dumps({**RB2, "id": "43"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_items(path)
    assert (info.value.file, info.value.line) == (str(path), 2)
    items, report = read_items(path, on_error="skip")
    assert [it.id for it in items] == ["42", "43"] and [it.origin for it in items] == [f"{path}:1", f"{path}:4"]
    assert items[0].source == "bon" and report.skipped == {"expected a JSON object": 1}


def test_read_json_list_names_the_row(tmp_path):
    path = tmp_path / "S1.json"
    path.write_text(json.dumps([RMB, {**RMB, "loser_list": []}]), encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_items(path)
    assert (info.value.row, info.value.field) == (1, "loser_list")
    items, _ = read_items(path, on_error="skip", source="rmb")
    assert items[0].source == "rmb" and items[0].origin == f"{path}: row 0"
    with pytest.raises(DataError):
        read_items(tmp_path / "missing.jsonl")


def test_read_gsm8k_solutions(shared_data):
    items, report = read_items(shared_data / "gsm8k_solutions.jsonl")
    assert report.layout == "pointwise" and report.n_kept == len(items) == 666
    assert report.merged_duplicates == 3  # three questions repeat a solution text
    assert all(len(it.sample_idx) == 4 for it in items)
    # a scorer that knows the answer picks a correct one wherever there is one
    scores = [it.split(np.asarray(it.correct, dtype=float))["scores"] for it in items]
    correct = [it.split(np.zeros(len(it.responses)))["correct"] for it in items]
    out = best_of_k_selection(scores, correct)
    assert out["selected"] == pytest.approx(out["oracle"]) and out["n_mixed"] == 363


# ----------------------------------------------------------------------------- scoring once
def test_unique_inputs_score_shared_texts_once_and_feed_the_metrics():
    a = item_from_row(RMB)
    b = item_from_row({**RMB, "bon_best": {"answer": "never"}, "loser_list": [{"answer": "carefully"}]})
    c = item_from_row({**RB2, "prompt": "How do I stay safe?"})  # same text, but a string prompt
    inputs, index = unique_inputs([a, b, c])
    assert len(inputs) == 3 + 0 + 3
    assert index[1].tolist() == [2, 0] and index[2].tolist() == [3, 4, 5]
    rewards = np.array([2.0, 0.0, 1.0, 1.0, 0.5, 0.2])
    parts = [it.split(rewards[idx]) for it, idx in zip([a, b, c], index)]
    out = best_of_n_accuracy([p["chosen"][0] for p in parts], [p["rejected"] for p in parts])
    assert out["per_item"].tolist() == [1.0, 0.0, 1.0]
    rm = item_from_row(RMBENCH)
    split = rm.split(np.arange(6.0)[::-1])
    assert rm_bench_accuracy([split["chosen"]], [split["rejected"]])["hard"] == 1.0
    assert isinstance(a, Item)
