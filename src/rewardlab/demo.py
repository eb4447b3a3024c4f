"""``rewardlab demo``: train MiniLM on the bundled, program-checked sample pairs; evaluate; report."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rewardlab.config import parse_config
from rewardlab.data import sample_path


def demo_config(out: Path, epochs: float = 2.0) -> dict:
    return {
        "output_dir": str(out),
        "model": {"name_or_path": "minilm", "max_length": 128},
        "data": {"train": str(sample_path()), "val_fraction": 0.2},
        "objective": {"name": "bt"},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 5e-5, "warmup_ratio": 0.1,
                  "eval_every": 20, "save_every": 50, "log_every": 5, "seed": 0},
    }


def run_demo(out: Path, *, epochs: float = 2.0, console: Console | None = None) -> dict:
    """Train on the sample data (a fresh run in ``out``), evaluate the exported model on the held-out
    pairs (``out/report.html``, ``results.json``, ``scores.csv``) and print accuracy per task."""
    from rewardlab.eval.runner import evaluate, write_outputs
    from rewardlab.train.data import prepare_tables
    from rewardlab.train.loop import train

    console = console or Console()
    out = Path(out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the demo always starts fresh
    cfg = parse_config(demo_config(out, epochs), source="demo")
    console.print(f"[bold]rewardlab demo[/]: MiniLM reward model on {sample_path().name} "
                  f"(answers checked by a program), {epochs:g} epochs, CPU")
    summary = train(cfg)
    if summary.get("interrupted"):  # Ctrl-C / SIGTERM: the loop saved a checkpoint and stopped
        console.print(f"interrupted by signal {summary['signal']} at step {summary['step']}; the demo starts "
                      "fresh when run again", highlight=False)
        return summary
    # The held-out pairs (the same deterministic split by prompt hash as training) and the report.
    validation = prepare_tables(cfg.data, seed=cfg.train.seed).validation
    val_path = out / "validation.jsonl"
    validation.write(val_path)
    ev = evaluate([out / "model"], data=[str(val_path)])
    paths = write_outputs(ev, out, title="rewardlab demo: the trained model on held-out prompts")
    t = Table(title="validation accuracy by task (held-out prompts; a tie counts as wrong)")
    t.add_column("task")
    t.add_column("pairs", justify="right")
    t.add_column("accuracy", justify="right")
    for task, v in summary.get("validation_by_source", {}).items():
        t.add_row(str(task), str(v["n"]), f"{v['accuracy']:.3f}")
    val = summary["validation"]
    t.add_row("[bold]all[/]", str(val["n"]), f"[bold]{val['accuracy']:.3f}[/]")
    console.print(t)
    console.print(f"trained on {summary['n_train']} pairs for {epochs:g} epochs: {summary['pairs_seen']} pairs seen "
                  f"in {summary['steps']} steps at {summary['pairs_per_second']:.1f} pairs/s "
                  f"({summary['train_seconds']:.0f} s)", highlight=False)
    console.print(f"outputs in {out}/: model/ (loads with transformers' AutoModelForSequenceClassification), "
                  f"report.html, results.json, scores.csv, validation.jsonl, metrics.jsonl, summary.json, "
                  f"config.yaml", highlight=False)
    console.print(f"report: {paths['report']}", highlight=False)
    console.print("next:\n"
                  f"  rewardlab eval --model {out}/model --data {val_path}   # the eval command on the held-out pairs\n"
                  f"  rewardlab score --model {out}/model --data PAIRS.jsonl --out scored.jsonl   # your own pairs\n"
                  "  rewardlab train configs/minilm_hh.yaml   # a reward model for real data (HH-RLHF harmless)",
                  highlight=False)
    return summary
