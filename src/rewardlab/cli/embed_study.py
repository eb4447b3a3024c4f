"""CLI commands of the embedding fast path: ``embed``, ``study`` and ``golden``.

Typer-annotated functions, registered on the app in ``cli/app.py``::

    from rewardlab.cli.embed_study import embed, golden, study
    app.command()(embed)
    app.command()(study)
    app.command()(golden)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rewardlab.cli.common import OverwriteOpt, console, fail, log, output_dir, output_file, writable_dir
from rewardlab.errors import RewardlabError

_fail, _log = fail, log  # the shared helpers of rewardlab.cli.common (errors on stderr, exit 2)


def embed(
    data: Annotated[list[str], typer.Argument(help="Data spec(s): file, directory or hf:NAME[:CONFIG]\\[@SPLIT].")],
    model: Annotated[str, typer.Option(help="Backbone: minilm, smollm2-135m, a directory, a .gguf file or a Hub name.")] = "minilm",
    pooling: Annotated[str, typer.Option(help="auto (last for decoders, cls for encoders), last, cls or mean.")] = "auto",
    layer: Annotated[int, typer.Option(help="Hidden state to read: -1 = last layer, 0 = token embeddings.")] = -1,
    max_length: Annotated[int, typer.Option(help="Max tokens per (prompt, response), as in training.", min=8)] = 512,
    render: Annotated[str, typer.Option(
        help="How (prompt, response) becomes one text: chat (the tokenizer's chat template), pair (encoders: "
             "[CLS] prompt [SEP] response [SEP]), concat (prompt then response); auto = chat when the "
             "tokenizer has a template, else pair for encoders and concat for decoders.")] = "auto",
    overlength: Annotated[str, typer.Option(help="truncate_prompt_left, truncate_right or drop (embedded truncated right).")] = "truncate_prompt_left",
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass (batched by length).", min=1)] = 16,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache (default $REWARDLAB_CACHE/embeddings).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the pairs' vectors: .npz with chosen, rejected, chosen_key, rejected_key.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Embed at most N pairs.", min=1)] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Embed every (prompt, response) of DATA into the on-disk cache.

    Resumable; each distinct (prompt, response) is embedded once. Prints counts and throughput."""
    import numpy as np

    from rewardlab.data import load_preferences
    from rewardlab.embed.extract import EmbedSpec, default_cache_dir, embed_table

    try:
        spec = EmbedSpec(model=model, pooling=pooling, layer=layer, max_length=max_length, render=render,
                         overlength=overlength, dtype=dtype)
        if out is not None:  # written under exactly this name (numpy would add .npz to another suffix)
            output_file(out, "--out", suffixes=(".npz",), overwrite=overwrite, what="file of vectors")
        writable_dir(cache_dir or default_cache_dir(), "--cache-dir")
        table = load_preferences(data, limit=limit)
        res = embed_table(table, spec, cache_dir=cache_dir, batch_size=batch_size, progress=sys.stderr.isatty(),
                          log=_log)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, chosen=res["chosen"], rejected=res["rejected"],
                     chosen_key=np.array(res["chosen_key"]), rejected_key=np.array(res["rejected_key"]))
    except RewardlabError as e:
        _fail(e)
    s = res["stats"]
    saved = s["n_items"] - s["n_unique"]
    console.print(f"{len(table)} pairs = {s['n_items']} items, {s['n_unique']} distinct "
                  f"({saved} duplicates not embedded again, {100 * saved / max(s['n_items'], 1):.1f}%); "
                  f"{s['n_cached']} from cache, {s['n_embedded']} embedded", highlight=False)
    if s["n_embedded"]:
        console.print(f"throughput: {s['texts_per_second']:.1f} texts/s, {s['tokens_per_second']:.0f} tokens/s "
                      f"({s['embed_seconds']:.1f} s); dim {s['dim']}", highlight=False)
    console.print(f"cache: {res['cache_dir']}" + (f"\nvectors: {out}" if out else ""))


def study(
    grid: Annotated[Path, typer.Argument(help="Study YAML (see configs/study_example.yaml).")],
    backend: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Parallel cells (processes or Ray CPUs).", min=1)] = 1,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local instance).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: key.sub=value (YAML value).")] = None,
    max_cells: Annotated[Optional[int], typer.Option(
        help="Run at most N of the pending cells (0: prepare the pool and embeddings only).", min=0)] = None,
    fresh: Annotated[bool, typer.Option(help="Ignore finished cells and start over (old results kept as .old).")] = False,
    plots: Annotated[bool, typer.Option(help="Write plots at the end.")] = True,
) -> None:
    """Run every cell of a study grid (resumable).

    Finished cells are skipped; writes results.parquet, results.csv and plots in the study's
    output_dir."""
    from rewardlab.study.grid import load_study_config
    from rewardlab.study.runners import run_study

    try:
        cfg = load_study_config(grid, set_ or [])
        output_dir(cfg.output_dir, "output_dir")  # resumable: finished cells are kept, not refused
        if cfg.cache_dir is not None:
            writable_dir(cfg.cache_dir, "cache_dir")
        summary = run_study(cfg, backend=backend, workers=workers, ray_address=ray_address, resume=not fresh,
                            max_cells=max_cells, plots=plots, progress=sys.stderr.isatty(), log=_log)
    except RewardlabError as e:
        _fail(e)
    console.print(f"{summary['finished']}/{summary['cells']} cells finished ({summary['ran']} now, "
                  f"{summary['skipped']} before, {summary['failed']} failed: see errors.jsonl) "
                  f"in {summary['seconds']:.0f} s", highlight=False)
    for name, path in summary["files"].items():
        console.print(f"{name}: {path}", highlight=False)
    if summary["failed"]:
        raise typer.Exit(1)


def golden(
    data: Annotated[list[str], typer.Argument(help="Data spec(s) whose responses form the pool (grouped by prompt).")],
    out: Annotated[Path, typer.Option(help="Pool file to write (.parquet).")],
    model: Annotated[Optional[str], typer.Option(
        help="Golden = scores of this trained reward model (OUT/model). One of --model, --column, --labels is required.")] = None,
    column: Annotated[bool, typer.Option(
        help="Golden = the data's golden_chosen/golden_rejected columns. One of --model, --column, --labels is required.")] = False,
    labels: Annotated[bool, typer.Option(
        help="Golden = verifiable labels: 1 only-chosen, 0 only-rejected. One of --model, --column, --labels is required.")] = False,
    min_responses: Annotated[int, typer.Option(help="Keep prompts with at least N distinct responses.", min=2)] = 2,
    batch_size: Annotated[int, typer.Option(help="Scoring batch size (with --model).", min=1)] = 16,
    overwrite: OverwriteOpt = False,
) -> None:
    """Build a golden pool for studies: every distinct response per prompt with a true reward.

    Exactly one of --model, --column or --labels says where the true reward comes from."""
    from rewardlab.study.golden import build_pool
    from rewardlab.models.locate import locate_model

    chosen = [name for name, on in (("model", model is not None), ("column", column), ("labels", labels)) if on]
    if len(chosen) != 1:
        _fail(typer.BadParameter("give exactly one of --model, --column, --labels"))
    kind = {"model": "reward_model"}.get(chosen[0], chosen[0])
    spec = {"kind": kind}
    if model is not None:
        spec.update({"model": str(model), "batch_size": batch_size, "progress": sys.stderr.isatty()})
    try:
        output_file(out, "--out", suffixes=(".parquet",), overwrite=overwrite, what="pool file")
        if model is not None:
            locate_model(model, option="--model")  # before reading data: a wrong --model fails at once
        pool = build_pool(data, spec, min_responses=min_responses, log=_log, option="--min-responses")
        pool.write(out)
    except RewardlabError as e:
        _fail(e)
    console.print(f"wrote {len(pool)} responses to {pool.n_prompts} prompts to {out} "
                  f"(responses per prompt: {pool.responses_per_prompt()})", highlight=False)
