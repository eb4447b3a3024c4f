"""Bad input to `train` (issue 25): a finished run's output_dir, outputs that cannot be written,
`--set` values that are not YAML, config files that are directories or not UTF-8, numbers out of
range, a LoRA rank wider than the layers, ODIN's negative weights or a pooling without two linear
heads, an unknown length balancing. Each is one `error:` line naming the option, file or
field, exit status 2, no traceback, nothing written; nothing trains (the LoRA rank is checked on
a skeleton of the backbone built on the meta device)."""

from __future__ import annotations

import pytest
import yaml

from cli_runs import check_refused
from rewardlab import sample_path

TRAIN = ["train", "{config}"]


@pytest.fixture
def paths(tmp_path) -> dict:
    root = tmp_path / "work"
    root.mkdir()
    config = {"output_dir": str(root / "run"), "model": {"name_or_path": "minilm", "max_length": 32},
              "data": {"train": str(sample_path()), "max_train_pairs": 8},
              "train": {"max_steps": 1, "batch_size": 4, "progress": False}}
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    finished = root / "finished"  # what a finished run leaves (no checkpoints: nothing to resume)
    (finished / "model").mkdir(parents=True)
    (finished / "model" / "config.json").write_text("{}")
    (finished / "summary.json").write_text("{}")
    (finished / "metrics.jsonl").write_text('{"step": 1}\n')
    (root / "finished.yaml").write_text(yaml.safe_dump({**config, "output_dir": str(finished)}))
    (root / "latin1.yaml").write_bytes(b"output_dir: caf\xe9\n")
    (root / "broken.yaml").write_text("model: {name_or_path: minilm\ndata: {train: x.jsonl}\n")
    (root / "configs").mkdir()
    (root / "a_file").write_text("not a directory\n")
    return {"root": root, "config": root / "run.yaml", "finished": root / "finished.yaml", "run": finished,
            "latin1": root / "latin1.yaml", "broken": root / "broken.yaml", "configs": root / "configs",
            "a_file": root / "a_file"}


CASES = [  # (case, the class before the fix, argv, what the error line names)
    ("finished-run-without-resume", "SILENT", ["train", "{finished}"],
     ["output_dir", "holds an earlier run's results (summary.json, model/, metrics.jsonl)", "--overwrite"]),
    ("resume-and-overwrite", "new", ["train", "{finished}", "--resume", "--overwrite"], ["--resume and --overwrite"]),
    ("output-dir-read-only", "TRACEBACK", TRAIN + ["--set", "output_dir={locked}/run"], ["output_dir", "cannot write in"]),
    ("output-dir-a-file", "TRACEBACK", TRAIN + ["--set", "output_dir={a_file}"], ["output_dir", "is a file"]),
    ("set-value-not-yaml", "TRACEBACK", TRAIN + ["--set", "train.lr=[1e-5,"], ["--set train.lr=[1e-5,", "not valid YAML"]),
    ("lora-rank-1e12", "TRACEBACK", TRAIN + ["--set", "lora.r=1000000000000"],
     ["lora.r=1000000000000", "at most 384"]),
    # Item objectives fine-tune through the loop (tests/test_train_items.py); what still cannot:
    ("item-objective-with-lora", "new", TRAIN + ["--set", "objective.name=regression", "--set", "lora.r=4"],
     ["lora", "trains on pairs", "objective 'regression'", "single responses"]),
    ("item-objective-packed", "new", TRAIN + ["--set", "objective.name=correctness", "--set", "train.packing=padding_free"],
     ["train.packing 'padding_free'", "item objectives", "packing: none"]),
    ("item-objective-split-key", "new", TRAIN + ["--set", "objective.name=scaled_bt", "--set", "data.split_key=source"],
     ["data.split_key", "split by prompt"]),
    ("item-objective-length-balance", "new", TRAIN + ["--set", "objective.name=regression", "--set", "data.length_balance=resample"],
     ["data.length_balance", "single responses"]),
    ("config-is-a-directory", "new", ["train", "{configs}"], ["configs", "is a directory", "expected a config file"]),
    ("config-not-utf8", "new", ["train", "{latin1}"], ["latin1.yaml:1", "not UTF-8", "0xe9"]),
    ("config-invalid-yaml", "new", ["train", "{broken}"], ["broken.yaml", "not valid YAML", "line"]),
    ("max-steps-negative", "new", TRAIN + ["--set", "train.max_steps=-5"], ["train.max_steps", "-5"]),
    ("epochs-infinite", "new", TRAIN + ["--set", "train.epochs=.inf"], ["train.epochs", "finite"]),
    ("batch-size-zero", "new", TRAIN + ["--set", "train.batch_size=0"], ["train.batch_size", "0"]),
    ("odin-weight-negative", "new", TRAIN + ["--set", "odin.length_weight=-1"], ["odin.length_weight", "-1"]),
    ("odin-ortho-weight-negative", "new", TRAIN + ["--set", "odin.ortho_weight=-0.5"], ["odin.ortho_weight", "-0.5"]),
    ("odin-native-pooling", "new", TRAIN + ["--set", "odin.length_weight=1", "--set", "model.pooling=native"],
     ["odin", "model.pooling 'native'"]),
    ("length-balance-unknown", "new", TRAIN + ["--set", "data.length_balance=oversample"],
     ["data.length_balance", "oversample"]),
]


@pytest.mark.parametrize("case,kind,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_before_the_work(case, kind, argv, needles, paths, request):
    check_refused(argv, needles, paths, request=request)


def test_overwrite_removes_only_the_earlier_results(tmp_path):
    """What `train --overwrite` clears before the new run: the earlier run's results, nothing else."""
    from rewardlab.cli.outputs import remove_results
    from rewardlab.cli.train import RUN_RESULTS

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000002").mkdir(parents=True)
    (run / "model").mkdir()
    (run / "model" / "config.json").write_text("{}")
    for name in ("summary.json", "metrics.jsonl", "config.yaml", "notes.txt"):
        (run / name).write_text("x")
    assert remove_results(run, RUN_RESULTS) == ["summary.json", "model/", "metrics.jsonl", "checkpoints/"]
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "notes.txt"]
