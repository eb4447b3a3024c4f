"""Length-balanced training data (data/balance.py): within each source the chosen response is the
longer one in half the pairs (ties aside), by resampling or reweighting; property checks over random
synthetic tables, ties, sources that cannot be balanced, the report in the run's data summary."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.config import parse_config
from rewardlab.data.balance import balance_plan, length_balance, length_sides
from rewardlab.data.table import PreferenceTable
from rewardlab.errors import ConfigError, DataError


def synthetic(rng: np.random.Generator, n: int, n_sources: int, p_longer: float, p_tie: float = 0.05,
              weight: bool = False) -> PreferenceTable:
    """Pairs whose chosen is longer with probability p_longer, of equal length with p_tie."""
    rows = []
    for i in range(n):
        u = rng.random()
        lr = int(rng.integers(1, 50))
        lc = lr if u < p_tie else (lr + int(rng.integers(1, 30)) if u < p_tie + p_longer else max(lr - int(rng.integers(1, 30)), 0))
        rows.append({"prompt": f"p{i}", "chosen": "c" * lc, "rejected": "r" * lr,
                     "source": f"set{int(rng.integers(n_sources))}/sub"})
        if weight:
            rows[-1]["weight"] = float(rng.uniform(0.5, 2.0))
    return table_of(rows)


def table_of(rows: list[dict]) -> PreferenceTable:
    return PreferenceTable.from_records(rows, [f"<synthetic>: row {i}" for i in range(len(rows))], "explicit")


def sides_by_source(table: PreferenceTable) -> dict[str, np.ndarray]:
    s = length_sides(table["chosen"], table["rejected"])
    src = np.asarray(table["source"])
    return {k: s[src == k] for k in dict.fromkeys(table["source"])}


@pytest.mark.parametrize("trial", range(25))
def test_resample_reaches_half_in_every_source(trial):
    rng = np.random.default_rng(trial)
    table = synthetic(rng, int(rng.integers(20, 300)), int(rng.integers(1, 5)), float(rng.uniform(0.2, 0.9)))
    before = sides_by_source(table)
    out, report = length_balance(table, "resample", seed=trial)
    after = sides_by_source(out)
    for src, s in before.items():
        entry = report["by_source"][src]
        n_long, n_short, n_tie = int((s > 0).sum()), int((s < 0).sum()), int((s == 0).sum())
        assert entry["before"] == {"n": len(s), "longer_chosen": n_long, "shorter_chosen": n_short, "ties": n_tie,
                                   "longer_chosen_share": n_long / (n_long + n_short) if n_long + n_short else None}
        a = after[src]
        if n_long and n_short:  # balanced: the minority side whole, the majority cut to its size, ties kept
            assert (a > 0).sum() == (a < 0).sum() == min(n_long, n_short)
            assert (a == 0).sum() == n_tie and entry["after"]["longer_chosen_share"] == 0.5
            assert entry["dropped"] == abs(n_long - n_short)
        else:  # one side only: left unchanged and said so
            assert entry["balanced"] is False and len(a) == len(s)
    assert report["n_after"] == len(out) == sum(len(a) for a in after.values())
    # every kept row is an original row, unchanged (no duplicates: sampling without replacement)
    assert len(set(out["prompt"])) == len(out) and set(out["prompt"]) <= set(table["prompt"])


@pytest.mark.parametrize("trial", range(25))
def test_reweight_gives_each_side_half_the_weight(trial):
    rng = np.random.default_rng(100 + trial)
    table = synthetic(rng, int(rng.integers(20, 300)), int(rng.integers(1, 5)), float(rng.uniform(0.2, 0.9)),
                      weight=bool(trial % 2))
    out, report = length_balance(table, "reweight", seed=trial)
    assert out["prompt"] == table["prompt"]  # nothing dropped
    old = np.asarray(table["weight"]) if table.has("weight") else np.ones(len(table))
    factor = np.asarray(out["weight"]) / old
    s = length_sides(table["chosen"], table["rejected"])
    src = np.asarray(table["source"])
    for name in dict.fromkeys(table["source"]):
        m = src == name
        long_w, short_w = factor[m & (s > 0)].sum(), factor[m & (s < 0)].sum()
        if (m & (s > 0)).any() and (m & (s < 0)).any():
            assert long_w == pytest.approx(short_w)  # half the weight on each side
            assert factor[m & (s != 0)].sum() == pytest.approx((m & (s != 0)).sum())  # total weight kept
            assert report["by_source"][name]["after"]["longer_chosen_share"] == pytest.approx(0.5)
        np.testing.assert_allclose(factor[m & (s == 0)], 1.0)  # ties keep their weight


def test_ties_are_kept_and_left_out_of_the_share():
    rows = [{"prompt": "a", "chosen": "xx", "rejected": "yy", "source": "s"},  # tie (equal characters)
            {"prompt": "b", "chosen": "xxx", "rejected": "y", "source": "s"},
            {"prompt": "c", "chosen": "xxx", "rejected": "y", "source": "s"},
            {"prompt": "d", "chosen": "x", "rejected": "yyy", "source": "s"},
            {"prompt": "e", "chosen": [{"role": "assistant", "content": "hé"}], "rejected": "ab", "source": "t"}]
    out, report = length_balance(table_of(rows), "resample", seed=0)
    s = report["by_source"]["s"]
    assert s["before"]["ties"] == 1 and s["before"]["longer_chosen_share"] == pytest.approx(2 / 3)
    assert s["after"] == {"n": 3, "longer_chosen": 1, "shorter_chosen": 1, "ties": 1, "longer_chosen_share": 0.5}
    assert "a" in out["prompt"] and "d" in out["prompt"]
    # a message list counts its content's characters: "hé" ties with "ab"; a source of ties only is kept
    assert report["by_source"]["t"]["balanced"] is False and "e" in out["prompt"]


def test_resample_is_seeded_and_a_source_does_not_depend_on_the_others():
    rng = np.random.default_rng(7)
    sides = np.sign(rng.normal(size=200) + 0.8).astype(int)
    src = [f"s{i % 3}" for i in range(200)]
    a, _, _ = balance_plan(sides, src, "resample", seed=1)
    b, _, _ = balance_plan(sides, src, "resample", seed=1)
    c, _, _ = balance_plan(sides, src, "resample", seed=2)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    only = [i for i in range(200) if src[i] == "s0"]
    d, _, _ = balance_plan(sides[only], [src[i] for i in only], "resample", seed=1)
    assert [only[i] for i in d] == [i for i in a if src[i] == "s0"]


def test_groups_by_source_prefix_and_bad_weight():
    rng = np.random.default_rng(3)
    table = synthetic(rng, 120, 3, 0.7)
    _, report = length_balance(table, "reweight", seed=0, by="source_prefix")
    assert set(report["by_source"]) == {s.split("/")[0] for s in table["source"]}
    partial = table.with_column("weight", [1.0] * (len(table) - 1) + [None])
    with pytest.raises(DataError, match="weight"):
        length_balance(partial, "reweight", seed=0)


def test_config_field_and_run_report(tmp_path):
    from rewardlab.train.data import prepare_tables

    rng = np.random.default_rng(11)
    path = tmp_path / "pairs.jsonl"
    synthetic(rng, 200, 2, 0.75).write(path)
    cfg = parse_config({"data": {"train": str(path), "val_fraction": 0.2, "length_balance": "resample"}})
    tables = prepare_tables(cfg.data, seed=0)
    rep = tables.report["length_balance"]
    assert rep["mode"] == "resample" and rep["n_after"] == len(tables.train) == tables.report["n_train"]
    for entry in rep["by_source"].values():
        assert entry["after"]["longer_chosen_share"] == 0.5
    assert len(tables.validation) + rep["n_before"] == 200  # validation is not balanced
    with pytest.raises(ConfigError, match="data.length_balance"):
        parse_config({"data": {"train": str(path), "length_balance": "oversample"}})
