"""The ``rewardlab`` command line: each command is one thin call into a package function."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rewardlab.cli_common import App, console, fail, plain_help_types
from rewardlab.errors import RewardlabError

app = App(help="Train, diagnose and evaluate reward models.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
plain_help_types()


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "accelerate", "datasets", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


_fail = fail  # errors go to stderr, exit status 2 (rewardlab.cli_common)


@app.callback()
def _main() -> None:
    _quiet_libraries()


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML run configuration (see configs/).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: key.sub=value (YAML value).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in output_dir.")] = False,
) -> None:
    """Train a reward model as CONFIG says.

    Writes into the config's output_dir (OUT, default runs/default): OUT/model/ (the exported
    reward model), metrics.jsonl, summary.json, config.yaml and checkpoints/."""
    from rewardlab.config import load_config
    from rewardlab.train.loop import train as run

    try:
        cfg = load_config(config, set_ or [])
        summary = run(cfg, resume=resume)
    except RewardlabError as e:
        _fail(e)
    if summary.get("interrupted"):
        console.print(f"interrupted by signal {summary['signal']} at step {summary['step']}; "
                      f"checkpoint {summary['checkpoint']}; continue with --resume")
        raise typer.Exit(128 + int(summary["signal"]))
    if "validation" in summary:
        _print_train_summary(summary)
    out = Path(cfg.output_dir)
    console.print(f"outputs in {out}/: model/ (the reward model), metrics.jsonl, summary.json, config.yaml, "
                  f"checkpoints/\nnext: rewardlab eval --model {out / 'model'} --data DATA")


def _print_train_summary(summary: dict) -> None:
    val = summary.get("validation") or {}
    t = Table(title="training summary")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("train pairs", str(summary.get("n_train")))
    t.add_row("validation pairs", str(summary.get("n_validation")))
    t.add_row("steps", str(summary.get("steps")))
    if summary.get("epochs") is not None:
        t.add_row("epochs", f"{summary['epochs']:.2f}")
    t.add_row("pairs seen", str(summary.get("pairs_seen")))
    t.add_row("pairs / s", f"{summary.get('pairs_per_second', 0):.2f}")
    if val:
        t.add_row("validation accuracy", f"{val['accuracy']:.4f}")
        t.add_row("validation mean margin", f"{val['mean_margin']:.4f}")
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


_FORMAT_HELP = "Data format: auto, explicit, implicit, conversational or hh (as data.format in a run config)."
_KEY_HELP = "Input column holding the {} (as data.{}_key in a run config)."


def _data_options(format: str, prompt_key: str, chosen_key: str, rejected_key: str, skip_bad_rows: bool) -> dict:
    return {"format": format, "prompt_key": prompt_key, "chosen_key": chosen_key, "rejected_key": rejected_key,
            "on_error": "skip" if skip_bad_rows else "raise"}


@app.command()
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
) -> None:
    """Write every pair of DATA with reward_chosen and reward_rejected."""
    from rewardlab.data import load_preferences
    from rewardlab.eval.runner import input_notes
    from rewardlab.models.locate import load_reward_model

    try:
        rm = load_reward_model(model, option="--model")  # checked and loaded before the data is read
        table = load_preferences(data, **_data_options(format, prompt_key, chosen_key, rejected_key, skip_bad_rows))
        s = rm.score_pairs(table, batch_size=batch_size, progress=sys.stderr.isatty())
        table = table.with_column("reward_chosen", s["reward_chosen"].tolist())
        table = table.with_column("reward_rejected", s["reward_rejected"].tolist())
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


@app.command("eval")
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
                      progress=sys.stderr.isatty(), log=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
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


@app.command()
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


from rewardlab.commands_embed_study import embed, golden, study  # noqa: E402  (light: imports inside)

app.command()(embed)
app.command()(study)
app.command()(golden)
from rewardlab.commands_strength import denoise, strength  # noqa: E402

app.command()(strength)
app.command()(denoise)
from rewardlab.commands_critic import critique  # noqa: E402

app.command()(critique)
from rewardlab.commands_serve import serve  # noqa: E402

app.command()(serve)
from rewardlab.commands_rubric import grpo, rubric_app  # noqa: E402

app.add_typer(rubric_app, name="rubric")
app.command()(grpo)


def main() -> None:  # pragma: no cover
    sys.exit(app())

if __name__ == "__main__":  # python -m rewardlab.cli
    main()
