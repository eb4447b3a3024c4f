"""The reward server: request parsing, the micro-batcher, a real uvicorn server on loopback
(rewards equal RewardModel.score / `rewardlab score` within 1e-5 whatever the batching, every 4xx
path, API key), the RemoteReward client, and SIGTERM draining through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from rewardlab.data.chat import to_messages  # noqa: E402
from rewardlab.serve import RemoteReward, RemoteRewardError  # noqa: E402
from rewardlab.serve.batcher import MicroBatcher, ShuttingDown, length_groups, take_jobs  # noqa: E402
from rewardlab.serve.protocol import (  # noqa: E402
    PairItem,
    RequestError,
    TextItem,
    parse_classify,
    parse_get_reward,
    parse_score,
)

from serving import LIMITS, ThreadServer, rm, rm_dir, server  # noqa: E402, F401 - the shared server fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5


# ------------------------------------------------------------------ pure parsing
def test_parse_valid_requests():
    assert parse_get_reward({"query": ["a", "b"], "prompts": ["p", "q"], "labels": [1, None]}, LIMITS) == [
        TextItem("a"), TextItem("b")]
    req = parse_classify({"model": "m", "input": "x", "use_activation": True, "truncate_prompt_tokens": 7}, LIMITS)
    assert req.items == [TextItem("x")] and req.use_activation and req.truncate_prompt_tokens == 7
    assert parse_classify({"input": ["x", "y"], "truncate_prompt_tokens": -1}, LIMITS).truncate_prompt_tokens is None
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    req = parse_classify({"messages": conv}, LIMITS)
    assert req.items == [PairItem([conv[0]], "yo")] and not req.use_activation
    items = parse_score({"items": [{"prompt": "p", "response": "r"}, {"prompt": conv[:1], "response": "r2"},
                                   {"messages": conv}]}, LIMITS)
    assert items == [PairItem("p", "r"), PairItem(conv[:1], "r2"), PairItem(conv[:1], "yo")]


CONV = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
BAD = [  # (parser, body, field, kind)
    (parse_get_reward, [1], "body", "invalid_field"),
    (parse_get_reward, {}, "query", "invalid_field"),
    (parse_get_reward, {"query": "text"}, "query", "invalid_field"),
    (parse_get_reward, {"query": []}, "query", "invalid_field"),
    (parse_get_reward, {"query": ["a", 3]}, "query[1]", "invalid_field"),
    (parse_get_reward, {"query": ["a"] * 17}, "query", "too_many_items"),
    (parse_get_reward, {"query": ["a", "x" * 4001]}, "query[1]", "text_too_long"),
    (parse_get_reward, {"query": ["a"], "prompts": ["p", "q"]}, "prompts", "invalid_field"),
    (parse_get_reward, {"query": ["a"], "labels": "l"}, "labels", "invalid_field"),
    (parse_classify, {"model": "m"}, "input", "invalid_field"),
    (parse_classify, {"input": "a", "messages": CONV}, "input", "invalid_field"),
    (parse_classify, {"model": 3, "input": "a"}, "model", "invalid_field"),
    (parse_classify, {"input": [1, 2, 3]}, "input", "invalid_field"),
    (parse_classify, {"input": 5}, "input", "invalid_field"),
    (parse_classify, {"input": "a", "use_activation": "yes"}, "use_activation", "invalid_field"),
    (parse_classify, {"input": "a", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens", "invalid_field"),
    (parse_classify, {"messages": [{"role": "user", "content": "only a prompt"}]}, "messages", "invalid_field"),
    (parse_classify, {"messages": [CONV[1], CONV[0]]}, "messages[1].role", "invalid_field"),
    (parse_classify, {"messages": [{"role": "robot", "content": "x"}, CONV[1]]}, "messages[0].role", "invalid_field"),
    (parse_score, {"items": [{"prompt": "p", "respone": "r"}]}, "items[0].respone", "invalid_field"),
    (parse_score, {"items": [{"prompt": "p"}]}, "items[0].response", "invalid_field"),
    (parse_score, {"items": ["p"]}, "items[0]", "invalid_field"),
    (parse_score, {"items": [{"prompt": "p", "response": None}]}, "items[0].response", "invalid_field"),
    (parse_score, {"items": [{"prompt": [{"role": "user", "content": 1}], "response": "r"}]},
     "items[0].prompt[0].content", "invalid_field"),
    (parse_score, {"items": [{"messages": [CONV[0], {"role": "assistant", "content": "y" * 4001}]}]},
     "items[0].messages[1].content", "text_too_long"),
    (parse_score, {"items": [{"prompt": "p", "response": "r"}], "extra": 1}, "extra", "invalid_field"),
]


@pytest.mark.parametrize("parser,body,field,kind", BAD)
def test_parse_errors_name_the_field(parser, body, field, kind):
    with pytest.raises(RequestError) as info:
        parser(body, LIMITS)
    assert (info.value.field, info.value.kind, info.value.status) == (field, kind, 400)
    assert f"field '{field}'" in str(info.value)


# ------------------------------------------------------------------ micro-batcher
def test_take_jobs():
    assert take_jobs([3, 3, 3], 8) == 2      # 3 + 3 = 6; a third would make 9 > 8
    assert take_jobs([3, 5, 1], 8) == 2      # exactly 8
    assert take_jobs([20, 1], 8) == 1        # an oversized request goes alone
    assert take_jobs([1, 20], 8) == 1
    assert take_jobs([1] * 10, 4) == 4


def test_length_groups():
    # longest first: 10 (item 0), 9 (3), 8 (1), 2 (2); padding of [10, 9, 8] = 30 - 27 = 3 <= 0.2 * 30,
    # adding 2 would make 40 - 29 = 11 > 0.2 * 40
    assert length_groups([10, 8, 2, 9], 8, 0.2) == [[0, 3, 1], [2]]
    assert length_groups([10, 8, 2, 9], 2, 1.0) == [[0, 3], [1, 2]]  # 1.0: passes of max_batch rows
    assert length_groups([5, 3, 5], 8, 0.0) == [[0, 2], [1]]         # 0: equal lengths only
    assert length_groups([], 8, 0.2) == []


def test_batcher_merges_requests_and_isolates_failures():
    calls = []

    def score(items):
        calls.append(len(items))
        if "boom" in items:
            raise RuntimeError("model failure")
        return np.array([float(x) for x in items])

    async def main():
        b = MicroBatcher(score, max_batch=8, max_wait_s=0.05)
        b.start()
        reqs = [[f"{10 * i + k}" for k in range(3)] for i in range(5)]
        got = await asyncio.gather(*(b.submit(r) for r in reqs))
        for r, g in zip(reqs, got):
            assert g.tolist() == [float(x) for x in r]   # every request gets exactly its own rewards
        assert calls == [6, 6, 3]                        # 15 waiting items: 2 requests, 2 requests, 1
        calls.clear()
        results = await asyncio.gather(b.submit(["boom"]), b.submit(["2"] * 3), b.submit(["3"] * 5),
                                       return_exceptions=True)
        # The first two share a failing call; the third did not fit (1 + 3 + 5 > 8) and succeeds.
        assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
        assert results[2].tolist() == [3.0] * 5 and calls == [4, 5]
        assert (await b.submit(["4"])).tolist() == [4.0]  # still serving
        pending = asyncio.ensure_future(b.submit(["5", "6"]))
        await asyncio.sleep(0)
        await b.stop()                                    # drains what was submitted
        assert pending.result().tolist() == [5.0, 6.0]
        with pytest.raises(ShuttingDown):
            await b.submit(["7"])

    asyncio.run(main())


# ------------------------------------------------------------------ models and servers
@pytest.fixture(scope="module")
def pairs(shared_data):
    """Real pairs of varied lengths: HH dialogues (parsed into turns) and code."""
    rows = []
    for name, n in (("hh_rlhf_harmless.jsonl", 8), ("humanevalpack.jsonl", 4), ("pandalm_test.jsonl", 4)):
        with open(shared_data / name) as f:
            rows += [json.loads(next(f)) for _ in range(n)]
    prompts = [r["prompt"] for r in rows] * 2
    responses = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    return prompts, responses


def _metric(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_encode_text_of_the_chat_rendering_equals_encode(rm, pairs):
    from rewardlab.models.inputs import encode, encode_text, generation_marker

    tok, s = rm.tokenizer, rm.settings
    assert s.render == "chat"
    marker = generation_marker(tok)
    assert marker == "<|im_start|>assistant\n"                 # SmolLM2's template
    merged = 0
    for p, r in zip(*pairs):
        full = tok.apply_chat_template(to_messages(p, r), tokenize=False)
        for length in (10_000, 40):                             # also over length: same truncation
            a = encode_text(tok, "chat", full, length, "truncate_prompt_left", marker)
            b = encode(tok, "chat", p, r, length, "truncate_prompt_left")
            assert (a.input_ids, a.status) == (b.input_ids, b.status)
        merged += b.input_ids != tok(full, add_special_tokens=False)["input_ids"][-40:]
    assert merged  # some real responses tokenize differently when the text is tokenized whole
    # A text without the marker: tokenized as is, cut from the left or the right.
    raw = "just some text " * 10
    whole = tok(raw, add_special_tokens=False)["input_ids"]
    assert encode_text(tok, "chat", raw, 10_000, "truncate_right", marker).input_ids == whole
    left = encode_text(tok, "chat", raw, 5, "truncate_prompt_left", marker)
    right = encode_text(tok, "chat", raw, 5, "truncate_right", marker)
    assert (left.input_ids, left.status) == (whole[-5:], "truncated_left")
    assert (right.input_ids, right.status) == (whole[:5], "truncated_right")


def test_encode_text_pair_mode_keeps_special_tokens():
    from transformers import AutoTokenizer

    from rewardlab.models.locate import resolve
    from rewardlab.models.inputs import encode_text

    tok = AutoTokenizer.from_pretrained(resolve("minilm"))
    text = "one two three four five six seven"
    content = tok(text, add_special_tokens=False)["input_ids"]
    e = encode_text(tok, "pair", text, 5, "truncate_prompt_left")
    assert e.input_ids == [tok.cls_token_id] + content[-3:] + [tok.sep_token_id]
    assert e.token_type_ids == [0] * 5 and e.status == "truncated_left"
    e = encode_text(tok, "pair", text, 5, "truncate_right")
    assert e.input_ids == [tok.cls_token_id] + content[:3] + [tok.sep_token_id]


def test_rewards_equal_score_whatever_the_batching(server, rm, rm_dir, pairs, tmp_path):
    prompts, responses = pairs
    ref = rm.score(prompts, responses, batch_size=1)          # no padding at all
    n = len(prompts)
    assert len(set(np.round(ref, 6))) > n // 2                # an untrained model still tells items apart
    # Concurrent requests of 1..5 items, merged by the server into micro-batches of up to 8.
    chunks, start, size = [], 0, 1
    while start < n:
        chunks.append(range(start, min(n, start + size)))
        start, size = start + size, size % 5 + 1
    with httpx.Client(base_url=server.url, timeout=60) as c, ThreadPoolExecutor(8) as pool:
        def post(idx):
            items = [{"prompt": prompts[i], "response": responses[i]} for i in idx]
            r = c.post("/score", json={"items": items})
            assert r.status_code == 200, r.text
            return r.json()["rewards"]

        got = np.concatenate([np.array(x) for x in pool.map(post, chunks)])
        np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)
        # The same items all in one request (scored as one length-sorted call of chunks of 8).
        one = c.post("/score", json={"items": [{"prompt": p, "response": r} for p, r in
                                               zip(prompts[:16], responses[:16])]}).json()["rewards"]
        np.testing.assert_allclose(one, ref[:16], atol=TOL, rtol=0)
        # OpenRLHF: the query is the full chat-rendered text, tokenized as is.
        queries = [rm.tokenizer.apply_chat_template(to_messages(p, r), tokenize=False)
                   for p, r in zip(prompts[:10], responses[:10])]
        body = c.post("/get_reward", json={"query": queries, "prompts": prompts[:10]}).json()
        np.testing.assert_allclose(body["rewards"], ref[:10], atol=TOL, rtol=0)
        assert body["scores"] == body["rewards"] and body["extra_logs"] == {}
        # vLLM classify: raw texts, a conversation, and the sigmoid on request.
        body = c.post("/classify", json={"model": "tiny", "input": queries[:3]}).json()
        assert [d["index"] for d in body["data"]] == [0, 1, 2] and body["object"] == "list"
        np.testing.assert_allclose([d["probs"][-1] for d in body["data"]], ref[:3], atol=TOL, rtol=0)
        assert body["usage"]["prompt_tokens"] == sum(min(96, len(rm.tokenizer(q, add_special_tokens=False)["input_ids"]))
                                                     for q in queries[:3])  # max_length 96
        conv = to_messages(prompts[0], responses[0])
        body = c.post("/classify", json={"messages": conv, "use_activation": True}).json()
        assert body["data"][0]["probs"][0] == pytest.approx(1 / (1 + np.exp(-ref[0])), abs=TOL)
        metrics = c.get("/metrics").text
    assert _metric(metrics, "rewardlab_batch_requests_bucket{le=\"1.0\"}") < _metric(
        metrics, "rewardlab_batch_requests_count"), "no two requests were ever merged"
    assert _metric(metrics, "rewardlab_items_total") >= n + 16 + 10 + 4
    assert 'rewardlab_requests_total{endpoint="score",status="200"}' in metrics

    # `rewardlab score` on a file of the same pairs writes the same rewards.
    from typer.testing import CliRunner

    from rewardlab.cli import app

    data = tmp_path / "pairs.jsonl"
    k = n // 2
    data.write_text("".join(json.dumps({"prompt": p, "chosen": responses[i], "rejected": responses[k + i]})
                            + "\n" for i, p in enumerate(prompts[:k])))
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["score", "--model", str(rm_dir), "--data", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    np.testing.assert_allclose([s["reward_chosen"] for s in scored] + [s["reward_rejected"] for s in scored],
                               ref, atol=TOL, rtol=0)


def test_truncation_follows_the_model_policy(server, rm):
    long = "word " * 400                                       # far over max_length 96
    ref = rm.score(["short prompt"], [long])
    assert rm.last_truncation["response_truncated"] == 1
    with httpx.Client(base_url=server.url, timeout=60) as c:
        body = c.post("/score", json={"items": [{"prompt": "short prompt", "response": long}]}).json()
        np.testing.assert_allclose(body["rewards"], ref, atol=TOL, rtol=0)
        assert body["truncated"] == {"response_truncated": 1}
        # truncate_prompt_tokens caps the item at k tokens (cut from the left: the response is at the end).
        body = c.post("/classify", json={"input": long, "truncate_prompt_tokens": 12}).json()
        assert body["usage"]["prompt_tokens"] == 12
        assert "rewardlab_truncated_items_total" in c.get("/metrics").text


HTTP_BAD = [  # (endpoint, raw body, status, field, kind)
    ("/get_reward", b'{"query": ["a",', 400, "body", "malformed_json"),
    ("/get_reward", b"\xff\xfe", 400, "body", "malformed_json"),
    ("/get_reward", b'{"query": [1]}', 400, "query[0]", "invalid_field"),
    ("/get_reward", b'{"query": []}', 400, "query", "invalid_field"),
    ("/get_reward", json.dumps({"query": ["a"] * 17}).encode(), 400, "query", "too_many_items"),
    ("/get_reward", json.dumps({"query": ["x" * 4001]}).encode(), 400, "query[0]", "text_too_long"),
    ("/get_reward", json.dumps({"query": ["x" * 4000] * 17}).encode(), 413, "body", "body_too_large"),
    ("/classify", b'{"input": "a", "use_activation": 1}', 400, "use_activation", "invalid_field"),
    ("/classify", b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "messages", "invalid_field"),
    ("/score", b'{"items": [{"prompt": "p", "response": 2}]}', 400, "items[0].response", "invalid_field"),
    ("/score", b"[]", 400, "body", "invalid_field"),
]


def test_every_4xx_path(server, rm):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for path, raw, status, field, kind in HTTP_BAD:
            r = c.post(path, content=raw, headers={"content-type": "application/json"})
            assert r.status_code == status, (path, raw[:40], r.text)
            err = r.json()["error"]
            assert (err["field"], err["type"], err["code"]) == (field, kind, status)
        # A body over the limit sent without Content-Length (chunked) is cut off too.
        chunks = (b'{"query": ["' + b"x" * 8000 + b'"]}' for _ in range(10))
        r = c.post("/get_reward", content=chunks)
        assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"
        r = c.post("/nowhere", json={})
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        r = c.get("/score")
        assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"
        # Still serving, with the right answer.
        r = c.post("/score", json={"items": [{"prompt": "p", "response": "r"}]})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["rewards"], rm.score(["p"], ["r"]), atol=TOL, rtol=0)
        metrics = c.get("/metrics").text
        health = c.get("/health").json()
    assert health["status"] == "ok" and health["render"] == "chat" and health["max_items"] == 16
    for kind in ("malformed_json", "invalid_field", "too_many_items", "text_too_long", "body_too_large", "not_found"):
        assert _metric(metrics, f'rewardlab_errors_total{{kind="{kind}"}}') >= 1, kind
    assert not re.search(r'status="5\d\d"', metrics)


def test_api_key(rm):
    from rewardlab.serve.app import create_app

    s = ThreadServer(create_app(rm, api_key="s3cret", limits=LIMITS))
    try:
        body = {"query": ["hello"]}
        with httpx.Client(base_url=s.url, timeout=60) as c:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                            {"Authorization": "Basic s3cret"}):
                r = c.post("/get_reward", json=body, headers=headers)
                assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"
                assert r.headers["www-authenticate"] == "Bearer"
            # 401 comes before anything else is looked at
            assert c.post("/score", content=b"{not json").status_code == 401
            assert c.get("/metrics").status_code == 401
            assert c.get("/health").status_code == 200
            ok = {"Authorization": "Bearer s3cret"}
            assert c.post("/get_reward", json=body, headers=ok).status_code == 200
            assert 'kind="unauthorized"' in c.get("/metrics", headers=ok).text
        assert RemoteReward(s.url, api_key="s3cret").score(["p"], ["r"]) == pytest.approx(
            rm.score(["p"], ["r"]).tolist(), abs=TOL)
        with pytest.raises(RemoteRewardError, match="401"):
            RemoteReward(s.url, retries=0).score(["p"], ["r"])
    finally:
        s.stop()


def test_remote_reward_as_trl_reward_function(server, rm, pairs):
    prompts, responses = pairs
    reward = RemoteReward(server.url, batch_size=5)
    assert reward.__name__ == "remote_reward"
    # Standard (string) data, as GRPOTrainer passes it: more items than one request holds.
    got = reward(prompts=prompts[:12], completions=responses[:12], completion_ids=None, trainer_state=None)
    np.testing.assert_allclose(got, rm.score(prompts[:12], responses[:12]), atol=TOL, rtol=0)
    # Conversational data: prompt messages + a completion message list.
    conv_prompts = [[{"role": "user", "content": "Name a colour."}]] * 2
    completions = [[{"role": "assistant", "content": "Blue."}], [{"role": "assistant", "content": "Seven."}]]
    got = pickle.loads(pickle.dumps(reward))(prompts=conv_prompts, completions=completions)
    np.testing.assert_allclose(got, rm.score(conv_prompts, ["Blue.", "Seven."]), atol=TOL, rtol=0)
    queries = [rm.tokenizer.apply_chat_template(to_messages("Hi", "Hello!"), tokenize=False)]
    assert reward.get_reward(queries) == pytest.approx(rm.score(["Hi"], ["Hello!"]).tolist(), abs=TOL)
    with pytest.raises(RemoteRewardError, match=r"items\[0\]\.response"):
        reward.score_items([{"prompt": "p", "response": 3}])
    reward.close()


def test_grpo_trainer_step_with_remote_reward(server, rm, tiny_llama_dir, tmp_path):
    """One real TRL GRPOTrainer step (the tiny Llama as policy, conversational prompts) with the
    server as its reward function: TRL accepts it, and logs the rewards the server computed."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    class Recording(RemoteReward):
        seen: list = []

        def __call__(self, prompts, completions, **kwargs):
            rewards = super().__call__(prompts, completions, **kwargs)
            self.seen.append((prompts, completions, rewards))
            return rewards

    reward = Recording(server.url)
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": "Say hi."}],
                                         [{"role": "user", "content": "Name a colour."}]]})
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                      bf16=False, seed=0)
    trainer = GRPOTrainer(model=str(tiny_llama_dir), reward_funcs=reward, args=args, train_dataset=data)
    trainer.train()
    assert len(reward.seen) == 1
    prompts, completions, rewards = reward.seen[0]
    assert isinstance(completions[0], list) and completions[0][-1]["role"] == "assistant"
    ref = rm.score(prompts, [c[-1]["content"] for c in completions])
    np.testing.assert_allclose(rewards, ref, atol=TOL, rtol=0)
    logged = next(h for h in trainer.state.log_history if "rewards/remote_reward/mean" in h)
    assert logged["rewards/remote_reward/mean"] == pytest.approx(float(np.mean(ref)), abs=1e-4)


def test_serves_a_lora_adapter_export(tiny_llama_dir, tmp_path):
    """A LoRA adapter directory (adapter_config.json, no config.json) is served like a full export."""
    pytest.importorskip("peft")
    import torch

    from rewardlab.config import LoraConfig
    from rewardlab.models import lora
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.serve.app import create_app

    torch.manual_seed(0)
    base = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64)
    lora.apply(base, LoraConfig(r=4, export="adapter"))
    adapter = lora.save_adapter(base, tmp_path / "adapter")
    assert not (adapter / "config.json").exists()
    from rewardlab.serve.server import bind_socket

    busy = bind_socket("127.0.0.1", 0)
    busy.listen(1)
    try:  # the command's directory check passes (it fails later, on the busy port)
        res = _cli(str(adapter), "--port", str(busy.getsockname()[1]))
    finally:
        busy.close()
    assert res.exit_code == 2 and "cannot listen" in res.output
    rm = RewardModel.from_pretrained(adapter)
    s = ThreadServer(create_app(rm, limits=LIMITS))
    try:
        got = RemoteReward(s.url).score(["Hi", "2+2?"], ["Hello!", "4"])
    finally:
        s.stop()
    np.testing.assert_allclose(got, rm.score(["Hi", "2+2?"], ["Hello!", "4"]), atol=TOL, rtol=0)


# ------------------------------------------------------------------ the command
def _cli(*args, env=None):
    from typer.testing import CliRunner

    from rewardlab.cli import app

    return CliRunner().invoke(app, ["serve", *args], env=env)


def test_cli_errors(rm_dir, tmp_path):
    res = _cli(str(tmp_path / "missing"))
    assert res.exit_code == 2 and "error:" in res.output and "no such directory" in res.output
    res = _cli(str(rm_dir), "--api-key-env", "REWARDLAB_TEST_UNSET_KEY")
    assert res.exit_code == 2 and "REWARDLAB_TEST_UNSET_KEY" in res.output
    res = _cli(str(rm_dir), "--max-batch", "0")
    assert res.exit_code == 2 and "--max-batch" in res.output
    from rewardlab.serve.server import bind_socket

    busy = bind_socket("127.0.0.1", 0)
    busy.listen(1)
    try:
        res = _cli(str(rm_dir), "--port", str(busy.getsockname()[1]))
        assert res.exit_code == 2 and "cannot listen" in res.output
    finally:
        busy.close()


def test_sigterm_drains_in_flight_requests(rm_dir, rm):
    """The real command in a subprocess: a request waiting in the batcher when SIGTERM arrives is
    still answered, correctly; then the process exits 0 and the port is closed."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "REWARDLAB_KEY": "k"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewardlab", "serve", str(rm_dir), "--port", "0", "--max-wait-ms", "2500",
         "--max-batch", "64", "--threads", "1", "--api-key-env", "REWARDLAB_KEY"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "server exited before listening"
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "no listening line"
        headers = {"Authorization": "Bearer k"}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as c:
            deadline = time.monotonic() + 60
            while True:  # the lifespan may still be starting
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.1)
            with ThreadPoolExecutor(2) as pool:
                items = [{"prompt": "Is the sky blue?", "response": "Yes."}, {"prompt": "2+2?", "response": "5"}]
                futures = [pool.submit(lambda i=i: httpx.post(f"{url}/score", json={"items": [items[i]]},
                                                                  headers=headers, timeout=60)) for i in range(2)]
                deadline = time.monotonic() + 30
                while _metric(c.get("/metrics").text, "rewardlab_queued_items") < 2:
                    assert time.monotonic() < deadline, "requests never reached the batcher"
                    time.sleep(0.05)
                proc.send_signal(signal.SIGTERM)   # both requests wait out --max-wait-ms in the batcher
                answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200, 200]
        got = [a.json()["rewards"][0] for a in answers]
        np.testing.assert_allclose(got, rm.score([i["prompt"] for i in items], [i["response"] for i in items]),
                                   atol=TOL, rtol=0)
        assert proc.wait(timeout=60) == 0
        assert "stopped by signal 15" in proc.stderr.read()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
