"""benchmarks/fidelity_common.py: its pure parts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from rewardlab.errors import DataError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("fidelity_common", BENCH / "fidelity_common.py")
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def test_suite_copy_without_drops_marked_rows_keeps_fields_and_links_the_rest(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"prompt": "a", "chosen": "x", "rejected": "y", "id": 1},
            {"prompt": [{"role": "user", "content": "b"}], "chosen": "x", "rejected": "y", "extra": {"k": 2}},
            {"prompt": "c", "responses": ["1", "2"], "correct": [True, False]}]
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    (data / "other.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (data / "README.md").write_text("readme")
    train = {common.prompt_key(rows[1]["prompt"]), "c"}
    dropped = common.suite_copy_without(tmp_path / "suite", lambda name, row: name == "pairs.jsonl"
                                        and common.prompt_key(row["prompt"]) in train, data)
    assert dropped == {"pairs.jsonl": 2}
    kept = [json.loads(x) for x in (tmp_path / "suite" / "pairs.jsonl").read_text().splitlines()]
    assert kept == [rows[0]]  # every field of the kept row, nothing else
    assert (tmp_path / "suite" / "other.jsonl").is_symlink() and (tmp_path / "suite" / "README.md").is_symlink()
    # rerunning replaces the copies (a link from an earlier run becomes a copy and back)
    again = common.suite_copy_without(tmp_path / "suite", lambda name, row: False, data)
    assert again == {} and (tmp_path / "suite" / "pairs.jsonl").is_symlink()


def _table(pairs):
    from rewardlab.data.table import PreferenceTable

    return PreferenceTable({"prompt": [p for p, _, _ in pairs], "chosen": [c for _, c, _ in pairs],
                            "rejected": [r for _, _, r in pairs]})


def test_score_cache_cell_trains_only_cells_without_recorded_scores_and_refuses_other_pairs(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    trained = []

    def fake_train(work, name, cfg):  # stands for train_cell: records the call, makes a cell folder
        trained.append(name)
        (work / name).mkdir(parents=True, exist_ok=True)
        return work / name

    class FakeModel:
        def score_pairs(self, table, batch_size=32):
            n = len(table)
            return {"reward_chosen": np.arange(n, dtype=float), "reward_rejected": np.full(n, 0.5)}

    monkeypatch.setattr(common, "train_cell", fake_train)
    import rewardlab.models.reward_model as rm_mod

    monkeypatch.setattr(rm_mod.RewardModel, "from_pretrained", classmethod(lambda cls, path: FakeModel()))
    t = _table([("a", "x", "y"), ("b", "u", "v"), ("c", "p", "q")])
    record = tmp_path / "results" / "x_scores.json"
    cache = common.ScoreCache(tmp_path / "work", record)
    d = cache.cell("c0", {}, {"val": t})
    assert trained == ["c0"] and d["val"].tolist() == [-0.5, 0.5, 1.5]
    assert cache.extra("c0", "meta_J", lambda: {"first": 1.0}) == {"first": 1.0}
    # a new machine: the work folder is gone, the committed record remains
    again = common.ScoreCache(tmp_path / "elsewhere", record)
    assert again.cell("c0", {}, {"val": t})["val"].tolist() == [-0.5, 0.5, 1.5]
    assert again.extra("c0", "meta_J", lambda: pytest.fail("recomputed")) == {"first": 1.0}
    assert trained == ["c0"]  # not trained again
    again.cell("c0", {}, {"val": t, "test": t})  # a table it lacks: trained and scored
    assert trained == ["c0", "c0"] and again.has("c0", ["val", "test"])
    other = _table([("a", "x", "z"), ("b", "u", "v"), ("c", "p", "q")])
    with pytest.raises(DataError, match=r"x_scores.json: field '_tables.val': .*other pairs"):
        common.ScoreCache(tmp_path / "w2", record).cell("c0", {}, {"val": other})
    with pytest.raises(DataError, match=r"field '_tables.val'"):
        common.ScoreCache(tmp_path / "w2", record).cell("c9", {}, {"val": other})  # a new cell: refused
    assert trained == ["c0", "c0"]  # before it trains
    assert common.table_fingerprint(t) != common.table_fingerprint(other)


def test_run_main_turns_bad_input_into_one_stderr_line_and_exit_2(capsys):
    import pytest

    def stale():
        raise DataError("made on other pairs\nmove it away", file="r.json", field="_tables.val")

    with pytest.raises(SystemExit) as e:
        common.run_main(stale)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: r.json: field '_tables.val': made on other pairs; move it away\n"

    def bug():
        raise KeyError("x")  # not bad input: a bug keeps its traceback

    with pytest.raises(KeyError):
        common.run_main(bug)
    common.run_main(lambda: None)  # a run that ends well exits normally


def test_a_benchmark_refuses_a_record_made_on_other_pairs_with_exit_2(tmp_path):
    import subprocess

    (tmp_path / "critic_control_scores.json").write_text('{"_test_sha256": "not this run\'s"}')
    proc = subprocess.run([sys.executable, str(BENCH / "critic_control.py"), "--work", str(tmp_path / "w"),
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and "Traceback" not in proc.stderr
    assert last[0].startswith(f"error: {tmp_path / 'critic_control_scores.json'}: field '_test_sha256': "
                              "recorded on other test pairs")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())  # nothing trained
