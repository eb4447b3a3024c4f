"""Critic-RM's controls (FIDELITY.md seed 003, issue 22): can the joint model use a critique that
carries information, and what does it do with one that carries none?

The precondition (``benchmarks/critic_precondition.py``) asks whether SmolLM2's own critiques carry
preference signal. Whatever it finds, a reader needs to know that the joint model *can* turn an
informative critique into accuracy (a positive control), so that "no gain" with SmolLM2's critiques
is read as "the critiques carry nothing", not as "the method or the code cannot use them".

Design, fixed before the run:
- Data: the bundled program-checked sample (805 pairs, 7 tasks), prompts split by a salted hash:
  ``--test-fraction`` (0.4) held out, the rest trained on.
- Critiques are **written by a program** from the checker's verdict
  (``rewardlab.data.sample_check.check_response``), labelled as such in the text and in every
  table: ``"[program-written critique] A program checked this answer and found it correct.
  Score: 8"`` (``wrong`` / ``Score: 3`` otherwise). With reliability q each critique states the
  true verdict with probability q and the opposite otherwise, independently per response (seeded
  by the seed, the side and the pair; test critiques drawn apart from training ones).
- Arms, all SmolLM2-135M-Instruct, the same pairs, steps, learning rate, batch, max length; a seed
  gives every arm the same initial head and data order (paired):
  ``bt`` (a plain reward model on (prompt, response)); ``critic_q08`` (Critic-RM, the joint loss,
  trained on q = 0.8 critiques and scored with one q = 0.8 critique per test response, through
  ``rewardlab.critic.scoring.score_given_critiques``); ``critic_q05`` (the same with q = 0.5:
  critiques that carry no information, the situation of a critic whose verdicts are chance).
  Reference without training: **the critique alone** (the pair ranked by its two critiques'
  scores, a tie = 0.5): 0.64 + 0.32 / 2 = 0.80 expected at q = 0.8 (both right 0.64, one flipped
  0.32 ties, both flipped 0.04), 0.5 at q = 0.5.
- Measures: held-out accuracy per arm and seed (a tie is wrong); against BT, paired by seed:
  exact McNemar per seed and a paired bootstrap of the seed-averaged correctness, Holm over the
  arms (``fidelity_common.paired_arms``); ``critic_q08`` against the critique alone (paired
  bootstrap; does the model add what the response shows to what the critique says?).
- Rule, stated before the run: the **positive control passes** if ``critic_q08 − bt`` has its
  pooled interval above 0 after Holm; the joint model **adds to the critique** if ``critic_q08 −
  critique alone`` has its interval above 0. The **negative control**: if ``critic_q05 − bt`` has
  its interval below 0, uninformative critiques cost accuracy (a critic at chance is worse than no
  critic); if it contains 0, they cost nothing detectable.

Power (written before the run): 336 test pairs (469 training pairs). A per-seed paired difference has SD about
sqrt(q_d / n) with q_d the discordant share: 0.022-0.031 for q_d 0.15-0.30, so a seed alone
detects 6-9 points at 80% power (2.8 SD) and the pooled comparison over 3 seeds 3.5-9 points.
An ideal combiner of a q = 0.8 critique with a response model at 0.80 would reach about 0.90:
+10 points, inside the design's reach. A cost of uninformative critiques smaller than 3.5-9
points reads as "not detected".

Cost, measured with ``--tiny`` (2 steps of 8 pairs, one thread, niced, beside another training
run): BT 1.07 pairs/s (shared-prompt packing, about 66 tokens a pair), Critic-RM 0.25 pairs/s
(the joint conversation in the chat template with the critique request: about 140 tokens an item,
no packing). 2 epochs over 469 pairs: about 15 min a BT cell and 30-60 min a Critic-RM cell, so
2.5-3.5 h for the 9 cells on this machine. Measured in the full run (2026-12-03, two threads,
alone): BT about 16 min a cell, Critic-RM 0.22 pairs/s, about 70 min a cell: about 8 h in all;
on the AVX-512 machine that finished it (same evening, niced, alone): BT about 6 min, Critic-RM
0.72 pairs/s, about 22 min a cell (2.5 h for all 9 cells). Resumable cell by cell (``fidelity_common.train_cell``),
scores and training seconds recorded in ``RESULTS_DIR/critic_control_scores.json``, committed as
cells finish; a recorded cell is not trained again, so a machine replaced between sessions loses at
most the cell in progress.

    nice -n 10 python benchmarks/critic_control.py --work runs/critic_control
    python benchmarks/critic_control.py --tiny --work /tmp/critic_control_tiny   # end to end, minutes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import (  # noqa: E402
    REPO,
    RESULTS,
    correct,
    fmt_ci,
    paired_arms,
    run_main,
    train_cell,
    write_atomic,
    write_results,
)

from rewardlab.errors import DataError  # noqa: E402

SALT = "critic-control"
TAG = "[program-written critique]"
ARMS = {"bt": None, "critic_q08": 0.8, "critic_q05": 0.5}  # arm: critique reliability (None: no critiques)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def program_critique(correct_answer: bool) -> str:
    """The critique a program writes from a verdict (labelled as program-written in its text)."""
    if correct_answer:
        return f"{TAG} A program checked this answer and found it correct. Score: 8"
    return f"{TAG} A program checked this answer and found it wrong. Score: 3"


def draw(key: str, q: float) -> bool:
    """True (state the true verdict) with probability q, from a stable hash of ``key``."""
    from rewardlab.data.table import unit_hash

    return unit_hash(SALT, key) < q


def critiques_for(rows: list[dict], q: float, seed: int, part: str) -> list[tuple[str, str]]:
    """(critique of chosen, critique of rejected) per row, each true with probability q."""
    from rewardlab.data.sample_check import check_response

    out = []
    for r in rows:
        if not r.get("meta"):  # without it every verdict would read "wrong"
            raise ValueError(f"row {r.get('id')!r}: no 'meta'; the checker needs it (load with keep_columns=['meta'])")
        pair = []
        for side in ("chosen", "rejected"):
            verdict = check_response(r, side)
            if not draw(f"{part}|{seed}|{q}|{r['id']}|{side}", q):
                verdict = not verdict
            pair.append(program_critique(verdict))
        out.append((pair[0], pair[1]))
    return out


def split_rows(test_fraction: float, tiny: bool) -> tuple[list[dict], list[dict]]:
    from rewardlab.data import load_preferences, sample_path
    from rewardlab.data.table import unit_hash

    rows = load_preferences(str(sample_path()), keep_columns=["meta"]).records()  # meta: what the checker reads
    train = [r for r in rows if unit_hash(SALT, r["prompt"]) >= test_fraction]
    test = [r for r in rows if unit_hash(SALT, r["prompt"]) < test_fraction]
    if tiny:
        train, test = train[:16], test[:12]
    return train, test


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def cell_config(args, arm: str, seed: int, data: Path) -> dict:
    cfg = {"model": {"name_or_path": args.model, "max_length": args.max_length},
           "data": {"train": str(data), "val_fraction": 0.0},
           "objective": {"name": "bt"},
           "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": seed,
                     "warmup_ratio": 0.05, "scheduler": "linear", "log_every": 5, "save_every": 20,
                     "eval_every": 10 ** 6, "progress": False, "reward_stats_max_pairs": 32}}
    if args.max_steps:
        cfg["train"]["max_steps"] = args.max_steps
    if ARMS[arm] is not None:
        cfg["critic"] = {"lambda_schedule": "linear", "lambda_start": 0.8, "lambda_end": 0.2, "critiques": 1,
                         "max_new_tokens": 32, "seed": 0}
    return cfg


def score_cell(cache: dict, cache_path: Path, arm: str, seed: int, cell: Path, test: list[dict],
               crit: list[tuple[str, str]] | None) -> np.ndarray:
    """r(chosen) − r(rejected) on the test pairs, cached."""
    key = f"{arm}_s{seed}"
    if key not in cache:
        log(f"scoring {key} on {len(test)} test pairs")
        prompts = [r["prompt"] for r in test]
        if crit is None:
            from rewardlab.data import PreferenceTable
            from rewardlab.models.reward_model import RewardModel

            table = PreferenceTable.from_records(test, origin=[f"test:{i}" for i in range(len(test))], format="explicit")
            s = RewardModel.from_pretrained(cell / "model").score_pairs(table, batch_size=16)
            d = np.asarray(s["reward_chosen"], float) - np.asarray(s["reward_rejected"], float)
        else:
            from rewardlab.critic.load import load_model
            from rewardlab.critic.scoring import score_given_critiques

            model = load_model(cell / "model")
            out = score_given_critiques(model, prompts * 2, [r["chosen"] for r in test] + [r["rejected"] for r in test],
                                        [[c] for c, _ in crit] + [[c] for _, c in crit], batch_size=16)
            n = len(test)
            d = out.rewards[:n] - out.rewards[n:]
        cache[key] = d.tolist()
        write_atomic(cache_path, json.dumps(cache))
    return np.asarray(cache[key])


def critique_alone(crit: list[tuple[str, str]]) -> np.ndarray:
    """Per pair: 1 when the chosen's critique scores higher, 0.5 on a tie, 0 when lower."""
    from rewardlab.critic.scores import parse_score

    out = []
    for c, r in crit:
        a, b = parse_score(c), parse_score(r)
        out.append(1.0 if a > b else 0.5 if a == b else 0.0)
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "critic_control")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test-fraction", type=float, default=0.4)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="16 training and 12 test pairs, 2 steps, 1 seed: an end-to-end check")
    args = ap.parse_args()
    if args.tiny:
        args.seeds, args.max_steps, args.results_dir = 1, 2, args.work / "results"
    from rewardlab.eval import stats

    args.work.mkdir(parents=True, exist_ok=True)
    train_rows, test = split_rows(args.test_fraction, args.tiny)
    log(f"{len(train_rows)} training pairs, {len(test)} test pairs (prompts split by hash, salt {SALT!r})")
    seeds = list(range(args.seeds))
    cache_path = args.results_dir / "critic_control_scores.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    test_key = hashlib.sha256(json.dumps(test, sort_keys=True).encode()).hexdigest()
    if cache.setdefault("_test_sha256", test_key) != test_key:
        raise DataError("recorded on other test pairs than this run's; move the file away to run again",
                        file=str(cache_path), field="_test_sha256")
    train_seconds = cache.setdefault("_train_seconds", {})
    acc: dict[str, dict[int, np.ndarray]] = {a: {} for a in ARMS}
    alone: dict[float, dict[int, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for seed in seeds:
        for arm, q in ARMS.items():
            rows = train_rows
            if q is not None:
                crit = critiques_for(train_rows, q, seed, "train")
                rows = [{**r, "critique_chosen": c, "critique_rejected": x} for r, (c, x) in zip(train_rows, crit)]
            data = write_jsonl(args.work / "data" / f"{arm}_s{seed}.jsonl", rows)
            cell = args.work / f"{arm}_s{seed}"
            if f"{arm}_s{seed}" not in cache:  # recorded cells are not trained again
                t0 = time.perf_counter()
                cell = train_cell(args.work, f"{arm}_s{seed}", cell_config(args, arm, seed, data))
                summary = json.loads((cell / "summary.json").read_text())
                train_seconds[f"{arm}_s{seed}"] = summary.get("train_seconds", time.perf_counter() - t0)
            seconds[f"{arm}_s{seed}"] = train_seconds.get(f"{arm}_s{seed}")
            test_crit = critiques_for(test, q, seed, "test") if q is not None else None
            if q is not None:
                alone.setdefault(q, {})[seed] = critique_alone(test_crit)
            acc[arm][seed] = correct(score_cell(cache, cache_path, arm, seed, cell, test, test_crit))
            log(f"{arm} seed {seed}: accuracy {acc[arm][seed].mean():.3f}")
    result = {"command": " ".join(sys.argv), "n_train": len(train_rows), "n_test": len(test), "seeds": seeds,
              "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_length": args.max_length, "critiques": "program-written from the checker's verdict",
              "train_seconds": seconds}
    result["vs_bt"] = paired_arms(acc, "bt", seeds)
    result["accuracy"] = {a: {str(s): float(v[s].mean()) for s in seeds} for a, v in acc.items()}
    result["wilson"] = {a: {str(s): stats.wilson_interval(int(v[s].sum()), len(v[s])) for s in seeds}
                        for a, v in acc.items()}
    result["critique_alone"] = {}
    for q, by_seed in alone.items():
        arm = f"critic_q{int(q * 10):02d}"
        mean_alone = np.mean([by_seed[s] for s in seeds], axis=0)
        mean_arm = np.mean([acc[arm][s] for s in seeds], axis=0)
        d = stats.paired_bootstrap_difference(mean_arm, mean_alone, seed=0)
        result["critique_alone"][arm] = {
            "accuracy_tie_half": {str(s): float(by_seed[s].mean()) for s in seeds},
            "arm_minus_critique_alone": {k: d[k] for k in ("estimate", "low", "high", "p_value")}}
    result["verdicts"] = control_verdicts(*_verdict_inputs(result))
    write_results("critic_control", result, markdown(result), args.results_dir)


def _verdict_inputs(r: dict) -> tuple[dict, dict, dict]:
    pos = r["vs_bt"]["arms"].get("critic_q08", {}).get("pooled_difference", {})
    neg = r["vs_bt"]["arms"].get("critic_q05", {}).get("pooled_difference", {})
    add = r["critique_alone"].get("critic_q08", {}).get("arm_minus_critique_alone", {})
    return pos, neg, add


def control_verdicts(pos: dict, neg: dict, add: dict) -> dict:
    """The rules of the docstring, fixed before the run. ``pos``/``neg``: pooled Critic-RM(q = 0.8 /
    0.5) − BT (interval, Holm ``reject``); ``add``: Critic-RM(q = 0.8) − the critique alone. {} when
    an arm is missing (a partial run)."""
    if not (pos and neg and add):
        return {}
    return {"positive_control": "passes" if pos["low"] > 0 and pos.get("reject") else "does not pass",
            "adds_to_critique": add["low"] > 0,
            "negative_control": ("cost accuracy" if neg["high"] < 0 else "gain accuracy (unexpected)"
                                 if neg["low"] > 0 else "cost nothing detectable")}


def markdown(r: dict) -> str:
    v = r["vs_bt"]
    lines = ["# Critic-RM controls: program-written critiques (benchmarks/critic_control.py)", "",
             f"Command: `{r['command']}`", "",
             f"{r['model']}, the bundled program-checked sample: {r['n_train']} training pairs, {r['n_test']} test pairs "
             f"on held-out prompts; {r['epochs']} epochs, batch {r['batch_size']}, lr {r['lr']}, max length "
             f"{r['max_length']}; seeds {r['seeds']} (paired). **Critiques are written by a program from the "
             "checker's verdict** (true with probability q, flipped otherwise), not by a language model.", "",
             "| arm | " + " | ".join(f"seed {s}" for s in r["seeds"]) + " | mean over seeds [t interval] |",
             "|---|" + "---:|" * (len(r["seeds"]) + 1)]
    names = {"bt": "BT (no critiques)", "critic_q08": "Critic-RM, program critiques q = 0.8",
             "critic_q05": "Critic-RM, program critiques q = 0.5 (no information)"}
    for arm, by_seed in r["accuracy"].items():
        mean = v["baseline_accuracy"] if arm == "bt" else v["arms"][arm]["accuracy"]
        lines.append(f"| {names[arm]} | " + " | ".join(f"{by_seed[str(s)]:.3f}" for s in r["seeds"]) + f" | {fmt_ci(mean)} |")
    for arm, a in r["critique_alone"].items():
        vals = a["accuracy_tie_half"]
        lines.append(f"| the critique alone, q = {arm[-2]}.{arm[-1]} (tie = 0.5; no model) | "
                     + " | ".join(f"{vals[str(s)]:.3f}" for s in r["seeds"]) + f" | {np.mean(list(vals.values())):.3f} |")
    lines += ["", "Against BT, paired (pooled: seed-averaged correctness per pair, paired bootstrap; Holm over the arms):", "",
              "| arm − BT | pooled difference [95%] | Holm p | per seed (McNemar p, Holm) |", "|---|---|---|---|"]
    for arm, a in v["arms"].items():
        pd = a["pooled_difference"]
        per = "; ".join(f"s{x['seed']} {x['difference']:+.3f} (p {x['mcnemar_p']:.2g}, {x.get('mcnemar_p_holm', float('nan')):.2g})"
                        for x in a["per_seed"])
        lines.append(f"| {names[arm]} | {pd['estimate']:+.3f} [{pd['low']:+.3f}, {pd['high']:+.3f}] | "
                     f"{pd.get('p_holm', float('nan')):.2g} | {per} |")
    lines += ["", "| arm − the critique alone | difference [95% paired bootstrap] |", "|---|---|"]
    for arm, a in r["critique_alone"].items():
        d = a["arm_minus_critique_alone"]
        lines.append(f"| {names[arm]} | {d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] |")
    pos, neg, add = _verdict_inputs(r)
    verdicts = control_verdicts(pos, neg, add)
    if verdicts:
        lines += ["", "Verdicts by the rules stated before the run:",
                  f"- positive control: **{verdicts['positive_control']}** "
                  f"(Critic-RM with q = 0.8 critiques − BT {pos['estimate']:+.3f} [{pos['low']:+.3f}, {pos['high']:+.3f}]);",
                  f"- the joint model {'**adds**' if verdicts['adds_to_critique'] else 'does **not** detectably add'} to "
                  f"what the critique alone says ({add['estimate']:+.3f} [{add['low']:+.3f}, {add['high']:+.3f}]);",
                  f"- negative control: uninformative critiques **{verdicts['negative_control']}** "
                  f"({neg['estimate']:+.3f} [{neg['low']:+.3f}, {neg['high']:+.3f}])."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
