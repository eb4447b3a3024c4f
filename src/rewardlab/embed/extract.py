"""Embeddings of (prompt, response) items from any backbone, cached on disk (METHODS §3).

- **What is embedded**: the item encoded exactly as training sees it (``models.inputs.encode``
  with the same render mode, max length and over-length policy; ``drop`` scores truncated from
  the right, as ``RewardModel.score`` does), run through the backbone without a head
  (``AutoModel``) with position ids from the attention mask.
- **Pooling**, as ``RewardModel``: ``last`` (decoders: the hidden state of the last real token),
  ``cls`` (encoders: the model's pooler on the first real token when it has one and the last
  layer is read, else that token's hidden state), ``mean`` (masked mean). ``auto`` is ``last``
  for decoders and ``cls`` for encoders. ``layer`` picks a hidden state (-1 = last, 0 = the
  token embeddings, negative counts from the end).
- **Cache**: ``CACHE/<model-slug>-<hash of the spec>/`` holds ``spec.json``, shards
  ``part-*.npy`` (float32 [n, d]) and a Parquet index per shard ``part-*.parquet`` (key, row).
  The key of an item is the SHA-256 of its prompt text (JSON for message lists) and response;
  model, its files' contents (config, tokenizer, weights: not their path or modification times,
  so a reinstall or another machine reuses the cache and retrained weights do not), pooling,
  layer, max length, render mode and over-length policy are in the directory name, so the cache
  is keyed by all of them. A shard's index is written (atomically) after its
  array, so an interrupted run loses at most one shard and a rerun embeds only what is missing.
- **Dedupe**: identical items (the same response in several pairs of one prompt) are embedded
  once.
"""

from __future__ import annotations

import hashlib
import logging
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.errors import ConfigError
from rewardlab.models import backbone
from rewardlab.models.locate import resolve
from rewardlab.models.inputs import OVERLENGTH_POLICIES, RENDER_MODES, Encoded, encode, pad_batch
from rewardlab.runinfo import files_fingerprint

log = logging.getLogger(__name__)

POOLINGS = ("auto", "last", "cls", "mean")


def item_key(prompt: Any, response: str) -> str:
    """Cache key of one (prompt, response) item: SHA-256 of the prompt text and the response."""
    p = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{p}\x00\x1f{response}".encode()).hexdigest()


@dataclass(frozen=True)
class EmbedSpec:
    """Everything that decides an embedding besides the text."""

    model: str = "minilm"
    pooling: str = "auto"
    layer: int = -1
    max_length: int = 512
    render: str = "auto"
    overlength: str = "truncate_prompt_left"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.render not in ("auto", *RENDER_MODES):
            raise ConfigError(f"render must be auto or one of {RENDER_MODES}, got {self.render!r}")
        if self.overlength not in OVERLENGTH_POLICIES:
            raise ConfigError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {self.overlength!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")

    def as_dict(self) -> dict:
        return asdict(self)


# the files that decide a model's embeddings: weights, config and tokenizer files
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".gguf", ".model", ".txt")


def _fingerprint(path: str) -> str:
    """Identity of a resolved model: for a local directory, the contents of its config, tokenizer
    and weight files (``runinfo.files_fingerprint``: retrained weights in the same directory get a
    new cache; the same files reinstalled, or on another machine at another path, keep it); for a
    Hub name, the name."""
    digest = files_fingerprint(path, suffixes=MODEL_FILE_SUFFIXES, names=())
    return f"files-{digest}" if digest else path


def _is_decoder(config) -> bool:
    """Decoder-only models: in the causal-LM mapping and not in the masked-LM one (BERT is in both)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = getattr(config, "model_type", "")
    return mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def resolve_spec(spec: EmbedSpec) -> dict:
    """The spec with ``auto`` pooling and render resolved and the model's identity added: what the
    cache keys on. Reads the model's config and tokenizer only (no weights)."""
    from transformers import AutoConfig

    path = resolve(spec.model)
    config = AutoConfig.from_pretrained(path)
    tokenizer = backbone.load_tokenizer(path)
    decoder = _is_decoder(config)
    text_cfg = config.get_text_config()
    n_layers = int(getattr(text_cfg, "num_hidden_layers", 0) or 0)
    if n_layers and not -(n_layers + 1) <= spec.layer <= n_layers:
        raise ConfigError(f"layer {spec.layer} out of range for {spec.model} "
                          f"({n_layers} layers: -{n_layers + 1} .. {n_layers})")
    pooling = spec.pooling
    if pooling == "auto":
        pooling = "last" if decoder else "cls"
    if pooling == "last" and not decoder:
        raise ConfigError("pooling 'last' is for decoders; use cls or mean for an encoder")
    render = spec.render
    if render == "auto":
        render = "chat" if getattr(tokenizer, "chat_template", None) else ("concat" if decoder else "pair")
    return {**spec.as_dict(), "pooling": pooling, "render": render, "decoder": decoder,
            "dim": int(text_cfg.hidden_size), "fingerprint": _fingerprint(path), "path": path}


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Per row of an attention mask ``[n, T]``, the position of the last real token (the largest
    position whose mask is 1): right padding, left padding or none alike."""
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return (positions * mask.long()).argmax(-1)


def pool_last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden [n, T, d]`` read at each row's last real token (``last`` pooling)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(mask)]


class Embedder:
    """A backbone without head that turns encoded items into pooled vectors. ``padding_side``
    (right by default) changes nothing in the vectors: position ids come from the attention
    mask and pooling reads the last real token wherever the padding is."""

    def __init__(self, spec: EmbedSpec, device: str | torch.device = "cpu", padding_side: str = "right") -> None:
        from transformers import AutoModel

        self.spec = spec
        self._resolved = resolve_spec(spec)
        self.path = self._resolved["path"]
        self.tokenizer = backbone.load_tokenizer(self.path)
        dtype = torch.bfloat16 if spec.dtype == "bfloat16" else torch.float32
        self.model = AutoModel.from_pretrained(self.path, dtype=dtype).to(device).eval()
        self.device = torch.device(device)
        self.decoder = self._resolved["decoder"]
        self.pooling = self._resolved["pooling"]
        self.render = self._resolved["render"]
        # Padding is masked, so any id serves; the tokenizer's own pad when it has one.
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        self.policy = "truncate_right" if spec.overlength == "drop" else spec.overlength
        self.dim = int(self._resolved["dim"])
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding_side must be left or right, got {padding_side!r}")
        self.padding_side = padding_side

    def resolved(self) -> dict:
        """The resolved spec (see :func:`resolve_spec`)."""
        return dict(self._resolved)

    def encode(self, prompt, response: str) -> Encoded:
        return encode(self.tokenizer, self.render, prompt, response, self.spec.max_length, self.policy)

    @torch.no_grad()
    def forward(self, items: list[Encoded]) -> np.ndarray:
        """Pooled vectors [len(items), d] (float32) of one batch."""
        batch = {k: v.to(self.device) for k, v in pad_batch(items, self.pad_id, self.padding_side).items()}
        mask = batch["attention_mask"]
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        kwargs = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        layer = self.spec.layer
        out = self.model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids,
                         output_hidden_states=layer != -1, **kwargs)
        hs = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        rows = torch.arange(len(items), device=hs.device)
        if self.pooling == "last":
            h = pool_last(hs, mask)
        elif self.pooling == "cls":
            h = hs[rows, mask.long().argmax(-1)]
            pooler = getattr(self.model, "pooler", None)
            if pooler is not None and layer == -1:
                h = pooler(h.unsqueeze(1))
        else:
            m = mask.unsqueeze(-1).to(hs.dtype)
            h = (hs * m).sum(1) / m.sum(1).clamp(min=1.0)
        return h.float().cpu().numpy()


# ---------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    return backbone.cache_root() / "embeddings"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:40]


class EmbeddingCache:
    """One directory of shards for one resolved spec; see the module docstring."""

    def __init__(self, root: str | Path, resolved: dict) -> None:
        # keyed on what decides the vectors; the model's local path is not (the fingerprint is)
        keyed = {k: v for k, v in resolved.items() if k != "path"}
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / f"{_slug(resolved['model'])}-{digest}"
        self.dir.mkdir(parents=True, exist_ok=True)
        spec_file = self.dir / "spec.json"
        if not spec_file.is_file():
            _atomic_write_text(spec_file, json.dumps(resolved, indent=1, sort_keys=True) + "\n")
        self._index: dict[str, tuple[str, int]] | None = None
        self._shards: dict[str, np.ndarray] = {}

    def index(self) -> dict[str, tuple[str, int]]:
        """``{key: (shard name, row)}`` over every complete shard."""
        if self._index is None:
            import pyarrow.parquet as pq

            self._index = {}
            for part in sorted(self.dir.glob("part-*.parquet")):
                t = pq.read_table(part).to_pydict()
                for key, row in zip(t["key"], t["row"]):
                    self._index[key] = (part.stem, int(row))
        return self._index

    def __contains__(self, key: str) -> bool:
        return key in self.index()

    def __len__(self) -> int:
        return len(self.index())

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Vectors of ``keys`` (all must be present), in order."""
        idx = self.index()
        locs = [idx[k] for k in keys]
        out = None
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for i, (shard, row) in enumerate(locs):
            by_shard.setdefault(shard, []).append((i, row))
        for shard, pairs in by_shard.items():
            arr = self._shards.get(shard)
            if arr is None:
                arr = self._shards[shard] = np.load(self.dir / f"{shard}.npy", mmap_mode="r")
            if out is None:
                out = np.empty((len(keys), arr.shape[1]), dtype=np.float32)
            dst, src = zip(*pairs)
            out[list(dst)] = arr[list(src)]
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store a shard: the array first, then its index (the index certifies the shard)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"part-{time.time_ns():020d}-{os.getpid()}"
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        tmp = self.dir / f"{name}.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, arr)
        tmp.replace(self.dir / f"{name}.npy")
        table = pa.table({"key": pa.array(list(keys), pa.string()),
                          "row": pa.array(np.arange(len(keys)), pa.int64())})
        tmp = self.dir / f"{name}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(self.dir / f"{name}.parquet")
        if self._index is not None:
            for row, key in enumerate(keys):
                self._index[key] = (name, row)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------- driver
@dataclass
class EmbedResult:
    """``embeddings[i]`` is the vector of input item i; ``keys[i]`` its cache key; ``stats`` counts."""

    embeddings: np.ndarray
    keys: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None


def embed_texts(
    prompts: Sequence[Any],
    responses: Sequence[str],
    spec: EmbedSpec | None = None,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    dedupe: bool = True,
    batch_size: int = 16,
    flush_every: int = 512,
    progress: bool = False,
    embedder: Embedder | None = None,
    log: Callable[[str], None] | None = None,
) -> EmbedResult:
    """Embeddings of the (prompt, response) items, in input order.

    Identical items are embedded once (``dedupe``); items already in the cache are read from it;
    the rest are encoded, sorted by length, embedded in batches of ``batch_size`` and written to
    the cache every ``flush_every`` items (``use_cache=False`` keeps everything in memory).
    ``stats``: ``n_items``, ``n_unique``, ``n_cached``, ``n_embedded``, ``embed_seconds``,
    ``texts_per_second``, ``tokens_per_second`` (of the items embedded now), ``dim``.
    """
    spec = spec or EmbedSpec()
    if len(prompts) != len(responses):
        raise ConfigError(f"{len(prompts)} prompts but {len(responses)} responses")
    if batch_size < 1 or flush_every < 1:
        raise ConfigError("batch_size and flush_every must be >= 1")
    keys = [item_key(p, r) for p, r in zip(prompts, responses)]
    if dedupe:
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        todo_idx = list(first.values())
    else:
        todo_idx = list(range(len(keys)))
    n_unique = len(set(keys))
    cache = None
    if use_cache and dedupe:
        resolved = embedder.resolved() if embedder is not None else resolve_spec(spec)
        cache = EmbeddingCache(cache_dir or default_cache_dir(), resolved)
        todo_idx = [i for i in todo_idx if keys[i] not in cache]
    n_cached = (n_unique - len(todo_idx)) if cache is not None else 0
    memory: dict[int, np.ndarray] = {}
    t_embed, n_tokens = 0.0, 0
    if todo_idx:
        embedder = embedder or Embedder(spec)
        t0 = time.perf_counter()
        encoded = [embedder.encode(prompts[i], responses[i]) for i in todo_idx]
        order = sorted(range(len(todo_idx)), key=lambda j: len(encoded[j].input_ids))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), desc=f"embedding ({spec.model})", unit="text")
        buf_keys: list[str] = []
        buf_vecs: list[np.ndarray] = []
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            vecs = embedder.forward([encoded[j] for j in chunk])
            n_tokens += sum(len(encoded[j].input_ids) for j in chunk)
            for j, v in zip(chunk, vecs):
                if cache is None:
                    memory[todo_idx[j]] = v
                else:
                    buf_keys.append(keys[todo_idx[j]])
                    buf_vecs.append(v)
            if cache is not None and (len(buf_keys) >= flush_every or start + batch_size >= len(order)):
                cache.add(buf_keys, np.stack(buf_vecs))
                buf_keys, buf_vecs = [], []
            if bar is not None:
                bar.update(len(chunk))
                bar.set_postfix(texts_per_s=f"{(start + len(chunk)) / (time.perf_counter() - t0):.1f}")
        if bar is not None:
            bar.close()
        t_embed = time.perf_counter() - t0
    if cache is not None:
        out = cache.get(keys) if keys else np.empty((0, 0), np.float32)
        dim = out.shape[1] if out.size else 0
    else:
        dim = next(iter(memory.values())).shape[0] if memory else 0
        out = np.empty((len(keys), dim), dtype=np.float32)
        if dedupe:
            by_key = {keys[i]: v for i, v in memory.items()}
            for i, k in enumerate(keys):
                out[i] = by_key[k]
        else:
            for i, v in memory.items():
                out[i] = v
    n_embedded = len(todo_idx)
    stats = {
        "n_items": len(keys), "n_unique": n_unique, "n_cached": n_cached, "n_embedded": n_embedded,
        "embed_seconds": t_embed, "texts_per_second": (n_embedded / t_embed) if t_embed > 0 else None,
        "tokens_per_second": (n_tokens / t_embed) if t_embed > 0 else None, "dim": int(dim),
        "model": spec.model,
    }
    if log is not None and n_embedded:
        log(f"embedded {n_embedded} texts with {spec.model} in {t_embed:.1f} s "
            f"({stats['texts_per_second']:.1f} texts/s, {stats['tokens_per_second']:.0f} tokens/s); "
            f"{n_cached} from cache, {len(keys) - n_unique} duplicates embedded once")
    return EmbedResult(out, keys, stats, cache.dir if cache is not None else None)


def embed_table(table, spec: EmbedSpec | None = None, **kwargs) -> dict[str, Any]:
    """Embeddings of a ``PreferenceTable``'s chosen and rejected responses: ``{"chosen": [n, d],
    "rejected": [n, d], "chosen_key", "rejected_key", "stats"}``."""
    n = len(table)
    n_templates = sum(1 for t in table.template_kwargs() if t)
    if n_templates:  # the cache key is (prompt, response): a template would need to join it
        log.warning("%d pair(s) carry tools/chat_template_kwargs; embeddings do not use them (yet)", n_templates)
    res = embed_texts(list(table["prompt"]) * 2, list(table["chosen"]) + list(table["rejected"]), spec, **kwargs)
    return {"chosen": res.embeddings[:n], "rejected": res.embeddings[n:], "chosen_key": res.keys[:n],
            "rejected_key": res.keys[n:], "stats": res.stats, "cache_dir": res.cache_dir}
