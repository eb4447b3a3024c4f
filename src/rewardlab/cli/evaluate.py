"""CLI commands that score: ``rewardlab score`` and ``rewardlab eval`` (registered in ``cli/app.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rewardlab.cli.common import console
from rewardlab.cli.common import fail as _fail
from rewardlab.errors import RewardlabError

# Critic-RM models (docs/critic_rm.md) write critiques before they score; `score` and `eval` take these.
CritiquesOpt = Annotated[Optional[int], typer.Option(
    help="Critic-RM: critiques written per response (m); the reward is their mean (default: the model's).")]
CritiqueSeedOpt = Annotated[Optional[int], typer.Option(help="Critic-RM: seed of the critique sampling (default: the model's).")]
CritiqueCacheOpt = Annotated[Optional[Path], typer.Option(
    help="Critic-RM: cache directory of the written critiques (a rerun resumes from it).")]


_FORMAT_HELP = "Data format: auto, explicit, implicit, conversational or hh (as data.format in a run config)."
_KEY_HELP = "Input column holding the {} (as data.{}_key in a run config)."


def _data_options(format: str, prompt_key: str, chosen_key: str, rejected_key: str, skip_bad_rows: bool) -> dict:
    return {"format": format, "prompt_key": prompt_key, "chosen_key": chosen_key, "rejected_key": rejected_key,
            "on_error": "skip" if skip_bad_rows else "raise"}


def score(
    model: Annotated[str, typer.Option(help="A trained reward model: a directory saved by rewardlab (OUT/model) "
                                            "or transformers, or a Hub name (online).")],
    data: Annotated[str, typer.Option(help="Data spec: file, directory or hf:NAME[:CONFIG]\\[@SPLIT].")],
    out: Annotated[Path, typer.Option(help="Output file (.jsonl, .csv or .parquet).")],
    batch_size: Annotated[int, typer.Option(help="Scoring batch size.")] = 16,
    format: Annotated[str, typer.Option(help=_FORMAT_HELP)] = "auto",
    prompt_key: Annotated[str, typer.Option(help=_KEY_HELP.format("prompt", "prompt"))] = "prompt",
    chosen_key: Annotated[str, typer.Option(help=_KEY_HELP.format("chosen response", "chosen"))] = "chosen",
    rejected_key: Annotated[str, typer.Option(help=_KEY_HELP.format("rejected response", "rejected"))] = "rejected",
    skip_bad_rows: Annotated[bool, typer.Option(help="Skip (and count) invalid rows instead of failing.")] = False,
    critiques: CritiquesOpt = None,
    critique_seed: CritiqueSeedOpt = None,
    critique_cache: CritiqueCacheOpt = None,
) -> None:
    """Write every pair of DATA with reward_chosen and reward_rejected (Critic-RM: and the critiques)."""
    from rewardlab.critic.load import load_model
    from rewardlab.data import load_preferences
    from rewardlab.eval.runner import input_notes

    try:
        # checked and loaded before the data is read (a Critic-RM also gets its critique settings)
        rm = load_model(model, critiques=critiques, seed=critique_seed, cache_dir=critique_cache)
        table = load_preferences(data, **_data_options(format, prompt_key, chosen_key, rejected_key, skip_bad_rows))
        s = rm.score_pairs(table, batch_size=batch_size, progress=sys.stderr.isatty())
        table = table.with_column("reward_chosen", s["reward_chosen"].tolist())
        table = table.with_column("reward_rejected", s["reward_rejected"].tolist())
        for side in ("chosen", "rejected"):  # a Critic-RM's m critiques per response
            if f"critiques_{side}" in s:
                table = table.with_column(f"critiques_{side}", s[f"critiques_{side}"])
        table.write(out)
    except RewardlabError as e:
        _fail(e)
    ties = int((s["reward_chosen"] == s["reward_rejected"]).sum())
    console.print(f"wrote {len(table)} scored pairs to {out}")
    notes = input_notes(table.report.to_dict() if table.report else {}, dict(rm.last_truncation))
    if ties:
        notes.append(f"ties (equal rewards): {ties} of {len(table)} pairs")
    for note in notes:
        console.print(f"[yellow]data:[/] {escape(note)}", highlight=False)


def eval_(
    model: Annotated[list[str], typer.Option(help="A trained reward model (a directory saved by rewardlab, OUT/model, "
                                                  "or transformers; or a Hub name); repeat for several.")],
    suite: Annotated[Optional[str], typer.Option(
        help="Suite: a built-in name (shared, rewardbench) or a suite YAML path.")] = None,
    data: Annotated[Optional[list[str]], typer.Option(
        help="Data spec instead of a suite (file, directory, hf:NAME[:CONFIG]\\[@SPLIT]); repeatable.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output directory: results.json, report.html, scores.csv "
                                                     "(default runs/eval/MODEL_DATA).")] = None,
    batch_size: Annotated[int, typer.Option(help="Scoring batch size.")] = 16,
    data_root: Annotated[Optional[Path], typer.Option(
        help="Where a suite's relative data paths resolve (default ../shared/data).")] = None,
    calibration_data: Annotated[Optional[str], typer.Option(
        help="Data spec to fit a temperature on (ECE is then also reported after scaling).")] = None,
    max_pairs_per_subset: Annotated[Optional[int], typer.Option(
        help="Evaluate at most N pairs per subset (per dataset with --data); deterministic, recorded.")] = None,
    format: Annotated[str, typer.Option(help="With --data: " + _FORMAT_HELP)] = "auto",
    prompt_key: Annotated[str, typer.Option(help="With --data: " + _KEY_HELP.format("prompt", "prompt"))] = "prompt",
    chosen_key: Annotated[str, typer.Option(
        help="With --data: " + _KEY_HELP.format("chosen response", "chosen"))] = "chosen",
    rejected_key: Annotated[str, typer.Option(
        help="With --data: " + _KEY_HELP.format("rejected response", "rejected"))] = "rejected",
    skip_bad_rows: Annotated[bool, typer.Option(help="With --data: skip (and count) invalid rows instead of failing.")] = False,
    critiques: CritiquesOpt = None,
    critique_seed: CritiqueSeedOpt = None,
    critique_cache: CritiqueCacheOpt = None,
) -> None:
    """Score models on a suite or data: summary table, diagnostics, results.json and report.html."""
    from rewardlab.eval.runner import default_out_dir, evaluate, write_outputs

    if (suite is None) == (not data):
        _fail(typer.BadParameter("give either --suite or --data (one or more), not both"))
    options = _data_options(format, prompt_key, chosen_key, rejected_key, skip_bad_rows)
    if suite is not None and options != _data_options("auto", "prompt", "chosen", "rejected", False):
        _fail(typer.BadParameter("--format, --*-key and --skip-bad-rows apply to --data; a suite maps its own columns"))
    try:
        ev = evaluate(model, suite=suite, data=data or [], data_root=data_root, batch_size=batch_size,
                      calibration_data=calibration_data, max_pairs_per_subset=max_pairs_per_subset,
                      data_options=options if data else None,
                      progress=sys.stderr.isatty(), log=lambda m: console.print(f"[dim]{m}[/]", highlight=False),
                      critiques=critiques, critique_seed=critique_seed, critique_cache=critique_cache)
        paths = write_outputs(ev, out if out is not None else default_out_dir(model, suite, data or []))
    except RewardlabError as e:
        _fail(e)
    print_eval(ev.results)
    console.print(f"results: {paths['results']}\nreport:  {paths['report']}\nscores:  {paths['scores']}")


def print_eval(res: dict) -> None:
    """One summary table per model (scores in %; a tie counts as wrong), then notes."""
    from rewardlab.eval.runner import input_notes

    def _pct(x: Optional[float]) -> str:
        return "—" if x is None else f"{100 * x:.1f}"

    for name, m in res["models"].items():
        if "suite" in m:
            s = m["suite"]
            t = Table(title=f"{name}: suite {s['suite']} (score %, a tie counts as wrong)")
            t.add_column("category")
            t.add_column("pairs", justify="right")
            t.add_column("score", justify="right")
            t.add_column("correct", justify="right")
            t.add_row("[bold]Overall[/]", str(sum(v["n"] for v in s["sections"].values())),
                      f"[bold]{_pct(s['overall'])}[/]", "")
            for section, v in s["sections"].items():
                t.add_row(f"[bold]{section}[/]", str(v["n"]), _pct(v["score"]), "")
                for sub, r in s["subsets"].items():
                    if r["section"] == section:
                        t.add_row(f"  {sub}", str(r["n"]), _pct(r["accuracy"]), f"{r['correct']}/{r['n']}")
            console.print(t)
            if s.get("note"):
                console.print(f"[yellow]note:[/] {s['note']}", highlight=False)
            if s.get("missing_subsets"):
                console.print(f"[yellow]no pairs for subset(s):[/] {', '.join(s['missing_subsets'])}")
        else:
            t = Table(title=f"{name}: accuracy % (a tie counts as wrong)")
            t.add_column("dataset / source")
            t.add_column("pairs", justify="right")
            t.add_column("accuracy", justify="right")
            for ds, v in m["datasets"].items():
                t.add_row(f"[bold]{ds}[/]", str(v["n"]), _pct(v["accuracy"]))
                sources = {k: x for k, x in m["sources"].items() if k.startswith(ds + "/")}
                if len(sources) > 25:
                    t.add_row(f"  [dim]{len(sources)} sources: per-source results in results.json[/]", "", "")
                elif len(sources) > 1:
                    for key, x in sources.items():
                        t.add_row("  " + key[len(ds) + 1:], str(x["n"]), _pct(x["accuracy"]))
            t.add_row("[bold]all[/]", str(m["overall"]["n"]), f"[bold]{_pct(m['overall']['accuracy'])}[/]")
            console.print(t)
        d = m.get("diagnostics") or {}
        cal, lb = d.get("calibration") or {}, d.get("length_bias") or {}
        line = f"{name}: ECE {_pct(cal.get('ece'))}%"
        if cal.get("temperature") is not None:
            line += (f", T = {cal['temperature']:.3g} fitted on {cal.get('fit_data')}, "
                     f"ECE at T {_pct(cal.get('ece_at_temperature'))}%")
        elif cal.get("fit_error"):
            line += f" (no temperature: {cal['fit_error']})"
        if lb:
            line += (f"; accuracy when chosen is shorter / longer: {_pct(lb.get('acc_chosen_shorter'))} / "
                     f"{_pct(lb.get('acc_chosen_longer'))} %")
        console.print(line, highlight=False)
        for warning in m.get("warnings", []):
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for ds, info in res.get("data", {}).items():
        for note in input_notes(info.get("load") or {}, {}):
            console.print(f"[yellow]{escape(ds)}:[/] {escape(note)}", highlight=False)
        if info["unselected"]["n"]:
            console.print(f"[yellow]{ds}: {info['unselected']['n']} row(s) in no subset, not evaluated[/] "
                          f"(by source: {info['unselected']['by_source']})", highlight=False)
    if res.get("subsample"):
        console.print(f"subsampled: at most {res['subsample']['max_pairs_per_subset']} pairs per subset")
    for a in res.get("agreement", []):
        console.print(f"agreement {a['models'][0]} vs {a['models'][1]}: {_pct(a['overall'])}% of {a['n']} pairs")
