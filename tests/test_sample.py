"""The bundled sample: every label checks, the file is what the generator makes, no length cue."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from rewardlab.data import load_preferences, sample_path
from rewardlab.data import sample_check
from rewardlab.data.sample_check import check_row

SCRIPT = Path(__file__).parents[1] / "scripts" / "make_sample.py"
PER_TASK = {"capitals": 130, "opposites": 130, "categories": 130, "spelling": 130,
            "arithmetic": 95, "sorting": 95, "python": 95}
TASKS = set(PER_TASK)


@pytest.fixture(scope="module")
def sample():
    return load_preferences(sample_path(), keep_columns=["meta"])


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_sample", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_file_name():
    assert sample_path().name == "checked_pairs.jsonl" and sample_path().is_file()
    assert sorted(p.name for p in sample_path().parent.iterdir()) == ["checked_pairs.jsonl"]


def test_every_row_checks(sample):
    failing = [(row["id"], row["prompt"]) for row in sample.records() if not check_row(row)]
    assert failing == []


def test_checker_rejects_swapped_labels(sample):
    rows = sample.records()
    assert not any(check_row({**r, "chosen": r["rejected"], "rejected": r["chosen"]}) for r in rows)
    assert not any(check_row({**r, "rejected": r["chosen"]}) for r in rows)


def test_check_response_is_the_per_side_verdict(sample):
    from rewardlab.data.sample_check import check_response

    rows = sample.records()
    assert all(check_response(r, "chosen") and not check_response(r, "rejected") for r in rows)
    swapped = {**rows[0], "chosen": rows[0]["rejected"], "rejected": rows[0]["chosen"]}
    assert not check_response(swapped, "chosen") and check_response(swapped, "rejected")
    assert not check_response({**rows[0], "meta": {"task": "unknown"}}, "chosen")
    with pytest.raises(ValueError, match="side"):
        check_response(rows[0], "both")


def test_checker_accepts_meta_as_json_text(sample):
    row = sample.records()[0]
    assert check_row({**row, "meta": json.dumps(row["meta"])})


def test_checker_judges_the_answer_not_the_template():
    def row(task_meta, prompt, chosen, rejected):
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": task_meta}

    capital = {"task": "capitals", "country": "Japan"}
    assert check_row(row(capital, "What is the capital of Japan?", "Tokyo.", "Madrid."))
    assert not check_row(row(capital, "What is the capital of Japan?", "Tokyo or Madrid.", "Madrid."))
    assert not check_row(row(capital, "What is the capital of Spain?", "Tokyo.", "Madrid."))
    tunisia = {"task": "capitals", "country": "Tunisia"}
    assert check_row(row(tunisia, "What is the capital of Tunisia?", "The capital of Tunisia is Tunis.",
                         "The capital of Tunisia is Rabat."))
    opposite = {"task": "opposites", "word": "hot"}
    assert check_row(row(opposite, "What is the opposite of 'hot'?", "It is 'cold'.", "It is 'warm'."))
    fruit = {"task": "categories", "category": "fruit", "exclude": "apple"}
    prompt = "Name a fruit other than apple."
    assert check_row(row(fruit, prompt, "Banana.", "Violin."))
    assert not check_row(row(fruit, prompt, "Apple.", "Violin."))  # the excluded member is wrong
    spelling = {"task": "spelling", "word": "necessary"}
    prompt = "How do you spell the word meaning 'required'?"
    assert check_row(row(spelling, prompt, "Necessary.", "Neccessary."))
    assert not check_row(row({"task": "no such task"}, "?", "a", "b"))
    assert not check_row(row(capital, "What is the capital of Japan?", "", "Madrid."))  # malformed: False


def test_checker_tables_are_big_enough():
    capitals = sample_check._CAPITALS
    assert len(capitals) >= 60 and len(set(capitals.values())) == len(capitals)
    assert len(sample_check._ANTONYMS) >= 60 and len(sample_check._SPELLINGS) >= 60
    assert len(sample_check._MEMBERS) >= 8 and all(len(m) >= 12 for _, m in sample_check._MEMBERS.values())
    members = [w for _, m in sample_check._MEMBERS.values() for w in m]
    assert len(members) == len(set(members))  # no word belongs to two categories


def test_generator_distractors_are_wrong_by_the_checkers_tables(generator):
    for word, antonym, synonym in generator.OPPOSITES:
        assert antonym in sample_check._ANTONYMS[word] and synonym not in sample_check._ANTONYMS[word], word
    assert not set(generator.NOUNS) & set().union(*sample_check._ANTONYMS.values())
    for word, misspelt, _ in generator.SPELLINGS:
        assert word in sample_check._SPELLINGS and misspelt != word


def test_tasks_are_balanced_and_ids_unique(sample):
    assert len(sample) == sum(PER_TASK.values()) == 805
    assert Counter(sample["source"]) == PER_TASK
    assert len(set(sample["id"])) == len(sample) and len(set(sample["prompt"])) == len(sample)
    assert sample.format == "explicit" and sample.report.identical == 0


def test_length_does_not_give_the_label_away(sample):
    for task in TASKS:
        rows = [r for r in sample.records() if r["source"] == task]
        longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in rows)
        shorter = sum(len(r["chosen"]) < len(r["rejected"]) for r in rows)
        assert abs(longer - shorter) <= 0.25 * len(rows), task


def test_file_equals_a_fresh_run_of_the_generator(generator):
    assert generator.render(generator.generate()) == sample_path().read_text(encoding="utf-8")
