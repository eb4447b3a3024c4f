"""Scoring cost of best-of-N items: each distinct response once (what ``eval`` does) against
expanding the items into pairs and scoring the pairs (what a pair-only evaluator must do).

On GSM8K's best-of-4 items (the questions that mix correct and wrong solutions), the expansion is
every (correct, wrong) pair of an item, each pair scored as two (prompt, response) inputs. Both
sides score with the same model, batch size and thread count, alternating A B A B for
``--rounds`` rounds; the table gives the medians and the per-round ratio.

    python benchmarks/item_scoring.py --model runs/demo/model --items 120 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rewardlab.data.items import read_items, unique_inputs
from rewardlab.eval import assess
from rewardlab.models.reward_model import load_reward_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "gsm8k_solutions.jsonl"))
    ap.add_argument("--items", type=int, default=120, help="mixed items used (the first N)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "item_scoring.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    items, _ = read_items(args.data)
    items = [it for it, keep in zip(items, assess.item_mask("pointwise", items)) if keep][: args.items]
    model = load_reward_model(args.model)
    inputs, index = unique_inputs(items)
    pairs = [(it.prompt, it.responses[c], it.responses[w]) for it in items
             for c in set(it.sample_idx) if it.correct[c] for w in set(it.sample_idx) if not it.correct[w]]

    def unique() -> tuple[float, int, np.ndarray]:
        t0 = time.perf_counter()
        r = model.score([p for p, _ in inputs], [t for _, t in inputs], batch_size=args.batch_size)
        return time.perf_counter() - t0, len(inputs), r

    def expanded() -> tuple[float, int, np.ndarray]:
        t0 = time.perf_counter()
        prompts = [p for p, _, _ in pairs] * 2
        responses = [c for _, c, _ in pairs] + [w for _, _, w in pairs]
        r = model.score(prompts, responses, batch_size=args.batch_size)
        return time.perf_counter() - t0, 2 * len(pairs), r

    rows = {"unique": [], "expanded": []}
    for _ in range(args.rounds):
        for name, fn in (("unique", unique), ("expanded", expanded)):
            seconds, n, rewards = fn()
            rows[name].append({"seconds": seconds, "inputs": n})
    # the same model scores a response the same either way: expansion only repeats work
    by_text = {(str(p), t): r for (p, t), r in zip(inputs, unique()[2])}
    _, _, exp_r = expanded()
    check = max(abs(by_text[(str(p), c)] - exp_r[k]) for k, (p, c, _) in enumerate(pairs))
    ratio = statistics.median(e["seconds"] / u["seconds"] for u, e in zip(rows["unique"], rows["expanded"]))
    out = {"data": args.data, "items": len(items), "distinct_inputs": len(inputs), "pairs": len(pairs),
           "pair_inputs": 2 * len(pairs), "rounds": args.rounds, "batch_size": args.batch_size,
           "threads": args.threads, "max_reward_difference": float(check),
           "unique_seconds_median": statistics.median(r["seconds"] for r in rows["unique"]),
           "expanded_seconds_median": statistics.median(r["seconds"] for r in rows["expanded"]),
           "time_ratio_expanded_over_unique": ratio, "runs": rows}
    out["unique_inputs_per_second"] = len(inputs) / out["unique_seconds_median"]
    out["expanded_inputs_per_second"] = 2 * len(pairs) / out["expanded_seconds_median"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("| side | inputs scored | seconds (median) | inputs/s |\n|---|---|---|---|")
    print(f"| each distinct response once | {len(inputs)} | {out['unique_seconds_median']:.1f} | "
          f"{out['unique_inputs_per_second']:.1f} |")
    print(f"| expanded to {len(pairs)} pairs | {2 * len(pairs)} | {out['expanded_seconds_median']:.1f} | "
          f"{out['expanded_inputs_per_second']:.1f} |")
    print(f"expanded / unique time (median of {args.rounds} per-round ratios): {ratio:.2f}x; "
          f"largest reward difference for the same input: {check:.2e}")


if __name__ == "__main__":
    main()
