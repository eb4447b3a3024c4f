"""Two trained models on the ``shared`` suite (with its GSM8K best-of-4 section): every score with its
95% interval, the length rules beside every subset, and the paired comparison of the two models
(issue 20's measurement). Writes ``benchmarks/results/eval_shared.{md,json}`` (the full
``results.json`` of the evaluation stays in ``--out``).

    rewardlab demo --out runs/demo
    rewardlab train configs/minilm_hh.yaml
    python benchmarks/eval_truth.py --a runs/demo/model --b runs/minilm_hh/model --out runs/eval_truth
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardlab.eval.runner import evaluate, write_outputs

REPO = Path(__file__).resolve().parents[1]


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def ci(block) -> str:
    return "—" if not block or block.get("low") is None else f"[{pct(block['low'])}, {pct(block['high'])}]"


def model_table(name: str, s: dict) -> list[str]:
    lines = [f"### {name}", "", "| | n | score | 95% CI | prefer-longer | prefer-shorter | chance | length rule |",
             "|---|---|---|---|---|---|---|---|",
             f"| **Overall** (v1 sections) | | **{pct(s['overall'])}** | {ci(s.get('overall_interval'))} | | | | |"]
    for section, v in s["sections"].items():
        lines.append(f"| **{section}** | {v['n']} | {pct(v['score'])} | {ci(v.get('interval'))} | | | | |")
        for sub, r in s["subsets"].items():
            if r["section"] != section:
                continue
            rules = r.get("rules") or {}
            verdict = (r.get("length_rule") or {}).get("verdict") or ""
            lines.append(f"| {sub} | {r['n']} | {pct(r['accuracy'])} | {ci(r.get('interval'))} | "
                         + " | ".join(f"{pct(rules[k]['score'])} {ci(rules[k].get('interval'))}"
                                      for k in ("prefer_longer", "prefer_shorter", "chance")) + f" | {verdict} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "eval_truth")
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--max-pairs-per-subset", type=int, default=None,
                    help="a deterministic subsample per subset (the same pairs for both models)")
    args = ap.parse_args()
    ev = evaluate([args.a, args.b], suite="shared", data_root=args.data_root, batch_size=args.batch_size,
                  n_boot=args.n_boot, max_pairs_per_subset=args.max_pairs_per_subset, log=print)
    write_outputs(ev, args.out)
    res = ev.results
    lines = ["# Two models on the shared suite: intervals, length rules, paired comparison", "",
             f"`python benchmarks/eval_truth.py --a {args.a} --b {args.b}"
             + (f" --max-pairs-per-subset {args.max_pairs_per_subset}" if args.max_pairs_per_subset else "")
             + f"`; {res['n_units']} units "
             f"({res['n_pairs']} pairs + GSM8K best-of-4 items), {res['statistics']['n_boot']} bootstrap resamples, "
             f"{res['run']['seconds']} s. Scores in %; a tie counts as wrong; lengths in characters. "
             "Length rule: `beats` = a length rule scores at least as much as the model; `matches` = the 95% "
             "interval of the model's lead over it reaches 0.", ""]
    for name, m in res["models"].items():
        lines += model_table(name, m["suite"])
        gsm = m["suite"]["subsets"].get("gsm8k-best-of-4", {}).get("details") or {}
        if gsm:
            lines += [f"GSM8K best-of-4 ({name}): selection {pct(gsm['selected'])} on the {gsm['n_mixed']} of "
                      f"{gsm['n_items']} questions that mix correct and wrong solutions (random pick {pct(gsm['random'])}); "
                      f"over all questions {pct(gsm['selected_all'])} (random {pct(gsm['random_all'])}, oracle "
                      f"{pct(gsm['oracle_all'])}).", ""]
        cost = m.get("item_scoring") or {}
        if cost:
            lines += [f"Item scoring ({name}): {cost['distinct_responses']} distinct responses for {cost['items']} items "
                      f"in {cost['seconds']} s ({cost['responses_per_second']:.1f}/s).", ""]
        lb = (m.get("diagnostics") or {}).get("length_bias") or {}
        if lb:
            unit = str(lb.get("unit", "tokens")).split(" ")[0]  # characters since issue 23 (tokens before)
            lines += [f"Length bias ({name}, {unit}): Spearman(reward, length) {lb.get('spearman_reward_length')}; "
                      f"accuracy when the chosen is shorter / longer: {pct(lb.get('acc_chosen_shorter'))} / "
                      f"{pct(lb.get('acc_chosen_longer'))}.", ""]
    for c in res.get("comparisons", []):
        a, b = c["models"]
        lines += [f"### {a} − {b} (paired; Holm over {len(c['subsets'])} subsets)", "",
                  "| subset | n | A | B | A − B | 95% CI | test | p | p (Holm) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in c["subsets"]:
            lines.append(f"| {r['subset']} | {r['n']} | {pct(r['a'])} | {pct(r['b'])} | {100 * r['difference']:+.1f} | "
                         f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}] | {r['test']} | {r['p_value']:.3g} | "
                         f"{r['p_holm']:.3g}{' *' if r['reject'] else ''} |")
        for label, r in list(c.get("sections", {}).items()) + [("overall", c["overall"])]:
            lines.append(f"| **{label}** | | | | {100 * r['difference']:+.1f} | [{100 * r['low']:+.1f}, "
                         f"{100 * r['high']:+.1f}] | paired stratified bootstrap | {r['p_value']:.3g} | — |")
        lines += ["", f"Significant after Holm: {', '.join(c['significant_after_holm']) or 'none'}.", ""]
    out_md = REPO / "benchmarks" / "results" / "eval_shared.md"
    out_md.write_text("\n".join(lines) + "\n")
    slim = {"statistics": res["statistics"], "n_units": res["n_units"], "comparisons": res.get("comparisons"),
            "models": {n: {"suite": m["suite"], "item_scoring": m.get("item_scoring"),
                           "length_bias": (m.get("diagnostics") or {}).get("length_bias")}
                       for n, m in res["models"].items()}}
    (REPO / "benchmarks" / "results" / "eval_shared.json").write_text(json.dumps(slim, indent=1, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
