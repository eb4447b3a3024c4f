"""LoRA reward models through ``peft``: wrap, check, count, export, reload.

The training loop calls :func:`apply` once on a fresh :class:`RewardModel` (config section
``lora:``) and :func:`export` once at the end; nothing else in the loop knows about LoRA. What the
peers' users trip over, and what this module checks or handles:

- **The reward head is trained and saved.** It is new and random, so a frozen head learns nothing
  (OpenRLHF #682/#1039, LLaMA-Factory #6934/#7403). The head (``score`` on decoders, ``classifier``
  on encoders, plus the BERT ``pooler`` when the pooling reads it) goes into peft's
  ``modules_to_save``: trained in full, saved inside the adapter. A configuration that would leave
  it frozen is a ``ConfigError`` naming ``lora.modules_to_save``.
- **Target modules that match nothing** are an error naming ``lora.target_modules`` and listing
  the linear layers there are (peft alone reports one set for all names).
- **Gradient checkpointing**: frozen embeddings give checkpointed blocks inputs without grad, so
  with reentrant checkpointing no gradient reaches the adapters, and under DDP reentrant
  checkpointing fails (TRL #831/#835). :func:`apply` switches to ``use_reentrant=False`` and makes
  the input embeddings' output require grad.
- **The distinct pad token** (``backbone.ensure_distinct_pad``) grew a decoder's vocabulary by one
  row. The adapter does not carry the embedding matrix (it would be most of the adapter); the pad
  row is never read into a reward (padding is masked, and the reward is read at the last real
  token), so loading resizes the *original* base to the adapter's tokenizer and its value does not
  matter (:func:`prepare_base`; tested to 1e-5 on a randomly initialised row).

Exports: ``merged`` (default) merges the adapters into the weights and writes the plain
``AutoModelForSequenceClassification`` directory :meth:`RewardModel.save_pretrained` writes;
``adapter`` writes a peft adapter directory (``adapter_config.json``, ``adapter_model.safetensors``
with the trained head inside) plus the tokenizer and ``rewardlab.json``; ``both`` writes the merged
model to ``OUT/model`` and the adapter to ``OUT/adapter``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from rewardlab.errors import ConfigError
from rewardlab.models.backbone import enable_checkpointing
from rewardlab.runinfo import parameter_counts

log = logging.getLogger(__name__)

_PEFT = "_peft_model"  # the PeftModel handle on a RewardModel (not a registered submodule: see apply)


# ---------------------------------------------------------------------- what to wrap
def _backbone_name(hf_model) -> str:
    return hf_model.base_model_prefix


def head_modules(hf_model) -> list[str]:
    """Names of the reward head: the top-level children besides the backbone that hold weights
    (``score``; ``classifier``; ``classification_head`` of BART-like models)."""
    backbone = _backbone_name(hf_model)
    return [name for name, child in hf_model.named_children()
            if name != backbone and any(True for _ in child.parameters())]


def default_modules_to_save(hf_model, pooling: str) -> list[str]:
    """The reward head, and the backbone's pooler when the pooling reads it (``cls``, ``native``)."""
    names = head_modules(hf_model)
    base = getattr(hf_model, _backbone_name(hf_model), None)
    if pooling in ("cls", "native") and getattr(base, "pooler", None) is not None:
        names.append("pooler")
    return names


def _matches(module_name: str, key: str) -> bool:
    # peft's rule for a list of target names: the full name, or its dotted suffix.
    return module_name == key or module_name.endswith("." + key)


def _linear_like(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return type(module).__name__ == "Conv1D"  # GPT-2's linear layers (transformers.pytorch_utils.Conv1D)


def default_target_modules(hf_model, modules_to_save: list[str]) -> list[str]:
    """Every linear layer of the backbone (attention and MLP projections), outside the modules
    saved in full, as the shortest name suffixes that select exactly those layers.

    All linear layers rather than peft's per-architecture q/v default: QLoRA (Dettmers et al.
    2023) found that adapting every linear layer is what matches full fine-tuning. Llama:
    ``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj``; BERT: ``query key value
    output.dense intermediate.dense`` (``dense`` alone would also take the pooler's).
    """
    backbone = _backbone_name(hf_model)
    names = [n for n, m in hf_model.named_modules() if _linear_like(m)]
    wanted = [n for n in names if n.startswith(backbone + ".") and not _inside(n, modules_to_save)]
    others = [n for n in names if n not in wanted]
    keys: list[str] = []
    for n in wanted:
        if any(_matches(n, k) for k in keys):
            continue
        parts = n.split(".")
        for i in range(len(parts) - 1, -1, -1):  # shortest suffix that selects no unwanted layer
            key = ".".join(parts[i:])
            if not key[0].isdigit() and not any(_matches(o, key) for o in others):
                keys.append(key)
                break
    return keys


def _inside(name: str, keys: list[str]) -> bool:
    """Whether module ``name`` is, or lies inside, a module that one of ``keys`` selects."""
    parts = name.split(".")
    return any(_matches(".".join(parts[:i]), k) for i in range(1, len(parts) + 1) for k in keys)


def _check_targets(hf_model, targets: list[str]) -> None:
    names = [n for n, _ in hf_model.named_modules()]
    missing = [t for t in targets if not any(_matches(n, t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in hf_model.named_modules() if _linear_like(m)})
        verb = "matches" if len(missing) == 1 else "match"
        raise ConfigError(f"lora.target_modules: {', '.join(repr(t) for t in missing)} {verb} no module of "
                          f"{type(hf_model).__name__}; its linear layers are named {', '.join(linear)}")


def _check_modules_to_save(hf_model, modules_to_save: list[str], pooling: str) -> None:
    names = [n for n, _ in hf_model.named_modules()]
    missing = [m for m in modules_to_save if not any(_matches(n, m) for n in names)]
    if missing:
        verb = "matches" if len(missing) == 1 else "match"
        raise ConfigError(f"lora.modules_to_save: {', '.join(repr(m) for m in missing)} {verb} no module of "
                          f"{type(hf_model).__name__}")
    frozen = [h for h in head_modules(hf_model) if h not in modules_to_save]
    if frozen:
        raise ConfigError(
            f"lora.modules_to_save: the reward head {', '.join(repr(h) for h in frozen)} would stay frozen at its "
            f"random initialisation; keep it in modules_to_save (default here: "
            f"{default_modules_to_save(hf_model, pooling)})")


def _widths(module: nn.Module) -> tuple[int, int]:
    """(in, out) features of a linear-like layer (GPT-2's Conv1D stores its weight transposed)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape
    return rows, cols


def _check_rank(hf_model, targets: list[str], r: int) -> None:
    """The rank of B·A is at most min(in, out) of the layer it adapts: a larger ``lora.r`` only
    allocates (r = 10^12 asked peft for petabytes). Checked before peft builds anything."""
    layers = [(n, _widths(m)) for n, m in hf_model.named_modules()
              if _linear_like(m) and any(_matches(n, t) for t in targets)]
    if not layers:
        return
    name, (n_in, n_out) = min(layers, key=lambda item: min(item[1]))
    if r > min(n_in, n_out):
        raise ConfigError(f"lora.r={r} exceeds the width of the layers it adapts: the narrowest, {name}, maps "
                          f"{n_in} to {n_out} features, so r can be at most {min(n_in, n_out)}")


def check_rank(name_or_path: str, cfg, pooling: str = "auto") -> None:
    """``lora.r`` against the widths of the layers it would adapt, before any work: the backbone is
    built on the meta device (its config only: no weights read, no memory). The same check runs
    again on the real model in :func:`peft_config`; a backbone whose skeleton cannot be built this
    way (custom code) is left to that one."""
    from rewardlab.models.locate import resolve

    path = resolve(name_or_path, option="model.name_or_path")
    try:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.from_pretrained(path, num_labels=1)
        with torch.device("meta"):
            skeleton = AutoModelForSequenceClassification.from_config(config)
    except Exception as e:  # noqa: BLE001 - the check on the real model still runs
        log.debug("lora.r not checked early (%s: %s)", type(e).__name__, e)
        return
    to_save = default_modules_to_save(skeleton, pooling) if cfg.modules_to_save == "auto" else list(cfg.modules_to_save)
    targets = default_target_modules(skeleton, to_save) if cfg.target_modules == "auto" else list(cfg.target_modules)
    _check_rank(skeleton, targets, cfg.r)


# ---------------------------------------------------------------------- wrapping
def peft_config(model, cfg):
    """The ``peft.LoraConfig`` for a RewardModel and a ``lora:`` section (names resolved, checked)."""
    try:
        import peft
    except ImportError:  # pragma: no cover - the [lora] extra
        raise ConfigError("lora: needs the peft package (pip install 'rewardlab[lora]')") from None
    hf = model.model
    pooling = model.settings.pooling
    to_save = default_modules_to_save(hf, pooling) if cfg.modules_to_save == "auto" else list(cfg.modules_to_save)
    _check_modules_to_save(hf, to_save, pooling)
    targets = default_target_modules(hf, to_save) if cfg.target_modules == "auto" else list(cfg.target_modules)
    _check_targets(hf, targets)
    modules = [n for n, _ in hf.named_modules()]
    clash = [t for t in targets if any(_matches(n, t) and _inside(n, to_save) for n in modules)]
    if clash:
        raise ConfigError(f"lora.target_modules: {clash} are in lora.modules_to_save (trained in full already)")
    _check_rank(hf, targets, cfg.r)
    return peft.LoraConfig(task_type="SEQ_CLS", r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                           target_modules=targets, modules_to_save=to_save)


def apply(model, cfg) -> None:
    """Put LoRA adapters on ``model`` (a :class:`RewardModel`) in place, as ``cfg`` (the ``lora:``
    section) says: only the adapters and ``modules_to_save`` (the head) stay trainable.

    ``model.model`` stays the same Hugging Face object (peft swaps its layers in place), so the
    reward model's forward, pooling and the loop see no difference. The ``PeftModel`` wrapper is
    kept for the export but not registered as a submodule: its parameters are the same tensors,
    and registering them twice would duplicate every weight in checkpoints.
    """
    import peft

    hf = model.model
    config = peft_config(model, cfg)
    try:
        wrapped = peft.get_peft_model(hf, config)
    except ValueError as e:  # peft's own checks (e.g. a target of a type LoRA cannot adapt)
        raise ConfigError(f"lora: {e}") from None
    object.__setattr__(model, _PEFT, wrapped)
    if any(getattr(m, "gradient_checkpointing", False) for m in hf.modules()):
        # Reentrant checkpointing passes no gradient to adapters behind frozen embeddings and breaks
        # under DDP (TRL #831/#835): re-enable non-reentrant, and make the embeddings' output need grad.
        enable_checkpointing(hf, use_reentrant=False)
        hf.enable_input_require_grads()
    counts = parameter_counts(model)
    log.info("LoRA r=%d on %s; trainable %d of %d parameters (%.2f%%); saved in full: %s", cfg.r,
             ", ".join(config.target_modules), counts["trainable"], counts["total"],
             100 * counts["trainable"] / max(counts["total"], 1), ", ".join(saved_modules(model)))


def peft_model(model):
    """The ``PeftModel`` :func:`apply` made for ``model`` (None when it has no adapters)."""
    return model.__dict__.get(_PEFT)


def saved_modules(model) -> list[str]:
    """The modules peft trains and saves in full (wrapped in ``ModulesToSaveWrapper``)."""
    return [n for n, m in model.model.named_modules() if type(m).__name__ == "ModulesToSaveWrapper"]


# ---------------------------------------------------------------------- export
def adapter_state(model) -> dict[str, torch.Tensor]:
    """What the adapter file holds: the LoRA matrices and the modules saved in full (the head),
    never the embedding matrix (see the module docstring)."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(peft_model(model), save_embedding_layers=False)


def save_adapter(model, directory: str | Path) -> Path:
    """A peft adapter directory: adapter files, the tokenizer (with its pad token), rewardlab.json."""
    pm = peft_model(model)
    if pm is None:
        raise ConfigError("this reward model has no LoRA adapters to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    s = model.settings
    if s.render == "chat":
        s.chat_template = model.tokenizer.chat_template
    pm.save_pretrained(str(directory), save_embedding_layers=False, safe_serialization=True)
    model.tokenizer.padding_side = s.padding_side
    model.tokenizer.save_pretrained(directory)
    emb = model.model.get_input_embeddings()
    info = {**asdict(s), "adapter": {"vocab_size": int(emb.num_embeddings), "pad_token_id": model.pad_id,
                                     "base_model_name_or_path": pm.peft_config["default"].base_model_name_or_path}}
    (directory / "rewardlab.json").write_text(json.dumps(info, indent=2) + "\n")
    return directory


def export(model, cfg, directory: str | Path) -> dict:
    """Write the trained LoRA model as ``cfg.export`` says; returns what summary.json records.

    ``merged`` merges in place (the model is not used with adapters afterwards) and writes the
    plain Hugging Face directory; ``adapter`` writes the adapter directory there instead; ``both``
    writes the merged model to ``directory`` and the adapter beside it (``../adapter``).
    """
    directory = Path(directory)
    state = adapter_state(model)
    info = {"r": cfg.r, "alpha": cfg.alpha, "export": cfg.export,
            "target_modules": sorted(peft_model(model).peft_config["default"].target_modules),
            "modules_to_save": saved_modules(model),
            "adapter_params": int(sum(t.numel() for t in state.values())),
            "adapter_bytes": int(sum(t.numel() * t.element_size() for t in state.values()))}
    if cfg.export in ("adapter", "both"):
        adir = directory if cfg.export == "adapter" else directory.parent / "adapter"
        save_adapter(model, adir)
        info["adapter_dir"] = str(adir)
        info["adapter_file_bytes"] = (adir / "adapter_model.safetensors").stat().st_size
    if cfg.export in ("merged", "both"):
        merge(model)
        model.save_pretrained(directory)
    return info


def merge(model) -> None:
    """Merge the adapters into the weights, in place: ``model`` becomes a plain reward model."""
    pm = peft_model(model)
    if pm is None:
        return
    model.model = pm.merge_and_unload()
    for attr in ("peft_config", "_hf_peft_config_loaded"):  # peft's marks on the HF model: not saved
        model.model.__dict__.pop(attr, None)
    model.__dict__.pop(_PEFT)


# ---------------------------------------------------------------------- reload
def prepare_base(base, tokenizer):
    """Make an *original* base ``AutoModelForSequenceClassification`` ready for the adapter: the
    embedding grown to the adapter tokenizer's vocabulary (the added pad token; its row's value is
    never read into a reward) and the pad token id that plain transformers' last-token lookup uses.
    The same two lines work without rewardlab (README, "LoRA")."""
    if base.get_input_embeddings().num_embeddings < len(tokenizer):
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    base.config.pad_token_id = tokenizer.pad_token_id
    return base
