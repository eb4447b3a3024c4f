"""Group-aware splits (data.split_key): every row of a group on one side, for the validation
split and strength folds; HumanEvalPack grouped by problem; bad keys named."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from rewardlab.config import DataConfig
from rewardlab.data import load_preferences
from rewardlab.data.splits import HUMANEVALPACK_PROBLEM, group_keys
from rewardlab.errors import ConfigError, DataError
from rewardlab.strength.ensemble import prompt_folds
from rewardlab.train.data import prepare_tables

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("seed", range(8))
def test_split_key_keeps_every_group_whole_on_random_groupings(tmp_path, seed):
    rng = random.Random(seed)
    n_groups = rng.randint(2, 30)
    rows = [{"prompt": f"p{i} {rng.random()}", "chosen": "a", "rejected": "b", "task": f"t{rng.randrange(n_groups)}"}
            for i in range(rng.randint(20, 120))]  # every prompt distinct: only the task can group them
    spec = _write(tmp_path / "d.jsonl", rows)
    tables = prepare_tables(DataConfig(train=str(spec), val_fraction=0.3, split_key="task", split_salt=str(seed)), seed=0)
    train = {t for t in tables.train["task"]} if tables.train.has("task") else set()
    val = {t for t in tables.validation["task"]}
    assert train.isdisjoint(val) and len(tables.train) + len(tables.validation) == len(rows)
    table = load_preferences(spec, keep_columns=["task"])
    keys = group_keys(table, "task")
    fold = prompt_folds(keys, 3)
    for g in set(keys):  # strength folds: a group in one fold
        assert len({int(f) for f, k in zip(fold, keys) if k == g}) == 1


def test_regex_key_with_normalisation_and_errors(tmp_path):
    rows = [{"prompt": "Write a Python function `sum_product(xs)` to solve", "chosen": "a", "rejected": "b"},
            {"prompt": "Write a JavaScript function `const sumProduct = (xs)` to solve", "chosen": "a", "rejected": "b"},
            {"prompt": "Write a Go function `func SumProduct(xs []int)` to solve", "chosen": "a", "rejected": "b"},
            {"prompt": "Write a Java function `public int sumSquares(List<Integer> xs)`", "chosen": "a", "rejected": "b"}]
    table = load_preferences(_write(tmp_path / "h.jsonl", rows))
    assert group_keys(table, HUMANEVALPACK_PROBLEM) == ["sumproduct"] * 3 + ["sumsquares"]
    raw = {**HUMANEVALPACK_PROBLEM, "normalize": "none"}
    assert group_keys(table, raw) == ["sum_product", "sumProduct", "SumProduct", "sumSquares"]
    with pytest.raises(DataError, match=r"h.jsonl:2.*field 'prompt'.*finds nothing"):
        group_keys(table, {"field": "prompt", "regex": r"Python function `(\w+)"})
    with pytest.raises(ConfigError, match="split_key.regex"):
        group_keys(table, {"field": "prompt", "regex": "("})
    with pytest.raises(ConfigError, match="unknown key"):
        group_keys(table, {"field": "prompt", "regex": "x", "colour": 1})
    with pytest.raises(DataError, match="field 'task'.*columns"):
        group_keys(table, "task")


@pytest.mark.skipif(not (REAL / "humanevalpack.jsonl").is_file(), reason="shared data absent")
def test_humanevalpack_split_by_problem_puts_each_problem_on_one_side():
    cfg = DataConfig(train=str(REAL / "humanevalpack.jsonl"), val_fraction=0.5, split_key=HUMANEVALPACK_PROBLEM)
    tables = prepare_tables(cfg, seed=0)
    keys_of = lambda t: set(group_keys(t, HUMANEVALPACK_PROBLEM))  # noqa: E731
    assert keys_of(tables.train).isdisjoint(keys_of(tables.validation))
    assert len(tables.train) + len(tables.validation) == 656
    assert tables.report["split"].startswith("data.split_key hash")
    by_prompt = prepare_tables(DataConfig(train=str(REAL / "humanevalpack.jsonl"), val_fraction=0.5), seed=0)
    assert not keys_of(by_prompt.train).isdisjoint(keys_of(by_prompt.validation))  # what the default does
    assert np.mean([len(tables.validation)]) > 200


def test_dropout_off_by_default_so_normbt_reads_the_pair_distance_not_noise():
    """With the default (train.disable_dropout: true) the training-mode representation is the
    eval-mode one, and NormBT's weights equal μ / (‖h_c − h_r‖ + ε) computed by hand from it;
    with dropout on, the same input twice is already far apart (FIDELITY 000)."""
    import torch

    from rewardlab.config import TrainConfig
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.objectives.pairwise import normbt_weights
    from rewardlab.train.loop import disable_dropout

    assert TrainConfig().disable_dropout is True
    rm = RewardModel.from_backbone("minilm", max_length=32)
    chosen = [rm.encode("Sort a list.", "def f(x): return sorted(x)")]
    rejected = [rm.encode("Sort a list.", "def f(x): return sorted(x)[::-1]")]
    batch = rm.collate(chosen + rejected)
    torch.manual_seed(0)
    rm.train()
    _, h_noisy = rm(**batch)
    _, h_again = rm(**batch)
    assert float((h_noisy - h_again).detach().norm(dim=-1).min()) > 0.05  # dropout: same input, other h
    assert disable_dropout(rm) > 0
    rm.train()
    _, h_train = rm(**batch)
    rm.eval()
    _, h_eval = rm(**batch)
    torch.testing.assert_close(h_train, h_eval, atol=1e-5, rtol=0)
    mu = 0.7
    w, _ = normbt_weights(h_train[:1], h_train[1:], mu, 1e-6)
    by_hand = mu / (float(torch.linalg.vector_norm(h_eval[0] - h_eval[1]).detach()) + 1e-6)
    assert float(w[0]) == pytest.approx(by_hand, rel=1e-4)
