"""benchmarks/fidelity_common.py: its pure parts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

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
