"""Bad input to `embed`, `study` and `golden` (issue 25): output names that were changed or
ignored, caches that cannot be written, batch sizes, empty grids and pools. Each is one `error:`
line naming the option or field, exit status 2, no traceback, nothing written; nothing embeds."""

from __future__ import annotations

import json

import pytest
import yaml

from cli_runs import check_refused

GOLDEN = ["golden", "{pairs}", "--labels"]


@pytest.fixture
def paths(tmp_path, minilm_reward_model) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    rows = [{"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
            {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Marseille"},
            {"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "a_file").write_text("not a directory\n")
    from rewardlab.study.golden import build_pool

    build_pool(str(root / "pairs.jsonl"), {"kind": "labels"}).write(root / "pool.parquet")  # an earlier pool
    study = {"output_dir": str(root / "study"), "pool": {"path": str(root / "pool.parquet")},
             "grid": {"embedding": ["minilm"], "seed": [0, 1]}}
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    return {"root": root, "pairs": root / "pairs.jsonl", "model": minilm_reward_model, "a_file": root / "a_file",
            "study": root / "study.yaml", "pool": root / "pool.parquet"}


CASES = [  # (case, the class before the fix, argv, what the error line names)
    ("embed-out-txt", "SILENT", ["embed", "{pairs}", "--out", "{root}/x.txt"], ["--out", "x.txt", ".npz", "'.txt'"]),
    ("embed-cache-dir-read-only", "TRACEBACK", ["embed", "{pairs}", "--cache-dir", "{locked}/cache"], ["--cache-dir", "cannot write in"]),
    ("embed-cache-dir-a-file", "TRACEBACK", ["embed", "{pairs}", "--cache-dir", "{a_file}"], ["--cache-dir", "is a file"]),
    ("embed-batch-size-zero", "new", ["embed", "{pairs}", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("embed-max-length-tiny", "new", ["embed", "{pairs}", "--max-length", "2"], ["--max-length", ">= 8"]),
    ("study-max-cells-negative", "SILENT", ["study", "{study}", "--max-cells", "-1"], ["--max-cells", ">= 0", "-1"]),
    ("study-empty-grid-axis", "SILENT", ["study", "{study}", "--set", "grid.seed=[]"], ["grid.seed", "at least 1 item"]),
    ("study-beta-not-finite", "new", ["study", "{study}", "--set", "grid.beta=[.nan]"], ["grid.beta", "finite"]),
    ("study-workers-zero", "new", ["study", "{study}", "--workers", "0"], ["--workers", ">= 1"]),
    ("study-output-dir-a-file", "new", ["study", "{study}", "--set", "output_dir={a_file}"], ["output_dir", "is a file"]),
    ("golden-batch-size-negative", "SILENT", ["golden", "{pairs}", "--model", "{model}", "--out", "{root}/g.parquet",
                                              "--batch-size", "-1"], ["--batch-size", ">= 1", "-1"]),
    ("golden-batch-size-zero", "TRACEBACK", ["golden", "{pairs}", "--model", "{model}", "--out", "{root}/g.parquet",
                                             "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("golden-min-responses-1000", "SILENT", GOLDEN + ["--out", "{root}/g.parquet", "--min-responses", "1000"],
     ["--min-responses 1000", "the most any prompt has is 3", "empty"]),
    ("golden-out-csv", "SILENT", GOLDEN + ["--out", "{root}/g.csv"], ["--out", "g.csv", ".parquet", "'.csv'"]),
    ("golden-out-exists", "new", GOLDEN + ["--out", "{pool}"], ["--out", "already exists", "--overwrite"]),
    ("golden-out-read-only", "new", GOLDEN + ["--out", "{locked}/g.parquet"], ["--out", "cannot write in"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths, request):
    check_refused(argv, needles, paths, request=request)
