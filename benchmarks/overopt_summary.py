"""Summarise the best-of-N over-optimisation curves of a study run (docs/ensembles.md).

Reads ``OUT/results.jsonl`` of ``rewardlab study configs/study_overopt.yaml`` and writes
``benchmarks/results/overopt.md``, ``overopt.json`` and ``overopt.png`` (the study's
``overoptimisation.png``): per setting (head, β, quantity), the golden and proxy gain of the
best-of-N pick per N (mean ± std over seeds), the N where the mean golden gain peaks, and the drop
from the peak to the largest N with a t interval over seeds (paired: the same cell at two N).

    rewardlab study configs/study_overopt.yaml --workers 1
    python benchmarks/overopt_summary.py runs/study_overopt
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from rewardlab.eval.overopt import peak_index
from rewardlab.study.plots import overopt_ns
from rewardlab.study.runners import read_results

REPO = Path(__file__).resolve().parents[1]
SETTING = ("head", "beta", "quantity")


def summarise(rows: list[dict]) -> dict:
    ns = overopt_ns(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in SETTING)].append(r)
    out = {"ns": ns, "kl": [float(np.log(n) - (n - 1) / n) for n in ns], "settings": []}
    for key, rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        gold = np.array([[r[f"overopt_golden_{n}"] for n in ns] for r in rs])  # (seeds, N)
        prox = np.array([[r[f"overopt_proxy_{n}"] for n in ns] for r in rs])
        mean = gold.mean(0)
        k, sat = peak_index(mean)
        drop = gold[:, -1] - gold[:, k]  # largest N minus the peak, per seed
        half = (stats.t.ppf(0.975, len(drop) - 1) * drop.std(ddof=1) / np.sqrt(len(drop))
                if len(drop) > 1 else float("nan"))
        out["settings"].append({
            **dict(zip(SETTING, key)), "seeds": len(rs),
            "pairwise_accuracy": float(np.mean([r["pairwise_accuracy"] for r in rs])),
            "golden_gain_mean": mean.tolist(), "golden_gain_std": gold.std(0, ddof=1).tolist() if len(rs) > 1 else None,
            "proxy_gain_mean": prox.mean(0).tolist(),
            "peak_n": ns[k], "peak_gain": float(mean[k]), "saturation_n": ns[sat],
            "per_seed_peak_n": [ns[peak_index(row)[0]] for row in gold],
            "drop_to_largest_n": {"estimate": float(drop.mean()), "low": float(drop.mean() - half),
                                  "high": float(drop.mean() + half), "method": "t interval over seeds"},
        })
    return out


def write_md(res: dict, path: Path, source: str) -> None:
    ns = res["ns"]
    lines = ["# Best-of-N over-optimisation in the golden simulation", "",
             f"Study `{source}` (config `configs/study_overopt.yaml`): proxy heads (BT) trained on simulated "
             "annotations of a golden reward (an MLP ensemble of 5 on MiniLM embeddings, trained on 1359 PandaLM "
             "and LLMBar pairs) scoring the AlpacaEval responses of the first 300 prompts (2092 responses, mostly 7 per "
             "prompt); 20% of prompts (58) held out. Best-of-N draws N responses with replacement from a held-out prompt's pool and keeps the "
             "proxy's favourite; gains over the pool mean, golden in golden std units, proxy in its own std units "
             "(exact expectations, eval/overopt.py). KL = log N - (N-1)/N.", "",
             f"Commands: `rewardlab study configs/study_overopt.yaml --set output_dir=OUT --workers 1`, then "
             f"`python benchmarks/overopt_summary.py OUT` (here OUT = {source}). On the shared 2-core machine under a "
             "load of about 15: embedding 1331 + 1077 texts took 860 s + 587 s, the 24 cells 4 min.", "",
             "| head | beta | pairs | acc | " + " | ".join(f"N={n}" for n in ns) + " | peak N | peak -> N=" +
             f"{ns[-1]} (95% t, seeds) | 99% of peak at N |",
             "|---|---|---|---|" + "---|" * len(ns) + "---|---|---|"]
    for s in res["settings"]:
        beta = "noiseless" if s["beta"] < 0 else s["beta"]
        cells = [f"{g:.3f} / {p:.2f}" for g, p in zip(s["golden_gain_mean"], s["proxy_gain_mean"])]
        d = s["drop_to_largest_n"]
        lines.append(f"| {s['head']} | {beta} | {s['quantity']} | {s['pairwise_accuracy']:.3f} | " + " | ".join(cells)
                     + f" | {s['peak_n']} | {d['estimate']:+.4f} ({d['low']:+.4f} to {d['high']:+.4f}) | "
                     f"{s['saturation_n']} |")
    lines += ["", "Entries: golden gain / proxy gain (mean over seeds). `peak N`: the N of the largest mean golden "
              "gain (the start of a plateau); `peak -> N=...`: the golden gain at the largest N minus that at the peak, per "
              "seed, with a t interval over seeds (a negative interval is over-optimisation); `99% of peak at N`: the "
              "first N reaching 99% of the peak gain.", ""]
    falls = [s for s in res["settings"] if s["drop_to_largest_n"]["high"] < 0]
    lines.append(f"Settings whose golden gain falls after its peak (upper 95% bound of the drop < 0): {len(falls)} of "
                 f"{len(res['settings'])}.")
    if not falls:
        lines += ["", "No over-optimisation in this setting: with pools of at most 7 responses per prompt, best-of-N "
                  "for large N always picks the proxy's favourite of the pool, and on average that favourite is no "
                  "worse by the golden reward than the proxy's runner-ups, so the golden gain rises and plateaus "
                  "(Gao et al.'s fall needs a policy that can move further than the pool: larger pools, or RL). "
                  "The proxy's gain plateaus above the golden's; the gap (proxy std units vs golden std units) is the "
                  "proxy's own over-estimate of its picks."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", type=Path, help="the study's output directory")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    rows = read_results(args.study)
    res = summarise(rows)
    res["source"] = str(args.study)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "overopt.json").write_text(json.dumps(res, indent=2) + "\n")
    write_md(res, args.results / "overopt.md", args.study.name)
    plot = args.study / "plots" / "overoptimisation.png"
    if not plot.is_file():
        plot = args.study / "overoptimisation.png"
    if plot.is_file():
        shutil.copyfile(plot, args.results / "overopt.png")
    print((args.results / "overopt.md").read_text())


if __name__ == "__main__":
    main()
