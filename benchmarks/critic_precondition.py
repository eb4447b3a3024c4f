"""Critic-RM's precondition (FIDELITY.md seed 003, issue 22): do the critic's critiques carry
preference signal at all? Decides whether Critic-RM is testable with the models available offline.

Design (about 100 held-out pairs, ``--per-source`` from each of hh_rlhf_harmless, humanevalpack,
llmbar_processed, picked by a seeded hash of the prompt):

1. ``rewardlab critique``'s pipeline (``critic.pipeline.run_critique``) writes ``--m`` (2)
   critiques of every response with the critic (SmolLM2-135M-Instruct by default), filters off,
   twice over one generation cache: without and with ``score_followup`` (a critique without a
   parsable ``Score: N`` is continued with the score prefix), so the first pass gives the
   critic's own scores and the second only adds the follow-ups. A rerun continues from the cache.
2. **Judge accuracy**, from the parsed scores (first pass) and after the follow-up: a pair is
   right when the mean score of the chosen response's critiques is above the rejected's, half
   when equal or when either side has no score (counted separately); Wilson interval on the
   strict count, and the half-tie accuracy with a pair bootstrap.
3. **Cross-validated frozen-MiniLM heads** (5 folds by prompt, dealt round-robin in a seeded hash order): a linear BT head on
   (i) the critique alone (the mean MiniLM embedding of (prompt, critique_j) over j), (ii) the
   response alone (MiniLM embedding of (prompt, response)), (iii) both (concatenated). Each
   held-out pair is predicted once; accuracy with a Wilson interval; (i) against chance
   (exact binomial), (iii) against (ii) with McNemar's exact test on the same pairs.

Decision rule (FIDELITY 003): if (i) beats chance and (iii) beats (ii), run the joint model at
>= 300 pairs with filters on; otherwise report Critic-RM as untestable with the offline models.

Power (printed and written before anything runs): with n pairs, an exact one-sided binomial test
at alpha 0.05 reaches 80% power only above the accuracy printed (about 0.62-0.63 at n = 100); a
McNemar comparison of (iii) and (ii) detects only differences of the size printed for the
discordance assumed. Effects smaller than that read as "no signal detected", not as "no signal".

    nice -n 15 python benchmarks/critic_precondition.py --work runs/critic_pre                 # lead
    python benchmarks/critic_precondition.py --work /tmp/critic_pre_tiny --per-source 2 --m 1 --max-new-tokens 24 \
        --gen-cache /tmp/critic_pre_tiny/gen_cache --results /tmp/critic_pre_tiny/critic_precondition

The critiques are cached in ``benchmarks/results/critic_precondition_gen`` (commit it as the run
goes: a rerun on another machine generates only what is missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import fmt_ci, run_main, write_atomic  # noqa: E402
DATA = REPO.parent / "shared" / "data"
SOURCES = ["hh_rlhf_harmless.jsonl", "humanevalpack.jsonl", "llmbar_processed.jsonl"]


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ----------------------------------------------------------------------------- power
def binomial_power_threshold(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true accuracy p at which an exact one-sided binomial test of p = 0.5 rejects
    with probability >= ``power`` (n pairs)."""
    k_crit = int(stats.binom.ppf(1 - alpha, n, 0.5)) + 1  # reject when k >= k_crit
    grid = np.linspace(0.5, 1.0, 501)
    ok = [p for p in grid if stats.binom.sf(k_crit - 1, n, p) >= power]
    return float(ok[0]) if ok else 1.0


def mcnemar_detectable(n: int, discordant: float = 0.3, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest accuracy difference (iii) − (ii) detectable by an exact two-sided McNemar test with
    ``discordant`` × n discordant pairs (the test is a binomial on the discordant pairs)."""
    nd = max(1, int(round(discordant * n)))
    k_crit = int(stats.binom.ppf(1 - alpha / 2, nd, 0.5)) + 1
    for q in np.linspace(0.5, 1.0, 501):  # q: share of discordant pairs that favour (iii)
        if stats.binom.sf(k_crit - 1, nd, q) >= power:
            return float((2 * q - 1) * nd / n)
    return 1.0


# ----------------------------------------------------------------------------- data
def heldout_pairs(work: Path, per_source: int, seed: int) -> Path:
    from rewardlab.data import load_preferences
    from rewardlab.data.table import unit_hash

    path = work / "heldout.jsonl"
    if path.is_file():
        return path
    rows = []
    for name in SOURCES:
        table = load_preferences(str(DATA / name))
        order = sorted(range(len(table)), key=lambda i: unit_hash(f"critic-pre|{seed}", table.prompt_key(i)))
        seen = set()
        for i in order:
            key = table.prompt_key(i)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"prompt": table["prompt"][i], "chosen": table["chosen"][i],
                         "rejected": table["rejected"][i], "source": name.split(".")[0]})
            if len([r for r in rows if r["source"] == name.split(".")[0]]) >= per_source:
                break
    work.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- measures
def judge_accuracy(scores_c: list[list], scores_r: list[list]) -> dict[str, Any]:
    """Pairs right (mean chosen score > mean rejected), tied, unscored (a side without any
    score), wrong; Wilson on the strict count; half-tie accuracy with a bootstrap interval."""
    from rewardlab.eval.stats import wilson_interval

    outcome = []
    for sc, sr in zip(scores_c, scores_r):
        c = [x for x in sc if x is not None]
        r = [x for x in sr if x is not None]
        if not c or not r:
            outcome.append(np.nan)
        else:
            d = np.mean(c) - np.mean(r)
            outcome.append(1.0 if d > 0 else (0.5 if d == 0 else 0.0))
    o = np.array(outcome)
    n = len(o)
    right = int(np.sum(o == 1.0))
    half = np.where(np.isnan(o), 0.5, o)
    rng = np.random.default_rng(0)
    boots = [half[rng.integers(0, n, n)].mean() for _ in range(2000)] if n else [np.nan]
    return {"n": n, "right": right, "tied": int(np.sum(o == 0.5)), "unscored": int(np.isnan(o).sum()),
            "wrong": int(np.sum(o == 0.0)), "strict": wilson_interval(right, n) if n else None,
            "half_tie": {"value": float(half.mean()) if n else None,
                         "low": float(np.quantile(boots, 0.025)), "high": float(np.quantile(boots, 0.975))}}


def cv_head_accuracy(Xc: np.ndarray, Xr: np.ndarray, folds: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per pair, whether a linear BT head trained on the other folds ranks chosen above rejected
    (1, 0.5 on a tie, 0). ``Xc``/``Xr``: [n, d] features of each pair's two sides."""
    from rewardlab.heads import HeadConfig, fit_head

    n = len(Xc)
    X = np.concatenate([Xc, Xr]).astype(np.float32)
    out = np.zeros(n)
    cfg = HeadConfig(kind="linear", members=1, epochs=50, batch_size=256, lr=1e-2, weight_decay=1e-3,
                     val_fraction=0.0)
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        head = fit_head(X, tr, tr + n, objective="bt", config=cfg, seed=seed)
        rc, rr = head.predict(X[te]), head.predict(X[te + n])
        out[te] = np.where(rc > rr, 1.0, np.where(rc == rr, 0.5, 0.0))
    return out


def _columns(path: str | Path) -> dict[str, list]:
    """Every column of a JSONL table as lists (the critique columns included)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {k: [r.get(k) for r in rows] for k in rows[0]} if rows else {}


def score_counts(scores_c: list[list], scores_r: list[list]) -> dict[str, int]:
    """How often each score was given over every critique of both sides (``"none"``: no score
    parsed): shows a critic that scores everything alike, which judge accuracy alone hides."""
    counts: dict[str, int] = {}
    for side in (scores_c, scores_r):
        for row in side:
            for x in row:
                key = "none" if x is None else f"{float(x):g}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def decision(res: dict) -> str:
    """FIDELITY 003's rule: the critique-only head beats chance (one-sided binomial, 5%) and the
    response+critique head beats the response-only head (exact McNemar, 5%, in that direction)."""
    crit_signal = res["cv_heads"]["critique"]["p_vs_chance_one_sided"] < 0.05
    adds = (res["both_vs_response_mcnemar"]["p_value"] < 0.05
            and res["cv_heads"]["both"]["accuracy_half_tie"] > res["cv_heads"]["response"]["accuracy_half_tie"])
    return ("testable: run the joint model at >= 300 pairs with filters on" if crit_signal and adds else
            "untestable offline with this critic: the critiques' signal is not detected (see the power)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "critic_precondition")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "critic_precondition")
    ap.add_argument("--gen-cache", type=Path, default=REPO / "benchmarks" / "results" / "critic_precondition_gen",
                    help="the generation cache (committed: the critiques written so far)")
    ap.add_argument("--per-source", type=int, default=34)
    ap.add_argument("--m", type=int, default=2, help="critiques per response")
    ap.add_argument("--critic", default="smollm2-135m")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if min(args.per_source, args.m, args.max_new_tokens) < 1 or args.folds < 2:
        ap.error("--per-source, --m and --max-new-tokens must be >= 1, --folds >= 2")
    from rewardlab.critic.pipeline import CritiqueConfig, run_critique
    from rewardlab.critic.filters import FilterConfig
    from rewardlab.data.table import unit_hash
    from rewardlab.embed.extract import EmbedSpec, embed_texts
    from rewardlab.eval.stats import mcnemar_exact, wilson_interval
    from rewardlab.generate import make_generator
    from rewardlab.study.golden import prompt_text_key

    n_planned = args.per_source * len(SOURCES)
    power = {"n_pairs": n_planned, "judge_accuracy_80pct_power_above": binomial_power_threshold(n_planned),
             "mcnemar_detectable_difference_at_30pct_discordant": mcnemar_detectable(n_planned, 0.3)}
    log(f"power: {power}")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "power.json").write_text(json.dumps(power, indent=1) + "\n")
    data = heldout_pairs(args.work, args.per_source, args.seed)
    t0 = time.perf_counter()
    # the generation cache is the run's record (every critique written): committed beside the
    # results, a machine replaced between sessions resumes from it (keys hold the weights' content)
    generator = make_generator("transformers", args.critic, cache_dir=str(args.gen_cache))
    # filters off: every pair is kept and measured. Two passes over the same generation cache:
    # without the follow-up (the critic's own scores) and with it (only the follow-ups are new).
    filters = FilterConfig(instance=False, critique_rule="none")
    tables, passes = {}, {}
    for followup in (False, True):
        cfg = CritiqueConfig(n=args.m, max_new_tokens=args.max_new_tokens, score_followup=followup,
                             on_empty="keep", filters=filters, seed=args.seed)
        name = "followup" if followup else "first"
        summary = run_critique(str(data), args.work / f"kept_{name}.jsonl", generator, cfg,
                               report_dir=args.work / f"report_{name}", progress=False, log=log)
        tables[name] = _columns(summary["all_pairs"])  # every column (load_preferences keeps the pair ones)
        totals = summary["totals"]
        passes[name] = {"critiques": totals["critiques"], "parse_failures": totals["parse_failures"],
                        "parse_failure_rate": totals["parse_failure_rate"],
                        "score_counts": score_counts(tables[name]["critique_scores_chosen"],
                                                     tables[name]["critique_scores_rejected"])}
    table = tables["first"]
    gen_seconds = time.perf_counter() - t0
    res: dict[str, Any] = {"command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
                           "power": power, "n_pairs": len(table["prompt"]), "critic": args.critic, "m": args.m,
                           "max_new_tokens": args.max_new_tokens, "folds": args.folds,
                           "by_source": {s: int(sum(x == s for x in table["source"])) for s in sorted(set(table["source"]))},
                           "generation_seconds": gen_seconds, "passes": passes}
    res["judge_first_pass"] = judge_accuracy(table["critique_scores_chosen"], table["critique_scores_rejected"])
    fu = tables["followup"]
    res["judge_after_followup"] = judge_accuracy(fu["critique_scores_chosen"], fu["critique_scores_rejected"])
    # features
    spec = EmbedSpec(model="minilm", pooling="mean", max_length=256)
    n = len(table["prompt"])
    prompts = list(table["prompt"])
    resp = {s: embed_texts(prompts, list(table[s]), spec, log=log).embeddings for s in ("chosen", "rejected")}
    crit = {}
    for s in ("chosen", "rejected"):
        cs = table[f"critiques_{s}"]
        flat_p = [p for p, row in zip(prompts, cs) for _ in row]
        flat_c = [c for row in cs for c in row]
        e = embed_texts(flat_p, flat_c, spec, log=log).embeddings
        owner = np.repeat(np.arange(n), [len(row) for row in cs])
        crit[s] = np.stack([e[owner == i].mean(0) for i in range(n)])
    # folds by prompt: prompts ranked by a seeded hash, dealt round-robin (balanced folds; the
    # pairs of one prompt stay together)
    keys = [prompt_text_key(p) for p in prompts]
    ranked = sorted(set(keys), key=lambda k: unit_hash(f"fold|{args.seed}", k))
    fold_of = {k: r % args.folds for r, k in enumerate(ranked)}
    folds = np.array([fold_of[k] for k in keys])
    acc = {"critique": cv_head_accuracy(crit["chosen"], crit["rejected"], folds, args.seed),
           "response": cv_head_accuracy(resp["chosen"], resp["rejected"], folds, args.seed),
           "both": cv_head_accuracy(np.concatenate([resp["chosen"], crit["chosen"]], 1),
                                    np.concatenate([resp["rejected"], crit["rejected"]], 1), folds, args.seed)}
    res["cv_heads"] = {}
    for name, a in acc.items():
        k = int(np.sum(a == 1.0))
        res["cv_heads"][name] = {"accuracy_half_tie": float(a.mean()), "strict": wilson_interval(k, n),
                                 "p_vs_chance_one_sided": float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue)}
    res["both_vs_response_mcnemar"] = mcnemar_exact(acc["both"] == 1.0, acc["response"] == 1.0)
    res["decision"] = decision(res)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.results.with_suffix(".json"), json.dumps(res, indent=1, default=str) + "\n")
    write_atomic(args.results.with_suffix(".md"), markdown(res))
    log(json.dumps({k: res[k] for k in ("judge_first_pass", "judge_after_followup", "cv_heads", "decision")},
                   default=str)[:3000])


def markdown(r: dict) -> str:
    """The report: power first, then the critic's scores, judge accuracy, the heads, the decision."""
    pw, fp, fu = r["power"], r["judge_first_pass"], r["judge_after_followup"]
    lines = ["# Critic-RM's precondition: do the critic's critiques carry signal? (benchmarks/critic_precondition.py)", "",
             f"Command: `{r['command']}`", "",
             f"Critic {r['critic']}, {r['m']} critiques per response (at most {r['max_new_tokens']} new tokens), "
             f"filters off; {r['n_pairs']} held-out pairs ("
             + ", ".join(f"{k} {v}" for k, v in r["by_source"].items()) + ").", "",
             f"Power, stated before the run: with {pw['n_pairs']} pairs an exact one-sided binomial test at 5% "
             f"detects an accuracy above chance with 80% power only from {pw['judge_accuracy_80pct_power_above']:.3f}; "
             f"McNemar (30% discordant pairs) detects differences from "
             f"{pw['mcnemar_detectable_difference_at_30pct_discordant']:.3f}. Smaller effects read as *not detected*.", "",
             "| pass | critiques | no score parsed | scores given (count) |", "|---|---:|---:|---|"]
    for name, label in (("first", "the critic's own score"), ("followup", "after the score follow-up")):
        p = r["passes"][name]
        lines.append(f"| {label} | {p['critiques']} | {p['parse_failures']} ({p['parse_failure_rate']:.1%}) | "
                     + ", ".join(f"{k}: {v}" for k, v in list(p["score_counts"].items())[:8]) + " |")
    lines += ["", "| measure | right | tied | unscored | wrong | strict accuracy [Wilson 95%] | tie = 0.5 [bootstrap 95%] |",
              "|---|---:|---:|---:|---:|---|---|"]
    for label, j in (("judge, the critic's own scores", fp), ("judge, after the follow-up", fu)):
        h = j["half_tie"]
        lines.append(f"| {label} | {j['right']} | {j['tied']} | {j['unscored']} | {j['wrong']} | {fmt_ci(j['strict'])} | "
                     f"{h['value']:.3f} [{h['low']:.3f}, {h['high']:.3f}] |")
    lines += ["", f"Frozen-MiniLM linear BT heads, {r['folds']}-fold cross-validated by prompt (each pair predicted once):", "",
              "| features | accuracy (tie = 0.5) | strict [Wilson 95%] | p vs chance (one-sided) |", "|---|---:|---|---:|"]
    for name, label in (("critique", "the critique alone"), ("response", "the response alone"),
                        ("both", "response + critique")):
        h = r["cv_heads"][name]
        lines.append(f"| {label} | {h['accuracy_half_tie']:.3f} | {fmt_ci(h['strict'])} | {h['p_vs_chance_one_sided']:.3g} |")
    m = r["both_vs_response_mcnemar"]
    lines += ["", f"Response + critique vs the response alone (exact McNemar on the same pairs): right only with the "
                  f"critique {m['b']}, only without {m['c']}, p {m['p_value']:.3g}.", "",
              f"**Decision by the rule stated before the run: {r['decision']}.**", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
