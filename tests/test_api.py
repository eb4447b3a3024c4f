"""The public API (rewardlab/__init__.py): lazy, complete, and the README's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from cli_runs import train_env

import rewardlab

ROOT = Path(__file__).resolve().parents[1]


def test_import_rewardlab_loads_no_heavy_library():
    code = "import sys, rewardlab; print(sorted(m for m in ('torch', 'transformers', 'numpy', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_and_unknown_names_fail():
    for name in rewardlab.__all__:
        assert getattr(rewardlab, name) is not None, name
    assert rewardlab.train_model.__module__ == "rewardlab.train.ensemble"  # one model or an ensemble
    assert rewardlab.load_model.__module__ == "rewardlab.critic.load"
    try:
        rewardlab.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:  # pragma: no cover
        raise AssertionError("an unknown name must raise AttributeError")


def test_readme_example_runs_as_written(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```\s*<!-- /api-example -->", text, re.S)
    assert block, "README.md has no api-example block"
    code = block.group(1)
    assert code.startswith("import rewardlab as rl\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env=train_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert 0.0 <= float(lines[0]) <= 1.0  # validation accuracy
    assert re.fullmatch(r"\[-?\d+\.\d+(e-?\d+)?\]", lines[1].strip()), lines[1]  # one reward
    assert "'n': " in lines[2] and "'accuracy'" in lines[2]
    assert lines[3] == "[1.0, 0.0]"  # the short answer passes the rule, the long one fails it
    assert (tmp_path / "runs" / "api" / "model" / "config.json").is_file()
