"""The ``transformers`` backend: batched sampling with ``model.generate`` on any HF causal LM.

Requests are rendered with the tokenizer's chat template (``add_generation_prompt=True``), left
padded, and generated in batches with the KV cache. Sampling is done by ``RowSampler``, a logits
processor that gives every row its own ``torch.Generator`` seeded from (seed, item, sample index)
and returns a one-hot choice that greedy decoding then takes. So a sample's random draws do not
depend on which other rows share its batch: the same (seed, item, sample index) gives the same text
whether generated alone or in any batch, up to float rounding of the logits, which may differ in
the last bits between batch shapes (padding changes matmul shapes) and then flips a token only when
a draw lands on a probability boundary. Tested: identical texts alone and batched on a tiny Llama.
Hand-written because ``generate(do_sample=True)`` draws all rows from one global RNG.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rewardlab.errors import ConfigError
from rewardlab.generate.base import (GenerationError, Generator, Job, Sample, SamplingParams, template_hash,
                                     weights_fingerprint)

log = logging.getLogger(__name__)


class RowSampler:
    """A ``LogitsProcessor``: temperature and top-p (transformers' own warpers), then one draw per
    row from that row's generator; returns logits that are 0 at the drawn token, -inf elsewhere."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

        self.seeds = seeds
        self.generators = None
        self.warpers = [TemperatureLogitsWarper(temperature)]
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids, scores):
        import torch

        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        scores = scores.float()
        for w in self.warpers:
            scores = w(input_ids, scores)
        probs = torch.softmax(scores, dim=-1)
        out = torch.full_like(scores, float("-inf"))
        for i, g in enumerate(self.generators):
            tok = torch.multinomial(probs[i], 1, generator=g)
            out[i, tok] = 0.0
        return out


class TransformersGenerator(Generator):
    """``make_generator("transformers", model)``: ``model`` is an alias (``smollm2-135m``), a
    directory, a ``*.gguf`` file or a Hub name. Options: ``batch_size`` (8), ``device`` ("cpu"),
    ``dtype`` ("float32"), ``chat_template`` (overrides the tokenizer's), ``max_input_tokens``
    (longer rendered requests are an error; default the model's context minus max_new_tokens)."""

    def __init__(self, model: str = "smollm2-135m", *, cache_dir: str | Path | None = None, batch_size: int = 8,
                 device: str = "cpu", dtype: str = "float32", chat_template: str | None = None,
                 max_input_tokens: int | None = None) -> None:
        super().__init__(cache_dir)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rewardlab.models.locate import resolve

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        path = resolve(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            torch_dtype = getattr(torch, dtype)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()
        except (OSError, ValueError, AttributeError) as e:
            raise ConfigError(f"cannot load causal LM {model!r} ({path}): {e}") from e
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if not self.tokenizer.chat_template:
            raise ConfigError(f"model {model!r} has no chat template; pass chat_template=...")
        self.tokenizer.padding_side = "left"
        self.device = device
        self.model_id = "hf:" + (str(Path(model).resolve()) if Path(model).exists() else model)
        self.template_id = template_hash(self.tokenizer.chat_template)
        self.weights_id = weights_fingerprint(path)
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = gen_cfg.eos_token_id if gen_cfg is not None and gen_cfg.eos_token_id is not None else []
        eos = [eos] if isinstance(eos, int) else list(eos)
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        if not eos:
            raise ConfigError(f"model {model!r} defines no end-of-sequence token")
        self.eos_ids = eos
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        context = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.context = int(context)
        self.max_input_tokens = max_input_tokens

    def render(self, messages: list[dict]) -> list[int]:
        """Token ids of the conversation and the start of the assistant's answer; a trailing
        assistant message is continued (its text is a prefix of the answer)."""
        if messages[-1]["role"] == "assistant":
            text = self.tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
        else:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _job_length(self, job: Job) -> int:
        return sum(len(m["content"]) for m in job.messages)

    def _generate_batch(self, jobs: list[Job], params: SamplingParams) -> list[Sample]:
        import torch
        from transformers import GenerationConfig

        limit = self.max_input_tokens or max(1, self.context - params.max_new_tokens)
        encoded = []
        for job in jobs:
            ids = self.render(job.messages)
            if len(ids) > limit:
                raise GenerationError(f"request {job.item_id!r}: {len(ids)} prompt tokens, more than "
                                      f"max_input_tokens {limit} (context {self.context} - max_new_tokens)")
            encoded.append(ids)
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(jobs), width), dtype=torch.long)
        for i, ids in enumerate(encoded):
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids):] = 1
        config = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                  eos_token_id=self.eos_ids, pad_token_id=self.pad_id, use_cache=True)
        processors = []
        if not params.greedy:
            from transformers import LogitsProcessorList

            processors = LogitsProcessorList([RowSampler([j.sample_seed for j in jobs], params.temperature, params.top_p)])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                                      generation_config=config, logits_processor=processors or None)
        new = out[:, width:].cpu().tolist()
        samples = []
        for row in new:
            stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            kept = row if stop is None else row[:stop]
            text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
            samples.append(Sample(text, len(kept) + (stop is not None), "length" if stop is None else "stop"))
        return samples
