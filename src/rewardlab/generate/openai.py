"""The ``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, llama.cpp
server, TGI, SGLang) over httpx.

One HTTP call per sample (``n=1``, the per-sample seed sent as ``seed`` for servers that honour
it), at most ``max_concurrency`` in flight. Connection errors, timeouts, 429 and 5xx replies are
retried ``max_retries`` times with exponential backoff (``backoff * 2**attempt`` seconds, at most
30); then a ``GenerationError`` names the URL and the cause. Other 4xx replies fail at once with
the server's message. Samples finished before a failure are already in the disk cache, so a rerun
continues. The server applies its own chat template: its identity is the URL and model name.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rewardlab.errors import ConfigError
from rewardlab.generate.base import GenerationError, Generator, Job, Sample, SamplingParams

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIGenerator(Generator):
    """Options: ``base_url`` (default ``$OPENAI_BASE_URL`` or ``http://127.0.0.1:8000/v1``),
    ``api_key`` (``$OPENAI_API_KEY``), ``timeout`` (60 s per call), ``max_retries`` (3),
    ``backoff`` (0.5 s), ``max_concurrency`` (8), ``extra_body`` (merged into every request)."""

    def __init__(self, model: str, *, cache_dir: str | Path | None = None, base_url: str | None = None,
                 api_key: str | None = None, timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5,
                 max_concurrency: int = 8, extra_body: dict | None = None) -> None:
        super().__init__(cache_dir)
        import httpx

        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0 or timeout <= 0:
            raise ConfigError(f"need max_retries >= 0 and timeout > 0, got {max_retries}, {timeout}")
        base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip("/")
        self.url = base_url + "/chat/completions"
        self.model = model
        self.model_id = f"openai:{base_url}:{model}"
        self.template_id = "server"
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_concurrency = max_concurrency
        self.batch_size = 4 * max_concurrency  # jobs handed over per call: written to the cache together
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers,
                                   limits=httpx.Limits(max_connections=max_concurrency))

    def close(self) -> None:
        self.client.close()

    def _generate_batch(self, jobs: list[Job], params: SamplingParams) -> list[Sample]:
        if self.max_concurrency == 1 or len(jobs) == 1:
            return [self._one(job, params) for job in jobs]
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda j: self._one(j, params), jobs))

    def _one(self, job: Job, params: SamplingParams) -> Sample:
        import httpx

        body = {"model": self.model, "messages": job.messages, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "n": 1, "seed": job.sample_seed % (2**31)}
        if not params.greedy:
            body["top_p"] = params.top_p
        if job.messages[-1]["role"] == "assistant":  # continue it (vLLM's extension; others may start a new turn)
            body.update({"continue_final_message": True, "add_generation_prompt": False})
        body.update(self.extra_body)
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                reply = self.client.post(self.url, json=body)
            except httpx.TimeoutException:
                cause = f"timed out after {self.timeout:g} s"
                continue
            except httpx.TransportError as e:
                cause = f"cannot connect ({type(e).__name__}: {e})"
                continue
            if reply.status_code in RETRY_STATUS:
                cause = f"HTTP {reply.status_code}: {reply.text[:200]}"
                continue
            if reply.status_code >= 400:
                raise GenerationError(f"{self.url}: HTTP {reply.status_code} for request {job.item_id!r}: "
                                      f"{reply.text[:300]}")
            return self._parse(reply, job)
        raise GenerationError(f"{self.url}: {cause} (request {job.item_id!r}, {self.max_retries + 1} attempts); "
                              "finished samples are in the cache, a rerun continues")

    def _parse(self, reply, job: Job) -> Sample:
        try:
            data = reply.json()
        except ValueError as e:
            raise GenerationError(f"{self.url}: reply to request {job.item_id!r} is not JSON: {reply.text[:200]!r}") from e
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise GenerationError(f"{self.url}: reply to request {job.item_id!r} has no field "
                                  f"choices[0].message.content: {str(data)[:200]}") from e
        if not isinstance(content, str):
            raise GenerationError(f"{self.url}: reply to request {job.item_id!r}: field choices[0].message.content "
                                  f"is {type(content).__name__}, expected a string")
        usage = data.get("usage") or {}
        tokens = usage.get("completion_tokens")
        if not isinstance(tokens, int):
            tokens = len(content.split())  # a rough count for servers that report no usage
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Sample(content.strip(), tokens, finish)
