"""Bad pointwise data (issue 24): every case is a DataError naming the file, the line and the
field, with what was expected and what was found; ``on_error="skip"`` counts it instead."""

from __future__ import annotations

import json

import pytest

from rewardlab.data.pointwise import read_pointwise
from rewardlab.errors import DataError

GOOD_SCORE = {"prompt": "p", "response": "a", "score": 1.5}
GOOD_CORRECT = {"prompt": "p", "responses": ["a", "b"], "correct": [True, False]}
GOOD_ATTR = {"prompt": "p", "response": "a", "attributes": {"helpful": 1.0, "safe": None}}

# (case, rows (the bad one last), reader keywords, field named, needles in the message)
CASES = [
    ("score-not-a-number", [GOOD_SCORE, {**GOOD_SCORE, "score": "high"}], {}, "score", ["a number", "'high'"]),
    ("score-a-boolean", [GOOD_SCORE, {**GOOD_SCORE, "score": True}], {}, "score", ["a number", "bool"]),
    ("score-nan", [GOOD_SCORE, {**GOOD_SCORE, "score": float("nan")}], {}, "score", ["NaN is not allowed"]),
    ("score-null", [GOOD_SCORE, {**GOOD_SCORE, "score": None}], {}, "score", ["a number"]),
    ("score-infinite", [GOOD_SCORE, {**GOOD_SCORE, "score": float("inf")}], {}, "score", ["finite"]),
    ("score-missing", [GOOD_SCORE, {"prompt": "p", "response": "a"}], {}, "score", ["no such field"]),
    ("response-not-text", [GOOD_SCORE, {**GOOD_SCORE, "response": 3}], {}, "response", ["a string"]),
    ("correct-shorter", [GOOD_CORRECT, {**GOOD_CORRECT, "correct": [True]}], {}, "correct",
     ["2 booleans", "1 values"]),
    ("correct-longer", [GOOD_CORRECT, {**GOOD_CORRECT, "correct": [True, False, True]}], {}, "correct",
     ["2 booleans", "3 values"]),
    ("correct-not-boolean", [GOOD_CORRECT, {**GOOD_CORRECT, "correct": [True, 1]}], {}, "correct[1]", ["a boolean"]),
    ("attribute-undeclared", [GOOD_ATTR, {**GOOD_ATTR, "attributes": {"helpfull": 1.0}}],
     {"attributes": ["helpful", "safe"]}, "attributes.helpfull", ["declared attribute", "helpful, safe"]),
    ("attribute-not-a-number", [GOOD_ATTR, {**GOOD_ATTR, "attributes": {"helpful": "yes"}}], {},
     "attributes.helpful", ["a number", "'yes'"]),
    ("attributes-not-an-object", [GOOD_ATTR, {**GOOD_ATTR, "attributes": [1, 2]}], {}, "attributes",
     ["an object"]),
    ("k-heads-one-column", [GOOD_SCORE, GOOD_SCORE], {"num_labels": 3}, "score",
     ["num_labels=3", "3 target columns", "1 (score)"]),
    ("k-heads-too-few-attributes", [GOOD_ATTR], {"num_labels": 3}, "attributes",
     ["3 target columns", "2 (helpful, safe)"]),
    ("layout-switch", [GOOD_SCORE, GOOD_CORRECT], {}, "response", ["layout 'score' detected from"]),
]


@pytest.mark.parametrize("case,rows,kwargs,field,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_pointwise_row_names_file_line_field(case, rows, kwargs, field, needles, tmp_path):
    path = tmp_path / "data.jsonl"
    # json.dumps writes NaN/Infinity literals, which Python's reader (and ours) parses back.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        read_pointwise(path, **kwargs)
    err = info.value
    message = str(err)
    line = 1 if case.startswith("k-heads") else len(rows)
    assert err.file == str(path) and err.line == line, message
    assert err.field == field, message
    assert message.startswith(f"{path}:{line}: field '{field}'"), message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize("case,rows,kwargs,field,needles",
                         [c for c in CASES if not c[0].startswith("k-heads")], ids=[c[0] for c in CASES if not c[0].startswith("k-heads")])
def test_skip_counts_the_bad_row(case, rows, kwargs, field, needles, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = read_pointwise(path, on_error="skip", **kwargs)
    assert table.report.n_read == len(rows) and table.report.n_kept == len(rows) - 1
    assert sum(table.report.skipped.values()) == 1


def test_csv_score_that_is_not_a_number(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("prompt,response,score\np,a,1.5\np,b,lots\n")
    with pytest.raises(DataError, match=r"data.csv:3: field 'score': expected a number, got 'lots'"):
        read_pointwise(path)
