"""CLI commands of rubric rewards: ``rubric score`` and ``grpo``.

Registered on the app in ``cli/app.py`` (``rubric`` as a command group, ``grpo`` as a command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rewardlab.cli.common import App, OverwriteOpt, console, output_dir
from rewardlab.cli.common import fail as _fail
from rewardlab.cli.common import log as _log
from rewardlab.errors import RewardlabError

rubric_app = App(help="Rubric rewards: score completions per criterion.", no_args_is_help=True)


@rubric_app.command("score")
def score(
    rubric: Annotated[Path, typer.Option(help="Rubric YAML (criteria, weights, ranges, scorers).")],
    data: Annotated[Path, typer.Option(help="Rows with prompt and completion (.jsonl, .json, .csv, .parquet).")],
    out: Annotated[Path, typer.Option(help="Output directory: scores.csv, summary.json, report.html.")] = Path("runs/rubric_score"),
    prompt_key: Annotated[str, typer.Option(help="Column of the prompt.")] = "prompt",
    completion_key: Annotated[str, typer.Option(help="Column of the completion.")] = "completion",
    overwrite: OverwriteOpt = False,
) -> None:
    """Score completions with every criterion of a rubric: a per-item table, per-criterion
    statistics (mean, saturation, invalid and unparsed counts) and an HTML report."""
    from rewardlab.rubric.report import RESULTS, score_file

    try:
        output_dir(out, "--out", results=RESULTS, overwrite=overwrite, holds=", ".join(RESULTS))
        summary = score_file(rubric, data, out, progress=True, prompt_key=prompt_key, completion_key=completion_key)
    except RewardlabError as e:
        _fail(e)
    for name, c in summary["criteria"].items():
        bad = sum(summary["invalid"][name].values())
        extra = (f", {bad} invalid" if bad else "") + (f", {summary['unparsed'][name]} unparsed" if summary["unparsed"][name] else "")
        mean = "—" if c["mean"] is None else f"{c['mean']:.3f}"
        console.print(f"{name}: mean {mean} over {c['n']} items{extra}", highlight=False)
    console.print(f"weighted mean {summary['weighted_mean']:.3f}, worst criterion {summary['worst_criterion']:.3f}; "
                  f"wrote {out}/scores.csv, summary.json, report.html", highlight=False)


def grpo(
    recipe: Annotated[Path, typer.Argument(help="GRPO recipe YAML (e.g. configs/grpo_focal.yaml).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: key.sub=value (e.g. aggregator.name=gdpo).")] = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT's last checkpoint (recipe checkpoint_every).")] = False,
) -> None:
    """GRPO with TRL's GRPOTrainer and a rubric reward (weighted_sum, min, gdpo or focal), then the
    trained policy's held-out rubric scores; writes OUT/summary.json and OUT/model/ (an OUT holding
    an earlier run's results needs --overwrite; an interrupted run with checkpoints: --resume)."""
    from rewardlab.rubric.grpo import RESULTS, load_recipe, run_grpo

    try:
        parsed = load_recipe(recipe, set_ or [])
        output_dir(parsed.output_dir, "output_dir", results=RESULTS, overwrite=overwrite, resume=resume,
                   resumable=parsed.checkpoint_every > 0)
        summary = run_grpo(parsed, log=_log, resume=resume)
    except RewardlabError as e:
        _fail(e)
    for key in ("eval_before", "eval_after"):
        if key in summary:
            e = summary[key]
            console.print(f"{key}: weighted mean {e['weighted_mean']:.3f}, worst criterion {e['worst_criterion']:.3f}, "
                          + ", ".join(f"{k} {v:.3f}" for k, v in e["criteria"].items() if v is not None), highlight=False)
    console.print(f"trained in {summary['train_seconds']} s; wrote {summary['recipe']['output_dir']}/summary.json",
                  highlight=False)
