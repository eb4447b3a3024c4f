"""The generation layer: cache and resume, the transformers backend on a tiny Llama, the openai
backend against a stub server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewardlab.errors import ConfigError
from rewardlab.generate import GenerationError, GenerationRequest, Generator, Sample, make_generator, sample_seed
from rewardlab.generate.cache import GenerationCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def req(text: str, key: str = "") -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], key=key)


class Echo(Generator):
    """Deterministic fake: the text names the request, sample seed and temperature; can fail."""

    model_id = "echo"
    batch_size = 2

    def __init__(self, cache_dir=None, fail_after=None):
        super().__init__(cache_dir)
        self.calls = 0
        self.fail_after = fail_after

    def _generate_batch(self, jobs, params):
        out = []
        for job in jobs:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise GenerationError("boom")
            self.calls += 1
            out.append(Sample(f"{job.messages[-1]['content']}|{job.sample_index}|{job.sample_seed}", 3))
        return out


def test_shape_seeds_and_greedy():
    g = Echo()
    out = g.generate([req("a", "x"), req("b")], n=3, seed=5)
    assert [len(o) for o in out] == [3, 3]
    assert out[0][1] == f"a|1|{sample_seed(5, 'x', 1)}"
    assert len({*out[0]}) == 3  # three different samples
    # greedy: one generation repeated n times
    g2 = Echo()
    greedy = g2.generate([req("a", "x")], n=4, temperature=0)
    assert g2.calls == 1 and greedy[0] == [greedy[0][0]] * 4


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="top_p"):
        Echo().generate([req("a")], top_p=0)
    with pytest.raises(ConfigError, match="message 0"):
        Echo().generate([GenerationRequest([{"role": "user"}])])
    with pytest.raises(ConfigError, match="unknown generation backend"):
        make_generator("nope")


def test_cache_resumes_after_a_failure_and_reuses_samples(tmp_path):
    reqs = [req(t, t) for t in "abcde"]
    g = Echo(tmp_path, fail_after=4)
    with pytest.raises(GenerationError):
        g.generate(reqs, n=2, seed=1)
    assert len(GenerationCache(tmp_path, g.cache.path.stem)) == 4  # two batches of 2 were written
    # a torn last line (a kill mid-write) is ignored and the next append starts a fresh line
    with g.cache.path.open("a") as f:
        f.write('{"k": "trunc')
    g2 = Echo(tmp_path)
    out = g2.generate(reqs, n=2, seed=1)
    assert g2.calls == 6 and g2.last_stats.cached == 4 and g2.cache.skipped_lines == 1
    assert out == Echo().generate(reqs, n=2, seed=1)
    g3 = Echo(tmp_path)
    assert g3.generate(reqs, n=3, seed=1)[0][:2] == out[0] and g3.calls == 5  # only sample 2 is new
    assert Echo(tmp_path).generate(reqs, n=2, seed=2) != out  # another seed: other samples
    lines = g.cache.path.read_text().splitlines()
    assert sum(1 for line in lines if line.startswith("{") and line.endswith("}")) == len(lines) - 1


def test_weights_fingerprint(tmp_path):
    import os

    from rewardlab.generate.base import weights_fingerprint
    from rewardlab.runinfo import _file_digest

    (tmp_path / "model.safetensors").write_bytes(b"abc")
    (tmp_path / "notes.txt").write_text("x")
    first = weights_fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("changed")  # not a weights file
    hits = _file_digest.cache_info().hits
    assert weights_fingerprint(tmp_path) == first and len(first) == 16
    assert _file_digest.cache_info().hits == hits + 1  # an unchanged file is not read again
    st = (tmp_path / "model.safetensors").stat()
    os.utime(tmp_path / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # copied to a new machine
    assert weights_fingerprint(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"abd")  # retrained in place: same size, other weights
    assert weights_fingerprint(tmp_path) != first
    assert weights_fingerprint("some/hub-name") == ""


def test_transformers_backend_batch_invariant(tiny_llama_dir, tmp_path):
    g = make_generator("transformers", str(tiny_llama_dir), cache_dir=tmp_path, batch_size=3)
    reqs = [req("Hello there, how are you?", "a"), req("2+2?", "b"), req("Name a colour please", "c")]
    batched = g.generate(reqs, n=2, max_new_tokens=6, temperature=1.0, seed=3)
    assert g.last_stats.generated == 6 and g.last_stats.tokens > 0
    assert all(isinstance(t, str) for row in batched for t in row)
    assert batched[0][0] != batched[0][1] or batched[1][0] != batched[1][1]
    alone = make_generator("transformers", str(tiny_llama_dir), batch_size=1)
    assert alone.generate(reqs[1:2], n=2, max_new_tokens=6, temperature=1.0, seed=3)[0] == batched[1]
    # a trailing assistant message is continued, not closed
    text = alone.tokenizer.decode(alone.render([{"role": "user", "content": "Rate it."},
                                                {"role": "assistant", "content": "I give it a score of"}]))
    assert text.endswith("I give it a score of") and text.count("<|im_start|>assistant") == 1
    # greedy is deterministic, and the cache answers a second call without generating
    greedy = alone.generate(reqs, max_new_tokens=4, temperature=0)
    assert alone.generate(reqs, max_new_tokens=4, temperature=0) == greedy
    again = make_generator("transformers", str(tiny_llama_dir), cache_dir=tmp_path, batch_size=3)
    assert again.generate(reqs, n=2, max_new_tokens=6, temperature=1.0, seed=3) == batched
    assert again.last_stats.cached == 6 and again.last_stats.generated == 0


class _Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint: echoes the last message; 'fail' -> 503, 'slow' sleeps."""

    seen: list = []
    fails: dict = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        text = body["messages"][-1]["content"]
        if text.startswith("fail") and type(self).fails.get(text, 0) < int(text[4:] or 99):
            type(self).fails[text] = type(self).fails.get(text, 0) + 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        if text == "slow":
            import time

            time.sleep(1.0)
        if text == "bad":
            payload = {"choices": []}
        else:
            payload = {"choices": [{"message": {"role": "assistant", "content": f" {text} s{body['seed']} "},
                                    "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the client gave up on 'slow': a broken pipe
        pass


@pytest.fixture
def stub_url():
    server = _QuietServer(("127.0.0.1", 0), _Stub)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.seen, _Stub.fails = [], {}
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_backend_against_stub(stub_url, tmp_path):
    g = make_generator("openai", "stub-model", cache_dir=tmp_path, base_url=stub_url, max_concurrency=3,
                       backoff=0.01, max_retries=2, timeout=0.5)
    out = g.generate([req("a", "a"), req("b", "b"), req("fail1", "f")], n=2, max_new_tokens=5, seed=0)
    assert out[0][0] == f"a s{sample_seed(0, 'a', 0) % 2**31}"
    assert out[2][1].startswith("fail1")  # retried after one 503
    assert {b["model"] for b in _Stub.seen} == {"stub-model"} and _Stub.seen[0]["max_tokens"] == 5
    assert g.last_stats.tokens == 12
    n_calls = len(_Stub.seen)
    assert g.generate([req("a", "a")], n=2, max_new_tokens=5, seed=0) == [out[0]] and len(_Stub.seen) == n_calls
    g.generate([GenerationRequest([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])])
    assert _Stub.seen[-1]["continue_final_message"] is True and _Stub.seen[-1]["add_generation_prompt"] is False
    assert "continue_final_message" not in _Stub.seen[0]
    with pytest.raises(GenerationError, match=r"HTTP 503.*3 attempts"):
        g.generate([req("fail", "z")])
    with pytest.raises(GenerationError, match="timed out after 0.5 s"):
        g.generate([req("slow", "s")])
    with pytest.raises(GenerationError, match=r"choices\[0\]\.message\.content"):
        g.generate([req("bad", "bad")])


def test_openai_backend_unreachable(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    g = make_generator("openai", "m", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.01, max_retries=1)
    with pytest.raises(GenerationError, match="cannot connect"):
        g.generate([req("a")])
