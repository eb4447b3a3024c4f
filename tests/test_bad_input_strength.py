"""Bad input to `strength` and `denoise` (issue 25): folds, the validation share, head settings,
outputs. Each is one short `error:` line naming the option, exit status 2, no traceback, nothing
written, and all before anything is embedded or trained."""

from __future__ import annotations

import json

import pytest

from cli_runs import check_refused
from rewardlab import sample_path

STRENGTH = ["strength", "--data", "{pairs}", "--out", "{root}/s.jsonl"]


@pytest.fixture
def paths(tmp_path) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    # 24 prompts fill the default 5 folds: the only mistake in each case is the one under test
    rows = [{"prompt": f"question {i}", "chosen": "good", "rejected": "bad"} for i in range(24)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "earlier.jsonl").write_text('{"earlier": "result"}\n')
    (root / "a_file").write_text("not a directory\n")
    return {"root": root, "pairs": root / "pairs.jsonl", "sample": sample_path(), "earlier": root / "earlier.jsonl",
            "a_file": root / "a_file"}


CASES = [  # (case, the class before the fix, argv, what the error line names)
    ("folds-zero", "SILENT", STRENGTH + ["--folds", "0"], ["--folds", ">= 1", "0"]),
    ("folds-1000", "UNCLEAR", STRENGTH + ["--folds", "1000"], ["--folds 1000", "24 distinct prompts", "at most"]),
    ("folds-1000-sample", "UNCLEAR", ["strength", "--data", "{sample}", "--out", "{root}/s.jsonl", "--folds", "1000"],
     ["--folds 1000", "805 distinct prompts", "at most"]),
    ("val-fraction-1.5", "UNCLEAR", STRENGTH + ["--val-fraction", "1.5"], ["--val-fraction", "from 0 to 1", "1.5"]),
    ("val-fraction-1", "new", STRENGTH + ["--val-fraction", "1"], ["--val-fraction", "[0, 1)"]),
    ("head-forest", "TRACEBACK", STRENGTH + ["--head", "forest"], ["--head", "'forest'", "'mlp'"]),
    ("epochs-zero", "TRACEBACK", STRENGTH + ["--epochs", "0"], ["--epochs", ">= 1"]),
    ("width-zero", "TRACEBACK", STRENGTH + ["--width", "0"], ["--width", ">= 1"]),
    ("members-zero", "new", STRENGTH + ["--members", "0"], ["--members", ">= 1"]),
    ("out-exists", "new", ["strength", "--data", "{pairs}", "--out", "{earlier}"], ["--out", "already exists", "--overwrite"]),
    ("out-txt", "new", ["strength", "--data", "{pairs}", "--out", "{root}/s.txt"], ["--out", "'.txt'"]),
    ("report-a-file", "new", STRENGTH + ["--report", "{a_file}"], ["--report", "is a file"]),
    ("denoise-out-exists", "new", ["denoise", "{pairs}", "--out", "{earlier}", "--recipe", "bt"], ["--out", "already exists"]),
    ("denoise-fraction-nan", "new", ["denoise", "{pairs}", "--out", "{root}/d.jsonl", "--recipe", "flip_fraction",
                                     "--fraction", "nan"], ["--fraction", "finite"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths):
    line = check_refused(argv, needles, paths)
    assert len(line) < 250  # `--folds 1000` listed all 1000 fold sizes in 3 KB


def test_the_largest_fold_count_is_exact():
    """`max_folds` is the largest k for which every hash fold holds a prompt (checked by hand)."""
    import numpy as np

    from rewardlab.strength.ensemble import max_folds, prompt_folds

    keys = [f"question {i}" for i in range(40)]
    best, exact = max_folds(keys, 1000)
    assert exact and 2 <= best <= 40
    assert np.bincount(prompt_folds(keys, best), minlength=best).min() > 0
    assert all(np.bincount(prompt_folds(keys, k), minlength=k).min() == 0 for k in range(best + 1, 41))
    assert max_folds(["one prompt"] * 5, 10) == (1, True)
