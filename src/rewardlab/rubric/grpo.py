"""``rewardlab grpo RECIPE.yaml``: a TRL ``GRPOTrainer`` run with a rubric reward, then held-out scores.

The recipe (``configs/grpo_focal.yaml``)::

    output_dir: runs/grpo_focal
    model: smollm2-135m               # the policy: alias, directory or Hub name
    rubric: configs/rubrics/short_answers.yaml
    prompts: {train: FILE, eval: FILE, eval_fraction: 0.2, max_train: 64, max_eval: 32}
    aggregator: {name: focal, gamma: 1.0, saturation: ema, ema_beta: 0.9, level: reward}
    grpo: {num_generations: 4, max_completion_length: 48, ...}   # trl.GRPOConfig fields
    eval: {max_new_tokens: 48, before: true}
    seed: 0

Prompt files are JSONL/JSON/CSV/Parquet with a ``prompt`` column (text or chat messages); a text
prompt becomes one user message, so TRL renders it with the policy's chat template. Without
``prompts.eval`` a prompt-hash split holds ``eval_fraction`` out. Precision is explicit: the policy
is loaded in float32 and ``bf16``/``fp16``/``gradient_checkpointing`` default to false (TRL's
GRPOConfig defaults to bf16 and gradient checkpointing, which CPUs without bf16 units run several
times slower); what was used is recorded in ``summary.json``. The GRPOConfig keys that realise the
aggregator (``RubricReward.grpo_config_kwargs``) are set by the recipe; setting them differently in
``grpo`` is an error. After training, the held-out prompts are answered greedily by the trained
policy (through :mod:`rewardlab.generate`) and scored by the rubric: per-criterion means, the
weighted mean and the worst criterion (``eval.before: true`` also scores the initial policy).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rewardlab.errors import ConfigError, DataError
from rewardlab.eval.drift import DriftMonitor


RESULTS = ("summary.json", "model/")  # what a finished run leaves in output_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class PromptsConfig(_Strict):
    train: str
    eval: str | None = None
    eval_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_train: int | None = Field(None, gt=0)
    max_eval: int | None = Field(None, gt=0)


class AggregatorConfig(_Strict):
    name: Literal["weighted_sum", "min", "gdpo", "focal"] = "focal"
    gamma: float = Field(1.0, ge=0)
    saturation: Literal["batch", "group", "ema"] = "batch"
    ema_beta: float = Field(0.9, ge=0, lt=1)
    level: Literal["reward", "advantage"] = "reward"


class EvalConfig(_Strict):
    max_new_tokens: int = Field(64, gt=0)
    before: bool = False
    batch_size: int = Field(8, gt=0)


class GrpoRanges(BaseModel):
    """The ranges of the ``trl.GRPOConfig`` fields a recipe's ``grpo:`` section sets most, checked
    when the recipe is read (TRL itself reads ``max_steps <= 0`` as "train by epochs" and would
    accept ``max_steps: -5`` without a word). Other fields go to ``GRPOConfig`` unchanged."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    max_steps: int | None = Field(None, ge=1)
    num_train_epochs: float | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    per_device_train_batch_size: int | None = Field(None, ge=1)
    gradient_accumulation_steps: int | None = Field(None, ge=1)
    num_generations: int | None = Field(None, ge=2)
    max_completion_length: int | None = Field(None, ge=1)
    max_prompt_length: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    beta: float | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, le=1)
    weight_decay: float | None = Field(None, ge=0)
    max_grad_norm: float | None = Field(None, gt=0)


class GrpoRecipe(_Strict):
    output_dir: str
    model: str = "smollm2-135m"
    rubric: str
    prompts: PromptsConfig
    aggregator: AggregatorConfig = AggregatorConfig()
    grpo: dict[str, Any] = Field(default_factory=dict)
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    save_model: bool = True
    # a checkpoint (policy, optimiser, the aggregator's EMA state) every N steps under
    # OUT/trainer/; `rewardlab grpo --resume` continues from the last one (0 = none)
    checkpoint_every: int = Field(0, ge=0)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> GrpoRecipe:
    """Read a recipe YAML, apply ``key.sub=value`` overrides, validate (errors name the file and key)."""
    from rewardlab.config import apply_overrides, format_validation, read_yaml_mapping

    data = apply_overrides(read_yaml_mapping(path, what="GRPO recipe"), overrides or [])
    try:
        recipe = GrpoRecipe.model_validate(data)
        GrpoRanges.model_validate(recipe.grpo)
    except ValidationError as err:
        if err.title == GrpoRanges.__name__:
            err = ValidationError.from_exception_data(err.title, [{**e, "loc": ("grpo", *e["loc"])} for e in err.errors()])
        raise ConfigError(format_validation(err, str(path), what="GRPO recipe")) from None
    return recipe


def read_prompts(spec: str) -> list[Any]:
    """The ``prompt`` column of a JSONL/JSON/CSV/Parquet file (errors name file, line, field)."""
    from rewardlab.data.readers import file_unit

    unit = file_unit(Path(spec)) if Path(spec).is_file() else None
    if unit is None:
        expected = "a prompts file (.jsonl, .json, .csv, .parquet)"
        if Path(spec).is_dir():
            raise DataError(f"is a directory; expected {expected}", file=spec)
        raise DataError("no such file", file=spec, expected=expected)
    out = []
    for loc, rec in unit.rows:
        where = {"line": loc} if unit.text else {"row": loc}
        if isinstance(rec, DataError):
            raise DataError(rec.message, file=unit.label, field=rec.field, expected=rec.expected, got=rec.got, **where)
        p = rec.get("prompt") if isinstance(rec, dict) else None
        if not (isinstance(p, str) and p.strip()) and not (isinstance(p, list) and p):
            raise DataError(file=unit.label, field="prompt", expected="a non-empty string or chat messages",
                            got=type(p).__name__, **where)
        out.append(p)
    if not out:
        raise DataError("no prompts", file=spec)
    return out


def _as_messages(prompt: Any) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def split_prompts(recipe: GrpoRecipe) -> tuple[list, list]:
    """(train, eval) prompts: the eval file, or a prompt-hash split of the train file."""
    from rewardlab.data.table import unit_hash

    prompts = read_prompts(recipe.prompts.train)
    if recipe.prompts.eval:
        train, held = prompts, read_prompts(recipe.prompts.eval)
    else:
        key = lambda p: unit_hash("rubric-grpo", json.dumps(p, sort_keys=True))  # noqa: E731
        held = [p for p in prompts if key(p) < recipe.prompts.eval_fraction]
        train = [p for p in prompts if key(p) >= recipe.prompts.eval_fraction]
    return train[: recipe.prompts.max_train], held[: recipe.prompts.max_eval]


def grpo_args(recipe: GrpoRecipe, reward, out: Path):
    """GRPOConfig with explicit precision and the aggregator's keys (conflicts are errors)."""
    from trl import GRPOConfig

    fixed = reward.grpo_config_kwargs()
    for k, v in fixed.items():
        if k in recipe.grpo and recipe.grpo[k] != v:
            raise ConfigError(f"grpo.{k}={recipe.grpo[k]!r} contradicts aggregator {recipe.aggregator.name} "
                              f"(which TRL realises with {k}={v!r}); remove it")
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    for k, v in recipe.grpo.items():
        if k not in defaults:
            raise ConfigError(f"grpo.{k}: not a trl.GRPOConfig field")
        d = defaults[k]
        if isinstance(d, (int, float)) and not isinstance(d, bool) and (isinstance(v, (str, bool)) or v is None):
            hint = " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(v, str) else ""
            raise ConfigError(f"grpo.{k}: expected a number, got {v!r}{hint}")
    saving = ({"save_strategy": "steps", "save_steps": recipe.checkpoint_every, "save_total_limit": 2}
              if recipe.checkpoint_every else {"save_strategy": "no"})
    # transformers 5.2x renamed gradient_checkpointing(_kwargs) to activation_checkpointing(_kwargs):
    # the old name warns and goes in v6 (the args keep it as a mirror, read by the summary), earlier
    # 5.x has only the old one. Recipes keep TRL's familiar name; it is passed under the name this
    # transformers has. Checkpointing is off unless the recipe sets it (TRL defaults it on).
    grpo = dict(recipe.grpo)
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if new in defaults and old in grpo:
            if new in grpo:
                raise ConfigError(f"grpo.{old} and grpo.{new} are one setting (transformers renamed it): give one")
            grpo[new] = grpo.pop(old)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in defaults else "gradient_checkpointing"
    kwargs = {"output_dir": str(out / "trainer"), "bf16": False, "fp16": False, ckpt: False,
              "report_to": [], **saving, "logging_steps": 1, "seed": recipe.seed,
              "use_cpu": True, **grpo, **fixed}
    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"grpo: {err}") from err


def make_reward(recipe: GrpoRecipe, rubric, num_generations: int):
    from rewardlab.rubric.reward import RubricReward

    a = recipe.aggregator
    return RubricReward(rubric, a.name, num_generations=num_generations, gamma=a.gamma, saturation=a.saturation,
                        ema_beta=a.ema_beta, level=a.level)


def evaluate_policy(model_dir: str, rubric, prompts: list, *, max_new_tokens: int, batch_size: int) -> dict:
    """Greedy answers of the policy to the held-out prompts, scored by the rubric."""
    from rewardlab.generate import GenerationRequest, make_generator

    gen = make_generator("transformers", model_dir, batch_size=batch_size, dtype="float32")
    requests = [GenerationRequest(_as_messages(p)) for p in prompts]
    t0 = time.perf_counter()
    texts = [t[0] for t in gen.generate(requests, n=1, max_new_tokens=max_new_tokens, temperature=0.0)]
    res = rubric.score(prompts, texts)
    return {**score_summary(rubric.names, rubric.weights, res.scores), "counts": res.counts(), "n": len(prompts),
            "seconds": round(time.perf_counter() - t0, 1), "examples": texts[:3],
            # per prompt and criterion (NaN as None): paired comparisons of policies on the same prompts
            "scores": [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(res.scores, float)]}


def score_summary(names: list[str], weights: list[float], scores: np.ndarray) -> dict:
    """Per-criterion means, the weighted mean of the rollouts' rubric scores, the worst criterion."""
    from rewardlab.rubric.aggregators import weighted_mean

    import torch

    means = {name: float(np.nanmean(scores[:, j])) if (~np.isnan(scores[:, j])).any() else None
             for j, name in enumerate(names)}
    weighted = weighted_mean(torch.as_tensor(scores), torch.as_tensor(weights, dtype=torch.float64))
    finite = [v for v in means.values() if v is not None]
    return {"criteria": means, "weighted_mean": float(np.nanmean(weighted.numpy())),
            "worst_criterion": min(finite) if finite else None}


REWARD_STATE = "rubric_reward_state.json"


def last_checkpoint(out: Path) -> Path | None:
    """The newest TRL checkpoint of a run (OUT/trainer/checkpoint-N) that holds the aggregator's state."""
    ckpts = [p for p in (out / "trainer").glob("checkpoint-*") if (p / REWARD_STATE).is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _reward_state_callback(reward):
    """Writes the aggregator's state (focal's EMA saturation, its call count) into each checkpoint:
    TRL saves the policy, optimiser and RNG, not a reward function's state."""
    from transformers import TrainerCallback

    class RewardState(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                d = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                d.mkdir(parents=True, exist_ok=True)
                (d / REWARD_STATE).write_text(json.dumps(reward.state_dict()))

    return RewardState()


def run_grpo(recipe: GrpoRecipe, *, log=print, resume: bool = False) -> dict:
    """Train with TRL's GRPOTrainer and the rubric reward; evaluate; write OUT/summary.json.
    ``resume``: continue from the last checkpoint (``checkpoint_every``) with the aggregator's
    state and the initial policy's held-out scores as they were."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from rewardlab.models.locate import resolve
    from rewardlab.rubric.spec import load_rubric
    from rewardlab.runinfo import run_info

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rubric = load_rubric(recipe.rubric)
    train, held = split_prompts(recipe)
    num_generations = int(recipe.grpo.get("num_generations", 8))
    reward = make_reward(recipe, rubric, num_generations)
    start = last_checkpoint(out) if resume else None
    if resume and start is None:
        log(f"no checkpoint under {out / 'trainer'}: starting from step 0")
    if start is None:
        (out / "drift.jsonl").unlink(missing_ok=True)
    else:
        reward.load_state_dict(json.loads((start / REWARD_STATE).read_text()))
        log(f"resuming from {start} (aggregator state: {reward.calls} calls)")
    reward.drift = DriftMonitor(out / "drift.jsonl", write=int(os.environ.get("RANK", "0")) == 0)
    if start is not None and (out / "drift.jsonl").is_file():  # keep the records up to the checkpoint
        kept = [json.loads(x) for x in (out / "drift.jsonl").read_text().splitlines() if x.strip()]
        done = int(start.name.split("-")[-1])  # steps finished (records carry TRL's 0-based step)
        reward.drift.records = [r for r in kept if r["step"] < done]
        if reward.drift.write:
            (out / "drift.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reward.drift.records))
    args = grpo_args(recipe, reward, out)
    path = resolve(recipe.model)
    summary: dict[str, Any] = {"recipe": recipe.model_dump(), "n_train_prompts": len(train), "n_eval_prompts": len(held),
                               "precision": {"dtype": "float32", "bf16": args.bf16, "fp16": args.fp16,
                                             "gradient_checkpointing": args.gradient_checkpointing},
                               "trl_settings": reward.grpo_config_kwargs(), **run_info()}
    before_file = out / "eval_before.json"
    if recipe.eval.before and held and start is not None and before_file.is_file():
        summary["eval_before"] = json.loads(before_file.read_text())
    elif recipe.eval.before and held:
        log(f"scoring the initial policy on {len(held)} held-out prompts")
        summary["eval_before"] = evaluate_policy(path, rubric, held, max_new_tokens=recipe.eval.max_new_tokens,
                                                 batch_size=recipe.eval.batch_size)
        before_file.write_text(json.dumps(summary["eval_before"]))
    torch.manual_seed(recipe.seed)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    data = Dataset.from_list([{"prompt": _as_messages(p)} for p in train])
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=data, processing_class=tok,
                          callbacks=[_reward_state_callback(reward)])
    log(f"GRPO: {len(train)} prompts, {rubric.names} aggregated by {recipe.aggregator.name}, "
        f"{args.max_steps} steps, float32 on {args.device}")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(start) if start is not None else None)
    summary["resumed_from"] = start.name if start is not None else None
    summary["train_seconds"] = round(time.perf_counter() - t0, 1)
    summary["log_history"] = trainer.state.log_history
    summary["reward_state"] = reward.state_dict()
    summary["drift"] = reward.drift.report()  # per-step reward, length, spread: OUT/drift.jsonl
    for w in summary["drift"]["warnings"]:
        log(f"drift: {w['message']}")
    model_dir = out / "model"
    trainer.save_model(str(model_dir))
    tok.save_pretrained(model_dir)
    if held:
        log(f"scoring the trained policy on {len(held)} held-out prompts")
        summary["eval_after"] = evaluate_policy(str(model_dir), rubric, held, max_new_tokens=recipe.eval.max_new_tokens,
                                                batch_size=recipe.eval.batch_size)
    if not recipe.save_model:
        import shutil

        shutil.rmtree(model_dir)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary
