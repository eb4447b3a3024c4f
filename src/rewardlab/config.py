"""Typed run configuration: YAML files, ``--set key=value`` overrides, validation with clear errors.

Field names follow TRL where TRL has one (``learning_rate`` is ``lr`` here for brevity; ``max_length``,
``gradient_accumulation_steps`` -> ``grad_accum``, ``center_rewards_coefficient`` -> objective ``center``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rewardlab.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(_Strict):
    name_or_path: str = "minilm"
    pooling: Literal["auto", "last", "cls", "mean", "native"] = "auto"
    max_length: int = Field(256, gt=8)
    overlength: Literal["truncate_prompt_left", "truncate_right", "drop"] = "truncate_prompt_left"
    render: Literal["auto", "chat", "pair", "concat"] = "auto"
    padding_side: Literal["right", "left"] = "right"
    dtype: Literal["float32", "bfloat16"] = "float32"
    gradient_checkpointing: bool = False


class DataConfig(_Strict):
    train: str | list[str]
    validation: str | list[str] | None = None
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_salt: str = "rewardlab"
    # What keeps rows together in the split (and in strength folds): None = the prompt; a column
    # name; or {field, regex[, normalize]} (data.splits.group_keys). HumanEvalPack: its problem.
    split_key: str | dict | None = None
    format: str = "auto"
    prompt_key: str = "prompt"
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    on_error: Literal["raise", "skip"] = "raise"
    max_train_pairs: int | None = Field(None, gt=0)
    max_val_pairs: int | None = Field(None, gt=0)


class TrainConfig(_Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)  # pairs per process per micro-batch
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, le=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16"] = "no"
    seed: int = 42
    eval_every: int = Field(100, gt=0)
    save_every: int = Field(200, gt=0)
    save_total_limit: int = Field(2, gt=0)
    log_every: int = Field(10, gt=0)
    eval_batch_size: int = Field(32, gt=0)
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = []
    reward_stats_max_pairs: int = Field(2000, ge=0)
    progress: bool = True
    # Throughput (docs/speed.md): batches of similar length; one flat row per micro-batch without
    # padding, or with each pair's prompt encoded once (decoders).
    group_by_length: bool = False
    # Every nn.Dropout to p = 0, as TRL's RewardTrainer by default: the papers' reward models are
    # dropout-free decoders, and with MiniLM's hidden dropout 0.1 NormBT's ||h_c - h_r|| is mostly
    # dropout noise (0.43 vs 0.05 on HumanEvalPack, FIDELITY.md 000). Also a quarter of a MiniLM step.
    disable_dropout: bool = True
    packing: Literal["auto", "none", "padding_free", "shared_prompt"] = "auto"


class MetaRMConfig(_Strict):
    """MetaRM (METHODS §4; docs/objectives.md): before each optimizer step (every ``every``),
    θ′ = θ + η ∇J(θ) on a meta batch of ``meta_batch_prompts`` prompts (per process) of ``data``,
    each with up to ``max_responses`` of its distinct responses; the preference gradient is then
    taken at θ′ and applied to θ. ``data`` is read like ``data.train`` (chosen and rejected pooled
    per prompt; labels unused)."""

    data: str | list[str]
    eta: float = Field(1e-5, ge=0)
    meta_batch_prompts: int = Field(4, gt=0)
    max_responses: int = Field(4, ge=2)
    every: int = Field(1, gt=0)
    format: str = "auto"
    prompt_key: str = "prompt"
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    on_error: Literal["raise", "skip"] = "raise"


class LoraConfig(_Strict):
    """LoRA adapters through peft (models/lora.py); names follow TRL's ``lora_*`` options.
    ``auto`` targets every linear layer of the backbone and saves the reward head in full."""

    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["auto"] | list[str] = Field("auto", min_length=1)
    modules_to_save: Literal["auto"] | list[str] = "auto"
    export: Literal["merged", "adapter", "both"] = "merged"


class CriticConfig(_Strict):
    """Critic-RM joint training and critique-averaged scoring (METHODS §5; docs/critic_rm.md).

    Loss ``λ(t) · L_SFT(critique | x, y) + (1 − λ(t)) · L_reward`` (the reward part is ``objective``),
    λ from ``lambda_start`` at the first step to ``lambda_end`` at the last (``constant``: always
    ``lambda_start``). The critiques are read from ``critique_chosen_key`` / ``critique_rejected_key``
    (one string per response); ``sft_on`` names the sides whose critique tokens are labelled. ``ask``
    is the user turn requesting the critique (null: ``rewardlab.critic.prompts.CRITIQUE_ASK``).
    ``critiques`` (m), ``seed``, ``temperature``, ``top_p`` and ``max_new_tokens`` say how the trained
    model writes critiques when it scores; they are saved with the model."""

    lambda_schedule: Literal["constant", "linear", "cosine"] = "linear"
    lambda_start: float = Field(0.8, ge=0, le=1)
    lambda_end: float = Field(0.2, ge=0, le=1)
    sft_on: Literal["both", "chosen", "rejected", "none"] = "both"
    critique_chosen_key: str = "critique_chosen"
    critique_rejected_key: str = "critique_rejected"
    ask: str | None = None
    critiques: int = Field(1, gt=0)
    seed: int = 0
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(256, gt=0)


class RunConfig(_Strict):
    output_dir: str = "runs/default"
    model: ModelConfig = ModelConfig()
    data: DataConfig
    objective: dict[str, Any] = {"name": "bt"}
    aux: list[dict[str, Any]] = []
    train: TrainConfig = TrainConfig()
    metarm: MetaRMConfig | None = None  # None: plain training, nothing changes
    lora: LoraConfig | None = None  # None: full fine-tuning
    critic: CriticConfig | None = None  # Critic-RM joint critique + reward training (None: plain reward model)
    # Written by rewardlab into OUT/config.yaml (versions, git commit); ignored on input.
    run: dict[str, Any] | None = None

    @field_validator("objective")
    @classmethod
    def _objective_named(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "name" not in v:
            raise ValueError("objective needs a 'name' (e.g. {name: bt})")
        return v


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        if not isinstance(node.get(k, {}), dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a section")
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``1e-5``, ``true``, ``[a, b]``)."""
    tree = copy.deepcopy(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(raw))
    return tree


def format_validation(err: ValidationError, source: str, what: str = "configuration") -> str:
    """A pydantic error as readable lines: the source, then one line per field path."""
    lines = [f"{source}: invalid {what}"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_config(tree: dict, source: str = "<config>") -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(format_validation(e, source)) from None


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict:
    """A YAML file whose top level is a mapping, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return tree


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML file (or start empty), apply overrides, validate."""
    tree = read_yaml_mapping(path) if path is not None else {}
    source = str(path) if path is not None else "<overrides>"
    return parse_config(apply_overrides(tree, overrides or []), source)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
