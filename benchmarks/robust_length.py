"""Length-robust training (issue 23, docs/robust.md): BT vs ODIN vs length-balanced data vs both.

Design, fixed before the run:
- Backbone MiniLM (``minilm``), dropout off, max_length 256, BT objective, lr 1e-4, batch 16,
  warmup 5 %, linear decay, ``--epochs`` (1) over ``--max-train-pairs`` (2,000) training pairs.
- Data: HH-RLHF harmless + AlpacaEval (GPT-4-judged) + PandaLM (``../shared/data``), each split by
  the hash of its prompt (salt ``robust-length``): ``--test-fraction`` (40 %) of the prompts held
  out (2,360 pairs: 726 HH, 1,295 AlpacaEval, 339 PandaLM; chosen longer in 1,659, shorter in 690,
  11 ties), the rest the training pool (3,566 pairs), from which ``--max-train-pairs`` are drawn
  once (seed 0): every arm and seed trains on the same pairs.
- Arms: ``bt``; ``odin`` (``odin: {length_weight: 1, ortho_weight: 1}``, the paper's and RLHFlow's
  defaults); ``balanced`` (``data.length_balance: reweight`` by ``source_prefix``: within each data
  set the chosen-longer and chosen-shorter pairs weigh half each; reweighting keeps the pairs and
  steps of BT, so only the balance differs); ``both``. Seeds ``--seeds`` (3), paired: a seed gives
  the same initial head and data order in every arm.
- No model selection: the last step is evaluated. Scored on the held-out pairs, and on the shared
  suite (``rewardlab eval --suite shared``) with ``--suite-pairs`` (100) pairs per subset, on copies of
  the suite's files from which every training-pool prompt was removed (the suite holds HH,
  AlpacaEval and PandaLM, the training sets).
- Measures per model: held-out accuracy (cluster bootstrap over prompts); |Spearman(reward,
  length)| over the held-out responses (characters, as eval's length rules); accuracy when the
  chosen is the longer and when it is the shorter (ties left out, counted), and the gap
  longer − shorter; the suite by section. Per arm: mean over seeds (t interval over seeds); against
  BT, paired: the accuracy difference per seed (exact McNemar, paired cluster bootstrap) and pooled
  (seed-averaged correctness per pair, paired cluster bootstrap; Holm over the three arms), and the
  ratio of the gaps |gap_arm| / |gap_BT| (paired cluster bootstrap over prompts).
- Goal (issue 23): halve the longer/shorter gap at a cost of at most 1 point of held-out accuracy.
  "met" when the point estimates satisfy both (ratio ≤ 0.5, difference ≥ −0.01); "shown" when the
  intervals do (ratio's upper bound ≤ 0.5, difference's lower bound ≥ −0.01). Said as it comes out.
- Secondary, added after the first seed's four cells were seen (so not pre-stated; reported beside
  the primary, never instead of it): the gap *within* data sets (``within_gap``: Mantel-Haenszel
  weights) and |Spearman| within data sets. Seed 0 showed why: the held-out AlpacaEval pairs are
  easy and mostly chosen-longer (1,146 of 1,295), the HH pairs hard and mostly chosen-shorter
  (422 of 726), so the pooled gap and the pooled Spearman mix data-set difficulty with length
  (ODIN's quality head: pooled |Spearman| 0.05, yet +0.42 within AlpacaEval and a pooled gap as
  large as BT's). And a diagnostic of ODIN's cost: the accuracy of its quality plus length head
  (the reward its preference loss trained) beside the quality head's, from the length head's
  held-out rewards kept in ODIN cells' records (``backfill_length_rewards`` adds them to records
  scored before, from the model when it is still on disk).

Power (written before the run; ``--power`` prints it from these sizes). n = 2,360 held-out pairs.
Accuracy difference, arm − BT: a seed's paired difference has SD √(q/n) with q the discordant
share (0.10-0.25 between MiniLM runs differing in one loss term): 0.0065-0.0103. Pooled over 3
seeds the SD lies between that / √3 (seeds' item errors independent) and that (perfectly
correlated), so at 80 % power (two-sided 5 %, 2.80 SD) the pooled comparison detects 1.1-2.9
points, and its 95 % half-width is 0.7-2.0 points. Showing "cost ≤ 1 point" (non-inferiority,
one-sided 5 %, 80 % power at a true difference of 0) needs n ≥ q · (2.49 / 0.01)² / 3: 2,060 pairs
at q = 0.10 with independent seeds, 5,150 at q = 0.25: the design is powered for it only when the
arms disagree on few pairs; otherwise "met" rests on the point estimate and the interval is
reported beside it. A test over seeds as the units (3 seeds, df 2, t crit 4.30) needs the
noncentrality λ = 5.65 for 80 % power (noncentral t), i.e. δ = 3.26 σ_seed: with σ_seed 0.01-0.015
(item noise plus seed-to-seed variation), 3.3-4.9 points; it is reported but is not the primary.
Gap: n_longer = 1,659, n_shorter = 690; the change of the gap between two arms has SD
√(q/n_L + q/n_S) = 0.014-0.023, detectable 4.0-6.3 points at 80 % power; the HH-trained BT model's
gap on chat sets was 37-50 points (issue 23), so halving it (a change of ~20 points) is well within
reach, and a ratio's interval of ±0.1-0.15 is expected.

Cost (measured with ``--calibrate``, one torch thread, CPU time, since the wall clock of this shared
machine measured its load of 14-16, not the work): MiniLM at max length 256 trains at 0.465
CPU-seconds per pair (2.2 pairs/s on one thread; the 4-6 pairs/s quoted for an idle machine use
both cores) and scores at 0.080 CPU-seconds per response. The design: 12 runs × 2,000 pairs = 3.1
CPU-hours of training; 12 models × (4,720 held-out responses + about 3,400 suite responses) = 2.2
CPU-hours of scoring; 5.3 CPU-hours in all, i.e. about 3 hours of an idle 2-core machine (2.6 h
with perfect scaling over the two threads, 5.3 h with none; ~1.7x is typical). Each cell is a few
minutes to 30 minutes, so an interruption loses little. (3,000 training pairs and 200 suite pairs
per subset, the first sizing, projected 7.9 CPU-hours: over the budget.) Measured on a slower,
AVX2-only machine (2026-12-02): 1.6 pairs/s of training on both cores, about 21 min a cell, plus
about 14 min of scoring a model: about 35 min a cell, 7 hours in all.

Resumable and checkpointed, cell by cell: each (arm, seed) is a ``rewardlab train`` run under
``--work``; a run with ``summary.json`` is done, one with checkpoints resumes (``--resume``). Each
model is scored as soon as it is trained, and its record (held-out rewards, suite sections, the
training summary's numbers; about 100 KB, 200 KB with ODIN's length-head rewards) goes to ``--cells`` (``benchmarks/results/
robust_length_cells``), which is committed as cells finish: a machine that is replaced between
sessions loses at most the cell in progress, since a cell with a record is not trained again. The
analysis runs when every cell has its record. Run it niced in the background:

    nice -n 10 python benchmarks/robust_length.py --work runs/robust_length

A tiny end-to-end check (a few pairs, one step; outputs under /tmp):

    python benchmarks/robust_length.py --work /tmp/robust_tiny --results /tmp/robust_tiny/results \\
        --cells /tmp/robust_tiny/cells \\
        --seeds 1 --max-train-pairs 16 --max-steps 1 --max-test-pairs 40 --suite-pairs 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import prompt_key as _prompt_key  # noqa: E402
from fidelity_common import run_main, suite_copy_without, train_cell, write_atomic  # noqa: E402

from rewardlab.errors import DataError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TRAIN_FILES = ("hh_rlhf_harmless.jsonl", "alpacaeval_gpt4_judged.jsonl", "pandalm_test.jsonl")
# Suite files whose prompts may also be training prompts: copied without them (the rest are linked).
OVERLAP_FILES = TRAIN_FILES + ("alpacaeval_modelpairs.jsonl",)
SALT = "robust-length"
ODIN = {"length_weight": 1.0, "ortho_weight": 1.0}
BALANCE = {"length_balance": "reweight", "length_balance_by": "source_prefix"}
ARMS = {"bt": {}, "odin": {"odin": ODIN}, "balanced": {"data": BALANCE}, "both": {"odin": ODIN, "data": BALANCE}}


# ----------------------------------------------------------------------------- data
def prepare(work: Path, args) -> dict[str, str]:
    """Train and held-out files and the suite's data root (written once under ``work``)."""
    from rewardlab.data import load_preferences
    from rewardlab.data.table import PreferenceTable

    d = work / "data"
    files = {"train": d / "train.jsonl", "test": d / "test.jsonl", "suite_root": d / "suite"}
    if (d / "COMPLETE").is_file():
        return {k: str(v) for k, v in files.items()}
    (d / "suite").mkdir(parents=True, exist_ok=True)
    pool, test = [], []
    for name in TRAIN_FILES:
        tr, te = load_preferences(DATA / name).split(args.test_fraction, salt=SALT)
        pool.append(tr)
        test.append(te)
    pool_t, test_t = PreferenceTable.concat(pool), PreferenceTable.concat(test)
    train_prompts = {_prompt_key(p) for p in pool_t["prompt"]}
    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(pool_t))[:args.max_train_pairs]).tolist()
    pool_t.select(pick).write(files["train"])
    if args.max_test_pairs is not None and args.max_test_pairs < len(test_t):
        test_t = test_t.select(np.sort(rng.permutation(len(test_t))[:args.max_test_pairs]).tolist())
    test_t.write(files["test"])
    suite_copy_without(d / "suite", lambda name, row: name in OVERLAP_FILES and _prompt_key(row["prompt"]) in train_prompts,
                       DATA)
    (d / "COMPLETE").write_text(json.dumps({"train": len(pick), "test": len(test_t), "pool": len(pool_t)}) + "\n")
    return {k: str(v) for k, v in files.items()}


# ----------------------------------------------------------------------------- cells
def config(files: dict, arm: str, seed: int, args) -> dict:
    """The run config of cell ARM_sSEED (its output_dir is set by ``fidelity_common.train_cell``)."""
    extra = ARMS[arm]
    tc = {"epochs": args.epochs, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.05, "seed": seed,
          "eval_every": 100_000, "save_every": 20, "log_every": 10, "progress": False, "disable_dropout": True,
          "reward_stats_max_pairs": 200}
    if args.max_steps is not None:
        tc["max_steps"] = args.max_steps
    cfg = {"model": {"name_or_path": "minilm", "max_length": args.max_length},
           "data": {"train": files["train"], "val_fraction": 0.0, **extra.get("data", {})},
           "objective": {"name": "bt"}, "train": tc}
    if "odin" in extra:
        cfg["odin"] = extra["odin"]
    return cfg


def score_cell(work: Path, files: dict, cell: str, args) -> dict:
    """Held-out rewards, the suite's sections and the training summary of one trained model: its
    record, cached in ``args.cells`` (committed; see the docstring)."""
    cache = Path(args.cells) / f"{cell}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from rewardlab.data import load_preferences
    from rewardlab.eval.runner import evaluate
    from rewardlab.models.reward_model import RewardModel

    print(f"scoring {cell}", flush=True)
    test = load_preferences(files["test"])
    rm = RewardModel.from_pretrained(work / cell / "model")
    odin = "odin" in ARMS[cell.rsplit("_s", 1)[0]]
    t0 = time.perf_counter()
    s = rm.score_pairs(test, batch_size=32, return_features=odin)  # ODIN: the length head reads the features
    held_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = evaluate([rm], suite="shared", data_root=files["suite_root"], max_pairs_per_subset=args.suite_pairs,
                  batch_size=32, n_boot=1000, seed=0)
    suite = next(iter(ev.results["models"].values()))["suite"]
    out = {"reward_chosen": s["reward_chosen"].tolist(), "reward_rejected": s["reward_rejected"].tolist(),
           "suite": {k: suite.get(k) for k in ("sections", "overall", "overall_interval", "missing_sections")},
           "suite_subsets": {k: {"n": v["n"], "accuracy": v.get("accuracy", v.get("score"))}
                             for k, v in suite["subsets"].items()},
           "seconds": {"held_out": held_seconds, "suite": time.perf_counter() - t0}}
    summary = json.loads((work / cell / "summary.json").read_text())
    out["train"] = {k: summary.get(k) for k in ("steps", "n_train", "train_seconds", "pairs_per_second")}
    if "length_balance" in summary.get("data", {}):
        out["train"]["length_balance"] = summary["data"]["length_balance"]
    if odin:
        out.update(_length_head_rewards(work / cell / "model", s))
    out["test_sha256"] = _sha256(files["test"])
    write_atomic(cache, json.dumps(out))
    return out


def _length_head_rewards(model_dir: Path, scored: dict) -> dict:
    """ODIN's length head r_L on the held-out responses' features (the diagnostic of the quality
    head plus the length head: the reward ODIN was trained on)."""
    from rewardlab.models.odin import length_head_rewards, load_length_head

    head = load_length_head(model_dir)
    return {f"length_reward_{side}": length_head_rewards(head, scored[f"features_{side}"]).tolist()
            for side in ("chosen", "rejected")}


def backfill_length_rewards(work: Path, files: dict, cells: list[str], args) -> list[str]:
    """Add r_L to the records of ODIN cells scored before it was recorded, where the trained model
    is still under ``work`` (a record without it, and without its model, keeps no diagnostic: the
    analysis says so). Returns the cells backfilled."""
    from rewardlab.data import load_preferences
    from rewardlab.models.reward_model import RewardModel

    done, sha, test = [], _sha256(files["test"]), None
    for cell in cells:
        path = Path(args.cells) / f"{cell}.json"
        if "odin" not in ARMS[cell.rsplit("_s", 1)[0]] or not path.is_file():
            continue
        rec = json.loads(path.read_text())
        model_dir = work / cell / "model"
        if "length_reward_chosen" in rec or not model_dir.is_dir() or rec.get("test_sha256") != sha:
            continue
        print(f"length head of {cell} (backfill)", flush=True)
        test = test if test is not None else load_preferences(files["test"])
        rm = RewardModel.from_pretrained(model_dir)
        scored = rm.score_pairs(test, batch_size=32, return_features=True)
        if not np.allclose(scored["reward_chosen"], rec["reward_chosen"], atol=1e-4):
            raise DataError(f"the model under {model_dir} does not give the recorded rewards",
                            file=str(path), field="reward_chosen")
        rec.update(_length_head_rewards(model_dir, scored))
        write_atomic(path, json.dumps(rec))
        done.append(cell)
    return done


def check_records(records: dict[str, dict], sha: str, files: dict, args) -> None:
    """Every record was scored on this held-out file (its ``test_sha256``), or exit naming the
    record: run before any training, so that a record scored on other pairs stops the run at once,
    not at the analysis hours later."""
    for cell, rec in records.items():
        if rec.get("test_sha256") != sha:
            raise DataError(f"scored on other held-out pairs than {files['test']}; remove the record to "
                            "score it again", file=f"{args.cells}/{cell}.json", field="test_sha256")


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- statistics
def cluster_bootstrap(statistic, clusters: list, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile interval of ``statistic(rows)`` over resamples of whole clusters (prompts).

    Hand-written beside ``rewardlab.eval.stats.bootstrap_interval`` (one value per item) because
    the statistics here read several paired arrays at once (a ratio of two models' gaps)."""
    labels, codes = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    members = [np.flatnonzero(codes == k) for k in range(len(labels))]
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        rows = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        reps.append(statistic(rows))
    finite = np.asarray([r for r in reps if np.isfinite(r)])
    a = (1 - level) / 2
    low, high = (float(np.quantile(finite, a)), float(np.quantile(finite, 1 - a))) if len(finite) else (None, None)
    return {"estimate": float(statistic(np.arange(len(codes)))), "low": low, "high": high,
            "n_boot": int(len(finite)), "undefined_replicates": n_boot - int(len(finite)),
            "method": "cluster bootstrap (prompts)"}


def t_interval(values) -> dict:
    from scipy import stats as st

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return {"estimate": float(v.mean()), "low": None, "high": None, "method": "one seed: no interval"}
    half = st.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return {"estimate": float(v.mean()), "low": float(v.mean() - half), "high": float(v.mean() + half),
            "method": "t interval over seeds"}


def held_out_metrics(correct: np.ndarray, rewards: np.ndarray, lengths: np.ndarray, side: np.ndarray,
                     prompts: list, datasets: np.ndarray) -> dict:
    """One model's held-out measures (pure given its correctness, rewards and the pairs' lengths)."""
    from scipy import stats as st

    from rewardlab.eval import stats

    from rewardlab.data.lengths import spearman_interval

    out = {"accuracy": stats.accuracy_interval(correct, clusters=prompts, seed=0),
           "spearman_reward_length": float(st.spearmanr(rewards, lengths).statistic),
           "spearman_interval": spearman_interval(rewards, lengths)}  # Fisher z; counts responses as independent
    out["abs_spearman"] = abs(out["spearman_reward_length"])
    for name, mask in (("longer", side > 0), ("shorter", side < 0)):
        out[f"accuracy_chosen_{name}"] = {"n": int(mask.sum()), **stats.accuracy_interval(
            correct[mask], clusters=[prompts[i] for i in np.flatnonzero(mask)], seed=0)}
    out["n_ties"] = int((side == 0).sum())
    out["gap"] = out["accuracy_chosen_longer"]["estimate"] - out["accuracy_chosen_shorter"]["estimate"]
    out["by_dataset"] = {}
    half = len(rewards) // 2
    for ds in dict.fromkeys(datasets):
        m = datasets == ds
        r2 = np.concatenate([rewards[:half][m], rewards[half:][m]])
        l2 = np.concatenate([lengths[:half][m], lengths[half:][m]])
        longer, shorter = m & (side > 0), m & (side < 0)
        out["by_dataset"][ds] = {"n": int(m.sum()), "accuracy": float(correct[m].mean()),
                                 "spearman_reward_length": float(st.spearmanr(r2, l2).statistic),
                                 "n_longer": int(longer.sum()), "n_shorter": int(shorter.sum()),
                                 "accuracy_chosen_longer": float(correct[longer].mean()) if longer.any() else None,
                                 "accuracy_chosen_shorter": float(correct[shorter].mean()) if shorter.any() else None}
    # secondary, added after the first seed's cells showed the pooled gap mixing data sets (docstring)
    out["gap_within_datasets"] = within_gap(correct, side, datasets)
    out["abs_spearman_within_datasets"] = float(sum(v["n"] * abs(v["spearman_reward_length"])
                                                    for v in out["by_dataset"].values()) / len(correct))
    return out


def gap_of(correct: np.ndarray, side: np.ndarray, rows: np.ndarray) -> float:
    c, s = correct[rows], side[rows]
    if not (s > 0).any() or not (s < 0).any():
        return float("nan")
    return float(c[s > 0].mean() - c[s < 0].mean())


def within_gap(correct: np.ndarray, side: np.ndarray, datasets: np.ndarray, rows: np.ndarray | None = None) -> float:
    """The longer - shorter accuracy gap *within* data sets, pooled with Mantel-Haenszel weights
    (the risk-difference form: w_d = n_L n_S / (n_L + n_S), data set d's pairs with the chosen
    longer n_L and shorter n_S): a gap that mixing data sets cannot make. The pooled gap can: when
    one set is easy and mostly chosen-longer (AlpacaEval here) and another hard and mostly
    chosen-shorter (HH), a reward blind to length still shows a pooled gap. Sets without both
    kinds of pair are left out; nan when none is left."""
    rows = np.arange(len(correct)) if rows is None else rows
    c, s, d = correct[rows], side[rows], datasets[rows]
    num = den = 0.0
    for ds in np.unique(d):
        m = d == ds
        n_l, n_s = int((s[m] > 0).sum()), int((s[m] < 0).sum())
        if n_l and n_s:
            w = n_l * n_s / (n_l + n_s)
            num += w * (c[m & (s > 0)].mean() - c[m & (s < 0)].mean())
            den += w
    return float(num / den) if den else float("nan")


def goal(ratio: dict, diff: dict) -> str:
    """Issue 23's goal: halve the longer/shorter gap (gap ratio arm / BT <= 0.5) at a cost of at most
    1 point of held-out accuracy (arm - BT >= -0.01). *shown* when the ratio's interval lies at or
    below 0.5 and the accuracy difference's at or above -0.01; *met (point estimates)* when only the
    estimates do; else *not met*."""
    if ratio["high"] is not None and ratio["high"] <= 0.5 and diff["low"] >= -0.01:
        return "shown"
    if ratio["estimate"] <= 0.5 and diff["estimate"] >= -0.01:
        return "met (point estimates)"
    return "not met"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")  # a resample where BT has no gap has no ratio (left out, counted)


def analyse(work: Path, files: dict, seeds: list[int], args) -> dict:
    from rewardlab.data import load_preferences
    from rewardlab.data.balance import length_sides
    from rewardlab.data.lengths import response_length
    from rewardlab.eval import stats

    test = load_preferences(files["test"])
    prompts = [_prompt_key(p) for p in test["prompt"]]
    side = length_sides(test["chosen"], test["rejected"])
    lengths = np.asarray([response_length(x) for x in list(test["chosen"]) + list(test["rejected"])], dtype=float)
    datasets = np.asarray([str(s).split("/", 1)[0] for s in test["source"]])
    scores = {f"{arm}_s{seed}": score_cell(work, files, f"{arm}_s{seed}", args) for seed in seeds for arm in ARMS}
    check_records(scores, _sha256(files["test"]), files, args)
    correct, per_cell = {}, {}
    for cell, s in scores.items():
        rc, rr = np.asarray(s["reward_chosen"]), np.asarray(s["reward_rejected"])
        correct[cell] = (rc > rr).astype(float)  # a tie is wrong, as in eval
        per_cell[cell] = held_out_metrics(correct[cell], np.concatenate([rc, rr]), lengths, side, prompts, datasets)
        per_cell[cell]["suite"] = s["suite"]
        per_cell[cell]["train"] = s["train"]
        if "length_reward_chosen" in s:  # ODIN: the quality head plus the length head, the trained reward
            lc, lr = np.asarray(s["length_reward_chosen"]), np.asarray(s["length_reward_rejected"])
            summed = ((rc + lc) > (rr + lr)).astype(float)
            per_cell[cell]["sum_of_heads"] = {"accuracy": stats.accuracy_interval(summed, clusters=prompts, seed=0),
                                              "minus_quality_head": stats.paired_bootstrap_difference(
                                                  summed, correct[cell], clusters=prompts, seed=0)}
    out: dict = {"design": {"seeds": seeds, "arms": list(ARMS), "n_test": len(test), "test_longer": int((side > 0).sum()),
                            "test_shorter": int((side < 0).sum()), "test_ties": int((side == 0).sum()),
                            "max_train_pairs": args.max_train_pairs, "epochs": args.epochs, "max_steps": args.max_steps,
                            "max_length": args.max_length, "suite_pairs": args.suite_pairs,
                            "command": " ".join(sys.argv)},
                 "cells": per_cell, "arms": {}, "vs_bt": {}}
    for arm in ARMS:
        cells = [per_cell[f"{arm}_s{s}"] for s in seeds]
        sections = sorted({k for c in cells for k in (c["suite"]["sections"] or {})})
        out["arms"][arm] = {
            "accuracy": t_interval([c["accuracy"]["estimate"] for c in cells]),
            "abs_spearman": t_interval([c["abs_spearman"] for c in cells]),
            "accuracy_chosen_longer": t_interval([c["accuracy_chosen_longer"]["estimate"] for c in cells]),
            "accuracy_chosen_shorter": t_interval([c["accuracy_chosen_shorter"]["estimate"] for c in cells]),
            "gap": t_interval([c["gap"] for c in cells]),
            "suite_sections": {k: t_interval([c["suite"]["sections"][k]["score"] for c in cells
                                              if k in (c["suite"]["sections"] or {})]) for k in sections},
            "suite_overall": t_interval([c["suite"]["overall"] for c in cells]),
            "gap_within_datasets": t_interval([c["gap_within_datasets"] for c in cells]),
            "abs_spearman_within_datasets": t_interval([c["abs_spearman_within_datasets"] for c in cells]),
        }
    pooled = {arm: np.mean([correct[f"{arm}_s{s}"] for s in seeds], axis=0) for arm in ARMS}
    pvals = {}
    for arm in [a for a in ARMS if a != "bt"]:
        per_seed = []
        for s in seeds:
            a, b = correct[f"{arm}_s{s}"], correct[f"bt_s{s}"]
            m = stats.mcnemar_exact(a, b)
            d = stats.paired_bootstrap_difference(a, b, clusters=prompts, seed=s)
            per_seed.append({"seed": s, "difference": d["estimate"], "low": d["low"], "high": d["high"],
                             "mcnemar_p": m["p_value"], "discordant": [m["b"], m["c"]],
                             "discordant_share": (m["b"] + m["c"]) / len(a)})
        diff = stats.paired_bootstrap_difference(pooled[arm], pooled["bt"], clusters=prompts, seed=0)
        pvals[arm] = diff["p_value"]
        ratio = cluster_bootstrap(lambda rows, arm=arm: _ratio(abs(gap_of(pooled[arm], side, rows)),
                                                               abs(gap_of(pooled["bt"], side, rows))), prompts)
        gap_change = cluster_bootstrap(lambda rows, arm=arm: gap_of(pooled[arm], side, rows) -
                                       gap_of(pooled["bt"], side, rows), prompts)
        ratio_within = cluster_bootstrap(lambda rows, arm=arm: _ratio(abs(within_gap(pooled[arm], side, datasets, rows)),
                                                                      abs(within_gap(pooled["bt"], side, datasets, rows))),
                                         prompts)
        sec_diff = {}
        for k in out["arms"]["bt"]["suite_sections"]:
            vals = [per_cell[f"{arm}_s{s}"]["suite"]["sections"][k]["score"] -
                    per_cell[f"bt_s{s}"]["suite"]["sections"][k]["score"] for s in seeds
                    if k in (per_cell[f"{arm}_s{s}"]["suite"]["sections"] or {})]
            if vals:
                sec_diff[k] = t_interval(vals)
        seed_diff = t_interval([r["difference"] for r in per_seed])
        out["vs_bt"][arm] = {"accuracy_difference_pooled": {k: diff[k] for k in ("estimate", "low", "high", "p_value", "method")},
                             "accuracy_difference_over_seeds": seed_diff, "per_seed": per_seed,
                             "gap_ratio": ratio, "gap_change": gap_change, "suite_section_difference": sec_diff,
                             "goal": goal(ratio, diff),
                             "secondary_within_datasets": {"gap_ratio": ratio_within, "goal": goal(ratio_within, diff)}}
    holm = stats.holm(pvals)  # a mapping in, dicts out
    for arm in pvals:
        out["vs_bt"][arm]["accuracy_difference_pooled"].update(p_holm=holm["p_adjusted"][arm], reject=holm["reject"][arm])
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    results.with_suffix(".md").write_text(markdown(out))
    return out


def _ci(d: dict, pct: bool = True) -> str:
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.3f}")
    if d.get("low") is None:
        return f(d["estimate"])
    return f"{f(d['estimate'])} [{f(d['low'])}, {f(d['high'])}]"


def markdown(out: dict) -> str:
    des = out["design"]
    lines = ["# Length-robust training: BT vs ODIN vs length-balanced vs both (issue 23)", "",
             f"MiniLM, {des['max_train_pairs']} training pairs, {len(des['seeds'])} paired seeds; held-out "
             f"{des['n_test']} pairs (chosen longer {des['test_longer']}, shorter {des['test_shorter']}, ties "
             f"{des['test_ties']}). Command: `{des['command']}`", "",
             "| arm | held-out accuracy % | abs Spearman(reward, length) | acc. chosen longer % | acc. chosen shorter % | gap (longer - shorter), points | suite overall % |",
             "|---|---|---|---|---|---|---|"]
    for arm, a in out["arms"].items():
        lines.append(f"| {arm} | {_ci(a['accuracy'])} | {_ci(a['abs_spearman'], False)} | {_ci(a['accuracy_chosen_longer'])} | "
                     f"{_ci(a['accuracy_chosen_shorter'])} | {_ci(a['gap'])} | {_ci(a['suite_overall'])} |")
    lines += ["", "Means over seeds with t intervals over seeds.", "",
              "| arm vs BT | accuracy difference, points (pooled, paired cluster bootstrap) | p (Holm) | over seeds | gap ratio abs(arm)/abs(BT) | goal |",
              "|---|---|---|---|---|---|"]
    for arm, v in out["vs_bt"].items():
        d = v["accuracy_difference_pooled"]
        lines.append(f"| {arm} | {_ci(d)} | {d.get('p_holm', float('nan')):.3g} | {_ci(v['accuracy_difference_over_seeds'])} | "
                     f"{_ci(v['gap_ratio'], False)} | {v['goal']} |")
    lines += ["", "Secondary (added after the first seed's cells; not the goal's pre-stated measure): the gap "
              "*within* data sets (Mantel-Haenszel-weighted longer - shorter difference over HH, AlpacaEval, "
              "PandaLM) and the mean abs Spearman within data sets, since the pooled gap and Spearman also "
              "reflect which data sets are easy and which are mostly chosen-longer.", "",
              "| arm | gap within data sets, points | abs Spearman within data sets | within-gap ratio vs BT | goal on it |",
              "|---|---|---|---|---|"]
    for arm, a in out["arms"].items():
        sec = out["vs_bt"].get(arm, {}).get("secondary_within_datasets")
        lines.append(f"| {arm} | {_ci(a['gap_within_datasets'])} | {_ci(a['abs_spearman_within_datasets'], False)} | "
                     + (f"{_ci(sec['gap_ratio'], False)} | {sec['goal']} |" if sec else "- | - |"))
    odin_cells = {c: v["sum_of_heads"] for c, v in out["cells"].items() if "sum_of_heads" in v}
    missing = [c for c in out["cells"] if c.rsplit("_s", 1)[0] in ("odin", "both") and c not in odin_cells]
    if odin_cells or missing:
        lines += ["", "Diagnostic (secondary): ODIN's reward is the quality head alone; the sum of its quality and "
                  "length heads is what the preference loss trained. Held-out accuracy, cluster bootstrap over "
                  "prompts; sum − quality head paired:", "",
                  "| cell | quality head % | quality + length head % | sum − quality, points |", "|---|---|---|---|"]
        for c, v in odin_cells.items():
            lines.append(f"| {c} | {_ci(out['cells'][c]['accuracy'])} | {_ci(v['accuracy'])} | "
                         f"{_ci(v['minus_quality_head'])} |")
        if missing:
            lines.append(f"\nNo length-head rewards recorded for {', '.join(missing)} (scored before they were recorded, "
                         "model no longer on disk).")
    sections = sorted({k for a in out["arms"].values() for k in a["suite_sections"]})
    lines += ["", "Shared suite by section (training prompts removed from its files), mean over seeds:", "",
              "| arm | " + " | ".join(sections) + " |", "|---|" + "---|" * len(sections)]
    for arm, a in out["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(_ci(a["suite_sections"][k]) if k in a["suite_sections"] else "-"
                                                for k in sections) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- power, calibration
def power(n: int, n_longer: int, n_shorter: int, seeds: int) -> dict:
    """The numbers of the docstring's power statement, from the design's sizes."""
    from scipy import optimize
    from scipy import stats as st

    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    rows = []
    for q in (0.10, 0.15, 0.25):
        sd = np.sqrt(q / n)
        gap_sd = np.sqrt(q / n_longer + q / n_shorter)
        rows.append({"q": q, "seed_sd": sd, "pooled_detectable": [z * sd / np.sqrt(seeds), z * sd],
                     "pooled_half_width": [1.96 * sd / np.sqrt(seeds), 1.96 * sd],
                     "n_for_1pt_noninferiority": q * ((st.norm.ppf(0.95) + st.norm.ppf(0.8)) / 0.01) ** 2 / seeds,
                     "gap_change_sd": gap_sd, "gap_detectable": z * gap_sd})
    df, tc = seeds - 1, st.t.ppf(0.975, seeds - 1)
    # the lower tail's cdf underflows to NaN for a large noncentrality: it is 0 there
    lam = (optimize.brentq(lambda x: st.nct.sf(tc, df, x) + np.nan_to_num(st.nct.cdf(-tc, df, x)) - 0.8, 0.5, 15)
           if df else None)
    return {"n": n, "n_longer": n_longer, "n_shorter": n_shorter, "seeds": seeds, "by_discordance": rows,
            "seed_t_test": {"t_crit": tc, "noncentrality_80": lam, "delta_over_sigma_seed": lam / np.sqrt(seeds) if lam else None}}


def calibrate(work: Path, files: dict, args) -> dict:
    """CPU seconds per training pair and per scored response (MiniLM, this max_length), and the
    full design's projected cost. CPU time, not wall time: on a shared machine the wall clock
    measures the load; one torch thread, so the CPU time is the work (an idle 2-core machine runs
    it in between half of it, with perfect scaling over 2 threads, and all of it)."""
    import torch

    from rewardlab.config import parse_config
    from rewardlab.data import load_preferences
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.train.loop import train

    torch.set_num_threads(1)
    base = config(files, "bt", 0, args)
    cpu, wall = {}, {}
    for steps in (2, 8):
        tree = json.loads(json.dumps(base))
        tree["output_dir"] = str(work / "calibrate" / f"bt_{steps}")
        tree["train"].update(max_steps=steps, save_every=1000, reward_stats_max_pairs=0)
        c0, w0 = time.process_time(), time.perf_counter()
        train(parse_config(tree), resume=False)
        cpu[steps], wall[steps] = time.process_time() - c0, time.perf_counter() - w0
    per_pair = (cpu[8] - cpu[2]) / (6 * 16)
    test = load_preferences(files["test"])
    test = test.select(range(min(128, len(test))))
    rm = RewardModel.from_pretrained(work / "calibrate" / "bt_8" / "model")
    c0 = time.process_time()
    rm.score_pairs(test, batch_size=32)
    per_response = (time.process_time() - c0) / (2 * len(test))
    n_models = len(ARMS) * args.seeds
    train_cpu = n_models * args.max_train_pairs * args.epochs * per_pair
    suite_responses = 2 * 15 * args.suite_pairs + 4 * min(363, args.suite_pairs)  # ~15 pair subsets + GSM8K's items
    score_cpu = n_models * per_response * (2 * 2360 + suite_responses)
    out = {"cpu_seconds_per_pair": per_pair, "cpu_seconds_per_response": per_response,
           "wall_seconds": wall, "cpu_seconds": cpu, "load_average": os.getloadavg(),
           "projected_cpu_hours": {"train": train_cpu / 3600, "score": score_cpu / 3600},
           "projected_idle_wall_hours_2_cores": [(train_cpu + score_cpu) / 7200, (train_cpu + score_cpu) / 3600],
           "note": "one torch thread; idle wall on 2 cores between CPU/2 (perfect scaling) and CPU/1"}
    (work / "calibrate" / "calibration.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "robust_length")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "robust_length"),
                    help="where the .json and .md results go (a path without suffix)")
    ap.add_argument("--cells", default=str(REPO / "benchmarks" / "results" / "robust_length_cells"),
                    help="where each trained model's record goes (committed; a recorded cell is not run again)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None, help="overrides --epochs (the tiny check)")
    ap.add_argument("--max-train-pairs", type=int, default=2000)
    ap.add_argument("--max-test-pairs", type=int, default=None, help="subsample the held-out pairs (the tiny check)")
    ap.add_argument("--test-fraction", type=float, default=0.4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--suite-pairs", type=int, default=100)
    ap.add_argument("--power", action="store_true", help="print the power statement's numbers and stop")
    ap.add_argument("--calibrate", action="store_true",
                    help="measure CPU seconds per training pair and scored response, project the cost, stop")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.work.mkdir(parents=True, exist_ok=True)
    files = prepare(args.work, args)
    if args.power:
        from rewardlab.data import load_preferences
        from rewardlab.data.balance import length_sides

        test = load_preferences(files["test"])
        s = length_sides(test["chosen"], test["rejected"])
        print(json.dumps(power(len(test), int((s > 0).sum()), int((s < 0).sum()), args.seeds), indent=2))
        return
    if args.calibrate:
        print(json.dumps(calibrate(args.work, files, args), indent=2))
        return
    seeds = list(range(args.seeds))
    recorded = {p.stem: json.loads(p.read_text()) for p in
                (Path(args.cells) / f"{arm}_s{seed}.json" for seed in seeds for arm in ARMS) if p.is_file()}
    check_records(recorded, _sha256(files["test"]), files, args)
    for seed in seeds:  # seed-major: a finished seed is a usable paired comparison
        for arm in ARMS:
            cell = f"{arm}_s{seed}"
            if (Path(args.cells) / f"{cell}.json").is_file():
                continue  # recorded: trained and scored (perhaps on another machine)
            train_cell(args.work, cell, config(files, arm, seed, args))
            score_cell(args.work, files, cell, args)
    backfill_length_rewards(args.work, files, [f"{arm}_s{seed}" for seed in seeds for arm in ARMS], args)
    res = analyse(args.work, files, seeds, args)
    print(json.dumps({arm: {k: res["vs_bt"][arm][k] for k in ("accuracy_difference_pooled", "gap_ratio", "goal")}
                      for arm in res["vs_bt"]}, indent=2))


if __name__ == "__main__":
    run_main(main)
