"""Bad input to `rubric score` and `grpo` (issue 25): every case of the issue, and its neighbours,
is one `error:` line on stderr naming the option, file or field, exit status 2, no traceback, and
nothing written or changed. Nothing here scores or trains: each input is refused before the work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli_runs import check_refused, invoke

REPO = Path(__file__).resolve().parents[1]
SCORE = ["rubric", "score", "--rubric", "{rubric}", "--data", "{data}"]


@pytest.fixture
def paths(tmp_path, minilm_reward_model) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    (root / "rubric.yaml").write_text('criteria:\n  - name: tag\n    scorer: {type: rule, regex: "<answer>.+</answer>"}\n')
    (root / "data.jsonl").write_text(json.dumps({"prompt": "q", "completion": "<answer>1</answer>"}) + "\n")
    (root / "robot.jsonl").write_text(json.dumps({"prompt": "q", "completion": [{"role": "robot", "content": 5}]}) + "\n")
    (root / "empty.jsonl").write_text(json.dumps({"prompt": "q", "completion": []}) + "\n")
    (root / "latin1.yaml").write_bytes(b"criteria:\n  - name: caf\xe9\n    scorer: {type: rule, json: true}\n")
    for name, size in (("rm_batch_neg.yaml", -2), ("rm_batch_zero.yaml", 0)):  # a real reward model, never loaded
        (root / name).write_text(f"criteria:\n  - name: helpful\n    scorer: {{type: reward_model, "
                                 f"path: {minilm_reward_model}, batch_size: {size}}}\n")
    done = root / "done"  # an earlier `rubric score` run
    done.mkdir()
    for name in ("scores.csv", "summary.json", "report.html"):
        (done / name).write_text("earlier results\n")
    (root / "a_file").write_text("not a directory\n")
    (root / "bad_recipe.yaml").write_text("output_dir: runs/x\nrubric: [configs/rubrics/short_answers.yaml\n")
    # a recipe that would run (configs/grpo_focal.yaml with this directory's rubric and prompts)
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Say {w}."}) + "\n" for w in ("hi", "yes", "no")))
    recipe = yaml.safe_load((REPO / "configs" / "grpo_focal.yaml").read_text())
    recipe.update(output_dir=str(root / "grpo_run"), rubric=str(root / "rubric.yaml"),
                  prompts={"train": str(root / "prompts.jsonl"), "eval_fraction": 0.3})
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    grpo_done = root / "grpo_done"
    (grpo_done / "model").mkdir(parents=True)
    (grpo_done / "model" / "config.json").write_text("{}")
    (grpo_done / "summary.json").write_text("{}")
    return {"root": root, "rubric": root / "rubric.yaml", "data": root / "data.jsonl", "dir": root,
            **{p.stem: p for p in root.iterdir()}}


CASES = [  # (case, the issue's class before the fix, argv, what the error line names)
    # rubric score
    ("score-out-earlier-run", "SILENT", SCORE + ["--out", "{done}"], ["--out", "holds an earlier run's results", "--overwrite"]),
    ("score-completion-role-robot", "SILENT", ["rubric", "score", "--rubric", "{rubric}", "--data", "{robot}", "--out", "{root}/o"],
     ["robot.jsonl:1", "completion[0].role", "'robot'"]),
    ("scorer-batch-size-negative", "SILENT", ["rubric", "score", "--rubric", "{rm_batch_neg}", "--data", "{data}", "--out", "{root}/o"],
     ["rm_batch_neg.yaml", "criteria[0].scorer.batch_size", "an integer >= 1", "-2"]),
    ("scorer-batch-size-zero", "TRACEBACK", ["rubric", "score", "--rubric", "{rm_batch_zero}", "--data", "{data}", "--out", "{root}/o"],
     ["criteria[0].scorer.batch_size", "an integer >= 1"]),
    ("score-out-read-only", "TRACEBACK", SCORE + ["--out", "{locked}/o"], ["--out", "cannot write in"]),
    ("score-out-is-a-file", "TRACEBACK", SCORE + ["--out", "{a_file}"], ["--out", "is a file; expected a directory"]),
    ("score-out-under-a-file", "TRACEBACK", SCORE + ["--out", "{a_file}/o"], ["--out", "a_file is a file, not a directory"]),
    ("rubric-not-utf8", "TRACEBACK", ["rubric", "score", "--rubric", "{latin1}", "--data", "{data}", "--out", "{root}/o"],
     ["latin1.yaml:2", "not UTF-8", "0xe9"]),
    ("data-is-a-directory", "UNCLEAR", ["rubric", "score", "--rubric", "{rubric}", "--data", "{dir}", "--out", "{root}/o"],
     ["is a directory", "expected a .jsonl"]),
    ("rubric-is-a-directory", "UNCLEAR", ["rubric", "score", "--rubric", "{dir}", "--data", "{data}", "--out", "{root}/o"],
     ["is a directory", "expected a rubric YAML file"]),
    ("score-completion-empty-list", "UNCLEAR", ["rubric", "score", "--rubric", "{rubric}", "--data", "{empty}", "--out", "{root}/o"],
     ["empty.jsonl:1", "'completion'", "an empty list"]),
    # grpo
    ("grpo-recipe-invalid-yaml", "TRACEBACK", ["grpo", "{bad_recipe}"], ["bad_recipe.yaml", "not valid YAML", "line 3"]),
    ("grpo-recipe-is-a-directory", "UNCLEAR", ["grpo", "{dir}"], ["is a directory", "expected a GRPO recipe file"]),
    ("grpo-max-steps-negative", "SILENT", ["grpo", "{recipe}", "--set", "grpo.max_steps=-5"], ["grpo.max_steps", "-5"]),
    ("grpo-num-generations-one", "new", ["grpo", "{recipe}", "--set", "grpo.num_generations=1"], ["grpo.num_generations"]),
    ("grpo-set-invalid-yaml", "new", ["grpo", "{recipe}", "--set", "grpo.max_steps=[1,"], ["--set grpo.max_steps=[1,", "not valid YAML"]),
    ("grpo-output-read-only", "TRACEBACK", ["grpo", "{recipe}", "--set", "output_dir={locked}/run"], ["output_dir", "cannot write in"]),
    ("grpo-output-is-a-file", "TRACEBACK", ["grpo", "{recipe}", "--set", "output_dir={a_file}"], ["output_dir", "is a file"]),
    ("grpo-output-earlier-run", "new", ["grpo", "{recipe}", "--set", "output_dir={grpo_done}"],
     ["output_dir", "holds an earlier run's results (summary.json, model/)", "--overwrite"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths, request):
    check_refused(argv, needles, paths, request=request)


def test_overwrite_replaces_an_earlier_rubric_score(paths):
    res = invoke(*[a.format(**paths) for a in SCORE], "--out", paths["done"], "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((paths["done"] / "summary.json").read_text())["criteria"]["tag"]["mean"] == 1.0
