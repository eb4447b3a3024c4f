"""Generation behind one interface (issue #12), used by Critic-RM and the rubric judges.

```python
from rewardlab.generate import GenerationRequest, make_generator
gen = make_generator("transformers", "smollm2-135m", cache_dir="runs/gen_cache")
texts = gen.generate([GenerationRequest([{"role": "user", "content": "Hi"}], key="q1")],
                     n=4, max_new_tokens=128, temperature=0.7, top_p=0.95, seed=0, progress=True)
# texts[i][j]: sample j of request i; gen.last_stats: cached/generated counts, tokens/s
```

A trailing assistant message is continued (its text is the start of the answer).

Backends: ``transformers`` (embedded default, any HF causal LM), ``openai`` (any OpenAI-compatible
``/v1/chat/completions`` server), ``vllm`` (when installed). With ``cache_dir`` every finished
sample is stored, keyed by (model_id, chat template, request key and messages, sample index, seed,
sampling parameters); a killed run resumes without redoing finished samples. See docs/critic_rm.md.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from rewardlab.errors import ConfigError
from rewardlab.generate.base import (GenerationError, GenerationRequest, GenerationStats, Generator, Job, Sample,
                                     SamplingParams, sample_seed)

BACKENDS = ("transformers", "openai", "vllm")


def make_generator(backend: str = "transformers", model: str = "smollm2-135m", *,
                   cache_dir: str | Path | None = None, **options) -> Generator:
    """A generator of ``backend`` for ``model``; ``options`` go to the backend (see its class)."""
    if backend in ("transformers", "hf"):
        from rewardlab.generate.hf import TransformersGenerator as cls
    elif backend == "openai":
        from rewardlab.generate.openai import OpenAIGenerator as cls
    elif backend == "vllm":
        from rewardlab.generate.vllm import VLLMGenerator as cls
    else:
        raise ConfigError(f"unknown generation backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "vllm":  # vllm passes unknown options on to vllm.LLM
        try:
            inspect.signature(cls).bind(model, cache_dir=cache_dir, **options)
        except TypeError as e:
            raise ConfigError(f"backend {backend!r}: {e}") from e
    return cls(model, cache_dir=cache_dir, **options)


__all__ = ["BACKENDS", "GenerationError", "GenerationRequest", "GenerationStats", "Generator", "Job", "Sample",
           "SamplingParams", "make_generator", "sample_seed"]
