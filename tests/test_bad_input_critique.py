"""Bad input to `critique` (issue 25): temperatures, templates, the openai backend without a URL,
outputs. Each is one `error:` line naming the option or file, exit status 2, no traceback,
nothing written, and nothing generated (no model is loaded, no server asked)."""

from __future__ import annotations

import json

import pytest

from cli_runs import check_refused

CRITIQUE = ["critique", "--data", "{pairs}", "--out", "{root}/c.jsonl"]


@pytest.fixture
def paths(tmp_path) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    rows = [{"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"}]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "brace.txt").write_text("Critique {prompt} and {response} {", encoding="utf-8")
    (root / "latin1.txt").write_bytes(b"Critique {prompt} and {response}, caf\xe9\n")
    (root / "templates").mkdir()
    (root / "earlier.jsonl").write_text('{"earlier": "result"}\n')
    (root / "a_file").write_text("not a directory\n")
    return {"root": root, "pairs": root / "pairs.jsonl", "brace": root / "brace.txt", "latin1": root / "latin1.txt",
            "templates": root / "templates", "earlier": root / "earlier.jsonl", "a_file": root / "a_file"}


CASES = [  # (case, the class before the fix, argv, what the error line names)
    ("temperature-nan", "TRACEBACK", CRITIQUE + ["--temperature", "nan"], ["--temperature", "finite", "nan"]),
    ("temperature-inf", "new", CRITIQUE + ["--temperature", "inf"], ["--temperature", "finite"]),
    ("template-stray-brace", "TRACEBACK", CRITIQUE + ["--template", "{brace}"], ["brace.txt", "not a valid template", "{{"]),
    ("template-is-a-directory", "TRACEBACK", CRITIQUE + ["--template", "{templates}"], ["templates", "is a directory"]),
    ("template-not-utf8", "new", CRITIQUE + ["--template", "{latin1}"], ["latin1.txt:1", "not UTF-8"]),
    ("openai-without-url", "UNCLEAR", CRITIQUE + ["--backend", "openai", "--model", "served"],
     ["--backend openai", "--base-url", "OPENAI_BASE_URL"]),
    ("out-txt", "UNCLEAR", ["critique", "--data", "{pairs}", "--out", "{root}/c.txt"], ["--out", "c.txt", "'.txt'"]),
    ("out-read-only", "TRACEBACK", ["critique", "--data", "{pairs}", "--out", "{locked}/c.jsonl"], ["--out", "cannot write in"]),
    ("out-exists", "SILENT", ["critique", "--data", "{pairs}", "--out", "{earlier}"], ["--out", "already exists", "--overwrite"]),
    ("report-a-file", "new", CRITIQUE + ["--report", "{a_file}"], ["--report", "is a file"]),
    ("cache-under-a-file", "new", CRITIQUE + ["--cache", "{a_file}/cache"], ["--cache", "a_file is a file"]),
    ("n-zero", "new", CRITIQUE + ["--n", "0"], ["--n", ">= 1"]),
    ("top-p-above-one", "new", CRITIQUE + ["--top-p", "2"], ["--top-p", "from 0 to 1"]),
    ("top-p-zero", "new", CRITIQUE + ["--top-p", "0"], ["top_p", "(0, 1]"]),
    ("refine-unknown", "new", CRITIQUE + ["--refine", "best"], ["--refine", "'best'"]),
    ("timeout-negative", "new", CRITIQUE + ["--timeout", "-1"], ["--timeout", ">= 0"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths, request):
    check_refused(argv, needles, paths, env={"OPENAI_BASE_URL": None}, request=request)
