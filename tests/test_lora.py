"""LoRA reward models (models/lora.py): what is trained, bad configurations, every objective, the
loop with gradient checkpointing, NormBT, MetaRM and exact resume, the merged and adapter exports
(reloaded without rewardlab, the adapter on the *original* base), 2-process DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from rewardlab.config import LoraConfig, parse_config
from rewardlab.data import sample_path
from rewardlab.errors import ConfigError
from rewardlab.models import lora
from rewardlab.models.reward_model import RewardModel
from rewardlab.objectives import build_loss
from rewardlab.objectives.registry import available

pytest.importorskip("peft")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _tiny_rm(tiny_llama_dir, **kw) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(tiny_llama_dir), max_length=48, **kw)


def _lora_params_by_hand(r: int, layers=2, h=64, inter=128, kv=32) -> int:
    # r * (in + out) per adapted Linear: q, o (64 -> 64), k, v (64 -> 32), gate, up (64 -> 128), down (128 -> 64)
    per_layer = r * ((h + h) * 2 + (h + kv) * 2 + (h + inter) * 3)
    return layers * per_layer


# ---------------------------------------------------------------------- what is trained
def test_decoder_defaults_train_adapters_and_head_only(tiny_llama_dir):
    rm = _tiny_rm(tiny_llama_dir)
    total_before = lora.parameter_counts(rm)["total"]
    lora.apply(rm, LoraConfig(r=4))
    cfg = lora.peft_model(rm).peft_config["default"]
    assert sorted(cfg.target_modules) == sorted(LLAMA_TARGETS)
    assert lora.saved_modules(rm) == ["score"]
    trainable = {n for n, p in rm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".modules_to_save." in n for n in trainable)
    assert any(n.startswith("model.score.modules_to_save") for n in trainable)  # the head trains
    assert not rm.model.get_input_embeddings().weight.requires_grad
    counts = lora.parameter_counts(rm)
    assert counts["trainable"] == _lora_params_by_hand(4) + 64  # + the score head, 64 -> 1, no bias
    # the frozen originals stay, plus the adapters and the head's trainable copy
    assert counts["total"] == total_before + _lora_params_by_hand(4) + 64
    assert lora.adapter_state(rm).keys() and sum(t.numel() for t in lora.adapter_state(rm).values()) == counts["trainable"]


def test_encoder_defaults_save_classifier_and_pooler():
    rm = RewardModel.from_backbone("minilm", max_length=32)
    assert rm.settings.pooling == "cls"
    assert lora.default_modules_to_save(rm.model, "cls") == ["classifier", "pooler"]
    assert lora.default_modules_to_save(rm.model, "mean") == ["classifier"]  # mean pooling never reads it
    targets = lora.default_target_modules(rm.model, ["classifier", "pooler"])
    # BERT's "dense" is ambiguous (the pooler has one): the attention output and MLP layers by suffix
    assert sorted(targets) == ["intermediate.dense", "key", "output.dense", "query", "value"]
    lora.apply(rm, LoraConfig(r=2))
    assert lora.saved_modules(rm) == ["bert.pooler", "classifier"]
    adapted = [n for n, m in rm.model.named_modules() if hasattr(m, "lora_A")]
    assert len(adapted) == 6 * 6 and not any("pooler" in n for n in adapted)  # 6 layers x 6 linear


def test_encoder_exports_carry_the_trained_pooler_and_head(tmp_path):
    """MiniLM (cls pooling): adapters, classifier and pooler changed by hand; the merged directory
    (plain transformers) and the adapter (peft on the original base) score as rewardlab did."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    rm = RewardModel.from_backbone("minilm", max_length=32)
    base_dir = rm.model.name_or_path
    lora.apply(rm, LoraConfig(r=2, dropout=0.0, export="both"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in rm.named_parameters():
            if p.requires_grad:  # lora_B starts at 0: move every trainable tensor
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    prompts, responses = ["Is water wet?", "Pick a number."], ["Yes, it is.", "Seven, I think, or maybe eight."]
    expected = rm.score(prompts, responses)
    batch = rm.collate([rm.encode(p, r) for p, r in zip(prompts, responses)])
    info = lora.export(rm, LoraConfig(r=2, export="both"), tmp_path / "model")
    assert info["modules_to_save"] == ["bert.pooler", "classifier"]
    with torch.no_grad():
        merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
        np.testing.assert_allclose(merged(**batch).logits[:, 0].numpy(), expected, atol=1e-5, rtol=0)
        base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
        adapter = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
        np.testing.assert_allclose(adapter(**batch).logits[:, 0].numpy(), expected, atol=1e-5, rtol=0)


def test_bad_configurations_name_the_field(tiny_llama_dir):
    base = {"data": {"train": "x.jsonl"}}
    with pytest.raises(ConfigError, match=r"lora\.r"):
        parse_config({**base, "lora": {"r": 0}})
    with pytest.raises(ConfigError, match=r"lora\.target_modules"):
        parse_config({**base, "lora": {"target_modules": []}})
    with pytest.raises(ConfigError, match=r"lora\.rank"):  # misspelt keys are errors too
        parse_config({**base, "lora": {"rank": 8}})
    rm = _tiny_rm(tiny_llama_dir)
    with pytest.raises(ConfigError, match=r"lora\.target_modules: 'q_projj'.*q_proj"):
        lora.apply(rm, LoraConfig(target_modules=["q_proj", "q_projj"]))
    with pytest.raises(ConfigError, match=r"lora\.modules_to_save: the reward head 'score' would stay frozen"):
        lora.apply(rm, LoraConfig(modules_to_save=[]))
    with pytest.raises(ConfigError, match=r"lora\.modules_to_save: 'pooler'"):
        lora.apply(rm, LoraConfig(modules_to_save=["score", "pooler"]))
    with pytest.raises(ConfigError, match=r"lora\.target_modules: \['score'\]"):
        lora.apply(rm, LoraConfig(target_modules=["q_proj", "score"]))
    assert lora.peft_model(rm) is None  # nothing was wrapped


def test_every_registered_objective_reaches_the_adapters(tiny_llama_dir):
    """One forward/backward per registry objective (main, and each auxiliary on top of bt) through
    the loop's TrainModule: gradients reach the adapters and the head, never the frozen weights."""
    from rewardlab.train.loop import TrainModule

    rm = _tiny_rm(tiny_llama_dir)
    lora.apply(rm, LoraConfig(r=4, dropout=0.0))
    prompts = ["What is 2 + 2?", "Name a colour.", "Say hi.", "Capital of France?"]
    enc = [rm.encode(p, r) for p, r in zip(prompts * 2, ["4", "Blue", "Hi!", "Paris", "5", "Loud", "No.", "Rome"])]
    batch = rm.collate(enc)
    cols = {"margin": torch.tensor([0.5, 0.0, 1.0, 0.2]), "weight": torch.tensor([1.0, 2.0, 1.0, 0.5]),
            "strength_mean": torch.tensor([0.3, -0.2, 1.0, -1.0]), "strength_std": torch.ones(4),
            "flip": torch.tensor([0.0, 1.0, 0.0, 0.0])}
    configs = [({"name": n}, []) for n in available()["main"] if build_loss(n).layout == "pairs"] + [({"name": "bt"}, [{"name": n}]) for n in available()["aux"]]
    assert len(configs) >= 10
    frozen = [p for n, p in rm.named_parameters() if not p.requires_grad]
    for objective, aux in configs:
        module = TrainModule(rm, build_loss(objective, aux, feature_dim=rm.feature_dim))
        module.zero_grad(set_to_none=True)
        loss, logs, _, _ = module(batch, cols)
        loss.backward()
        grads = {n: p.grad for n, p in rm.named_parameters() if p.requires_grad}
        assert torch.isfinite(loss), objective
        assert all(p.grad is None for p in frozen), objective
        lora_b = [g for n, g in grads.items() if "lora_B" in n]
        assert lora_b and all(g is not None for g in lora_b) and sum(float(g.abs().sum()) for g in lora_b) > 0, objective
        assert float(grads["model.score.modules_to_save.default.weight"].abs().sum()) > 0, objective


# ---------------------------------------------------------------------- the loop and the exports
def _tree(out: Path, backbone: Path, **extra) -> dict:
    tc = {"max_steps": 4, "batch_size": 4, "lr": 1e-2, "scheduler": "constant", "warmup_ratio": 0.0,
          "eval_every": 2, "save_every": 2, "log_every": 1, "progress": False, "reward_stats_max_pairs": 8}
    tc.update(extra.pop("train", {}))
    tree = {"output_dir": str(out), "model": {"name_or_path": str(backbone), "max_length": 48},
            "data": {"train": str(sample_path()), "val_fraction": 0.2, "max_train_pairs": 16, "max_val_pairs": 8},
            "objective": {"name": "normbt"}, "train": tc, "lora": {"r": 4, "dropout": 0.0}}
    for key, value in extra.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return tree


@pytest.fixture(scope="module")
def lora_run(tiny_llama_dir, tmp_path_factory) -> Path:
    """LoRA with gradient checkpointing and NormBT, both exports."""
    from rewardlab.train.loop import train

    out = tmp_path_factory.mktemp("lora") / "run"
    train(parse_config(_tree(out, tiny_llama_dir, model={"gradient_checkpointing": True},
                             lora={"export": "both"})))
    return out


_PLAIN = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
merged_dir, adapter_dir, base_dir, batch = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ids, mask = torch.tensor(batch["input_ids"]), torch.tensor(batch["attention_mask"])
with torch.no_grad():
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    r_merged = merged(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
    clean = not any(m == "peft" or m.startswith(("peft.", "rewardlab")) for m in sys.modules)
    from peft import PeftModel  # the adapter on the original base, as the README says
    tok = AutoTokenizer.from_pretrained(adapter_dir)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    vocab = base.get_input_embeddings().num_embeddings
    base.resize_token_embeddings(len(tok))
    base.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    r_adapter = model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
print(json.dumps({"merged": r_merged, "adapter": r_adapter, "clean": clean, "base_vocab": vocab,
                  "rewardlab": any(m.startswith("rewardlab") for m in sys.modules)}))
"""


def test_lora_run_summary_and_exports_score_the_same(lora_run, tiny_llama_dir):
    summary = json.loads((lora_run / "summary.json").read_text())
    n_lora = _lora_params_by_hand(4) + 64
    assert summary["parameters"]["trainable"] == n_lora
    info = summary["lora"]
    assert info["adapter_params"] == n_lora and info["adapter_bytes"] == 4 * n_lora  # float32
    assert info["modules_to_save"] == ["score"] and sorted(info["target_modules"]) == sorted(LLAMA_TARGETS)
    assert 4 * n_lora < info["adapter_file_bytes"] < 4 * n_lora + 64_000  # no embedding matrix inside
    assert summary["peak_memory"]["rss_peak_bytes"] > 50e6
    adapter = load_file(str(lora_run / "adapter" / "adapter_model.safetensors"))
    # gradient checkpointing with frozen embeddings still trains the adapters (lora_B starts at 0)
    b = [t for k, t in adapter.items() if "lora_B" in k]
    assert len(b) == 14 and all(float(t.abs().max()) > 0 for t in b)
    assert not any("embed" in k for k in adapter)
    records = [json.loads(x) for x in (lora_run / "metrics.jsonl").read_text().splitlines()]
    assert all("normbt/mu" in r for r in records if r["split"] == "train")

    # rewardlab: the adapter directory (unmerged, through peft) and the merged one score the same
    via_adapter = RewardModel.from_pretrained(lora_run / "adapter")
    via_merged = RewardModel.from_pretrained(lora_run / "model")
    assert via_adapter.settings.pooling == "last" and via_adapter.settings.reward_stats_n == 16
    prompts = ["What is 2 + 2?", "Name a colour.", "Say something kind about <|im_end|> tokens."]
    responses = ["4, of course.", "Blue", "They end turns."]
    r_adapter = via_adapter.score(prompts, responses)
    np.testing.assert_allclose(via_merged.score(prompts, responses), r_adapter, atol=1e-5, rtol=0)
    assert float(np.abs(r_adapter).max()) > 1e-3

    # plain transformers (no rewardlab, no peft) on the merged directory; peft on the *original* base
    batch = {k: v.tolist() for k, v in via_adapter.collate([via_adapter.encode(p, r) for p, r in zip(prompts, responses)]).items()}
    res = subprocess.run([sys.executable, "-c", _PLAIN, str(lora_run / "model"), str(lora_run / "adapter"),
                          str(tiny_llama_dir), json.dumps(batch)], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["clean"] and not out["rewardlab"]
    assert out["base_vocab"] == len(via_adapter.tokenizer) - 1  # the original base lacks the pad row
    np.testing.assert_allclose(out["merged"], r_adapter, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out["adapter"], r_adapter, atol=1e-5, rtol=0)


def test_resume_with_metarm_is_exact(tiny_llama_dir, tmp_path):
    """Adapters, head, optimizer, NormBT's EMA and the MetaRM step: a run resumed from its step-2
    checkpoint ends where the uninterrupted run ends."""
    from rewardlab.train.loop import train

    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"prompt": f"Q{i}: {i} + {i}?", "chosen": f"{2 * i}", "rejected": r}) + "\n"
                            for i in range(6) for r in (f"maybe {i}", "no idea")))
    tree = _tree(tmp_path / "full", tiny_llama_dir, metarm={"data": str(meta), "eta": 0.01, "meta_batch_prompts": 2},
                 train={"eval_every": 100})
    train(parse_config(tree))
    records = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["meta_J_after"] > r["meta_J"] for r in records if r["split"] == "train")  # ascent on adapters
    cut = tmp_path / "cut" / "checkpoints"
    cut.mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-000002", cut / "step-000002")
    train(parse_config({**tree, "output_dir": str(tmp_path / "cut")}), resume=True)
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    base = RewardModel.from_backbone(str(tiny_llama_dir)).model.state_dict()
    moved = [k for k in a if k in base and base[k].shape == a[k].shape and not torch.equal(base[k], a[k])]
    assert any("q_proj" in k for k in moved)  # the merge changed the adapted weights


@pytest.mark.distributed
def test_two_process_ddp_with_gradient_checkpointing(tiny_llama_dir, tmp_path):
    """TRL #831/#835: LoRA + gradient checkpointing + DDP with find_unused_parameters (set by MetaRM
    here). 2 ranks x 2 pairs end where one process with 4 pairs ends."""
    from rewardlab.train.loop import train

    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": f"{i}", "rejected": r}) + "\n"
                            for i in range(6) for r in (f"maybe {i}", "no idea")))
    metarm = {"data": str(meta), "eta": 0.05, "meta_batch_prompts": 1}
    ddp = _tree(tmp_path / "ddp", tiny_llama_dir, model={"gradient_checkpointing": True}, metarm=metarm,
                train={"max_steps": 3, "batch_size": 2, "eval_every": 100, "save_every": 100})
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(ddp))
    launcher = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu_ddp2.yaml"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                          "-m", "rewardlab.cli", "train", str(cfg)], capture_output=True, text=True, env=env,
                         check=False, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["parameters"]["trainable"] == _lora_params_by_hand(4) + 64
    one = {**ddp, "output_dir": str(tmp_path / "one"), "metarm": {**metarm, "meta_batch_prompts": 2},
           "train": {**ddp["train"], "batch_size": 4}}
    train(parse_config(one))
    a = load_file(str(tmp_path / "ddp" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 2e-3
    base = RewardModel.from_backbone(str(tiny_llama_dir)).model.state_dict()
    assert any(not torch.equal(base[k], a[k]) for k in a if "q_proj" in k)
