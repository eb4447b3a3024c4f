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
    # Every number of a run config is finite: `lr: .nan` or `--set train.epochs=.inf` is an error
    # naming the field, like any value out of its declared range.
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


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
    # Item objectives (regression, correctness, scaled_bt: rewardlab.train.items): the pointwise
    # row layout and the attribute names (their order = the model's outputs); max_*_pairs count prompts.
    pointwise_layout: Literal["auto", "score", "correct", "attributes"] = "auto"
    attributes: list[str] | None = None
    # Within each source, the chosen response longer in half the pairs (data/balance.py; docs/robust.md):
    # resample the majority side or reweight (a `weight` column); the training table only.
    length_balance: Literal["resample", "reweight"] | None = None
    length_balance_by: Literal["source", "source_prefix", "all"] = "source"


class EnsembleConfig(_Strict):
    """``train.ensemble``: train ``members`` reward models with the one loop, each a normal run
    directory ``OUT/member-<i>``, and ``OUT/ensemble.json`` naming them (docs/ensembles.md).
    ``vary: seed``: member i runs with ``train.seed + i`` (head initialisation and data order);
    ``vary: order``: every member keeps ``train.seed`` (the same start: WARM can average them) and
    reads the data in the order of ``train.data_seed = train.seed + i``. ``aggregation``,
    ``lambda`` and ``normalize`` are the defaults written into ensemble.json for scoring."""

    members: int = Field(5, ge=2)
    vary: Literal["seed", "order"] = "seed"
    aggregation: Literal["mean", "min", "mean_minus_std"] = "mean"
    lambda_: float = Field(1.0, ge=0, alias="lambda")
    normalize: bool = True

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False, populate_by_name=True)


class TrainConfig(_Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)  # pairs per process per micro-batch
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, le=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    mixed_precision: Literal["no", "bf16"] = "no"
    seed: int = 42
    # The data order's seed (None: ``seed``), as transformers' TrainingArguments.data_seed; an
    # ensemble with vary: order sets it per member.
    data_seed: int | None = None
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
    ensemble: EnsembleConfig | None = None  # None: one model

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, v: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `no` as false: `mixed_precision: no` means "no".
        return "no" if v is False else v


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


class OdinConfig(_Strict):
    """ODIN (Chen et al. 2024; docs/robust.md): a length head beside the reward (quality) head; the
    objective on their sum plus ``length_weight`` · (|ρ(r_Q, len)| + 1 − ρ(r_L, len)) and
    ``ortho_weight`` · |cos(w_Q, w_L)|. The reward at inference is the quality head alone."""

    length_weight: float = Field(1.0, ge=0)
    ortho_weight: float = Field(1.0, ge=0)


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
    odin: OdinConfig | None = None  # ODIN's length head and penalties (None: one head)
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


def yaml_error_text(err: yaml.YAMLError, *, with_line: bool = True) -> str:
    """A YAML error on one line: where (line, column) and what is wrong (pure)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
    context = getattr(err, "context", None)
    where = ""
    if mark is not None:
        where = (f"line {mark.line + 1}, column {mark.column + 1}: " if with_line else f"column {mark.column + 1}: ")
    return f"{where}{problem}" + (f" ({context})" if context else "")


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``1e-5``, ``true``, ``[a, b]``)."""
    tree = copy.deepcopy(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({yaml_error_text(e, with_line=False)}); "
                              "quote it to pass text") from None
        _set_path(tree, key.strip(), value)
    return tree


def format_validation(err: ValidationError, source: str, what: str = "configuration") -> str:
    """A pydantic error on one line: the source, then each field path, what it expects and the
    value given (``c.yaml: invalid configuration: train.max_steps: Input should be greater than 0,
    got -5``)."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<top level>"
        text = f"{loc}: {e['msg']}"
        if e["type"] not in ("missing", "extra_forbidden") and "input" in e and not isinstance(e["input"], (dict, list)):
            text += f", got {e['input']!r}"
        parts.append(text)
    return f"{source}: invalid {what}: " + "; ".join(parts)


def parse_config(tree: dict, source: str = "<config>") -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(format_validation(e, source)) from None


def read_text_file(path: str | Path, what: str = "config", error: type[Exception] = ConfigError) -> str:
    """A UTF-8 text file an option or a field names; errors (``error``) say which file and what is
    wrong with it: missing, a directory, or not UTF-8 (the line and column of the first bad byte)."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a directory; expected a {what} file")
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {column}); "
                    f"save the {what} file as UTF-8") from None


def read_yaml_file(path: str | Path, what: str = "config", error: type[Exception] = ConfigError) -> Any:
    """A YAML file, read with :func:`read_text_file`; invalid YAML is one line naming its place."""
    text = read_text_file(path, what, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {yaml_error_text(e)}") from None


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict:
    """A YAML file whose top level is a mapping, with errors naming the file."""
    tree = read_yaml_file(path, what) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return tree


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML file (or start empty), apply overrides, validate."""
    tree = read_yaml_mapping(path) if path is not None else {}
    source = str(path) if path is not None else "<overrides>"
    return parse_config(apply_overrides(tree, overrides or []), source)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False)
