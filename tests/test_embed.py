"""Embedding extraction and its on-disk cache (rewardlab.embed)."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.embed import extract
from rewardlab.embed.extract import EmbeddingCache, EmbedSpec, Embedder, embed_table, embed_texts, item_key
from rewardlab.errors import ConfigError
from rewardlab.models.reward_model import RewardModel

PROMPTS = ["What is 2 + 2?", "Name a colour.", [{"role": "user", "content": "Say hi in French."}],
           "What is 2 + 2?"]
RESPONSES = ["4", "Blue, like the sky on a clear summer day.", "Bonjour !", "Five."]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llama_embedder(tiny_llama_dir):
    return Embedder(EmbedSpec(model=str(tiny_llama_dir), max_length=64))


def test_decoder_last_token_matches_reward_model_features(tiny_llama_dir, llama_embedder):
    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=64)
    _, h = rm.score(PROMPTS, RESPONSES, return_features=True, batch_size=3)
    res = embed_texts(PROMPTS, RESPONSES, llama_embedder.spec, embedder=llama_embedder, use_cache=False,
                      batch_size=3)
    assert llama_embedder.pooling == "last" and llama_embedder.render == "chat"
    np.testing.assert_allclose(res.embeddings, h, atol=1e-5)


def test_encoder_cls_and_mean_match_reward_model_features():
    rm = RewardModel.from_backbone("minilm", max_length=64)
    _, h_cls = rm.score(PROMPTS, RESPONSES, return_features=True)
    cls = embed_texts(PROMPTS, RESPONSES, EmbedSpec(model="minilm", max_length=64), use_cache=False)
    np.testing.assert_allclose(cls.embeddings, h_cls, atol=1e-5)
    rm.settings.pooling = "mean"
    _, h_mean = rm.score(PROMPTS, RESPONSES, return_features=True)
    mean = embed_texts(PROMPTS, RESPONSES, EmbedSpec(model="minilm", pooling="mean", max_length=64),
                       use_cache=False)
    np.testing.assert_allclose(mean.embeddings, h_mean, atol=1e-5)
    with pytest.raises(ConfigError, match="decoders"):
        Embedder(EmbedSpec(model="minilm", pooling="last"))


def test_layer_selection(tiny_llama_dir, llama_embedder):
    last = embed_texts(PROMPTS[:2], RESPONSES[:2], llama_embedder.spec, embedder=llama_embedder, use_cache=False)
    spec2 = EmbedSpec(model=str(tiny_llama_dir), max_length=64, layer=2)  # 2 layers: the same state
    e2 = embed_texts(PROMPTS[:2], RESPONSES[:2], spec2, use_cache=False)
    np.testing.assert_allclose(e2.embeddings, last.embeddings, atol=1e-6)
    e1 = embed_texts(PROMPTS[:2], RESPONSES[:2], EmbedSpec(model=str(tiny_llama_dir), max_length=64, layer=1),
                     use_cache=False)
    assert not np.allclose(e1.embeddings, last.embeddings)
    with pytest.raises(ConfigError, match="layer"):
        Embedder(EmbedSpec(model=str(tiny_llama_dir), layer=7))


def test_last_token_index_left_and_right_padding_by_hand():
    import torch

    from rewardlab.embed.extract import last_token_index, pool_last

    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]  # by hand: the last 1 of each row
    assert last_token_index(left).tolist() == [4, 4, 4]
    hidden = torch.arange(3 * 5 * 2, dtype=torch.float32).reshape(3, 5, 2)
    assert pool_last(hidden, right).tolist() == [hidden[0, 2].tolist(), hidden[1, 4].tolist(), hidden[2, 0].tolist()]
    assert pool_last(hidden, left).tolist() == [hidden[0, 4].tolist(), hidden[1, 4].tolist(), hidden[2, 4].tolist()]


def test_decoder_vectors_do_not_depend_on_the_padding_side(tiny_llama_dir, llama_embedder):
    """Items of different lengths in one batch: left and right padding give the same vectors
    (position ids from the mask, the last real token read)."""
    left = Embedder(llama_embedder.spec, padding_side="left")
    enc = [llama_embedder.encode(p, r) for p, r in zip(PROMPTS, RESPONSES)]
    assert len({len(e.input_ids) for e in enc}) > 1  # padding really happens
    np.testing.assert_allclose(left.forward(enc), llama_embedder.forward(enc), atol=1e-5)
    alone = np.concatenate([llama_embedder.forward([e]) for e in enc])  # no padding at all
    np.testing.assert_allclose(llama_embedder.forward(enc), alone, atol=1e-5)
    with pytest.raises(ConfigError, match="padding_side"):
        Embedder(llama_embedder.spec, padding_side="middle")


def test_cache_dedupes_and_skips_the_model_when_everything_is_cached(tmp_path, llama_embedder, monkeypatch):
    spec = llama_embedder.spec
    res = embed_texts(PROMPTS, RESPONSES + [], spec, cache_dir=tmp_path, embedder=llama_embedder)
    assert res.stats["n_items"] == 4 and res.stats["n_unique"] == 4 and res.stats["n_embedded"] == 4
    dup_p, dup_r = PROMPTS + PROMPTS[:2], RESPONSES + RESPONSES[:2]  # the same items in other pairs
    again = embed_texts(dup_p, dup_r, spec, cache_dir=tmp_path, embedder=llama_embedder)
    assert again.stats["n_unique"] == 4 and again.stats["n_cached"] == 4 and again.stats["n_embedded"] == 0
    np.testing.assert_array_equal(again.embeddings[4:], res.embeddings[:2])

    def no_model(*a, **k):
        raise AssertionError("the model must not be loaded when every item is cached")

    monkeypatch.setattr(extract, "Embedder", no_model)
    cached = embed_texts(dup_p, dup_r, spec, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.embeddings, again.embeddings)
    # a different setting (pooling, layer, max length) is a different cache
    other = EmbeddingCache(tmp_path, {**llama_embedder.resolved(), "max_length": 32})
    assert other.dir != res.cache_dir and len(other) == 0


def test_interrupted_embedding_resumes(tmp_path, llama_embedder, monkeypatch):
    prompts = [f"question {i}" for i in range(7)]
    responses = [f"answer number {i} " * (i + 1) for i in range(7)]
    full = embed_texts(prompts, responses, llama_embedder.spec, use_cache=False, embedder=llama_embedder)
    calls = {"n": 0}
    original = EmbeddingCache.add

    def add_then_die(self, keys, vectors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after the first shard was written
        original(self, keys, vectors)

    monkeypatch.setattr(EmbeddingCache, "add", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        embed_texts(prompts, responses, llama_embedder.spec, cache_dir=tmp_path, embedder=llama_embedder,
                    batch_size=2, flush_every=2)
    monkeypatch.setattr(EmbeddingCache, "add", original)
    resumed = embed_texts(prompts, responses, llama_embedder.spec, cache_dir=tmp_path, embedder=llama_embedder,
                          batch_size=2, flush_every=2)
    assert resumed.stats["n_cached"] == 2 and resumed.stats["n_embedded"] == 5
    np.testing.assert_allclose(resumed.embeddings, full.embeddings, atol=1e-5)
    assert not list(resumed.cache_dir.glob("*.tmp"))


def test_keys_and_table(tmp_path, llama_embedder):
    assert item_key("p", "r") == item_key("p", "r") != item_key("p", "r ")
    assert item_key([{"role": "user", "content": "p"}], "r") != item_key("p", "r")
    from rewardlab.data import PreferenceTable

    table = PreferenceTable({"prompt": ["a", "a"], "chosen": ["x", "x"], "rejected": ["y", "z"]})
    out = embed_table(table, llama_embedder.spec, cache_dir=tmp_path, embedder=llama_embedder)
    assert out["chosen"].shape == (2, llama_embedder.dim) and out["stats"]["n_unique"] == 3
    np.testing.assert_array_equal(out["chosen"][0], out["chosen"][1])


def test_embedding_head_golden_skips_pool_prompts(tmp_path, tiny_llama_dir):
    import json

    from rewardlab.study.golden import build_pool

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    pool_data = write("pool.jsonl", [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}
                                     for i in range(3)])
    train = write("train.jsonl", [{"prompt": f"t{i}", "chosen": f"fine answer {i}", "rejected": f"no {i}"}
                                  for i in range(8)] + [{"prompt": "q0", "chosen": "good 0", "rejected": "x"}])
    pool = build_pool(pool_data, {"kind": "embedding_head", "train_data": train,
                                  "embedding": {"model": str(tiny_llama_dir), "max_length": 32},
                                  "head": {"members": 2, "widths": [8], "epochs": 2},
                                  "cache_dir": str(tmp_path / "cache")})
    assert len(pool) == 6 and np.all(np.isfinite(pool.golden))
    assert pool.info["golden"] == "embedding_head" and pool.info["golden_train_pairs"] == 8  # q0 left out


def test_cache_follows_the_model_files_contents_not_their_path_or_mtime(tmp_path, tiny_llama_dir):
    """The same model files at another path with other modification times (a reinstall, another
    machine) reuse the cache; weights changed in place (same size) get a new one."""
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    for f in copy.iterdir():
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    original = extract.resolve_spec(EmbedSpec(model=str(tiny_llama_dir), max_length=64))
    moved = extract.resolve_spec(EmbedSpec(model=str(copy), max_length=64))
    assert original["fingerprint"] == moved["fingerprint"] and original["fingerprint"].startswith("files-")
    # the model name is part of the key, so compare two resolved specs that name the model alike
    a = EmbeddingCache(tmp_path / "c", {**original, "model": "m"})
    b = EmbeddingCache(tmp_path / "c", {**moved, "model": "m"})
    assert a.dir == b.dir
    weights = next(f for f in copy.iterdir() if f.suffix in (".safetensors", ".bin"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # retrained in place: same size, other contents
    weights.write_bytes(bytes(data))
    retrained = extract.resolve_spec(EmbedSpec(model=str(copy), max_length=64))
    assert retrained["fingerprint"] != original["fingerprint"]
    assert EmbeddingCache(tmp_path / "c", {**retrained, "model": "m"}).dir != a.dir
    assert extract._fingerprint("some/hub-name") == "some/hub-name"
