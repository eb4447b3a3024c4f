"""CLI command of Critic-RM data generation: ``critique`` (registered in ``cli/app.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from rewardlab.cli.common import OverwriteOpt, console, output_dir, output_file, writable_dir
from rewardlab.cli.common import fail as _fail
from rewardlab.errors import RewardlabError


def critique(
    data: Annotated[list[str], typer.Option("--data", help="Data spec(s): file, directory or hf:NAME.")],
    out: Annotated[Path, typer.Option(help="Kept pairs with critique columns and the targets critique_chosen/critique_rejected (.jsonl, .json, .csv, .parquet).")],
    n: Annotated[int, typer.Option("--n", help="Critiques per response.", min=1)] = 4,
    backend: Annotated[str, typer.Option(help="Generation backend: transformers, openai or vllm.")] = "transformers",
    model: Annotated[str, typer.Option(help="Generator: alias (smollm2-135m), directory, .gguf, Hub name; for openai the served model name.")] = "smollm2-135m",
    base_url: Annotated[Optional[str], typer.Option(help="openai backend: server URL ending in /v1 (default $OPENAI_BASE_URL).")] = None,
    max_concurrency: Annotated[int, typer.Option(help="openai backend: requests in flight.", min=1)] = 8,
    timeout: Annotated[float, typer.Option(help="openai backend: seconds per request before a retry (> 0).", min=0)] = 60.0,
    batch_size: Annotated[int, typer.Option(help="transformers backend: sequences per generate call.", min=1)] = 8,
    device: Annotated[str, typer.Option(help="transformers backend: torch device.")] = "cpu",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per critique.", min=1)] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).", min=0)] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass, in (0, 1].", min=0, max=1)] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed: each critique is a function of (seed, item, sample index).")] = 0,
    template: Annotated[Optional[Path], typer.Option(help="Critique template file with {prompt} and {response}.")] = None,
    instance_filter: Annotated[bool, typer.Option(help="Keep a pair only if its mean critique scores rank it as the label does.")] = True,
    instance_margin: Annotated[float, typer.Option(help="Keep when mean(chosen) - mean(rejected) > this.", min=0)] = 0.0,
    ties: Annotated[Literal["drop", "keep"], typer.Option(help="Equal means: drop or keep.")] = "drop",
    critique_rule: Annotated[Literal["cross_mean", "threshold", "none"], typer.Option(
        help="Critique-level filter: cross_mean, threshold or none.")] = "cross_mean",
    critique_margin: Annotated[float, typer.Option(help="cross_mean: chosen critique > mean(rejected) + this, rejected < mean(chosen) - this.", min=0)] = 0.0,
    chosen_min: Annotated[float, typer.Option(help="threshold: keep chosen critiques scoring >= this.")] = 6.0,
    rejected_max: Annotated[float, typer.Option(help="threshold: keep rejected critiques scoring <= this.")] = 5.0,
    refine: Annotated[Literal["none", "rank", "summ"], typer.Option(help="none (first kept critique), rank (meta-judge keeps the top k) or summ (condensed).")] = "none",
    rank_k: Annotated[int, typer.Option(help="rank: critiques kept per response (the best is the target).", min=1)] = 1,
    refine_max_new_tokens: Annotated[int, typer.Option(help="Tokens per meta-judgement or summary.", min=1)] = 256,
    refine_temperature: Annotated[float, typer.Option(help="Temperature of meta-judgements and summaries (0 = greedy).", min=0)] = 0.0,
    max_chars: Annotated[int, typer.Option(help="Characters kept per prompt (its end) and response (its start) in a request; cuts are counted.", min=100)] = 6000,
    score_followup: Annotated[bool, typer.Option(help="Ask again, in a follow-up turn, for the score of critiques that have none (small models).")] = False,
    on_empty: Annotated[Literal["error", "skip", "keep"], typer.Option(help="An empty response: error, skip (counted) or keep (critique it).")] = "error",
    cache: Annotated[Optional[Path], typer.Option(help="Generation cache directory (default REPORT/gen_cache); a rerun continues from it.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Summary directory (default: OUT without suffix + _critique).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use at most N pairs.", min=1)] = None,
    skip_bad_rows: Annotated[bool, typer.Option(help="Skip (and count) invalid rows instead of failing.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar (samples, tokens/s).")] = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write Critic-RM critiques of every response, filter them against the labels, refine them.

    METHODS §5: N critiques per response, each ending with 'Score: N' (1-10); consistency filters
    against the label; refinement to one critique per response. Writes the kept
    pairs to OUT, every pair and summary.json (counts, parse failures, histograms, filter counts per
    source) to the report directory."""
    from rewardlab.critic.filters import FilterConfig
    from rewardlab.critic.pipeline import CritiqueConfig, load_template, run_critique
    from rewardlab.critic.prompts import DEFAULT_CRITIQUE_TEMPLATE
    from rewardlab.data.table import WRITE_SUFFIXES
    from rewardlab.generate import make_generator

    report_dir = report if report is not None else out.with_name(out.stem + "_critique")
    try:
        cfg = CritiqueConfig(
            n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
            template=load_template(template) if template is not None else DEFAULT_CRITIQUE_TEMPLATE,
            filters=FilterConfig(instance=instance_filter, instance_margin=instance_margin, ties=ties,
                                 critique_rule=critique_rule, critique_margin=critique_margin,
                                 chosen_min=chosen_min, rejected_max=rejected_max),
            refine=refine, rank_k=rank_k, refine_max_new_tokens=refine_max_new_tokens,
            refine_temperature=refine_temperature, max_chars=max_chars, on_empty=on_empty,
            score_followup=score_followup)
        if backend == "openai" and not (base_url or os.environ.get("OPENAI_BASE_URL")):
            raise typer.BadParameter("--backend openai needs the server's URL: give --base-url URL (ending in /v1) "
                                     "or set OPENAI_BASE_URL")
        # the outputs, tried before anything is generated: the kept pairs, the report, the cache
        output_file(out, "--out", suffixes=WRITE_SUFFIXES, overwrite=overwrite)
        output_dir(report_dir, "--report", results=("summary.json", f"all_pairs{out.suffix}"), overwrite=overwrite)
        writable_dir(cache or report_dir / "gen_cache", "--cache")
        options = ({"base_url": base_url, "max_concurrency": max_concurrency, "timeout": timeout}
                   if backend == "openai" else {"batch_size": batch_size, "device": device}
                   if backend in ("transformers", "hf") else {})
        generator = make_generator(backend, model, cache_dir=cache or report_dir / "gen_cache", **options)
        summary = run_critique(data if len(data) > 1 else data[0], out, generator, cfg, report_dir=report_dir,
                               limit=limit, on_error="skip" if skip_bad_rows else "raise", progress=progress,
                               log=lambda m: console.print(m, highlight=False))
    except (RewardlabError, typer.BadParameter) as e:
        _fail(e)
    t = summary["totals"]
    gen = summary["generation"][0]
    console.print(f"{t['pairs']} pairs, {t['critiques']} critiques ({gen['cached']} from the cache, "
                  f"{gen['tokens_per_s']:.1f} tokens/s); parse failures {t['parse_failures']} "
                  f"({100 * (t['parse_failure_rate'] or 0):.1f}%); critic agrees with the label on "
                  f"{100 * (t['judge_accuracy'] or 0):.1f}% of scored pairs", highlight=False)
    console.print(f"filter: {json.dumps(t['filter'])}; kept {t['kept_pairs']} pairs -> {out}", highlight=False)
    console.print(f"summary: {report_dir / 'summary.json'}", highlight=False)
