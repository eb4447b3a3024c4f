"""Bad input to the reward server (issue 25). The command: ports and timeouts out of range are one
`error:` line before the model is loaded. HTTP, against a real server on 127.0.0.1: a body nested
100,000 levels deep, an integer of 5,001 digits, lone surrogates and items the model's encoding
refuses are each a 4xx naming the field (they were 500 "internal error while scoring"), and the
server goes on answering."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cli_runs import check_refused  # noqa: E402
from rewardlab.serve.protocol import Limits  # noqa: E402
from serving import ThreadServer, rm, rm_dir  # noqa: E402, F401 - the shared server fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLI_CASES = [  # (case, the issue's class before the fix, argv, what the error line names)
    ("port-99999", "TRACEBACK", ["serve", "{model}", "--port", "99999"], ["--port", "from 0 to 65535", "99999"]),
    ("port-negative", "new", ["serve", "{model}", "--port", "-1"], ["--port", "from 0 to 65535"]),
    ("drain-timeout-negative", "SILENT", ["serve", "{model}", "--drain-timeout", "-1"], ["--drain-timeout", ">= 0", "-1"]),
    ("drain-timeout-nan", "new", ["serve", "{model}", "--drain-timeout", "nan"], ["--drain-timeout", "finite"]),
    ("max-padding-above-one", "new", ["serve", "{model}", "--max-padding", "2"], ["--max-padding", "from 0 to 1"]),
    ("threads-zero", "new", ["serve", "{model}", "--threads", "0"], ["--threads", ">= 1"]),
    ("max-body-mb-zero", "new", ["serve", "{model}", "--max-body-mb", "0"], ["--max-body-mb", "> 0"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_command_refuses_before_loading(case, kind, argv, needles, rm_dir, tmp_path):
    check_refused(argv, needles, {"root": tmp_path, "model": rm_dir})


DEEP = 100_000
HTTP_CASES = [  # (case, the issue's class before the fix, endpoint, raw body, status, field, error type)
    ("score-nested-100000-deep", "5XX", "/score", b'{"items": ' + b"[" * DEEP + b"]" * DEEP + b"}", 400, "body",
     "malformed_json"),
    ("get-reward-nested-100000-deep", "new", "/get_reward", b"[" * DEEP + b"]" * DEEP, 400, "body", "malformed_json"),
    ("classify-truncate-5001-digits", "5XX", "/classify",
     b'{"input": "some text", "truncate_prompt_tokens": 1' + b"0" * 5000 + b"}", 400, "truncate_prompt_tokens",
     "invalid_field"),
    ("get-reward-query-5001-digits", "new", "/get_reward", b'{"query": [1' + b"0" * 5000 + b"]}", 400, "query[0]",
     "invalid_field"),
    ("score-prompt-lone-surrogate", "5XX", "/score", b'{"items": [{"prompt": "\\ud800", "response": "r"}]}', 400,
     "items[0].prompt", "invalid_field"),
    ("score-message-lone-surrogate", "new", "/score",
     b'{"items": [{"messages": [{"role": "user", "content": "hi \\udfff"}, {"role": "assistant", "content": "yo"}]}]}',
     400, "items[0].messages[0].content", "invalid_field"),
    ("get-reward-lone-surrogate", "new", "/get_reward", b'{"query": ["ok", "\\ud83d"]}', 400, "query[1]", "invalid_field"),
    ("classify-input-lone-surrogate", "new", "/classify", b'{"input": ["\\udc00"]}', 400, "input[0]", "invalid_field"),
]


@pytest.fixture(scope="module")
def big_server(rm):
    """The server with a 1 MiB body limit, so a body nested 100,000 levels deep (200 KB) is read."""
    from rewardlab.serve.app import create_app

    app = create_app(rm, model_name="tiny", max_batch=8, max_wait_ms=5,
                     limits=Limits(max_items=16, max_chars=4000, max_body_bytes=2**20))
    s = ThreadServer(app)
    s.app = app
    yield s
    s.stop()


@pytest.mark.parametrize("case,kind,path,raw,status,field,kind_", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_request_mistakes_are_4xx_naming_the_field(case, kind, path, raw, status, field, kind_, big_server):
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        r = c.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == status, (r.status_code, r.text[:300])
        err = r.json()["error"]
        assert (err["field"], err["type"], err["code"]) == (field, kind_, status), err
        assert f"field '{field}'" in err["message"] and len(err["message"]) < 400


def test_an_item_the_encoding_refuses_is_a_422_naming_it(big_server, rm, monkeypatch):
    """A tokenizer or chat-template failure on one item (simulated: the model's encoding raising on
    a given text) is the request's fault: 422 on that item, and the server goes on."""
    scorer = big_server.app.state.scorer
    encode = scorer.encode

    def refusing(item, max_length=None):
        if "refuse me" in getattr(item, "response", getattr(item, "text", "")):
            raise ValueError("the chat template rejects this conversation")
        return encode(item, max_length)

    monkeypatch.setattr(scorer, "encode", refusing)
    body = {"items": [{"prompt": "p", "response": "fine"}, {"prompt": "p", "response": "refuse me"}]}
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        r = c.post("/score", json=body)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert (err["field"], err["type"]) == ("items[1]", "unprocessable_item")
        assert "the chat template rejects this conversation" in err["message"]
        ok = c.post("/score", json={"items": [{"prompt": "p", "response": "r"}]})
        assert ok.status_code == 200
        np.testing.assert_allclose(ok.json()["rewards"], rm.score(["p"], ["r"]), atol=1e-5, rtol=0)
        metrics = c.get("/metrics").text
    assert not re.search(r'status="5\d\d"', metrics), "a request's mistake was answered with a 5xx"


def test_the_server_keeps_serving_after_every_case(big_server, rm):
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        for _, _, path, raw, status, _, _ in HTTP_CASES:
            assert c.post(path, content=raw, headers={"content-type": "application/json"}).status_code == status
        r = c.post("/get_reward", content=json.dumps({"query": ["plain text"]}))
        assert r.status_code == 200 and len(r.json()["rewards"]) == 1
        assert c.get("/health").json()["status"] == "ok"
        metrics = c.get("/metrics").text
    assert not re.search(r'status="5\d\d"', metrics)
    assert 'rewardlab_errors_total{kind="malformed_json"}' in metrics
