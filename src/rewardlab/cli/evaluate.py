"""CLI commands that score: ``rewardlab score`` and ``rewardlab eval`` (registered in ``cli/app.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rewardlab.cli.common import OverwriteOpt, console, output_dir, output_file, writable_dir
from rewardlab.cli.common import fail as _fail
from rewardlab.errors import ConfigError, RewardlabError

# Critic-RM models (docs/critic_rm.md) write critiques before they score; `score` and `eval` take these.
CritiquesOpt = Annotated[Optional[int], typer.Option(
    help="Critic-RM: critiques written per response (m); the reward is their mean (default: the model's).")]
CritiqueSeedOpt = Annotated[Optional[int], typer.Option(help="Critic-RM: seed of the critique sampling (default: the model's).")]
CritiqueCacheOpt = Annotated[Optional[Path], typer.Option(
    help="Critic-RM: cache directory of the written critiques (a rerun resumes from it).")]
# Ensemble directories (ensemble.json; docs/ensembles.md): how the members' rewards are combined.
AggregationOpt = Annotated[Optional[Literal["mean", "min", "mean_minus_std"]], typer.Option(
    help="Ensemble: mean, min or mean_minus_std (mean - lambda * std of the members) (default: ensemble.json's).")]
EnsembleLambdaOpt = Annotated[Optional[float], typer.Option(
    help="Ensemble: lambda of mean_minus_std, >= 0 (default: ensemble.json's).", min=0)]


EVAL_RESULTS = ("results.json", "report.html", "scores.csv")  # what an earlier `eval` left in --out
_FORMAT_HELP = "Data format: auto, explicit, implicit, conversational or hh (as data.format in a run config)."
_KEY_HELP = "Input column holding the {} (as data.{}_key in a run config)."


def _data_options(format: str, prompt_key: str, chosen_key: str, rejected_key: str, skip_bad_rows: bool) -> dict:
    return {"format": format, "prompt_key": prompt_key, "chosen_key": chosen_key, "rejected_key": rejected_key,
            "on_error": "skip" if skip_bad_rows else "raise"}


def score(
    model: Annotated[str, typer.Option(help="A trained reward model: a directory saved by rewardlab (OUT/model) "
                                            "or transformers, or a Hub name (online).")],
    data: Annotated[str, typer.Option(help="Data spec: file, directory or hf:NAME[:CONFIG]\\[@SPLIT].")],
    out: Annotated[Path, typer.Option(help="Output file (.jsonl, .json, .csv or .parquet).")],
    batch_size: Annotated[int, typer.Option(help="Scoring batch size.", min=1)] = 16,
    format: Annotated[str, typer.Option(help=_FORMAT_HELP)] = "auto",
    prompt_key: Annotated[str, typer.Option(help=_KEY_HELP.format("prompt", "prompt"))] = "prompt",
    chosen_key: Annotated[str, typer.Option(help=_KEY_HELP.format("chosen response", "chosen"))] = "chosen",
    rejected_key: Annotated[str, typer.Option(help=_KEY_HELP.format("rejected response", "rejected"))] = "rejected",
    skip_bad_rows: Annotated[bool, typer.Option(help="Skip (and count) invalid rows instead of failing.")] = False,
    critiques: CritiquesOpt = None,
    critique_seed: CritiqueSeedOpt = None,
    critique_cache: CritiqueCacheOpt = None,
    critiques_from_data: Annotated[bool, typer.Option(
        help="Critic-RM: score with the critiques DATA carries (critiques_chosen/critiques_rejected lists, or "
             "critique_chosen/critique_rejected strings), written elsewhere; none are generated.")] = False,
    aggregation: AggregationOpt = None,
    ensemble_lambda: EnsembleLambdaOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write every pair of DATA with reward_chosen and reward_rejected (Critic-RM: and the critiques;
    a multi-attribute model: reward_chosen_NAME and reward_rejected_NAME per attribute, and the gated
    reward as reward_chosen/reward_rejected when it has a gating; an ensemble: the aggregate, and the
    members' spread and rewards), in input order, keeping every
    input column (ids, metadata)."""
    from rewardlab.critic.load import load_model
    from rewardlab.data import load_preferences
    from rewardlab.data.table import WRITE_SUFFIXES
    from rewardlab.eval.runner import input_notes

    try:
        output_file(out, "--out", suffixes=WRITE_SUFFIXES, overwrite=overwrite)  # before the work
        if critique_cache is not None:
            writable_dir(critique_cache, "--critique-cache")
        if critiques_from_data and (critiques is not None or critique_seed is not None or critique_cache is not None):
            raise ConfigError("--critiques-from-data scores with the data's critiques: --critiques, --critique-seed "
                              "and --critique-cache set how critiques are written, and none are")
        # checked and loaded before the data is read (a Critic-RM also gets its critique settings)
        rm = load_model(model, critiques=critiques, seed=critique_seed, cache_dir=critique_cache,
                        aggregation=aggregation, lam=ensemble_lambda)
        from rewardlab.critic.model import CriticRewardModel

        if critiques_from_data and not isinstance(rm, CriticRewardModel):
            raise ConfigError(f"--critiques-from-data needs a Critic-RM; {model} is a plain reward model "
                              "(it reads no critiques)")
        table = load_preferences(data, **_data_options(format, prompt_key, chosen_key, rejected_key, skip_bad_rows),
                                 keep_all_columns=True)
        if critiques_from_data:
            from rewardlab.critic.scoring import score_pairs_given

            s = score_pairs_given(rm, table, batch_size=batch_size, progress=sys.stderr.isatty())
        else:
            s = rm.score_pairs(table, batch_size=batch_size, progress=sys.stderr.isatty())
        replaced = [c for c in ("reward_chosen", "reward_rejected", "critiques_chosen", "critiques_rejected",
                                "spread_chosen", "spread_rejected", "members_chosen", "members_rejected")
                    if table.has(c) and (c.startswith("reward_") or c in s)]
        names = getattr(rm, "attribute_names", None)
        if names:  # a multi-attribute model: one column per attribute and side, the gated scalar as reward
            for side in ("chosen", "rejected"):
                scores = s[f"reward_{side}"]
                for k, name in enumerate(names):
                    table = table.with_column(f"reward_{side}_{name}", scores[:, k].tolist())
                s[f"reward_{side}"] = (rm.gated(list(table["prompt"]), scores, batch_size=batch_size)
                                       if rm.gating is not None else None)
        if s["reward_chosen"] is not None:
            table = table.with_column("reward_chosen", s["reward_chosen"].tolist())
            table = table.with_column("reward_rejected", s["reward_rejected"].tolist())
        else:  # attributes without a gating: an input reward column stays as it was
            replaced = [c for c in replaced if not c.startswith("reward_")]
        for key in ("spread_chosen", "spread_rejected", "members_chosen", "members_rejected"):  # an ensemble's
            if key in s:
                table = table.with_column(key, s[key].tolist())
        for side in ("chosen", "rejected"):  # a Critic-RM's m critiques per response
            if f"critiques_{side}" in s:
                table = table.with_column(f"critiques_{side}", s[f"critiques_{side}"])
        table.write(out)
    except RewardlabError as e:
        _fail(e)
    ties = int((s["reward_chosen"] == s["reward_rejected"]).sum()) if s["reward_chosen"] is not None else 0
    console.print(f"wrote {len(table)} scored pairs to {out}")
    notes = input_notes(table.report.to_dict() if table.report else {}, dict(rm.last_truncation))
    if ties:
        notes.append(f"ties (equal rewards): {ties} of {len(table)} pairs")
    if replaced:
        notes.append(f"input column(s) {', '.join(replaced)} replaced by this model's scores")
    for note in notes:
        console.print(f"[yellow]data:[/] {escape(note)}", highlight=False)


def eval_(
    model: Annotated[Optional[list[str]], typer.Option(
        help="A trained reward model (a directory saved by rewardlab, OUT/model, or transformers; or a Hub "
             "name); repeat for several (every pair is also compared).")] = None,
    compare: Annotated[Optional[tuple[str, str]], typer.Option(
        help="Compare two models on the same items: MODEL_A MODEL_B (paired tests per subset, Holm "
             "correction, intervals of the differences); instead of --model.", metavar="MODEL_A MODEL_B")] = None,
    suite: Annotated[Optional[str], typer.Option(
        help="Suite: a built-in name (shared, rewardbench) or a suite YAML path.")] = None,
    data: Annotated[Optional[list[str]], typer.Option(
        help="Data spec instead of a suite (file, directory, hf:NAME[:CONFIG]\\[@SPLIT]); repeatable.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output directory: results.json, report.html, scores.csv "
                                                     "(default runs/eval/MODEL_DATA).")] = None,
    batch_size: Annotated[int, typer.Option(help="Scoring batch size.", min=1)] = 16,
    data_root: Annotated[Optional[Path], typer.Option(
        help="Where a suite's relative data paths resolve (default ../shared/data).")] = None,
    calibration_data: Annotated[Optional[str], typer.Option(
        help="Data spec to fit a temperature on (ECE is then also reported after scaling).")] = None,
    max_pairs_per_subset: Annotated[Optional[int], typer.Option(
        help="Evaluate at most N pairs per subset (per dataset with --data); deterministic, recorded.", min=1)] = None,
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
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals and paired comparisons.", min=100)] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resamples.")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score models on a suite or data: scores with 95% intervals, length rules beside every subset,
    paired comparisons of models, diagnostics, results.json and report.html."""
    from rewardlab.eval.runner import default_out_dir, evaluate, write_outputs

    if suite is None and not data:
        _fail(typer.BadParameter("nothing to evaluate on: give --suite NAME_OR_YAML or --data SPEC (one or more)"))
    if suite is not None and data:
        _fail(typer.BadParameter("give either --suite or --data, not both"))
    if compare is not None and model:
        _fail(typer.BadParameter("--compare MODEL_A MODEL_B replaces --model; give one or the other"))
    model = list(compare) if compare is not None else (model or [])
    if not model:
        _fail(typer.BadParameter("no model: give --model DIR (repeatable) or --compare MODEL_A MODEL_B"))
    options = _data_options(format, prompt_key, chosen_key, rejected_key, skip_bad_rows)
    if suite is not None and options != _data_options("auto", "prompt", "chosen", "rejected", False):
        _fail(typer.BadParameter("--format, --*-key and --skip-bad-rows apply to --data; a suite maps its own columns"))
    out = out if out is not None else default_out_dir(model, suite, data or [])
    try:
        if out.suffix.lower() in (".json", ".html"):
            raise typer.BadParameter(f"--out {out}: expected a directory (results.json and report.html go inside)")
        output_dir(out, "--out", results=EVAL_RESULTS, overwrite=overwrite, holds="results.json, report.html, scores.csv")
        if critique_cache is not None:
            writable_dir(critique_cache, "--critique-cache")
        ev = evaluate(model, suite=suite, data=data or [], data_root=data_root, batch_size=batch_size,
                      calibration_data=calibration_data, max_pairs_per_subset=max_pairs_per_subset,
                      data_options=options if data else None,
                      progress=sys.stderr.isatty(), log=lambda m: console.print(f"[dim]{m}[/]", highlight=False),
                      critiques=critiques, critique_seed=critique_seed, critique_cache=critique_cache,
                      n_boot=n_boot, seed=seed)
        paths = write_outputs(ev, out)
    except (RewardlabError, typer.BadParameter) as e:
        _fail(e)
    print_eval(ev.results)
    console.print(f"results: {paths['results']}\nreport:  {paths['report']}\nscores:  {paths['scores']}")


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _ci(block: Optional[dict]) -> str:
    if not block or block.get("low") is None:
        return "—"
    return f"{100 * block['low']:.1f}–{100 * block['high']:.1f}"


def _rule_cells(entry: dict) -> list[str]:
    rules = entry.get("rules") or {}
    cells = [_pct(rules[r]["score"]) if r in rules else "—" for r in ("prefer_longer", "prefer_shorter", "chance")]
    verdict = (entry.get("length_rule") or {}).get("verdict")
    cells.append({"beats": "[yellow]length ≥[/]", "matches": "[yellow]length ≈[/]"}.get(verdict, ""))
    return cells


def _score_table(title: str, first: str) -> Table:
    t = Table(title=title)
    t.add_column(first)
    t.add_column("n", justify="right")
    t.add_column("score", justify="right")
    t.add_column("95% CI", justify="right")
    for name in ("longer", "shorter", "chance"):
        t.add_column(name, justify="right")
    t.add_column("flag")
    return t


def print_eval(res: dict) -> None:
    """One summary table per model (scores in %, 95% intervals, the length rules prefer-longer,
    prefer-shorter and chance beside every subset; a tie counts as wrong), then the paired
    comparisons of models and notes."""
    from rewardlab.eval.runner import input_notes

    for name, m in res["models"].items():
        if "suite" in m:
            s = m["suite"]
            t = _score_table(f"{name}: suite {s['suite']} (score %, a tie counts as wrong)", "category")
            t.add_row("[bold]Overall[/]", str(sum(v["n"] for k, v in s["sections"].items() if k in s["weights"])),
                      f"[bold]{_pct(s['overall'])}[/]", _ci(s.get("overall_interval")), "", "", "", "")
            for section, v in s["sections"].items():
                t.add_row(f"[bold]{section}[/]", str(v["n"]), _pct(v["score"]), _ci(v.get("interval")), "", "", "", "")
                for sub, r in s["subsets"].items():
                    if r["section"] == section:
                        t.add_row(f"  {sub}", str(r["n"]), _pct(r["accuracy"]), _ci(r.get("interval")), *_rule_cells(r))
            console.print(t)
            if s.get("note"):
                console.print(f"[yellow]note:[/] {s['note']}", highlight=False)
            if s.get("missing_subsets"):
                console.print(f"[yellow]no pairs for subset(s):[/] {', '.join(s['missing_subsets'])}")
        else:
            t = _score_table(f"{name}: accuracy % (a tie counts as wrong)", "dataset / source")
            for ds, v in m["datasets"].items():
                t.add_row(f"[bold]{ds}[/]", str(v["n"]), _pct(v["accuracy"]), _ci(v.get("interval")), *_rule_cells(v))
                sources = {k: x for k, x in m["sources"].items() if k.startswith(ds + "/")}
                if len(sources) > 25:
                    t.add_row(f"  [dim]{len(sources)} sources: per-source results in results.json[/]", "", "", "", "", "", "", "")
                elif len(sources) > 1:
                    for key, x in sources.items():
                        t.add_row("  " + key[len(ds) + 1:], str(x["n"]), _pct(x["accuracy"]), _ci(x.get("interval")),
                                  "", "", "", "")
            o = m["overall"]
            t.add_row("[bold]all[/]", str(o["n"]), f"[bold]{_pct(o['accuracy'])}[/]", _ci(o.get("interval")), "", "", "", "")
            console.print(t)
        for sub, r in ((s["subsets"] if "suite" in m else m["datasets"]).items()):
            d = r.get("details") or {}
            if r.get("kind") == "pointwise" and d:
                console.print(f"{name} {sub}: best-of-k selection {_pct(d['selected'])}% on the {d['n_mixed']} of "
                              f"{d['n_items']} items that mix correct and wrong responses (random pick "
                              f"{_pct(d['random'])}%); over all items {_pct(d['selected_all'])}% (random "
                              f"{_pct(d['random_all'])}%, oracle {_pct(d['oracle_all'])}%)", highlight=False)
            elif r.get("kind") == "rm_bench" and d:
                console.print(f"{name} {sub}: RM-Bench hard {_pct(d['hard'])}, normal {_pct(d['normal'])}, "
                              f"easy {_pct(d['easy'])}", highlight=False)
        d = m.get("diagnostics") or {}
        cal, lb = d.get("calibration") or {}, d.get("length_bias") or {}
        if d:
            line = f"{name}: ECE {_pct(cal.get('ece'))}%"
            if cal.get("temperature") is not None:
                line += (f", T = {cal['temperature']:.3g} fitted on {cal.get('fit_data')}, "
                         f"ECE at T {_pct(cal.get('ece_at_temperature'))}%")
            elif cal.get("fit_error"):
                line += f" (no temperature: {cal['fit_error']})"
            if lb:
                line += (f"; accuracy when chosen is shorter / longer: {_pct(lb.get('acc_chosen_shorter'))}"
                         f" [{_ci(lb.get('acc_chosen_shorter_interval'))}] / {_pct(lb.get('acc_chosen_longer'))}"
                         f" [{_ci(lb.get('acc_chosen_longer_interval'))}] %")
                if lb.get("spearman_reward_length") is not None:
                    line += f"; Spearman(reward, length in characters) {lb['spearman_reward_length']:+.2f}"
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
    for c in res.get("comparisons", []):
        print_comparison(c)


def print_comparison(c: dict) -> None:
    """The paired comparison of two models: differences (A − B, points) with 95% intervals, the
    test per subset and its Holm-adjusted p-value; sections and overall from the paired bootstrap."""
    a, b = c["models"]
    t = Table(title=f"{a} − {b} (points; paired: same items; Holm over {len(c['subsets'])} subsets)")
    for col, just in (("subset", "left"), ("n", "right"), (a, "right"), (b, "right"), ("A − B", "right"),
                      ("95% CI", "right"), ("test", "left"), ("p", "right"), ("p Holm", "right"), ("", "left")):
        t.add_column(col, justify=just)

    def diff(x: Optional[float]) -> str:
        return "—" if x is None else f"{100 * x:+.1f}"

    for r in c["subsets"]:
        ci = "—" if r["low"] is None else f"{100 * r['low']:+.1f}, {100 * r['high']:+.1f}"
        t.add_row(r["subset"], str(r["n"]), _pct(r["a"]), _pct(r["b"]), diff(r["difference"]), ci,
                  "McNemar" if r["test"] == "mcnemar_exact" else "bootstrap", f"{r['p_value']:.3g}",
                  f"{r['p_holm']:.3g}", "[bold]*[/]" if r["reject"] else "")
    for label, r in list((c.get("sections") or {}).items()) + ([("overall", c["overall"])] if "overall" in c else []):
        if "difference" not in r or isinstance(r.get("difference"), dict):
            continue
        t.add_row(f"[bold]{label}[/]", "", "", "", diff(r["difference"]),
                  f"{100 * r['low']:+.1f}, {100 * r['high']:+.1f}", "bootstrap", f"{r['p_value']:.3g}", "—", "")
    console.print(t)
    sig = c.get("significant_after_holm") or []
    console.print(f"significant after Holm (alpha {c['alpha']}): {', '.join(sig) if sig else 'none'}", highlight=False)
