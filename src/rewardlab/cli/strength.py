"""CLI commands of preference strength and denoising: ``strength`` and ``denoise``.

Registered on the app in ``cli/app.py`` like the embedding commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from rewardlab.cli.common import OverwriteOpt, console, output_dir, output_file
from rewardlab.cli.common import fail as _fail
from rewardlab.cli.common import log as _log
from rewardlab.errors import RewardlabError


def strength(
    data: Annotated[list[str], typer.Option("--data", help="Data spec(s): file, directory or hf:NAME.")],
    out: Annotated[Path, typer.Option(help="Write the data with strength_mean/strength_std here (.jsonl, .json, .csv, .parquet).")],
    members: Annotated[int, typer.Option(help="Reward models per fold (M).", min=1)] = 10,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds K by prompt hash (>= 2); 1 = the paper's in-sample variant.", min=1)] = 5,
    backend: Annotated[Literal["heads", "finetune"], typer.Option(help="heads (embedding heads, fast) or finetune (full fine-tuning, needs --config).")] = "heads",
    config: Annotated[Optional[Path], typer.Option(help="Run config for --backend finetune (data.train is replaced per fold).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override of --config: key.sub=value.")] = None,
    model: Annotated[str, typer.Option(help="Embedding backbone (heads backend and decile table).")] = "minilm",
    pooling: Annotated[str, typer.Option(help="Embedding pooling: auto (last for decoders, cls for encoders), last, cls, mean.")] = "auto",
    max_length: Annotated[int, typer.Option(help="Max tokens per (prompt, response) when embedding.", min=8)] = 512,
    head: Annotated[Literal["mlp", "linear", "gbdt"], typer.Option(help="Head kind: mlp, linear or gbdt.")] = "mlp",
    widths: Annotated[Optional[list[int]], typer.Option("--width", help="MLP hidden width (repeat for more layers; default one layer of 256).", min=1)] = None,
    epochs: Annotated[int, typer.Option(help="Max epochs per head (early stopping on 10% of the training pairs).", min=1)] = 30,
    deciles: Annotated[bool, typer.Option(help="Train a head per μ̂ decile and report its validation accuracy.")] = True,
    val_fraction: Annotated[float, typer.Option(help="Validation share (by prompt hash) of the decile table, in [0, 1).", min=0, max=1)] = 0.1,
    split_key: Annotated[Optional[str], typer.Option(
        help="What keeps pairs together in folds and the decile split: a column name, or a JSON mapping "
             '{"field": ..., "regex": ..., "normalize": "alnum_lower"} (default: the prompt).')] = None,
    seed: Annotated[int, typer.Option(help="Seed of members, folds' heads and decile heads.")] = 0,
    report: Annotated[Optional[Path], typer.Option(help="Summary directory (default: OUT without suffix + _strength).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use at most N pairs.", min=1)] = None,
    skip_bad_rows: Annotated[bool, typer.Option(help="Skip (and count) invalid rows instead of failing.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Preference strength of every pair from an ensemble of reward models.

    Cross-fitted: each pair is scored only by members that did not train on it. Writes the data
    back with strength_mean (μ̂) and strength_std (σ̂), and a summary with plots (report.html)."""
    from rewardlab.data.table import WRITE_SUFFIXES
    from rewardlab.strength.run import REPORT_RESULTS, default_report_dir, run_strength

    try:
        if val_fraction >= 1:
            raise typer.BadParameter(f"--val-fraction: expected a share in [0, 1), got {val_fraction}")
        output_file(out, "--out", suffixes=WRITE_SUFFIXES, overwrite=overwrite)
        output_dir(report or default_report_dir(out), "--report", results=REPORT_RESULTS, overwrite=overwrite)
        key = split_key
        if key is not None and key.lstrip().startswith("{"):
            import json

            try:
                key = json.loads(key)
            except json.JSONDecodeError as err:
                raise typer.BadParameter(f"--split-key: not valid JSON ({err.msg} at column {err.colno})") from None
        run_config = None
        if backend == "finetune":
            if config is None:
                raise typer.BadParameter("--backend finetune needs --config RUN.yaml")
            from rewardlab.config import load_config

            run_config = load_config(config, set_ or [])
        summary = run_strength(
            data if len(data) > 1 else data[0], out, members=members, folds=folds, backend=backend,
            embed={"model": model, "pooling": pooling, "max_length": max_length}, head={"kind": head, "epochs": epochs, "widths": widths or [256], "batch_size": 256},
            run_config=run_config, deciles=deciles, val_fraction=val_fraction, split_key=key, seed=seed, report_dir=report,
            limit=limit, on_error="skip" if skip_bad_rows else "raise", log=_log, folds_option="--folds")
    except (RewardlabError, typer.BadParameter) as e:
        _fail(e)
    s = summary["summary"]
    console.print(f"{summary['n_pairs']} pairs, {summary['mode']} ({summary['members']} members x "
                  f"{summary['folds']} folds): {100 * s['frac_negative']:.1f}% with μ̂ < 0; median μ̂ "
                  f"{s['mean_quantiles']['0.5']:.3f}", highlight=False)
    if "deciles" in summary:
        accs = " ".join(f"{r['val_accuracy']:.2f}" for r in summary["deciles"]["groups"])
        console.print(f"validation accuracy by μ̂ decile (weakest first): {accs}; all pairs "
                      f"{summary['deciles']['all_pairs_accuracy']:.3f}", highlight=False)


def denoise(
    data: Annotated[str, typer.Argument(help="Data with strength_mean (written by `rewardlab strength`).")],
    out: Annotated[Path, typer.Option(help="Where to write the denoised data (.jsonl, .json, .csv, .parquet).")],
    recipe: Annotated[str, typer.Option(help="flip_fraction, flip_negative, smooth_all, smooth_negative, adaptive_margin, top_subset or bt.")],
    fraction: Annotated[Optional[float], typer.Option(help="flip_fraction: share of lowest-μ̂ pairs to flip.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="smooth_*: label smoothing α.")] = None,
    keep: Annotated[Optional[float], typer.Option(help="top_subset: share of highest-μ̂ pairs to keep.")] = None,
    scale: Annotated[Optional[float], typer.Option(help="adaptive_margin: margin = scale * max(μ̂, 0).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Apply a denoising recipe to data with strength_mean.

    Writes the data (with a flip column or only the kept pairs) and prints the objective to train
    it with (`rewardlab train CONFIG --set data.train=OUT --set ...`)."""
    import yaml

    from rewardlab.data import load_preferences
    from rewardlab.data.table import WRITE_SUFFIXES
    from rewardlab.strength.denoise import apply_recipe

    options = {k: v for k, v in (("fraction", fraction), ("alpha", alpha), ("keep", keep), ("scale", scale))
               if v is not None}
    try:
        output_file(out, "--out", suffixes=WRITE_SUFFIXES, overwrite=overwrite)
        table = load_preferences(data)
        new, objective, counts = apply_recipe(table, recipe, **options)
        new.write(out)
    except RewardlabError as e:
        _fail(e)
    console.print(f"{recipe}: {counts}; wrote {len(new)} pairs to {out}", highlight=False)
    sets = " ".join(f"--set objective.{k}={v}" for k, v in objective.items())
    console.print(f"train with: rewardlab train CONFIG --set data.train={out} {sets}", highlight=False)
    console.print(yaml.safe_dump({"objective": objective}, sort_keys=False).strip(), highlight=False)
