"""The generation interface: ``GenerationRequest``, the ``Generator`` base class, sampling seeds.

A backend implements ``_generate_batch(jobs, params)`` for a list of ``Job`` (one request and one
sample index each) and returns one ``Sample`` per job. The base class does the rest once for all
backends: request keys, the disk cache (finished samples are skipped and each batch is written as
soon as it is done, so a killed run resumes), ordering the jobs, the progress bar (items and
generated tokens/s), and shaping the result as ``[len(requests)][n]`` texts.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rewardlab.errors import ConfigError, RewardlabError
from rewardlab.generate.cache import GenerationCache, cache_key
from rewardlab.runinfo import files_fingerprint

log = logging.getLogger(__name__)


class GenerationError(RewardlabError):
    """A backend could not produce a generation (unreachable or failing endpoint, bad reply)."""


@dataclass(frozen=True)
class GenerationRequest:
    """Chat messages to continue; ``key`` is a stable item id ("" -> a hash of the messages)."""

    messages: list[dict]
    key: str = ""

    def item_id(self) -> str:
        return self.key or messages_hash(self.messages)


def messages_hash(messages: list[dict]) -> str:
    return cache_key([{"role": m.get("role"), "content": m.get("content")} for m in messages])[:24]


def check_messages(messages, where: str = "request") -> list[dict]:
    """Messages must be a non-empty list of {role, content} with string content."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: messages must be a non-empty list of {{role, content}} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ConfigError(f"{where}: message {i} must be a dict with string 'role' and 'content', got {m!r:.80}")
    return messages


@dataclass(frozen=True)
class SamplingParams:
    n: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def key_part(self) -> dict:
        # greedy samples do not depend on top_p; n is not part of a sample's identity (sample i of
        # n=4 is sample i of n=2), so raising n reuses the samples already written.
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "top_p": None if self.greedy else self.top_p, "seed": self.seed}


@dataclass
class Job:
    request_index: int
    sample_index: int
    messages: list[dict]
    item_id: str
    cache_key: str
    sample_seed: int = 0


@dataclass
class Sample:
    text: str
    tokens: int = 0
    finish: str = "stop"  # "stop" (end of turn) or "length" (max_new_tokens reached)


def sample_seed(seed: int, item_id: str, sample_index: int) -> int:
    """The seed of one sample: a 63-bit hash of (seed, item, sample index). Each sample draws its
    random numbers from its own generator, so it does not depend on which batch it ran in."""
    h = hashlib.sha256(f"{seed}|{item_id}|{sample_index}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


@dataclass
class GenerationStats:
    """Counters of the last ``generate`` call (the CLI and benchmarks print them)."""

    requested: int = 0
    cached: int = 0
    generated: int = 0
    tokens: int = 0
    truncated: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"requested": self.requested, "cached": self.cached, "generated": self.generated,
                "tokens": self.tokens, "truncated": self.truncated, "seconds": round(self.seconds, 3),
                "tokens_per_s": round(self.tokens_per_s, 2), **self.extra}


class Generator:
    """Base class of the backends. Subclasses set ``model_id`` and ``template_id`` and implement
    ``_generate_batch``; ``batch_size`` is how many jobs one call receives."""

    model_id: str = "generator"
    template_id: str = ""  # identity of the chat template (a hash); part of the cache key
    weights_id: str = ""  # identity of local weights (file names and contents); part of the cache key
    batch_size: int = 8

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: GenerationCache | None = None
        self.last_stats = GenerationStats()

    # -- to implement -------------------------------------------------------------------------
    def _generate_batch(self, jobs: list[Job], params: SamplingParams) -> list[Sample]:
        raise NotImplementedError

    def _job_length(self, job: Job) -> int:
        """A size used to group similar jobs in a batch (less padding)."""
        return sum(len(m["content"]) for m in job.messages)

    # -- the shared part ------------------------------------------------------------------------
    @property
    def cache(self) -> GenerationCache | None:
        if self._cache is None and self.cache_dir is not None:
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.model_id)[-60:]
            name = f"{name}-{cache_key(self.model_id, self.template_id, self.weights_id)[:12]}"
            self._cache = GenerationCache(self.cache_dir, name)
        return self._cache

    def generate(self, requests: Sequence[GenerationRequest], *, n: int = 1, max_new_tokens: int = 256,
                 temperature: float = 0.7, top_p: float = 0.95, seed: int = 0,
                 progress: bool = False) -> list[list[str]]:
        """``n`` completions of each request: ``[len(requests)][n]`` texts. Temperature 0 is greedy
        (one generation, repeated n times)."""
        params = _check_params(n, max_new_tokens, temperature, top_p, seed)
        jobs: list[Job] = []
        for r, req in enumerate(requests):
            if not isinstance(req, GenerationRequest):
                raise ConfigError(f"request {r}: expected a GenerationRequest, got {type(req).__name__}")
            check_messages(req.messages, f"request {r} (key {req.key!r})" if req.key else f"request {r}")
            item = req.item_id()
            content = messages_hash(req.messages)
            for s in range(1 if params.greedy else n):
                key = cache_key(self.model_id, self.template_id, self.weights_id, item, content, s, params.key_part())
                jobs.append(Job(r, s, req.messages, item, key, sample_seed(seed, item, s)))
        stats = GenerationStats(requested=len(jobs))
        results: dict[str, Sample] = {}
        cache = self.cache
        todo = []
        for job in jobs:
            hit = cache.get(job.cache_key) if cache is not None else None
            if hit is not None:
                results[job.cache_key] = Sample(hit["text"], hit.get("tokens", 0), hit.get("finish", "stop"))
                stats.cached += 1
            else:
                todo.append(job)
        # the same request twice in one call: generate once
        unique = list({j.cache_key: j for j in todo}.values())
        unique.sort(key=self._job_length, reverse=True)  # similar lengths together: less padding
        bar = None
        if progress and unique:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(unique), desc=f"generating ({self.model_id})", unit="sample", dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for b in range(0, len(unique), self.batch_size):
                batch = unique[b:b + self.batch_size]
                samples = self._generate_batch(batch, params)
                if len(samples) != len(batch):  # pragma: no cover - a backend bug
                    raise GenerationError(f"{self.model_id}: backend returned {len(samples)} samples for {len(batch)} jobs")
                done = []
                for job, smp in zip(batch, samples):
                    results[job.cache_key] = smp
                    stats.generated += 1
                    stats.tokens += smp.tokens
                    stats.truncated += smp.finish == "length"
                    done.append((job.cache_key, {"text": smp.text, "tokens": smp.tokens, "finish": smp.finish}))
                if cache is not None:
                    cache.put_many(done)
                if bar is not None:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(tok_s=f"{stats.tokens / max(elapsed, 1e-9):.1f}", refresh=False)
                    bar.update(len(batch))
        finally:
            stats.seconds = time.perf_counter() - start
            self.last_stats = stats
            if bar is not None:
                bar.close()
        out: list[list[str]] = [[] for _ in requests]
        for job in jobs:
            out[job.request_index].append(results[job.cache_key].text)
        if params.greedy:
            out = [texts * n for texts in out]
        return out


def _check_params(n, max_new_tokens, temperature, top_p, seed) -> SamplingParams:
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}")
    return SamplingParams(n, max_new_tokens, float(temperature), float(top_p), int(seed))


def weights_fingerprint(directory: str | Path) -> str:
    """A short identity of a local model directory's weights (file names and contents), so a model
    retrained into the same directory does not reuse the old generations, and the same weights on
    another machine (a fresh install, other modification times) do reuse them. The contents are
    hashed in full: one more read of files that loading reads anyway (about 0.5 s for a 135M model).
    "" when ``directory`` is not a local directory (a Hub name)."""
    return files_fingerprint(directory)


def template_hash(template: str | None) -> str:
    return hashlib.sha256((template or "").encode("utf-8")).hexdigest()[:16]
