"""Bad input to `score` and `eval` (issue 25): batch sizes, outputs that cannot be written or hold
an earlier result, a suite that needs the Hub offline. Each is one `error:` line naming the option
or file, exit status 2, no traceback, nothing written; all before a model is loaded."""

from __future__ import annotations

import json

import pytest

from cli_runs import check_refused, invoke

SCORE = ["score", "--model", "{model}", "--data", "{data}"]
EVAL = ["eval", "--model", "{model}", "--data", "{data}"]


@pytest.fixture
def paths(tmp_path, minilm_reward_model) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    rows = [{"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
            {"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "scored.jsonl").write_text('{"earlier": "result"}\n')
    (root / "a_file").write_text("not a directory\n")
    done = root / "eval_done"
    done.mkdir()
    (done / "results.json").write_text("{}")
    return {"root": root, "model": minilm_reward_model, "data": root / "pairs.jsonl", "scored": root / "scored.jsonl",
            "a_file": root / "a_file", "eval_done": done}


CASES = [  # (case, the class before the fix, argv, what the error line names)
    ("score-batch-size-negative", "SILENT", SCORE + ["--out", "{root}/s.jsonl", "--batch-size", "-4"],
     ["--batch-size", "an integer >= 1", "-4"]),
    ("score-batch-size-zero", "TRACEBACK", SCORE + ["--out", "{root}/s.jsonl", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("score-out-exists", "SILENT", SCORE + ["--out", "{scored}"], ["--out", "already exists", "--overwrite"]),
    ("score-out-read-only", "TRACEBACK", SCORE + ["--out", "{locked}/s.jsonl"], ["--out", "cannot write in"]),
    ("score-out-under-a-file", "TRACEBACK", SCORE + ["--out", "{a_file}/s.jsonl"], ["--out", "a_file is a file, not a directory"]),
    ("score-out-is-a-directory", "new", SCORE + ["--out", "{root}"], ["--out", "is a directory", ".jsonl"]),
    ("score-out-unknown-suffix", "late", SCORE + ["--out", "{root}/s.txt"], ["--out", "'.txt'", ".parquet"]),
    ("score-critique-cache-a-file", "new", SCORE + ["--out", "{root}/s.jsonl", "--critique-cache", "{a_file}"],
     ["--critique-cache", "is a file"]),
    ("eval-out-read-only", "TRACEBACK", EVAL + ["--out", "{locked}/ev"], ["--out", "cannot write in"]),
    ("eval-out-is-a-file", "TRACEBACK", EVAL + ["--out", "{a_file}"], ["--out", "is a file; expected a directory"]),
    ("eval-out-earlier-results", "new", EVAL + ["--out", "{eval_done}"], ["--out", "results.json", "--overwrite"]),
    ("eval-batch-size-zero", "new", EVAL + ["--out", "{root}/ev", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("eval-n-boot-too-few", "new", EVAL + ["--out", "{root}/ev", "--n-boot", "5"], ["--n-boot", ">= 100", "got 5"]),
    ("eval-max-pairs-zero", "new", EVAL + ["--out", "{root}/ev", "--max-pairs-per-subset", "0"], ["--max-pairs-per-subset", ">= 1"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths, request):
    check_refused(argv, needles, paths, request=request)


def test_a_suite_that_needs_the_hub_says_so_offline(paths, monkeypatch):
    """`eval --suite rewardbench` offline: one line saying the suite needs the Hub (it was a
    ConnectionError traceback after half a minute of retries)."""
    from rewardlab.data import readers

    monkeypatch.setattr(readers, "_hub_reachable", lambda repo_id, timeout=0: (False, "ConnectError: no route"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    line = check_refused(["eval", "--model", "{model}", "--suite", "rewardbench", "--out", "{root}/ev"],
                         ["suite rewardbench needs the Hugging Face Hub", "hf:allenai/reward-bench@filtered",
                          "ConnectError: no route", "HF_HUB_OFFLINE=1"], paths)
    assert len(line) < 400


def test_overwrite_replaces_an_earlier_score_file(paths):
    res = invoke(*[a.format(**paths) for a in SCORE], "--out", paths["scored"], "--overwrite")
    assert res.exit_code == 0, res.output
    assert len(paths["scored"].read_text().splitlines()) == 2


def test_a_read_only_filesystem_is_named(paths, monkeypatch):
    """A read-only filesystem (simulated: creating a file there fails with EROFS, as on a
    read-only mount) is refused like an immutable directory, before the model is loaded."""
    import errno
    import os

    from rewardlab.cli import outputs

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    check_refused(SCORE + ["--out", "{root}/s.jsonl"], ["--out", "cannot write in", "Read-only file system"], paths)
    check_refused(EVAL + ["--out", "{root}/ev"], ["--out", "Read-only file system"], paths)
