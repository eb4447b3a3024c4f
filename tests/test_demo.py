"""``rewardlab demo`` (a few steps): the report is written, the summary states epochs and pairs seen,
and the suggested next commands name files that exist and fit the demo model."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from rewardlab.demo import demo_config, run_demo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_writes_its_report_and_says_what_it_did(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "demo"
    console = Console(record=True, width=250, soft_wrap=True)
    # The demo's own settings, shortened to 3 optimizer steps (0.05 of an epoch) for the test.
    summary = run_demo(out, epochs=0.05, console=console)
    text = console.export_text()
    assert demo_config(out)["model"]["max_length"] == 128
    for name in ("report.html", "results.json", "scores.csv", "validation.jsonl", "model/config.json",
                 "summary.json", "metrics.jsonl"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    (entry,) = results["models"].values()
    # the report scores the exported model on the same held-out pairs as the training summary
    assert entry["overall"]["n"] == summary["validation"]["n"] == len((out / "validation.jsonl").read_text().splitlines())
    assert abs(entry["overall"]["accuracy"] - summary["validation"]["accuracy"]) < 1e-9
    n_train, seen, steps = summary["n_train"], summary["pairs_seen"], summary["steps"]
    assert steps == 3 and seen == 3 * 16 and summary["epochs"] == round(seen / n_train, 3)
    assert f"trained on {n_train} pairs for 0.05 epochs: {seen} pairs seen in {steps} steps" in text
    assert f"report: {out / 'report.html'}" in text
    nxt = re.search(r"rewardlab eval --model (\S+) --data (\S+)", text)
    assert nxt and (tmp_path / nxt.group(1) / "config.json").is_file() and (tmp_path / nxt.group(2)).is_file()
    assert "humanevalpack" not in text  # code pairs tie at the demo's max_length 128 (issue 11)
