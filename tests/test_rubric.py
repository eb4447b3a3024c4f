"""Rubrics: loading and validation, scorers, the invalid-score policy, RubricReward (TRL's
interface, global-batch saturation under several processes), a real GRPOTrainer step, the CLI."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.errors import ConfigError, DataError
from rewardlab.generate import Generator
from rewardlab.rubric import RubricReward, load_rubric, parse_rubric
from rewardlab.rubric import aggregators as agg
from rewardlab.rubric.scorers import is_json, map_score, parse_judge_answer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# scored by name from rubrics in these tests ("tests.test_rubric:half_length")
def half_length(prompt, completion):
    return len(completion) / 2


def nan_scorer(prompt, completion):
    return float("nan") if "bad" in completion else 1.0


def none_scorer(prompt, completion):
    return None if "bad" in completion else True


RULES = {
    "criteria": [
        {"name": "tag", "weight": 2, "scorer": {"type": "rule", "regex": "<a>.+</a>", "flags": ["DOTALL"]}},
        {"name": "polite", "scorer": {"type": "rule", "contains": ["please", "thanks"], "mode": "any",
                                      "case_sensitive": False}},
        {"name": "short", "scorer": {"type": "rule", "length": {"max": 4, "unit": "words"}}},
        {"name": "json", "scorer": {"type": "rule", "json": True}},
        {"name": "no_sorry", "scorer": {"type": "rule", "contains": "sorry", "negate": True}},
    ]
}


def _write(tmp_path: Path, data, name="rubric.yaml") -> Path:
    import yaml

    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_rule_checks():
    rubric = parse_rubric(RULES)
    items = ["<a>x</a> Thanks", '```json\n{"a": 1}\n```', "sorry, I cannot do that today"]
    res = rubric.score(["p"] * 3, items)
    assert res.scores.tolist() == [
        [1.0, 1.0, 1.0, 0.0, 1.0],
        [0.0, 0.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
    assert is_json(" [1, 2] ") and not is_json("{a: 1}")


def test_function_scorer_range_maps_to_unit_interval():
    rubric = parse_rubric({"criteria": [{"name": "len", "range": [0, 10],
                                         "scorer": {"type": "rule", "function": "tests.test_rubric:half_length"}}]})
    res = rubric.score(["p", "p"], ["abcd", "x" * 20])
    assert res.scores[0, 0] == pytest.approx(0.2)
    assert res.raw[1, 0] == 10.0 and res.scores[1, 0] == 1.0


@pytest.mark.parametrize("policy", ["error", "count"])
def test_invalid_scores_policy(policy):
    crit = [{"name": "n", "scorer": {"type": "rule", "function": "tests.test_rubric:nan_scorer"}},
            {"name": "z", "scorer": {"type": "rule", "function": "tests.test_rubric:none_scorer"}},
            {"name": "len", "range": [0, 2], "scorer": {"type": "rule", "function": "tests.test_rubric:half_length"}}]
    rubric = parse_rubric({"on_invalid": policy, "criteria": crit}, "r.yaml")
    items = ["ok", "bad", "longer than four"]
    if policy == "error":
        with pytest.raises(DataError, match=r"r\.yaml: field 'criteria\[0\] \(n\)'.*item 1"):
            rubric.score(["p"] * 3, items)
        return
    res = rubric.score(["p"] * 3, items)
    assert res.invalid == {"n": {"none": 0, "nan": 1, "out_of_range": 0},
                           "z": {"none": 1, "nan": 0, "out_of_range": 0},
                           "len": {"none": 0, "nan": 0, "out_of_range": 1}}
    assert math.isnan(res.scores[1, 0]) and math.isnan(res.scores[1, 1])
    assert res.raw[2, 2] == 8.0 and math.isnan(res.scores[2, 2])  # out of range: NaN, never clipped


@pytest.mark.parametrize("bad, field, expected", [
    ({"criteria": [{"name": "a", "scorer": {"type": "llm"}}]}, "criteria[0].scorer.type", "one of rule"),
    ({"criteria": [{"name": "a"}]}, "criteria[0].scorer", "a scorer"),
    ({"criteria": [{"scorer": {"type": "rule", "json": True}}]}, "criteria[0].name", "a name"),
    ({"criteria": [{"name": "a", "range": [1, 0], "scorer": {"type": "rule", "function": "tests.test_rubric:half_length"}}]},
     "criteria[0].range", "low < high"),
    ({"criteria": [{"name": "a", "range": [0, 5], "scorer": {"type": "rule", "json": True}}]}, "criteria[0].range", "[0.0, 1.0]"),
    ({"criteria": [{"name": "a", "weight": -1, "scorer": {"type": "rule", "json": True}}]}, "criteria[0].weight", ">= 0"),
    ({"criteria": [{"name": "a", "scorer": {"type": "rule", "json": True, "regex": "x"}}]}, "criteria[0].scorer", "exactly one"),
    ({"criteria": [{"name": "a", "scorer": {"type": "rule", "regex": "("}}]}, "criteria[0].scorer.regex", "valid regular"),
    ({"criteria": [{"name": "a", "scorer": {"type": "rule", "function": "no_such_mod:f"}}]},
     "criteria[0].scorer.function", "importable"),
    ({"criteria": [{"name": "a", "scorer": {"type": "reward_model", "path": "/nonexistent"}}]},
     "criteria[0].scorer.path", "config.json"),
    ({"criteria": [{"name": "a", "scorer": {"type": "judge"}}]}, "criteria[0].scorer.question", "question"),
    ({"criteria": [{"name": "a", "scorer": {"type": "rule", "json": True}},
                   {"name": "a", "scorer": {"type": "rule", "json": True}}]}, "criteria[1].name", "unique"),
    ({"on_invalid": "clip", "criteria": [{"name": "a", "scorer": {"type": "rule", "json": True}}]}, "on_invalid", "error, count"),
    ({"criteria": [{"name": "a", "wieght": 1, "scorer": {"type": "rule", "json": True}}]}, "criteria[0].wieght", "unknown"),
    ({"criteria": []}, "criteria", "non-empty"),
])
def test_validation_errors_name_file_and_field(tmp_path, bad, field, expected):
    path = _write(tmp_path, bad)
    with pytest.raises(DataError) as info:
        load_rubric(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and f"field '{field}'" in msg and expected in msg, msg


def test_reward_model_map():
    assert map_score(0.0, {"kind": "sigmoid"}) == 0.5
    assert map_score(2.0, {"kind": "sigmoid", "center": 1.0, "scale": 0.5}) == pytest.approx(1 / (1 + math.exp(-2)))
    assert map_score(-10000.0, {"kind": "sigmoid"}) == 0.0  # no overflow
    assert map_score(3.0, {"kind": "minmax", "low": -1.0, "high": 3.0}) == 1.0


class FakeJudge(Generator):
    """Answers from a fixed list in order; records what it was asked."""

    model_id = "fake-judge"

    def __init__(self, answers):
        super().__init__()
        self.answers, self.asked = list(answers), []

    def generate(self, requests, *, n=1, max_new_tokens=256, temperature=0.7, top_p=0.95, seed=0, progress=False):
        self.asked.extend(requests)
        assert temperature == 0.0
        return [[self.answers.pop(0)] for _ in requests]


def test_judge_yes_no_and_scale_with_unparsed_counted():
    assert parse_judge_answer("Yes.", "yes_no") == 1.0 and parse_judge_answer(" no", "yes_no") == 0.0
    assert parse_judge_answer("Maybe", "yes_no") is None
    assert parse_judge_answer("Score: 7/10", "scale_10") == pytest.approx(6 / 9)
    assert parse_judge_answer("11", "scale_10") is None and parse_judge_answer("2.5", "scale_10") is None
    fake = FakeJudge(["yes", "I think so", "No", "10", "ten", "1"])
    rubric = parse_rubric({"on_invalid": "error", "criteria": [
        {"name": "polite", "scorer": {"type": "judge", "question": "Is it polite?"}},
        {"name": "quality", "scorer": {"type": "judge", "question": "How good?", "answer": "scale_10"}}]},
        generator=fake)
    res = rubric.score(["hi", "hi", "hi"], ["a", "b", "c"])
    assert res.scores[:, 0].tolist()[0] == 1.0 and math.isnan(res.scores[1, 0]) and res.scores[2, 0] == 0.0
    assert res.scores[0, 1] == 1.0 and math.isnan(res.scores[1, 1]) and res.scores[2, 1] == 0.0
    assert res.unparsed == {"polite": 1, "quality": 1}  # counted, not an error under on_invalid: error
    assert "Is it polite?" in fake.asked[0].messages[0]["content"] and "b" in fake.asked[1].messages[0]["content"]


# ----------------------------------------------------------------------------- RubricReward
TWO = {"criteria": [
    {"name": "tag", "weight": 1, "scorer": {"type": "rule", "contains": "<a>"}},
    {"name": "short", "weight": 1, "scorer": {"type": "rule", "length": {"max": 6}}},
]}


def _batch():
    # 2 groups of 3: "tag" is nearly saturated, "short" is not
    completions = ["<a>", "<a> long answer", "<a> long", "<a> long", "<a>xx", "no tag, long"]
    return ["p1"] * 3 + ["p2"] * 3, completions


def test_rubric_reward_matches_aggregator_and_logs():
    rubric = parse_rubric(TWO)
    prompts, completions = _batch()
    scores = torch.as_tensor(rubric.score(prompts, completions).scores).reshape(2, 3, 2)
    logged = {}
    for name, expected in [("weighted_sum", agg.weighted_sum(scores, [1, 1]).rewards),
                           ("gdpo", agg.gdpo(scores, [1, 1]).advantages),
                           ("focal", agg.focal(scores, [1, 1], gamma=2.0).rewards)]:
        fn = RubricReward(rubric, name, num_generations=3, gamma=2.0)
        out = fn(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None,
                 log_metric=lambda k, v: logged.__setitem__(k, v))
        assert out == pytest.approx(expected.reshape(-1).tolist())
    # the last call was focal: tag (mean 5/6) weighs less than short (mean 1/3)
    assert logged["rubric/tag/mean"] == pytest.approx(5 / 6) and logged["rubric/short/mean"] == pytest.approx(1 / 3)
    assert logged["rubric/tag/weight"] < 0.5 < logged["rubric/short/weight"]
    assert logged["rubric/worst_criterion"] == pytest.approx(1 / 3) and logged["rubric/invalid"] == 0
    assert RubricReward(rubric, "gdpo", num_generations=3).grpo_config_kwargs()["scale_rewards"] == "none"
    funcs = RubricReward(rubric, "gdpo", num_generations=3).criterion_funcs()  # for TRL's normalize_then_sum
    assert [f.__name__ for f in funcs] == ["tag", "short"]
    assert [f(prompts=prompts, completions=completions) for f in funcs] == scores.reshape(6, 2).T.tolist()
    with pytest.raises(ConfigError, match="output='advantage'"):
        RubricReward(rubric, "gdpo", num_generations=3, output="reward")
    with pytest.raises(ConfigError, match="num_generations"):
        RubricReward(rubric, "focal", num_generations=2)(prompts=prompts, completions=completions)


def test_rubric_reward_ema_state_moves_weight_across_steps():
    rubric = parse_rubric(TWO)
    fn = RubricReward(rubric, "focal", num_generations=2, saturation="ema", ema_beta=0.5, gamma=1.0)
    weights = []
    for completions in (["x" * 10, "<a>" + "x" * 10], ["<a>" + "x" * 10] * 2, ["<a>" + "x" * 10] * 2):
        fn(prompts=["p", "p"], completions=completions)
        weights.append(fn.last.weights.tolist())
    # tag's saturation goes 0.5 -> 0.75 -> 0.875 as it keeps being met: its weight falls, short's rises
    assert fn.ema.tolist() == pytest.approx([0.875, 0.0])
    assert weights[0][0] > weights[1][0] > weights[2][0] and weights[0][1] < weights[1][1] < weights[2][1]
    state = fn.state_dict()
    fresh = RubricReward(rubric, "focal", num_generations=2, saturation="ema")
    fresh.load_state_dict(state)
    assert fresh.ema.tolist() == pytest.approx([0.875, 0.0])


class FakeGather:
    """Two ranks in one process: returns every rank's slice, as torch.distributed's all_gather would."""

    def __init__(self, rank, slices):
        self.rank, self.slices, self.calls = rank, slices, 0

    def __call__(self, local):
        self.calls += 1
        if self.calls % 2 == 1:  # the scores (the second call gathers the invalid counts)
            assert torch.equal(local, self.slices[self.rank])
            return torch.cat(self.slices), self.rank
        return local.repeat(len(self.slices), 1), self.rank


def test_saturation_on_the_global_batch_across_ranks():
    rubric = parse_rubric(TWO)
    prompts, completions = _batch()
    # TRL splits the global batch into equal contiguous slices; a group spans both ranks here
    slices = [torch.as_tensor(rubric.score(prompts[:3], completions[:3]).scores),
              torch.as_tensor(rubric.score(prompts[3:], completions[3:]).scores)]
    single = RubricReward(rubric, "focal", num_generations=3, saturation="ema")
    whole = single(prompts=prompts, completions=completions)
    outs = []
    for rank, sl in enumerate((slice(0, 3), slice(3, 6))):
        fn = RubricReward(rubric, "focal", num_generations=3, saturation="ema", gather=FakeGather(rank, slices))
        outs += fn(prompts=prompts[sl], completions=completions[sl])
        assert fn.ema.tolist() == pytest.approx(single.ema.tolist())  # every rank keeps the global EMA
    assert outs == pytest.approx(whole)
    # a rank's own slice alone would give other weights (the point of gathering)
    alone = RubricReward(rubric, "focal", num_generations=3)(prompts=prompts[:3], completions=completions[:3])
    assert alone != pytest.approx(whole[:3])


def test_grpo_trainer_runs_with_rubric_reward(tiny_llama_dir, tmp_path):
    """Two real GRPOTrainer steps on a tiny random Llama: TRL's call signature, its advantages from
    our returned values equal our aggregator's (gdpo through output='advantage'), metrics logged."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rubric = parse_rubric({"criteria": [
        {"name": "short", "scorer": {"type": "rule", "length": {"max": 20}}},
        {"name": "has_e", "weight": 2, "scorer": {"type": "rule", "contains": "e"}},
        {"name": "len", "range": [0, 100], "scorer": {"type": "rule", "function": "tests.test_rubric:half_length"}}]})
    reward = RubricReward(rubric, "gdpo", num_generations=4)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": f"Say {w}."}]} for w in ("hi", "yes", "no", "ok")])
    ckpt = ("activation_checkpointing" if "activation_checkpointing" in GRPOConfig.__dataclass_fields__
            else "gradient_checkpointing")  # transformers 5.2x renamed it
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, learning_rate=1e-3, bf16=False, fp16=False, use_cpu=True,
                      report_to=[], save_strategy="no", logging_steps=1, seed=0, **{ckpt: False},
                      **reward.grpo_config_kwargs())
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=data, processing_class=tok)
    captured = []
    original = trainer._generate_and_score_completions
    trainer._generate_and_score_completions = lambda inputs: captured.append(original(inputs)) or captured[-1]
    trainer.train()
    assert reward.calls == 2 and len(captured) == 2
    # TRL's advantages of the last batch are our gdpo advantages of the same scores
    torch.testing.assert_close(captured[-1]["advantages"].double(), reward.last.advantages.reshape(-1),
                               atol=1e-5, rtol=1e-5)
    logged = {k for rec in trainer.state.log_history for k in rec}
    assert {"rubric/short/mean", "rubric/has_e/weight", "rubric/worst_criterion"} <= logged


# ----------------------------------------------------------------------------- CLI
def test_cli_rubric_score_writes_table_and_report(tmp_path):
    from typer.testing import CliRunner

    from rewardlab.cli import app

    rubric = _write(tmp_path, RULES)
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": "q", "completion": c} for c in ("<a>x</a> thanks", '{"a": 1}', "sorry")]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["rubric", "score", "--rubric", str(rubric), "--data", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["criteria"]["tag"]["mean"] == pytest.approx(1 / 3)
    assert summary["criteria"]["no_sorry"]["saturation"] == pytest.approx(2 / 3)
    table = (out / "scores.csv").read_text().splitlines()
    assert table[0].startswith("row,") and len(table) == 4
    assert "tag" in (out / "report.html").read_text()
    # bad data: a clear error naming file, line and field, exit 2, no traceback
    data.write_text('{"prompt": "q", "completion": "a"}\n{"prompt": "q"}\n')
    res = CliRunner().invoke(app, ["rubric", "score", "--rubric", str(rubric), "--data", str(data), "--out", str(out),
                                   "--overwrite"])  # out holds the run above: replacing it needs --overwrite
    assert res.exit_code == 2 and "d.jsonl:2" in res.output and "completion" in res.output
    assert "Traceback" not in res.output


def test_grpo_recipe_errors(tmp_path):
    from trl import GRPOConfig
    from typer.testing import CliRunner

    from rewardlab.cli import app
    from rewardlab.rubric.grpo import grpo_args, load_recipe, make_reward, read_prompts

    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "configs" / "grpo_focal.yaml", ["aggregator.name=gdpo"])
    assert recipe.aggregator.name == "gdpo" and recipe.grpo["bf16"] is False
    rubric = parse_rubric(TWO)
    reward = make_reward(recipe, rubric, 4)
    with warnings.catch_warnings():  # checkpointing set off under the name this transformers has: no FutureWarning
        warnings.filterwarnings("error", message=".*checkpointing.*deprecated", category=FutureWarning)
        args = grpo_args(recipe, reward, tmp_path)  # precision explicit, the aggregator's TRL settings applied
    assert (args.bf16, args.fp16, args.gradient_checkpointing, args.scale_rewards) == (False, False, False, "none")
    # a recipe that turns checkpointing on under TRL's familiar name keeps it on, silently
    ckpt_on = load_recipe(repo / "configs" / "grpo_focal.yaml", ["aggregator.name=gdpo", "grpo.gradient_checkpointing=true"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*checkpointing.*deprecated", category=FutureWarning)
        assert grpo_args(ckpt_on, make_reward(ckpt_on, rubric, 4), tmp_path).gradient_checkpointing is True
    if "activation_checkpointing" in GRPOConfig.__dataclass_fields__:  # transformers with the new name
        both = load_recipe(repo / "configs" / "grpo_focal.yaml",
                           ["aggregator.name=gdpo", "grpo.activation_checkpointing=true"])
        with pytest.raises(ConfigError, match="grpo.gradient_checkpointing and grpo.activation_checkpointing are one"):
            grpo_args(both, make_reward(both, rubric, 4), tmp_path)
    bad = load_recipe(repo / "configs" / "grpo_focal.yaml", ["aggregator.name=gdpo", "grpo.scale_rewards=group"])
    with pytest.raises(ConfigError, match="grpo.scale_rewards='group' contradicts aggregator gdpo"):
        grpo_args(bad, reward, tmp_path)
    text_lr = load_recipe(repo / "configs" / "grpo_focal.yaml", ["grpo.learning_rate=2e-5"])  # YAML: a string
    with pytest.raises(ConfigError, match="grpo.learning_rate: expected a number, got '2e-5'"):
        grpo_args(text_lr, make_reward(text_lr, rubric, 4), tmp_path)
    with pytest.raises(ConfigError, match="aggregator.name"):
        load_recipe(repo / "configs" / "grpo_focal.yaml", ["aggregator.name=mean"])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: field 'prompt'"):
        read_prompts(str(prompts))
    res = CliRunner().invoke(app, ["grpo", str(repo / "configs" / "grpo_focal.yaml"), "--set", "aggregator.gamma=-1"])
    assert res.exit_code == 2 and "aggregator.gamma" in res.output and "Traceback" not in res.output
    # an earlier run's directory: refused with the --resume hint when the recipe checkpoints; both flags refused
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    base = ["grpo", str(repo / "configs" / "grpo_focal.yaml"), "--set", f"output_dir={out}", "--set", "checkpoint_every=5"]
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 2 and "--resume" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, base + ["--resume", "--overwrite"])
    assert res.exit_code == 2 and "exclude each other" in res.output


def _gather_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from rewardlab.rubric.reward import torch_gather

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        local = torch.full((rank + 1, 2), float(rank), dtype=torch.float64)  # unequal slice lengths
        gathered, r = torch_gather(local)
        Path(out, f"{rank}.json").write_text(json.dumps({"rank": r, "rows": gathered.tolist()}))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_torch_gather_across_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"{rank}.json").read_text())
        assert got == {"rank": rank, "rows": [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]}


@pytest.mark.parametrize("text, expected", [
    # no_preamble, gives_reason, number_or_entity, ends_cleanly (by hand)
    ("Sure! The answer is four.", (0, 0, 1, 1)),
    ("As an AI, I think it is fine", (0, 0, 1, 0)),  # "AI" inside a sentence counts as a name
    ("Here's why: prices rose because demand grew.", (0, 1, 0, 1)),
    ("Water boils at 100 degrees because of air pressure.", (1, 1, 1, 1)),
    ("It flows north since the land slopes toward the Mediterranean.", (1, 1, 1, 1)),
    ("I think so. I agree.", (1, 0, 0, 1)),  # "so" alone is no connective; "I" is no name
    ("Rome is old. It has ruins and", (1, 0, 0, 0)),  # "Rome" starts a sentence; cut off
    ("The list (apples, pears.", (1, 0, 0, 0)),  # unbalanced bracket
    ("He said \"yes.\"", (1, 0, 0, 1)),
    ("Okay, the capital of France is Paris.", (0, 0, 1, 1)),
    ("Wait for it...", (1, 0, 0, 0)),
])
def test_named_text_checks_by_hand(text, expected):
    from rewardlab.rubric.scorers import ends_cleanly, gives_reason, has_number_or_entity, has_preamble

    got = (int(not has_preamble(text)), int(gives_reason(text)), int(has_number_or_entity(text)),
           int(ends_cleanly(text)))
    assert got == expected


def test_tradeoff_rubric_rewards_brevity_and_content_against_each_other():
    rubric = load_rubric(Path(__file__).resolve().parents[1] / "configs" / "rubrics" / "tradeoff.yaml")
    names = [c.name for c in rubric.criteria]
    assert names == ["no_preamble", "at_most_25_words", "gives_reason", "number_or_entity", "ends_cleanly"]
    terse = "Paris."
    rich = ("Sure! Paris is the capital of France because the national government, the parliament and most "
            "ministries have been based there since the tenth century, and it is by far the largest city.")
    both = "Paris, because the French government sits there."
    cut = "Paris is the capital because the government and"
    res = rubric.score(["What is the capital of France?"] * 4, [terse, rich, both, cut]).scores.tolist()
    assert res[0] == [1, 1, 0, 0, 1]  # easy met, content missing ("Paris" starts the sentence)
    assert res[1] == [0, 0, 1, 1, 1]  # content met, brevity lost
    assert res[2] == [1, 1, 1, 1, 1]  # all five are reachable at once: "French" is a name inside the sentence
    assert res[3] == [1, 1, 1, 0, 0]  # cut off by the token budget: no clean end
    with pytest.raises(DataError, match="true"):
        parse_rubric({"criteria": [{"name": "x", "scorer": {"type": "rule", "gives_reason": "yes"}}]})


def test_grpo_resumes_from_a_checkpoint_with_the_aggregator_state(tiny_llama_dir, tmp_path, monkeypatch):
    """A focal run stopped after its step-2 checkpoint and resumed (--resume) ends where the
    uninterrupted run ends: the EMA saturation and call count are restored from the checkpoint, the
    drift log holds each step once, and the held-out scores come per prompt."""
    import rewardlab.rubric.grpo as grpo_mod

    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("criteria:\n  - {name: short, scorer: {type: rule, length: {max: 20}}}\n"
                      "  - {name: has_e, scorer: {type: rule, contains: e}}\n")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Say {w}."}) + "\n" for w in ("hi", "yes", "no", "ok", "go")))
    held = tmp_path / "h.jsonl"
    held.write_text(json.dumps({"prompt": "Say bye."}) + "\n" + json.dumps({"prompt": "Say yo."}) + "\n")

    def recipe(out):
        return grpo_mod.GrpoRecipe.model_validate({
            "output_dir": str(out), "model": str(tiny_llama_dir), "rubric": str(rubric),
            "prompts": {"train": str(prompts), "eval": str(held)}, "checkpoint_every": 1, "save_model": False,
            "aggregator": {"name": "focal", "saturation": "ema", "ema_beta": 0.5, "gamma": 1.0},
            "grpo": {"max_steps": 3, "per_device_train_batch_size": 4, "num_generations": 4,
                     "max_completion_length": 6, "learning_rate": 1e-3},
            "eval": {"max_new_tokens": 4, "before": True}})

    whole = grpo_mod.run_grpo(recipe(tmp_path / "a"), log=lambda m: None)
    assert len(whole["eval_after"]["scores"]) == 2 and len(whole["eval_after"]["scores"][0]) == 2

    class Stop(Exception):
        pass

    original = grpo_mod._reward_state_callback

    def stopping(reward):
        cb = original(reward)
        on_save = cb.on_save

        def save_then_stop(args, state, control, **kw):
            on_save(args, state, control, **kw)
            if state.global_step == 2:
                raise Stop()
        cb.on_save = save_then_stop
        return cb

    monkeypatch.setattr(grpo_mod, "_reward_state_callback", stopping)
    with pytest.raises(Stop):
        grpo_mod.run_grpo(recipe(tmp_path / "b"), log=lambda m: None)
    monkeypatch.setattr(grpo_mod, "_reward_state_callback", original)
    assert grpo_mod.last_checkpoint(tmp_path / "b").name == "checkpoint-2"
    resumed = grpo_mod.run_grpo(recipe(tmp_path / "b"), log=lambda m: None, resume=True)
    assert resumed["resumed_from"] == "checkpoint-2"
    assert resumed["reward_state"]["calls"] == whole["reward_state"]["calls"] == 3
    np.testing.assert_allclose(resumed["reward_state"]["ema"], whole["reward_state"]["ema"], atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "drift.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]
    assert resumed["eval_before"] == whole["eval_before"] | {"seconds": resumed["eval_before"]["seconds"]}
