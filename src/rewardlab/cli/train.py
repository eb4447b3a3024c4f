"""CLI commands that train: ``rewardlab train`` and ``rewardlab demo`` (registered in ``cli/app.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rewardlab.cli.common import OverwriteOpt, console, output_dir, remove_results
from rewardlab.cli.common import fail as _fail
from rewardlab.errors import RewardlabError

# What a training run leaves in output_dir: another run there without --resume or --overwrite is refused.
RUN_RESULTS = ("summary.json", "model/", "adapter/", "metrics.jsonl", "checkpoints/")


def train(
    config: Annotated[Path, typer.Argument(help="YAML run configuration (see configs/).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: key.sub=value (YAML value).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in output_dir.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a reward model as CONFIG says.

    Writes into the config's output_dir (OUT, default runs/default): OUT/model/ (the exported
    reward model), metrics.jsonl, summary.json, config.yaml and checkpoints/. An OUT holding an
    earlier run's results needs --resume (continue it) or --overwrite (replace it). With a
    train.ensemble section: k members, each a run directory OUT/member-<i>, and OUT/ensemble.json
    (--resume continues member by member; docs/ensembles.md)."""
    import os

    from rewardlab.config import load_config
    from rewardlab.train.checkpoint import latest
    from rewardlab.train.ensemble import train_model as run

    try:
        cfg = load_config(config, set_ or [])
        results, resumable = RUN_RESULTS, latest(Path(cfg.output_dir) / "checkpoints") is not None
        if cfg.train.ensemble is not None:  # OUT/ensemble.json and OUT/member-<i>/, each a run directory
            results = RUN_RESULTS + ("ensemble.json",) + tuple(f"member-{i}/" for i in range(cfg.train.ensemble.members))
            resumable = (Path(cfg.output_dir) / "ensemble.json").is_file()
        out = output_dir(cfg.output_dir, "output_dir", results=results, overwrite=overwrite, resume=resume,
                         resumable=resumable)
        if overwrite and os.environ.get("RANK", "0") == "0":  # once under `accelerate launch`
            remove_results(out, results)
        summary = run(cfg, resume=resume)
    except RewardlabError as e:
        _fail(e)
    if summary.get("interrupted"):
        console.print(f"interrupted by signal {summary['signal']} at step {summary['step']}; "
                      f"checkpoint {summary['checkpoint']}; continue with --resume")
        raise typer.Exit(128 + int(summary["signal"]))
    out = Path(cfg.output_dir)
    if cfg.train.ensemble is not None:
        accs = ", ".join("-" if a is None else f"{a:.4f}" for a in summary["member_validation_accuracy"])
        console.print(f"ensemble of {summary['members']} in {out}/: ensemble.json, member-<i>/ (each a run "
                      f"directory); members' validation accuracy: {accs}\nnext: rewardlab score --model {out} "
                      f"--data DATA --out scored.jsonl, rewardlab serve {out}, or rewardlab warm {out} --out DIR")
        return
    if "validation" in summary:
        _print_train_summary(summary)
    console.print(f"outputs in {out}/: model/ (the reward model), metrics.jsonl, summary.json, config.yaml, "
                  f"checkpoints/\nnext: rewardlab eval --model {out / 'model'} --data DATA")


def _print_train_summary(summary: dict) -> None:
    val = summary.get("validation") or {}
    t = Table(title="training summary")
    t.add_column("metric")
    t.add_column("value", justify="right")
    unit = "prompts" if summary.get("objective_layout") == "items" else "pairs"  # items: grouped by prompt
    t.add_row(f"train {unit}", str(summary.get("n_train")))
    t.add_row(f"validation {unit}", str(summary.get("n_validation")))
    t.add_row("steps", str(summary.get("steps")))
    if summary.get("epochs") is not None:
        t.add_row("epochs", f"{summary['epochs']:.2f}")
    t.add_row(f"{unit} seen", str(summary.get("pairs_seen")))
    t.add_row(f"{unit} / s", f"{summary.get('pairs_per_second', 0):.2f}")
    if val and unit == "pairs":
        t.add_row("validation accuracy", f"{val['accuracy']:.4f}")
        t.add_row("validation mean margin", f"{val['mean_margin']:.4f}")
    for name, m in (val.get("by_attribute") or {}).items():  # item objectives: per target column
        for key in ("mse", "auroc", "accuracy"):
            if key in m:
                t.add_row(f"validation {key} ({name})", f"{m[key]:.4f}")
    console.print(t)
    src = (summary.get("data") or {}).get("train_source") or {}
    notes = []
    if src.get("skipped"):
        notes.append(f"skipped rows (on_error: skip): {src['skipped']}")
    for key in ("empty_chosen", "empty_rejected", "identical"):
        if src.get(key):
            notes.append(f"{key.replace('_', ' ')}: {src[key]} (kept)")
    trunc = summary.get("truncation", {}).get("train", {})
    touched = {k: v for k, v in trunc.items() if k != "ok"}
    if touched:
        notes.append(f"over-length items (train, chosen+rejected): {touched}")
    if summary.get("truncation", {}).get("dropped_train_pairs"):
        notes.append(f"pairs dropped by overlength=drop: {summary['truncation']['dropped_train_pairs']}")
    for note in notes:
        console.print(f"[yellow]data:[/] {escape(note)}", highlight=False)


def warm(
    members: Annotated[list[Path], typer.Argument(
        help="An ensemble directory (ensemble.json) or two or more reward model directories.")],
    out: Annotated[Path, typer.Option(help="Directory of the averaged reward model (a plain transformers model).")],
    assume_same_start: Annotated[bool, typer.Option(
        help="Members without a run config (OUT/config.yaml beside OUT/model): trust that they were fine-tuned "
             "from one initialisation.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """WARM: average the weights of ensemble members fine-tuned from the same start into one reward
    model (Ramé et al. 2024).

    The members must share backbone, tokenizer and initialisation (train.ensemble.vary: order);
    LoRA adapter directories are refused (average the merged exports). OUT loads in plain
    transformers (AutoModelForSequenceClassification) and in every rewardlab command."""
    from rewardlab.models.warm import warm_export

    try:
        target = output_dir(out, "--out", results=("config.json", "model.safetensors"), overwrite=overwrite)
        source = members[0] if len(members) == 1 else list(members)
        path = warm_export(source, target, assume_same_start=assume_same_start)
    except RewardlabError as e:
        _fail(e)
    console.print(f"WARM: averaged model in {path}\nnext: rewardlab eval --model {path} --data DATA")


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its run (model/, report.html, ...).")] = Path("runs/demo"),
    epochs: Annotated[float, typer.Option(help="Training epochs over the sample data.")] = 2.0,
) -> None:
    """Train a MiniLM reward model on the bundled sample data, evaluate it on held-out prompts,
    print the results and write report.html."""
    from rewardlab.demo import run_demo

    try:
        summary = run_demo(out, epochs=epochs, console=console)
    except RewardlabError as e:
        _fail(e)
    if summary.get("interrupted"):
        raise typer.Exit(128 + int(summary["signal"]))
