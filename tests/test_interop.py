"""Interop with the peers' conventions (issue 24, item 5): OpenRLHF's `mean`/`std` in config.json,
TRL's `tools` and `chat_template_kwargs` columns reaching the chat template (training, scoring,
serving), and `rewardlab score` keeping every input column."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cli_runs import invoke
from rewardlab.data import load_preferences
from rewardlab.data.chat import template_kwargs
from rewardlab.models.inputs import encode, render
from rewardlab.models.pairs import encode_pairs
from rewardlab.models.reward_model import RewardModel, reward_stats

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A template that writes what it was given: the tool names and an `enable_thinking` variable come
# first (like a system block), so the prompt rendering stays a prefix of the full one.
PRINTING_TEMPLATE = (
    "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}|{% endif %}"
    "{% if enable_thinking is defined %}THINK:{{ enable_thinking }}|{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}|{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
ROWS = [
    {"id": "r0", "prompt": [{"role": "user", "content": "Weather in Paris?"}], "chosen": "Calling get_weather.",
     "rejected": "No idea.", "tools": [WEATHER], "chat_template_kwargs": {"enable_thinking": False}},
    {"id": "r1", "prompt": [{"role": "user", "content": "2 + 2?"}], "chosen": "4", "rejected": "5",
     "tools": json.dumps([WEATHER])},  # a JSON string, as Hub datasets store it (TRL decodes it)
    {"id": "r2", "prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello!", "rejected": "Go away."},
]


def _randomise_head(rm: RewardModel) -> RewardModel:
    torch.manual_seed(3)
    head = rm.model.score if hasattr(rm.model, "score") else rm.model.classifier
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)
    return rm.eval()


@pytest.fixture(scope="module")
def printing_rm(tiny_llama_dir):
    """The tiny Llama reward model whose chat template prints tools and enable_thinking."""
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=128)
    rm.tokenizer.chat_template = PRINTING_TEMPLATE
    assert rm.settings.render == "chat"
    return _randomise_head(rm)


@pytest.fixture
def tool_pairs(tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return load_preferences(path)


# ------------------------------------------------------------------ OpenRLHF's mean and std
def test_reward_stats_are_openrlhfs_mean_and_sample_std():
    r = [0.5, -1.0, 2.0, 3.5, 0.0]
    mean, std = reward_stats(r)
    t = torch.tensor(r)
    assert mean == pytest.approx(float(t.mean())) and std == pytest.approx(float(t.std()))  # torch.std: n - 1
    assert std == pytest.approx(np.sqrt(sum((x - 1.0) ** 2 for x in r) / 4))  # by hand: mean 1.0
    assert reward_stats([2.0, 2.0]) == (2.0, 1e-8)  # clamped as OpenRLHF clamps


OPENRLHF = textwrap.dedent("""
    # OpenRLHF's normalisation (openrlhf/models/model.py, RewardModel): mean/std read from the
    # config when it has `mean`, and (reward - mean) / std at inference with normalize_reward.
    import json, sys, torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    config = AutoConfig.from_pretrained(sys.argv[1])
    mean, std = torch.zeros(1), torch.ones(1)
    if hasattr(config, "mean"):
        mean[0], std[0] = config.mean, config.std
    model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
    batch = {k: torch.tensor(v) for k, v in json.load(open(sys.argv[2])).items()}
    with torch.no_grad():
        reward = model(**batch).logits[:, 0]
    assert not any(m.startswith("rewardlab") for m in sys.modules), "rewardlab was imported"
    print(json.dumps({"has_mean": hasattr(config, "mean"), "normalised": ((reward - mean) / std).tolist()}))
""")


def _openrlhf_normalised(model_dir, batch, tmp_path) -> dict:
    script, data = tmp_path / "openrlhf.py", tmp_path / "batch.json"
    script.write_text(OPENRLHF)
    data.write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    out = subprocess.run([sys.executable, str(script), str(model_dir), str(data)], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_export_carries_openrlhf_mean_and_std(tiny_llama_dir, tmp_path):
    rm = _randomise_head(RewardModel.from_backbone(str(tiny_llama_dir), max_length=64))
    prompts = ["What is 12 + 7?", "Name a colour.", "Say hi.", "Capital of Peru?"]
    responses = ["19", "Blue, like the sky.", "Hi there!", "Lima."]
    r = rm.score(prompts, responses)
    rm.settings.reward_mean, rm.settings.reward_std = reward_stats(r)
    rm.save_pretrained(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["mean"] == rm.settings.reward_mean == cfg["rewardlab"]["reward_mean"]
    assert cfg["std"] == rm.settings.reward_std == cfg["rewardlab"]["reward_std"]
    batch = rm.collate([rm.encode(p, y) for p, y in zip(prompts, responses)], padding_side="right")
    out = _openrlhf_normalised(tmp_path / "model", batch, tmp_path)
    ours = (r - rm.settings.reward_mean) / rm.settings.reward_std
    assert out["has_mean"] and np.abs(np.array(out["normalised"]) - ours).max() < 1e-4
    z = np.array(out["normalised"])  # the stats' own items: mean 0, sample std 1
    assert abs(z.mean()) < 1e-4 and abs(z.std(ddof=1) - 1) < 1e-4


def test_no_stats_write_no_openrlhf_keys(tiny_llama_dir, tmp_path):
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=32)
    rm.save_pretrained(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert "mean" not in cfg and "std" not in cfg  # OpenRLHF then keeps 0 and 1


# ------------------------------------------------------------------ tools, chat_template_kwargs
def test_template_kwargs_follow_trl():
    assert template_kwargs() is None and template_kwargs([], {}) is None  # TRL: `tools or None`
    assert template_kwargs(json.dumps([WEATHER])) == {"tools": [WEATHER]}  # a JSON string is decoded
    assert template_kwargs([WEATHER], {"enable_thinking": False}) == {"tools": [WEATHER], "enable_thinking": False}
    assert template_kwargs(None, '{"tools": [], "x": 1}') == {"tools": [], "x": 1}  # the kwargs win (dict merge)


def test_render_gives_tools_and_kwargs_to_the_template(printing_rm):
    tok = printing_rm.tokenizer
    prompt = [{"role": "user", "content": "Weather in Paris?"}]
    p, r = render(tok, "chat", prompt, "Calling get_weather.", {"tools": [WEATHER], "enable_thinking": False})
    assert p == "TOOLS:get_weather;|THINK:False|<user>Weather in Paris?|<assistant>"
    assert r == "Calling get_weather.|"
    assert render(tok, "chat", prompt, "ok") == ("<user>Weather in Paris?|<assistant>", "ok|")


def test_training_encoding_gives_each_row_its_template(printing_rm, tool_pairs):
    pairs = encode_pairs(printing_rm, tool_pairs)
    texts = [printing_rm.tokenizer.decode(e.input_ids) for e in pairs.chosen]
    assert texts[0].startswith("TOOLS:get_weather;|THINK:False|<user>Weather in Paris?")
    assert texts[1].startswith("TOOLS:get_weather;|<user>2 + 2?")  # the JSON-string column
    assert texts[2].startswith("<user>Hi|") and "TOOLS" not in texts[2]
    s = printing_rm.settings
    for i, t in enumerate(tool_pairs.template_kwargs()):
        want = encode(printing_rm.tokenizer, "chat", tool_pairs["prompt"][i], tool_pairs["rejected"][i],
                      s.max_length, s.overlength, t)
        assert pairs.rejected[i].input_ids == want.input_ids


def test_scoring_uses_the_rows_templates(printing_rm, tool_pairs):
    got = printing_rm.score_pairs(tool_pairs)  # a decoder: the shared-prompt packed path
    templates = tool_pairs.template_kwargs()
    want = printing_rm.score(tool_pairs["prompt"], tool_pairs["chosen"], templates=templates)  # padded path
    bare = printing_rm.score(tool_pairs["prompt"], tool_pairs["chosen"])
    np.testing.assert_allclose(got["reward_chosen"], want, atol=1e-5, rtol=0)
    assert np.abs(want[:2] - bare[:2]).min() > 1e-6 and abs(want[2] - bare[2]) < 1e-6  # only rows with a template move


def test_a_model_without_chat_template_says_it_ignores_them(minilm_reward_model, tool_pairs, caplog):
    rm = RewardModel.from_pretrained(minilm_reward_model)
    assert rm.settings.render == "pair"
    with caplog.at_level(logging.WARNING, logger="rewardlab.models.reward_model"):
        rm.score_pairs(tool_pairs)
    assert "4 item(s) carry tools/chat_template_kwargs" in caplog.text  # two rows, both sides


def test_serve_score_passes_them_to_the_template(printing_rm):
    from rewardlab.serve.app import ModelScorer
    from rewardlab.serve.protocol import Limits, parse_score

    body = {"items": [{"prompt": ROWS[0]["prompt"], "response": "Calling get_weather.", "tools": [WEATHER],
                       "chat_template_kwargs": {"enable_thinking": False}},
                      {"messages": ROWS[0]["prompt"] + [{"role": "assistant", "content": "Calling get_weather."}],
                       "tools": json.dumps([WEATHER])},
                      {"prompt": "Hi", "response": "Hello!"}]}
    items = parse_score(body, Limits())
    assert items[0].template == {"tools": [WEATHER], "enable_thinking": False}
    assert items[1].template == {"tools": [WEATHER]} and items[2].template is None
    scorer = ModelScorer(printing_rm)
    text = printing_rm.tokenizer.decode(scorer.encode(items[1]).input_ids)
    assert text.startswith("TOOLS:get_weather;|<user>Weather in Paris?")
    served = scorer.score(scorer.encode_all(items))
    offline = printing_rm.score([it.prompt for it in items], [it.response for it in items],
                                templates=[it.template for it in items])
    np.testing.assert_allclose(served, offline, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ score keeps every column
def test_score_keeps_ids_and_metadata_in_order(minilm_reward_model, tmp_path):
    rows = [{"id": "q-7", "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon",
             "meta": {"annotator": "a1", "tags": ["geo", 2]}, "split_note": "x"},
            {"id": 3, "prompt": "2 + 2?", "chosen": "4", "rejected": "5", "meta": {"annotator": "b2", "tags": []}},
            {"id": "q-1", "prompt": "Colour of snow?", "chosen": "White", "rejected": "Green", "meta": None,
             "split_note": "z"}]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    res = invoke("score", "--model", minilm_reward_model, "--data", data, "--out", out)
    assert res.exit_code == 0, res.stdout + res.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["q-7", 3, "q-1"]  # input order, values as given
    assert [g["meta"] for g in got] == [r["meta"] for r in rows]  # nested values unchanged
    assert [g.get("split_note") for g in got] == ["x", None, "z"]
    assert list(got[0]) == ["prompt", "chosen", "rejected", "source", "id", "meta", "split_note",
                            "reward_chosen", "reward_rejected"]
