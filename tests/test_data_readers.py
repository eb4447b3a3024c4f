"""load_preferences: formats, sources, validation errors, skipping, and the real data files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.data import load_preferences
from rewardlab.data.chat import parse_hh, to_messages
from rewardlab.data.readers import Spec, parse_spec
from rewardlab.errors import ConfigError, DataError

REAL_DATA = Path(__file__).parents[2] / "shared" / "data"
REAL_COUNTS = {
    "hh_rlhf_harmless": 1841,
    "humanevalpack": 656,
    "xstest_pairs": 244,
    "llmbar_processed": 465,
    "pandalm_test": 894,
    "alpacaeval_gpt4_judged": 3191,
    "alpacaeval_modelpairs": 2406,
}
HH_PROMPT = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant:"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pair(i: int = 0, **extra) -> dict:
    return {"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}", **extra}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


# --- formats ------------------------------------------------------------------------------------


def test_explicit_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [pair(0), pair(1)])
    table = load_preferences(path)
    assert table.format == "explicit"
    assert table["prompt"] == ["p0", "p1"] and table["chosen"] == ["good 0", "good 1"]
    assert table["source"] == ["prefs", "prefs"]  # the file stem when the data has no source
    assert table.origin == [f"{path}:1", f"{path}:2"]
    assert table.report.n_read == table.report.n_kept == 2


def test_hh_prompt_is_flagged(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"prompt": HH_PROMPT, "chosen": "4", "rejected": "5"}])
    table = load_preferences(path)
    assert table.format == "hh"
    assert table["prompt"] == [HH_PROMPT]


def test_implicit_hh_strings_split_at_last_shared_turn(tmp_path):
    rows = [{"chosen": HH_PROMPT + " 4", "rejected": HH_PROMPT + " 5, I think"}]
    table = load_preferences(write_jsonl(tmp_path / "imp.jsonl", rows))
    assert table.format == "implicit"
    assert table["prompt"] == [HH_PROMPT]
    assert (table["chosen"], table["rejected"]) == (["4"], ["5, I think"])


def test_implicit_responses_sharing_a_prefix_still_split_at_the_turn(tmp_path):
    rows = [{"chosen": HH_PROMPT + " It is 4.", "rejected": HH_PROMPT + " It is 5."}]
    table = load_preferences(write_jsonl(tmp_path / "imp.jsonl", rows))
    assert table["prompt"] == [HH_PROMPT] and table["chosen"] == ["It is 4."]


def test_implicit_without_shared_turn_boundary_raises(tmp_path):
    path = write_jsonl(tmp_path / "imp.jsonl", [{"chosen": "the answer is 4", "rejected": "the answer is 5"}])
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert info.value.field == "chosen" and info.value.line == 1
    assert "a shared turn boundary" in info.value.expected


def test_implicit_with_further_turns_raises(tmp_path):
    rows = [{"chosen": HH_PROMPT + " 4\n\nHuman: sure?\n\nAssistant: yes", "rejected": HH_PROMPT + " 5"}]
    with pytest.raises(DataError, match="one final assistant turn"):
        load_preferences(write_jsonl(tmp_path / "imp.jsonl", rows))


def test_conversational_with_prompt(tmp_path):
    rows = [
        {"prompt": [user("hi")], "chosen": [bot("hello")], "rejected": [bot("go away")]},
        # full conversations that repeat the prompt are accepted too
        {"prompt": [user("2+2?")], "chosen": [user("2+2?"), bot("4")], "rejected": [user("2+2?"), bot("5")]},
    ]
    table = load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert table.format == "conversational"
    assert table["prompt"] == [[user("hi")], [user("2+2?")]]
    assert table["chosen"] == ["hello", "4"] and table["rejected"] == ["go away", "5"]


def test_conversational_string_prompt_becomes_a_user_message(tmp_path):
    rows = [{"prompt": "2+2?", "chosen": [user("2+2?"), bot("4")], "rejected": [user("2+2?"), bot("5")]}]
    table = load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert table["prompt"] == [[user("2+2?")]] and table["chosen"] == ["4"]


def test_implicit_conversational(tmp_path):
    system = {"role": "system", "content": "be brief"}
    rows = [{"chosen": [system, user("hi"), bot("hello")], "rejected": [system, user("hi"), bot("bye")]}]
    table = load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert table.format == "conversational"
    assert table["prompt"] == [[system, user("hi")]]
    assert (table["chosen"], table["rejected"]) == (["hello"], ["bye"])


def test_conversational_needs_one_final_assistant_message(tmp_path):
    rows = [{"prompt": [user("hi")], "chosen": [bot("a"), user("b"), bot("c")], "rejected": [bot("d")]}]
    with pytest.raises(DataError) as info:
        load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert info.value.field == "chosen" and "one final assistant message" in info.value.expected
    assert info.value.got == "3 messages"


def test_implicit_conversational_without_shared_messages_raises(tmp_path):
    rows = [{"chosen": [user("a"), bot("b")], "rejected": [user("c"), bot("d")]}]
    with pytest.raises(DataError, match="a shared turn boundary"):
        load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))


def test_bad_message_role_names_the_element(tmp_path):
    rows = [{"prompt": [user("hi")], "chosen": [{"role": "robot", "content": "x"}], "rejected": [bot("y")]}]
    with pytest.raises(DataError) as info:
        load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert (info.value.line, info.value.field, info.value.got) == (1, "chosen[0].role", "'robot'")


def test_message_without_content_is_reported(tmp_path):
    rows = [{"prompt": [user("hi")], "chosen": [{"role": "assistant"}], "rejected": [bot("y")]}]
    with pytest.raises(DataError) as info:
        load_preferences(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert info.value.field == "chosen[0].content"


def test_row_unlike_the_detected_format_names_it(tmp_path):
    rows = [pair(0), {"prompt": [user("hi")], "chosen": [bot("a")], "rejected": [bot("b")]}]
    with pytest.raises(DataError) as info:
        load_preferences(write_jsonl(tmp_path / "x.jsonl", rows))
    assert info.value.line == 2 and info.value.field == "prompt" and info.value.got == "list"
    assert "format 'explicit' detected from" in str(info.value)


def test_forced_format(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"prompt": HH_PROMPT, "chosen": "4", "rejected": "5"}])
    assert load_preferences(path, format="explicit").format == "explicit"
    with pytest.raises(DataError, match="list of"):
        load_preferences(path, format="conversational")


def test_renamed_keys(tmp_path):
    rows = [{"question": "q", "good": "a", "bad": "b"}]
    table = load_preferences(
        write_jsonl(tmp_path / "r.jsonl", rows), prompt_key="question", chosen_key="good", rejected_key="bad"
    )
    assert table.records() == [{"prompt": "q", "chosen": "a", "rejected": "b", "source": "r"}]
    assert table.report.ignored_columns == []


def test_optional_columns_carried_and_unknown_ones_reported(tmp_path):
    row = pair(0, margin=2, weight=0.5, source="web", id=7, golden_x=1.5, strength_mean=-0.25,
               note="n", meta={"a": 1})
    path = write_jsonl(tmp_path / "o.jsonl", [row, pair(1)])
    table = load_preferences(path, keep_columns=["meta"])
    assert table.column_names == [
        "prompt", "chosen", "rejected", "margin", "weight", "source", "id", "golden_x", "strength_mean",
        "meta",
    ]
    assert table["margin"] == [2.0, None] and table["weight"] == [0.5, None]
    assert table["source"] == ["web", "o"] and table["id"] == [7, None]
    assert table["golden_x"] == [1.5, None] and table["strength_mean"] == [-0.25, None]
    assert table["meta"] == [{"a": 1}, None]
    assert table.report.ignored_columns == ["note"]
    assert "note" in table.report.summary()


def test_source_argument_fills_missing_sources(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [pair(0), pair(1, source="own")])
    assert load_preferences(path, source="mine")["source"] == ["mine", "own"]


def test_keep_column_absent_raises(tmp_path):
    with pytest.raises(DataError, match="keep_columns"):
        load_preferences(write_jsonl(tmp_path / "k.jsonl", [pair(0)]), keep_columns=["meta"])


# --- sources ------------------------------------------------------------------------------------


def test_json_list_and_wrapped_list(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([pair(0), pair(1)]))
    (tmp_path / "b.json").write_text(json.dumps({"data": [pair(2)]}))
    a = load_preferences(tmp_path / "a.json")
    assert len(a) == 2 and a.origin[1] == f"{tmp_path / 'a.json'}: row 1"
    assert load_preferences(tmp_path / "b.json")["prompt"] == ["p2"]


def test_json_without_a_list_raises(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"meta": 1}))
    with pytest.raises(DataError, match="a list of objects"):
        load_preferences(tmp_path / "a.json")


def test_csv_with_multiline_quoted_field(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        'prompt,chosen,rejected,margin\n'
        '"line one\nline two, with comma",yes,no,1.5\n'
        'p2,"a ""quoted""\nanswer",b,\n'
        'p3,c,d,0\n',
        encoding="utf-8",
    )
    table = load_preferences(path)
    assert table["prompt"] == ["line one\nline two, with comma", "p2", "p3"]
    assert table["chosen"][1] == 'a "quoted"\nanswer'
    assert table["margin"] == [1.5, None, 0.0]
    assert table.origin == [f"{path}:2", f"{path}:4", f"{path}:6"]


def test_csv_error_names_the_line_where_the_record_starts(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('prompt,chosen,rejected,margin\n"a\nb",c,d,1\np,c,d,lots\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.line, info.value.field, info.value.got) == (4, "margin", "str")


def test_csv_wrong_number_of_fields(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("prompt\tchosen\trejected\np\tc\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert info.value.line == 2 and info.value.got == "2 fields"


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "chosen": ["c", "d"], "rejected": ["e", "f"]}), path)
    table = load_preferences(path)
    assert table["rejected"] == ["e", "f"] and table.origin[1] == f"{path}: row 1"
    pq.write_table(pa.table({"prompt": ["a"], "chosen": ["c"], "rejected": [3]}), path)
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.row, info.value.field, info.value.got) == (0, "rejected", "int")


def test_plain_directory_is_sorted_and_concatenated(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", [pair(1)])
    write_jsonl(tmp_path / "a.jsonl", [pair(0)])
    (tmp_path / "README.md").write_text("not data")
    table = load_preferences(tmp_path)
    assert table["prompt"] == ["p0", "p1"] and table["source"] == ["a", "b"]
    assert table.report.sources == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]


def test_directory_without_data_files_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"\.parquet"):
        load_preferences(tmp_path)


def test_datasets_save_to_disk_dataset_and_dataset_dict(tmp_path):
    import datasets

    datasets.Dataset.from_list([pair(0), pair(1)]).save_to_disk(str(tmp_path / "ds"))
    table = load_preferences(tmp_path / "ds")
    assert table["prompt"] == ["p0", "p1"] and table["source"] == ["ds", "ds"]
    splits = {"train": datasets.Dataset.from_list([pair(0)]), "test": datasets.Dataset.from_list([pair(5)])}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dd"))
    assert load_preferences(str(tmp_path / "dd"))["prompt"] == ["p0"]
    test = load_preferences(f"{tmp_path / 'dd'}@test")
    assert test["prompt"] == ["p5"] and test.origin == [f"{tmp_path / 'dd'}@test: row 0"]
    with pytest.raises(DataError, match="no split 'dev'"):
        load_preferences(f"{tmp_path / 'dd'}@dev")


def test_list_of_specs_is_concatenated_and_limited(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [pair(0), pair(1)])
    conversational = {"prompt": [user("x")], "chosen": [bot("y")], "rejected": [bot("z")]}
    b = write_jsonl(tmp_path / "b.jsonl", [conversational])
    table = load_preferences([a, str(b)])
    assert len(table) == 3 and table.format == "mixed" and table.report.n_kept == 3
    assert len(load_preferences([a, b], limit=1)) == 1
    assert len(load_preferences([a, b], limit=3)) == 3


def test_parse_spec():
    assert parse_spec("hf:Anthropic/hh-rlhf") == Spec("hf", "Anthropic/hh-rlhf")
    assert parse_spec("hf:org/name:harmless-base@test") == Spec("hf", "org/name", "harmless-base", "test")
    assert parse_spec("hf:name@train[:10%]") == Spec("hf", "name", None, "train[:10%]")
    assert parse_spec("data/saved@validation") == Spec("path", "data/saved", None, "validation")
    assert parse_spec("data/x.jsonl") == Spec("path", "data/x.jsonl")
    assert parse_spec("me@host/x.jsonl") == Spec("path", "me@host/x.jsonl")
    with pytest.raises(ConfigError):
        parse_spec("hf:")


# --- malformed input ----------------------------------------------------------------------------


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(pair(0)) + '\n{"prompt": "p", "chosen": \n')
    with pytest.raises(DataError) as info:
        load_preferences(path)
    err = info.value
    assert (err.file, err.line, err.expected) == (str(path), 2, "a JSON object")
    assert "Expecting value" in str(err)


def test_non_object_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.line, info.value.got) == (1, "list")


def test_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [pair(0), {"prompt": "p", "chosen": "c"}])
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.line, info.value.field) == (2, "rejected")
    assert info.value.expected == "a string or a list of {role, content} messages"


def test_wrong_type(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [pair(0), {"prompt": "p", "chosen": 3, "rejected": "r"}])
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.line, info.value.field, info.value.got) == (2, "chosen", "int")


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"margin": "big"}, "margin"), ({"margin": float("nan")}, "margin"), ({"weight": -1}, "weight"),
     ({"golden_x": [1]}, "golden_x"), ({"strength_mean": True}, "strength_mean"), ({"source": 3}, "source")],
)
def test_bad_optional_values(tmp_path, extra, field):
    with pytest.raises(DataError) as info:
        load_preferences(write_jsonl(tmp_path / "o.jsonl", [pair(0, **extra)]))
    assert (info.value.line, info.value.field) == (1, field)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert info.value.file == str(path) and info.value.expected == "at least one preference pair"
    (tmp_path / "empty.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(DataError, match="at least one preference pair"):
        load_preferences(tmp_path / "empty.csv")


def test_unknown_suffix_and_missing_path(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match=r"\.jsonl") as info:
        load_preferences(tmp_path / "data.txt")
    assert info.value.file == str(tmp_path / "data.txt")
    with pytest.raises(DataError, match="no such file"):
        load_preferences(tmp_path / "absent.jsonl")


def test_bad_arguments_are_config_errors(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [pair(0)])
    for kwargs in ({"format": "tsv"}, {"on_error": "ignore"}, {"limit": 0}, {"keep_columns": ["chosen"]}):
        with pytest.raises(ConfigError):
            load_preferences(path, **kwargs)


# --- skipping and counting ----------------------------------------------------------------------


def test_skip_counts_bad_rows_by_reason(tmp_path):
    path = tmp_path / "s.jsonl"
    lines = [json.dumps(pair(0)), "{oops", json.dumps({"prompt": "p", "chosen": 1, "rejected": "r"}),
             json.dumps({"prompt": "p", "chosen": 2.5, "rejected": "r"}), json.dumps(pair(4))]
    path.write_text("\n".join(lines) + "\n")
    table = load_preferences(path, on_error="skip")
    report = table.report
    assert table["prompt"] == ["p0", "p4"] and table.origin == [f"{path}:1", f"{path}:5"]
    assert (report.n_read, report.n_kept) == (5, 2)
    assert report.skipped == {"expected a JSON object": 1, "chosen: expected a string (format 'explicit')": 2}
    assert report.skipped_examples[0].startswith(f"{path}:2: ")
    assert "skipped 3" in report.summary()


def test_skip_with_bad_first_row_detects_format_from_first_valid_row(tmp_path):
    rows = [{"prompt": "p"}, {"prompt": [user("x")], "chosen": [bot("y")], "rejected": [bot("z")]}]
    table = load_preferences(write_jsonl(tmp_path / "s.jsonl", rows), on_error="skip")
    assert table.format == "conversational" and len(table) == 1


def test_skip_everything_still_raises(tmp_path):
    with pytest.raises(DataError, match="all 1 rows were skipped"):
        load_preferences(write_jsonl(tmp_path / "s.jsonl", [{"chosen": 1}]), on_error="skip")


def test_file_level_errors_raise_even_when_skipping(tmp_path):
    (tmp_path / "a.json").write_text("[{,]")
    with pytest.raises(DataError) as info:
        load_preferences(tmp_path / "a.json", on_error="skip")
    assert info.value.line == 1


def test_empty_and_identical_responses_are_kept_and_counted(tmp_path):
    rows = [pair(0, chosen=""), pair(1, rejected=""), pair(2, chosen="same", rejected="same"), pair(3)]
    table = load_preferences(write_jsonl(tmp_path / "e.jsonl", rows))
    report = table.report
    assert len(table) == 4
    assert (report.empty_chosen, report.empty_rejected, report.identical) == (1, 1, 1)
    assert "kept 1 pairs whose chosen equals rejected" in report.summary()


# --- chat helpers -------------------------------------------------------------------------------


def test_parse_hh():
    assert parse_hh("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:") == [
        user("hi"), bot("hello"), user("bye")
    ]
    assert parse_hh("Human: a\n\nAssistant: b") == [user("a"), bot("b")]
    with pytest.raises(DataError):
        parse_hh("no turns here")


def test_to_messages():
    assert to_messages([user("q")], "a") == [user("q"), bot("a")]
    assert to_messages(HH_PROMPT, "4") == [user("hi"), bot("hello"), user("2+2?"), bot("4")]
    assert to_messages("plain", "a") == [user("plain"), bot("a")]


# --- the real data ------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data directory {REAL_DATA} is absent")
def test_real_data_files_load_with_the_documented_counts(tmp_path):
    for stem, count in REAL_COUNTS.items():
        table = load_preferences(REAL_DATA / f"{stem}.jsonl")
        assert len(table) == count == table.report.n_read, stem
        assert table.report.identical == 0 and table.report.skipped == {}
        assert table.format == ("hh" if stem.startswith("hh_") else "explicit")
    pandalm = load_preferences(REAL_DATA / "pandalm_test.jsonl").report
    assert pandalm.empty_chosen + pandalm.empty_rejected > 0
    pairs_only = tmp_path / "pairs"  # the pair files; gsm8k_solutions.jsonl has another shape
    pairs_only.mkdir()
    for stem in REAL_COUNTS:
        (pairs_only / f"{stem}.jsonl").symlink_to(REAL_DATA / f"{stem}.jsonl")
    everything = load_preferences(pairs_only)
    assert len(everything) == sum(REAL_COUNTS.values())
    with pytest.raises(DataError, match=r"gsm8k_solutions\.jsonl:1: field 'chosen'"):
        load_preferences(REAL_DATA)  # a best-of-N file among pair files: named, not skipped


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data directory {REAL_DATA} is absent")
def test_real_hh_survives_implicit_form_and_csv(tmp_path):
    table = load_preferences(REAL_DATA / "hh_rlhf_harmless.jsonl")
    full = [{"chosen": f"{p} {c}", "rejected": f"{p} {r}"}
            for p, c, r in zip(table["prompt"], table["chosen"], table["rejected"])]
    implicit = load_preferences(write_jsonl(tmp_path / "implicit.jsonl", full))
    assert implicit.format == "implicit"
    assert (implicit["prompt"], implicit["chosen"], implicit["rejected"]) == (
        table["prompt"], table["chosen"], table["rejected"]
    )
    table.write(tmp_path / "hh.csv")
    assert load_preferences(tmp_path / "hh.csv").records() == table.records()


# ---------------------------------------------------------------- messages a newcomer meets (issue 11)
def test_non_utf8_names_the_line_and_column(tmp_path):
    good = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}).encode() + b"\n"
    # Many good lines first: the decoder fails inside a later read buffer, whose offset is not the line's.
    body = good * 3000 + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(body)
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert info.value.line == 3001 and info.value.expected == "UTF-8 text"
    assert "0xe9 at column 16" in str(info.value) and f"{path}:3001" in str(info.value)
    csv_path = tmp_path / "latin1.csv"
    csv_path.write_bytes(b"prompt,chosen,rejected\np,a,b\np,\xff,b\n")
    with pytest.raises(DataError) as info:
        load_preferences(csv_path)
    assert info.value.line == 3 and "0xff at column 3" in str(info.value)
    json_path = tmp_path / "latin1.json"
    json_path.write_bytes(b'[\n{"prompt": "p", "chosen": "a", "rejected": "b"},\n{"prompt": "\xe9"}]\n')
    with pytest.raises(DataError) as info:
        load_preferences(json_path)
    assert info.value.line == 3


def test_first_invalid_utf8_by_hand(tmp_path):
    from rewardlab.data.readers import first_invalid_utf8

    path = tmp_path / "x.txt"
    path.write_bytes("é ok\n".encode() + b"ab\xc3(\n")  # a truncated 2-byte sequence at byte 3 of line 2
    assert first_invalid_utf8(path) == (2, 3, b"\xc3")
    path.write_bytes("fine\n".encode())
    assert first_invalid_utf8(path) is None


def test_invalid_json_column_is_the_files_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                    '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                    '{"prompt": "p", "chosen": "a"\n'  # unterminated: the decoder says "line 2 column 1"
                    '{"prompt": "p", "chosen": x}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    message = str(info.value)
    assert info.value.line == 3 and "at the end of the line (column 30)" in message
    assert "line 2" not in message and "char" not in message
    bad = tmp_path / "bad2.jsonl"
    bad.write_text('{"prompt": "p", "chosen": x}\n', encoding="utf-8")
    with pytest.raises(DataError, match="Expecting value at column 27"):  # the x, 1-based
        load_preferences(bad)
    doc = tmp_path / "bad.json"
    doc.write_text('[\n  {"prompt": "p",,}\n]\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_preferences(doc)
    assert info.value.line == 2 and "column 18" in str(info.value)


def test_missing_file_says_the_reason_first(tmp_path):
    with pytest.raises(DataError) as info:
        load_preferences(tmp_path / "absent.jsonl")
    assert str(info.value).startswith(f"{tmp_path / 'absent.jsonl'}: no such file or directory; a data spec is")


def test_missing_column_lists_the_columns_and_the_mapping(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,good,bad\nq,a,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    message = str(info.value)
    assert info.value.line == 2 and info.value.field == "chosen"
    assert "columns found are: question, good, bad" in message
    assert "--chosen-key" in message and "data.chosen_key" in message
    table = load_preferences(path, prompt_key="question", chosen_key="good", rejected_key="bad")
    assert (table["prompt"], table["chosen"], table["rejected"]) == (["q"], ["a"], ["b"])
