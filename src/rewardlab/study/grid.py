"""Study configuration: a cartesian grid over embedding model, objective, head, β, quantity,
pairing, selection and seed (METHODS §3), and the stable id of each cell.

A study YAML (see configs/study_example.yaml)::

    output_dir: runs/study
    pool: {data: [...], golden: {kind: reward_model, model: runs/golden/model}, test_fraction: 0.2}
    embeddings: {smollm2: {model: smollm2-135m, max_length: 512}}
    heads: {mlp: {kind: mlp, members: 10}, linear: {kind: linear, members: 10}}
    grid: {embedding: [smollm2], objective: [bt, classification], head: [mlp, linear],
           beta: [0.5, 1, 3, 10, -1], quantity: [10000], pairing: [same_prompt, cross_prompt],
           selection: [random], seed: [0, 1]}

A grid value that names no entry of ``embeddings``/``heads`` stands for defaults: an embedding
model name or alias with default settings, a head kind (``linear``, ``mlp``, ``gbdt``) with the
``head`` defaults. An objective is a registry name or ``{name: ..., params...}``. A cell's id is a
hash of its values and of every setting that decides its result (the resolved embedding, head,
pool, simulation and evaluation settings), so a changed setting reruns the affected cells and
nothing else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rewardlab.config import apply_overrides, format_validation, read_yaml_mapping
from rewardlab.errors import ConfigError
from rewardlab.heads import HeadConfig

GRID_KEYS = ("embedding", "objective", "head", "beta", "quantity", "pairing", "selection", "seed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class GoldenConfig(_Strict):
    kind: Literal["reward_model", "embedding_head", "column", "labels"] = "reward_model"
    model: str | None = None
    batch_size: int = Field(16, gt=0)
    train_data: str | list[str] | None = None
    embedding: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    objective: str | dict[str, Any] = "bt"
    seed: int = 0


class PoolConfig(_Strict):
    """The golden setting: a pool file (``path``) or data to build one from (``data`` + ``golden``)."""

    path: str | None = None
    data: str | list[str] | None = None
    golden: GoldenConfig | None = None
    min_responses: int = Field(2, ge=2)
    max_prompts: int | None = Field(None, gt=0)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_salt: str = "rewardlab"


class EmbeddingConfig(_Strict):
    """An ``EmbedSpec`` plus extraction settings, or ``path``: precomputed item vectors (.npy,
    one row per pool item, in pool order)."""

    model: str = "minilm"
    pooling: Literal["auto", "last", "cls", "mean"] = "auto"
    layer: int = -1
    max_length: int = Field(512, ge=8)
    render: Literal["auto", "chat", "pair", "concat"] = "auto"
    overlength: Literal["truncate_prompt_left", "truncate_right", "drop"] = "truncate_prompt_left"
    dtype: Literal["float32", "bfloat16"] = "float32"
    batch_size: int = Field(16, gt=0)
    path: str | None = None

    def spec(self) -> dict[str, Any]:
        return self.model_dump(exclude={"batch_size", "path"})


class SimulationConfig(_Strict):
    """The annotator's noise scale and sparse pairing (``rewardlab.data.simulate``): ``scale``
    ``std``/``global`` (std of all golden rewards), a number (fixed) or ``per_prompt``;
    ``max_per_item`` caps the pairs an item occurs in; ``each_prompt_once`` is the paper's
    one-comparison-per-prompt schedule (a cell's quantity may not exceed the training prompts)."""

    scale: float | Literal["std", "global", "per_prompt"] = "std"
    max_per_item: int | None = Field(None, ge=1)
    each_prompt_once: bool = False

    @field_validator("scale")
    @classmethod
    def _positive_scale(cls, v: Any) -> Any:
        if not isinstance(v, str) and not v > 0:
            raise ValueError("a fixed scale must be > 0")
        return v


class EvalConfig(_Strict):
    """``ties``: how a tied prediction counts in ``pairwise_accuracy`` (``wrong``, ``half``,
    ``drop``); every row also carries ``pairwise_accuracy_half`` and ``pairwise_tied_fraction``."""

    best_of_n: list[Annotated[int, Field(ge=1)]] = Field([1, 2, 3, 4, 5, 6, 7], min_length=1)
    n_perm: int = Field(100, gt=0)
    # Over-optimisation curve (eval/overopt.py): best-of-N with replacement, N beyond the pool size.
    overopt_n: list[Annotated[int, Field(ge=1)]] = Field([1, 2, 4, 8, 16, 32, 64, 128, 256, 1024], min_length=1)
    ties: Literal["wrong", "half", "drop"] = "wrong"


class GridConfig(_Strict):
    """Every axis lists at least one value: an empty axis would make a grid of no cells."""

    embedding: list[str] = Field(min_length=1)
    objective: list[str | dict[str, Any]] = Field(["bt"], min_length=1)
    head: list[str] = Field(["mlp"], min_length=1)
    beta: list[float] = Field([1.0], min_length=1)
    quantity: list[int] = Field([10_000], min_length=1)
    pairing: list[Literal["same_prompt", "cross_prompt"]] = Field(["same_prompt"], min_length=1)
    selection: list[Literal["random", "similar", "diverse"]] = Field(["random"], min_length=1)
    seed: list[int] = Field([0], min_length=1)

    @field_validator("*", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return v if isinstance(v, list) else [v]

    @field_validator("quantity")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(q < 1 for q in v):
            raise ValueError("quantities must be >= 1")
        return v


class StudyConfig(_Strict):
    name: str = "study"
    output_dir: str = "runs/study"
    pool: PoolConfig
    embeddings: dict[str, EmbeddingConfig] = {}
    cache_dir: str | None = None
    head: HeadConfig = HeadConfig()
    heads: dict[str, HeadConfig] = {}
    simulation: SimulationConfig = SimulationConfig()
    eval: EvalConfig = EvalConfig()
    grid: GridConfig
    threads_per_worker: int | None = Field(None, gt=0)

    def embedding(self, name: str) -> EmbeddingConfig:
        return self.embeddings.get(name) or EmbeddingConfig(model=name)

    def head_config(self, name: str) -> HeadConfig:
        if name in self.heads:
            return self.heads[name]
        if name in ("linear", "mlp", "gbdt"):
            return self.head.model_copy(update={"kind": name})
        raise ConfigError(f"head {name!r} is neither in 'heads' ({', '.join(self.heads) or 'none'}) "
                          f"nor a kind (linear, mlp, gbdt)")


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Read a study YAML, apply ``key.sub=value`` overrides, validate."""
    tree = read_yaml_mapping(path, what="study")
    return parse_study_config(apply_overrides(tree, overrides or []), str(path))


def parse_study_config(tree: dict, source: str = "<study>") -> StudyConfig:
    try:
        cfg = StudyConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(format_validation(e, source, what="study configuration")) from None
    if cfg.pool.path is None and (cfg.pool.data is None or cfg.pool.golden is None):
        raise ConfigError(f"{source}: pool needs 'path' (a pool file) or both 'data' and 'golden'")
    for name in cfg.grid.head:
        cfg.head_config(name)
    from rewardlab.objectives import build_loss

    for obj in cfg.grid.objective:
        build_loss(obj)  # unknown names and bad parameters fail here, before any work
    return cfg


def canonical_objective(obj: str | dict[str, Any]) -> dict[str, Any]:
    return {"name": obj} if isinstance(obj, str) else dict(obj)


def objective_label(obj: str | dict[str, Any]) -> str:
    """``bt`` or ``normbt(beta=0.9)``: a short, stable name for tables and plots."""
    o = canonical_objective(obj)
    params = ",".join(f"{k}={o[k]}" for k in sorted(o) if k != "name")
    return f"{o['name']}({params})" if params else o["name"]


def cells(cfg: StudyConfig) -> list[dict[str, Any]]:
    """Every cell of the grid (cartesian product, in grid-key order), each with its ``cell_id``."""
    grid = cfg.grid
    out = []
    for values in itertools.product(*(getattr(grid, k) for k in GRID_KEYS)):
        cell = dict(zip(GRID_KEYS, values))
        cell["objective"] = canonical_objective(cell["objective"])
        cell["beta"] = float(cell["beta"])
        cell["cell_id"] = cell_id(cfg, cell)
        out.append(cell)
    ids = [c["cell_id"] for c in out]
    if len(set(ids)) != len(ids):
        raise ConfigError("the grid repeats a cell (a value listed twice?)")
    return out


# Settings added after studies were run, left out of a cell's id while at their defaults so that
# those studies' finished cells keep their ids (and are not rerun).
_LATER = {"head": {"early_stopping": True}, "simulation": {"max_per_item": None, "each_prompt_once": False},
          "eval": {"ties": "wrong"}}


def _settings_dump(model: BaseModel, part: str) -> dict[str, Any]:
    out = model.model_dump()
    for key, default in _LATER[part].items():
        if out.get(key, default) == default:
            out.pop(key, None)
    return out


def cell_settings(cfg: StudyConfig, cell: dict[str, Any]) -> dict[str, Any]:
    """Everything besides the cell's values that decides its result."""
    return {
        "embedding": cfg.embedding(cell["embedding"]).model_dump(exclude={"batch_size"}),
        "head": _settings_dump(cfg.head_config(cell["head"]), "head"),
        "pool": cfg.pool.model_dump(),
        "simulation": _settings_dump(cfg.simulation, "simulation"),
        "eval": _settings_dump(cfg.eval, "eval"),
    }


def cell_id(cfg: StudyConfig, cell: dict[str, Any]) -> str:
    values = {k: cell[k] for k in GRID_KEYS}
    blob = json.dumps({"cell": values, "settings": cell_settings(cfg, cell)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
