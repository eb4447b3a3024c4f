"""The ``vllm`` backend: the engine users run at scale, used only when ``vllm`` is installed
(``pip install rewardlab[vllm]``; imported lazily). Thin by design and not tested here (no GPU, no
vllm in CI): every sample is one ``vllm.SamplingParams(seed=...)`` request, so samples are
reproducible per (seed, item, sample index) as with the other backends; ``LLM.chat`` applies the
model's chat template. For a vLLM *server*, use the ``openai`` backend instead.
"""

from __future__ import annotations

from pathlib import Path

from rewardlab.errors import ConfigError
from rewardlab.generate.base import Generator, Job, Sample, SamplingParams, template_hash, weights_fingerprint


class VLLMGenerator(Generator):
    """Options: ``batch_size`` (jobs per ``LLM.chat`` call, 256) and any ``vllm.LLM`` keyword
    (``tensor_parallel_size``, ``gpu_memory_utilization``, ``dtype``, ...)."""

    def __init__(self, model: str = "smollm2-135m", *, cache_dir: str | Path | None = None, batch_size: int = 256,
                 **llm_options) -> None:
        super().__init__(cache_dir)
        try:
            import vllm
        except ImportError as e:
            raise ConfigError("backend 'vllm' needs the vllm package (pip install 'rewardlab[vllm]'); "
                              "or use backend 'transformers', or 'openai' against a vLLM server") from e
        from rewardlab.models.locate import resolve

        self._vllm = vllm
        path = resolve(model)
        self.llm = vllm.LLM(model=path, **llm_options)
        self.weights_id = weights_fingerprint(path)
        self.batch_size = batch_size
        self.model_id = f"vllm:{model}"
        self.template_id = template_hash(getattr(self.llm.get_tokenizer(), "chat_template", None))

    def _generate_batch(self, jobs: list[Job], params: SamplingParams) -> list[Sample]:
        sp = [self._vllm.SamplingParams(n=1, max_tokens=params.max_new_tokens, temperature=params.temperature,
                                        top_p=1.0 if params.greedy else params.top_p, seed=j.sample_seed)
              for j in jobs]
        outs = self.llm.chat([j.messages for j in jobs], sampling_params=sp, use_tqdm=False)
        samples = []
        for out in outs:
            c = out.outputs[0]
            samples.append(Sample(c.text.strip(), len(c.token_ids), "length" if c.finish_reason == "length" else "stop"))
        return samples
