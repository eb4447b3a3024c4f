"""RewardModel: export to plain transformers, pooling with either padding side, truncation policies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rewardlab.errors import ConfigError
from rewardlab.models.inputs import encode
from rewardlab.models.reward_model import RewardModel, last_index

PROMPTS = ["What is 12 + 7?", "\n\nHuman: Convert 5 km to metres.\n\nAssistant:", "Say hi. " * 20]
RESPONSES = ["12 + 7 = 19.", "5 km is 5000 m.", "Hi!<|im_end|>"]  # a literal EOS inside the text

PLAIN = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
    batch = {k: torch.tensor(v) for k, v in json.load(open(sys.argv[2])).items()}
    with torch.no_grad():
        out = model(**batch).logits[:, 0]
    assert not any(m.startswith("rewardlab") for m in sys.modules), "rewardlab was imported"
    print(json.dumps(out.tolist()))
""")


def _plain_transformers_scores(model_dir, batch, tmp_path) -> np.ndarray:
    """Score a batch in a fresh interpreter that never imports rewardlab."""
    script, data = tmp_path / "plain.py", tmp_path / "batch.json"
    script.write_text(PLAIN)
    data.write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    out = subprocess.run([sys.executable, str(script), str(model_dir), str(data)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    return np.array(json.loads(out.stdout.strip().splitlines()[-1]))


def _randomise_head(rm: RewardModel) -> None:
    torch.manual_seed(1)
    head = rm.model.score if hasattr(rm.model, "score") else rm.model.classifier
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)


@pytest.fixture(scope="module")
def minilm():
    rm = RewardModel.from_backbone("minilm", max_length=48)
    _randomise_head(rm)
    return rm.eval()


@pytest.fixture(scope="module")
def tiny_llama(tiny_llama_dir):
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=48)
    _randomise_head(rm)
    return rm.eval()


@pytest.mark.parametrize("which", ["minilm", "tiny_llama"])
def test_export_loads_in_plain_transformers_with_same_rewards(which, request, tmp_path):
    rm = request.getfixturevalue(which)
    ours = rm.score(PROMPTS, RESPONSES, batch_size=3)
    rm.save_pretrained(tmp_path / "model")
    batch = rm.collate([rm.encode(p, r) for p, r in zip(PROMPTS, RESPONSES)], padding_side="right")
    plain = _plain_transformers_scores(tmp_path / "model", batch, tmp_path)
    assert np.abs(plain - ours).max() < 1e-5
    reloaded = RewardModel.from_pretrained(tmp_path / "model")
    assert reloaded.settings.pooling == rm.settings.pooling
    stored = json.loads((tmp_path / "model" / "config.json").read_text())["rewardlab"]
    assert stored["max_length"] == 48 and stored["pooling"] == rm.settings.pooling
    assert stored["chat_template"] == (rm.tokenizer.chat_template if rm.settings.render == "chat" else None)
    assert np.abs(reloaded.score(PROMPTS, RESPONSES) - ours).max() < 1e-5


def test_decoder_gets_a_pad_token_distinct_from_eos(tiny_llama):
    tok = tiny_llama.tokenizer
    assert tok.pad_token_id != tok.eos_token_id
    assert tiny_llama.model.config.pad_token_id == tok.pad_token_id


@pytest.mark.parametrize("which", ["minilm", "tiny_llama"])
def test_scores_do_not_depend_on_padding_side_or_batch_size(which, request):
    rm = request.getfixturevalue(which)
    right1 = rm.score(PROMPTS, RESPONSES, batch_size=1)
    right3 = rm.score(PROMPTS, RESPONSES, batch_size=32)
    left3 = rm.score(PROMPTS, RESPONSES, batch_size=32, padding_side="left")
    assert np.abs(right1 - right3).max() < 1e-4
    assert np.abs(right1 - left3).max() < 1e-4


def test_plain_tokenizer_of_export_matches_rewardlab_encoding(minilm, tmp_path):
    from transformers import AutoTokenizer

    minilm.save_pretrained(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok(PROMPTS[0], RESPONSES[0])["input_ids"] == minilm.encode(PROMPTS[0], RESPONSES[0]).input_ids


def test_last_index_with_left_and_right_padding():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    assert last_index(right).tolist() == [2, 3, 0]
    assert last_index(left).tolist() == [3, 3, 3]


def test_truncate_prompt_left_keeps_response_whole(minilm):
    tok = minilm.tokenizer
    prompt, response = "start " + "middle " * 30 + "end", "the answer is forty two"
    e = encode(tok, "pair", prompt, response, 20, "truncate_prompt_left")
    assert len(e.input_ids) == 20 and e.status == "prompt_truncated"
    text = tok.decode(e.input_ids)
    assert text.endswith("[SEP] the answer is forty two [SEP]")
    assert "middle end [SEP]" in text and "start" not in text  # the prompt's end survives, its start is cut


def test_truncate_right_and_drop_and_overlong_response(minilm):
    tok = minilm.tokenizer
    prompt, response = "short prompt", "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    right = encode(tok, "pair", prompt, response, 12, "truncate_right")
    assert len(right.input_ids) == 12 and right.status == "truncated_right"
    assert tok.decode(right.input_ids).startswith("[CLS] short prompt [SEP] a b")
    assert encode(tok, "pair", prompt, response, 12, "drop").status == "dropped"
    resp = encode(tok, "pair", prompt, response, 12, "truncate_prompt_left")
    assert resp.status == "response_truncated" and len(resp.input_ids) == 12
    assert encode(tok, "pair", prompt, "ok", 12, "truncate_prompt_left").status == "ok"


def test_chat_render_keeps_the_template_and_cuts_the_prompt(tiny_llama):
    e = tiny_llama.encode("word " * 200, "final answer")
    text = tiny_llama.tokenizer.decode(e.input_ids)
    assert len(e.input_ids) == 48 and e.status == "prompt_truncated"
    assert text.endswith("<|im_start|>assistant\nfinal answer<|im_end|>\n")


def test_bad_pooling_is_a_config_error():
    with pytest.raises(ConfigError, match="pooling 'last'"):
        RewardModel.from_backbone("minilm", pooling="last")


def test_enable_checkpointing_turns_it_on_without_the_deprecated_name():
    """transformers 5.2x renamed gradient_checkpointing_enable (the old name warns and goes in v6):
    on the installed transformers the helper raises no FutureWarning and checkpointing is on (on a
    release without the new name it takes the old one; that branch is not exercised here)."""
    import warnings

    from transformers import LlamaConfig, LlamaForCausalLM

    from rewardlab.models.backbone import enable_checkpointing

    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16)
    model = LlamaForCausalLM(cfg)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=FutureWarning)
        enable_checkpointing(model, use_reentrant=False)
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_gguf_conversion_publish_keeps_the_first_finished_copy(tmp_path):
    # two processes (the ranks of `accelerate launch` on a fresh cache) convert the same GGUF: the
    # second to finish finds the folder taken, drops its own copy and uses the first one
    from rewardlab.models.backbone import _publish

    def done(folder, text):
        folder.mkdir()
        (folder / "config.json").write_text(text)
        (folder / "model.safetensors").write_text(text)
        return folder

    target = tmp_path / "SmolLM2-key"
    assert _publish(done(tmp_path / "a.tmp", "first"), target) == target
    assert (target / "config.json").read_text() == "first" and not (tmp_path / "a.tmp").exists()
    assert _publish(done(tmp_path / "b.tmp", "second"), target) == target
    assert (target / "config.json").read_text() == "first" and not (tmp_path / "b.tmp").exists()
    # a taken folder that is not a finished conversion is an error, not silently used
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "partial").write_text("x")
    with pytest.raises(OSError):
        _publish(done(tmp_path / "c.tmp", "third"), broken)
