"""Bad `tools` and `chat_template_kwargs` (issue 24, TRL's columns): in a data file, one `error:`
line naming file:line and the field, exit status 2, nothing written; in a `/score` request, a 400
naming the item's field; on a model without a chat template, a 422 (they cannot reach it)."""

from __future__ import annotations

import json

import httpx
import pytest

from cli_runs import check_refused

GOOD = {"prompt": [{"role": "user", "content": "Weather?"}], "chosen": "Sunny.", "rejected": "No."}

DATA_CASES = [  # (case, the row's extra fields, what the error line names)
    ("tools-a-number", {"tools": 3}, ["bad.jsonl:2", "field 'tools'", "a list of tool schemas", "int"]),
    ("tools-an-object", {"tools": {"type": "function"}}, ["bad.jsonl:2", "field 'tools'", "dict"]),
    ("tools-json-string-of-an-object", {"tools": '{"type": "function"}'}, ["bad.jsonl:2", "field 'tools'", "dict"]),
    ("tools-string-not-json", {"tools": "get_weather"}, ["bad.jsonl:2", "field 'tools'", "not JSON"]),
    ("tools-element-a-string", {"tools": ["get_weather"]}, ["bad.jsonl:2", "field 'tools[0]'", "a tool schema", "str"]),
    ("kwargs-a-list", {"chat_template_kwargs": ["enable_thinking"]},
     ["bad.jsonl:2", "field 'chat_template_kwargs'", "an object of chat template variables", "list"]),
    ("kwargs-a-number", {"chat_template_kwargs": 1}, ["bad.jsonl:2", "field 'chat_template_kwargs'", "int"]),
    ("kwargs-string-not-json", {"chat_template_kwargs": "enable_thinking"},
     ["bad.jsonl:2", "field 'chat_template_kwargs'", "not JSON"]),
    ("kwargs-reserved-key", {"chat_template_kwargs": {"tokenize": True}},
     ["bad.jsonl:2", "field 'chat_template_kwargs.tokenize'", "not an argument"]),
]


@pytest.mark.parametrize("case,extra,needles", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_template_columns_in_data(case, extra, needles, tmp_path, minilm_reward_model):
    root = tmp_path / "work"
    root.mkdir()
    (root / "bad.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, **extra}) + "\n")
    check_refused(["score", "--model", "{model}", "--data", "{root}/bad.jsonl", "--out", "{root}/s.jsonl"],
                  needles, {"root": root, "model": minilm_reward_model})


def test_bad_template_column_in_csv_names_the_line(tmp_path, minilm_reward_model):
    root = tmp_path / "work"
    root.mkdir()
    (root / "bad.csv").write_text('prompt,chosen,rejected,chat_template_kwargs\np,a,b,"{""x"": 1}"\np,a,b,[1]\n')
    check_refused(["score", "--model", "{model}", "--data", "{root}/bad.csv", "--out", "{root}/s.jsonl"],
                  ["bad.csv:3", "field 'chat_template_kwargs'", "list"], {"root": root, "model": minilm_reward_model})


# ------------------------------------------------------------------ the server
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from serving import ThreadServer, rm, rm_dir  # noqa: E402, F401 - the shared server fixtures

ITEM = {"prompt": "p", "response": "r"}
HTTP_CASES = [  # (case, item fields, status, field, error type)
    ("tools-a-number", {**ITEM, "tools": 3}, 400, "items[0].tools", "invalid_field"),
    ("tools-element-a-string", {**ITEM, "tools": ["f"]}, 400, "items[0].tools[0]", "invalid_field"),
    ("kwargs-a-list", {**ITEM, "chat_template_kwargs": [1]}, 400, "items[0].chat_template_kwargs", "invalid_field"),
    ("kwargs-reserved-key", {**ITEM, "chat_template_kwargs": {"add_generation_prompt": False}}, 400,
     "items[0].chat_template_kwargs.add_generation_prompt", "invalid_field"),
    ("messages-tools-a-string", {"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "r"}],
                                 "tools": "nope"}, 400, "items[0].tools", "invalid_field"),
]


@pytest.fixture(scope="module")
def server(rm):
    from rewardlab.serve.app import create_app

    s = ThreadServer(create_app(rm, model_name="tiny", max_batch=8, max_wait_ms=5))
    yield s
    s.stop()


@pytest.mark.parametrize("case,item,status,field,kind", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_bad_template_fields_in_a_request(case, item, status, field, kind, server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/score", json={"items": [item]})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["field"], err["type"], err["code"]) == (field, kind, status), err


def test_tools_for_a_model_without_chat_template_are_a_422(minilm_reward_model):
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.serve.app import create_app

    s = ThreadServer(create_app(RewardModel.from_pretrained(minilm_reward_model), max_batch=4, max_wait_ms=5))
    try:
        with httpx.Client(base_url=s.url, timeout=60) as c:
            r = c.post("/score", json={"items": [ITEM, {**ITEM, "tools": [{"type": "function"}]}]})
            ok = c.post("/score", json={"items": [ITEM]})
    finally:
        s.stop()
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["field"], err["type"]) == ("items[1].tools", "unprocessable_item") and "no" in err["message"]
    assert ok.status_code == 200
