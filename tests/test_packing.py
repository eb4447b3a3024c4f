"""Packing and length grouping: layouts by hand, and the same rewards and gradients as padding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rewardlab.config import parse_config
from rewardlab.data import sample_path
from rewardlab.errors import ConfigError
from rewardlab.eval.metrics import accuracy_by_group
from rewardlab.models import packing
from rewardlab.models.inputs import Encoded
from rewardlab.models.reward_model import RewardModel
from rewardlab.train import batching
from rewardlab.models.pairs import EncodedPairs
from rewardlab.train.batching import micro_batch_indices

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def enc(ids, types=None) -> Encoded:
    return Encoded(list(ids), types, "ok")


# ---------------------------------------------------------------- layouts
def test_pack_items_layout():
    b = packing.pack_items([enc([5, 6, 7], [0, 0, 1]), enc([8, 9], [0, 1])])
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert b["token_type_ids"].tolist() == [[0, 0, 1, 0, 1]]
    assert b["segments"].tolist() == [[0, 3, 0, 0], [3, 5, 3, 3]]
    assert b["first"].tolist() == [0, 3] and b["last"].tolist() == [2, 4]
    assert packing.token_counts(b) == (5, 5)
    with pytest.raises(ValueError, match="empty"):
        packing.pack_items([enc([])])


@pytest.mark.parametrize("a, b, n", [([1, 2, 3, 4], [1, 2, 9], 2), ([1, 2, 3], [1, 2, 3, 4], 2),
                                     ([1, 2], [1, 2], 1), ([7], [7, 8], 0), ([1, 2], [3, 4], 0)])
def test_shared_prefix_leaves_each_side_a_token(a, b, n):
    assert packing.shared_prefix_length(a, b) == n


def test_pack_shared_prompt_layout():
    # pair 0: prefix [1, 2], chosen suffix [3, 4], rejected suffix [5]; pair 1: prefix [1], [6], [7, 8]
    b = packing.pack_shared_prompt([enc([1, 2, 3, 4]), enc([1, 6])], [enc([1, 2, 5]), enc([1, 7, 8])])
    assert b["input_ids"].tolist() == [[1, 2, 3, 4, 5, 1, 6, 7, 8]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 2, 0, 1, 1, 2]]
    assert b["segments"].tolist() == [[0, 4, 0, 0], [4, 5, 0, 2], [5, 7, 5, 5], [7, 9, 5, 6]]
    assert b["last"].tolist() == [3, 6, 4, 8]  # chosen items, then rejected ones
    assert b["shared"].tolist() == [2, 1]


def test_prefix_mask_by_hand():
    m = packing._prefix_causal_mask(2, 3, True, "cpu").int().tolist()
    assert m == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


# ---------------------------------------------------------------- order
def _pairs(lengths) -> EncodedPairs:
    items = [enc(range(n)) for n in lengths]
    return EncodedPairs(items, items, {}, np.arange(len(items)), None, 0)


def test_auto_is_padded_under_bf16_on_cuda():
    # the measured H200 case (docs/speed.md): auto packs everywhere but bf16 on CUDA
    assert packing.auto_for_device("auto", "cuda", "bf16") == "none"
    assert packing.auto_for_device("auto", "cuda", "no") == "auto"
    assert packing.auto_for_device("auto", "cpu", "bf16") == "auto"
    assert packing.auto_for_device("padding_free", "cuda", "bf16") == "padding_free"  # explicit wins


def test_length_grouped_order_is_pure_and_less_padded():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=200)
    a = batching.length_grouped_order(lengths, seed=3, epoch=1, global_batch=8, mega_batches=5)
    b = batching.length_grouped_order(lengths, seed=3, epoch=1, global_batch=8, mega_batches=5)
    assert np.array_equal(a, b) and sorted(a.tolist()) == list(range(200))
    assert not np.array_equal(a, batching.length_grouped_order(lengths, 3, 2, 8, 5))

    def padded(order):
        return sum(8 * lengths[order[i:i + 8]].max() for i in range(0, 200, 8))

    plain = np.random.default_rng([3, 1]).permutation(200)
    assert padded(a) < 0.8 * padded(plain)


def test_grouped_micro_batches_cover_each_epoch_once_and_split_ranks():
    lengths = list(np.random.default_rng(1).integers(3, 50, size=24))
    pairs = _pairs(lengths)
    seen = np.concatenate([batching.micro_batch_pairs(pairs, 7, m, 8, 0, 1, True) for m in range(3)])
    assert sorted(seen.tolist()) == list(range(24))
    both = [batching.micro_batch_pairs(pairs, 7, 1, 8, r, 2, True) for r in range(2)]
    assert np.array_equal(np.concatenate(both), batching.micro_batch_pairs(pairs, 7, 1, 8, 0, 1, True))
    # without grouping: the existing schedule, unchanged
    assert np.array_equal(batching.micro_batch_pairs(pairs, 7, 2, 8, 0, 1), micro_batch_indices(24, 7, 2, 8, 0, 1))


# ---------------------------------------------------------------- same rewards, same gradients
PROMPTS = ["What is the capital of France?", "Tell me a joke about cats, please.", "hi",
           [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"},
            {"role": "user", "content": "Another one?"}]]
CHOSEN = ["Paris.", "Why did the cat sit on the computer? To keep an eye on the mouse.", "Hello! How can I help?", "11"]
REJECTED = ["Lyon, I think.", "No.", "Go away.", "Eleven is not prime, so 9."]


def _encode(rm):
    return [rm.encode(p, c) for p, c in zip(PROMPTS, CHOSEN)], [rm.encode(p, r) for p, r in zip(PROMPTS, REJECTED)]


def _rewards_and_grads(rm, batch):
    rm.zero_grad(set_to_none=True)
    r, h = packing.forward(rm, batch)
    b = len(r) // 2
    loss = torch.nn.functional.softplus(-(r[:b] - r[b:])).mean() + 0.1 * h.pow(2).mean()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in rm.named_parameters() if p.grad is not None}
    return r.detach(), h.detach(), grads


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-4)
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], rtol=1e-4, atol=1e-5, msg=name)


def test_decoder_packed_and_shared_prompt_match_padding(tiny_llama_dir):
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64)
    rm.eval()
    chosen, rejected = _encode(rm)
    padded = _rewards_and_grads(rm, rm.collate(chosen + rejected))
    packing.enable(rm, "shared_prompt")
    assert rm.model.config._attn_implementation == packing.ATTENTION
    assert _rewards_and_grads(rm, rm.collate(chosen + rejected))[0].allclose(padded[0], atol=1e-6)  # sdpa fallback
    _assert_same(padded, _rewards_and_grads(rm, packing.pack_items(chosen + rejected)))
    shared = packing.pack_shared_prompt(chosen, rejected)
    assert (shared["shared"] > 5).all()  # the rendered prompt is shared
    assert shared["input_ids"].numel() < sum(len(e.input_ids) for e in chosen + rejected)
    _assert_same(padded, _rewards_and_grads(rm, shared))
    rc, rr = packing.score_pairs(rm, chosen, rejected, pairs_per_batch=3)  # validation's packed scoring
    np.testing.assert_allclose(np.concatenate([rc, rr]), padded[0].double().numpy(), rtol=0, atol=1e-4)
    assert rm.training is False
    rm.settings.padding_side = "left"  # the padded reference does not depend on the side
    _assert_same(_rewards_and_grads(rm, rm.collate(chosen + rejected)), _rewards_and_grads(rm, shared))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_encoder_packed_matches_padding(pooling):
    rm = RewardModel.from_backbone("minilm", max_length=64, pooling=pooling)
    rm.eval()  # dropout off: the two paths draw different masks
    chosen, rejected = _encode(rm)
    padded = _rewards_and_grads(rm, rm.collate(chosen + rejected))
    assert packing.enable(rm, "auto") == "padding_free"
    _assert_same(padded, _rewards_and_grads(rm, packing.pack_items(chosen + rejected)))
    with pytest.raises(ConfigError, match="encoder"):
        packing.enable(rm, "shared_prompt")


def test_packing_needs_a_supported_pooling(tiny_llama_dir):
    decoder = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64)
    assert packing.resolve_mode(decoder, "auto") == "shared_prompt"
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64, pooling="native")
    assert packing.enable(rm, "auto") == "none"  # auto falls back to padding
    with pytest.raises(ConfigError, match="native"):
        packing.enable(rm, "padding_free")
    with pytest.raises(ConfigError, match="packing must be one of"):
        packing.enable(rm, "flat")
    with pytest.raises(ConfigError, match="packing.enable"):
        packing.forward(rm, packing.pack_items(_encode(rm)[0]))


# ---------------------------------------------------------------- the loop with packing
def test_train_packed_and_grouped_exports_a_plain_model(tmp_path):
    from rewardlab.train.loop import train

    cfg = parse_config({
        "output_dir": str(tmp_path / "run"), "model": {"name_or_path": "minilm", "max_length": 64},
        "data": {"train": str(sample_path()), "val_fraction": 0.2, "max_train_pairs": 32, "max_val_pairs": 24},
        "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-4, "eval_every": 3, "save_every": 100,
                  "progress": False, "reward_stats_max_pairs": 8,
                  "group_by_length": True, "disable_dropout": True}})
    summary = train(cfg)
    assert summary["tokens"]["packing"] == "padding_free"  # auto, for an encoder
    assert summary["tokens"]["padding_fraction"] == 0.0 and summary["tokens"]["processed"] > 0
    model_dir = tmp_path / "run" / "model"
    assert "rewardlab_varlen" not in (model_dir / "config.json").read_text()
    # per-source accuracy comes from the last validation (no second scoring): it must agree with
    # scoring the exported model again
    rm = RewardModel.from_pretrained(model_dir)
    val = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"validation"' in x]
    from rewardlab.train.data import prepare_tables

    tables = prepare_tables(cfg.data, seed=cfg.train.seed)
    scores = rm.score_pairs(tables.validation)
    expected = accuracy_by_group(scores["reward_chosen"], scores["reward_rejected"], tables.validation["source"])
    got = summary["validation_by_source"]
    assert got.keys() == expected.keys()
    for k in expected:
        assert (got[k]["n"], got[k]["correct"]) == (expected[k]["n"], expected[k]["correct"]), k
        assert got[k]["accuracy"] == pytest.approx(expected[k]["accuracy"])
    assert val[-1]["accuracy"] == pytest.approx(summary["validation"]["accuracy"])


def test_score_pairs_shares_the_prompt_for_decoders(tiny_llama_dir):
    from rewardlab.data import PreferenceTable

    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=48, overlength="drop")
    records = [{"prompt": p, "chosen": c, "rejected": r}
               for p, c, r in zip(PROMPTS * 2, CHOSEN * 2, REJECTED[::-1] * 2)]
    table = PreferenceTable.from_records(records, [f"t:{i}" for i in range(len(records))], "explicit")
    shared = rm.score_pairs(table, batch_size=4, return_features=True)
    assert rm.model.config._attn_implementation == "sdpa"  # restored
    n = len(table)
    padded, feats = rm.score(list(table["prompt"]) * 2, list(table["chosen"]) + list(table["rejected"]),
                             return_features=True)
    np.testing.assert_allclose(shared["reward_chosen"], padded[:n], atol=1e-4, rtol=0)
    np.testing.assert_allclose(shared["reward_rejected"], padded[n:], atol=1e-4, rtol=0)
    np.testing.assert_allclose(shared["features_rejected"], feats[n:], atol=1e-4, rtol=1e-4)
    assert sum(rm.last_truncation.values()) == 2 * n
