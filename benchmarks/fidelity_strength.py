"""Seed 004 (Secrets of RLHF II): does low preference strength find *wrong* labels? (FIDELITY.md 004,
issue 21.) Known label swaps in HH-RLHF, strengths from fine-tuned MiniLM members.

Power (written before the run). Data: HH-RLHF harmless split by prompt hash (salt
"fidelity-strength", 30% validation): 1282 training pairs, 256 of them (20%) swapped, and 559 clean
validation pairs.
- Swap detection: the weakest and strongest 10% hold 128 pairs each; a Wilson 95% interval there
  is about +-0.085 wide at a share of 0.5, and a share of 0.30 or more is told from the 0.20 base
  rate at 80% power (one-sided 2.8 SE = 0.099). AUROC of -strength over 256 swaps and 1026 clean
  pairs has SE about 0.02: an AUROC of 0.56 is told from 0.5.
- Denoising (clean-validation accuracy, 559 pairs, 5 paired seeds): a seed's paired difference
  between two fine-tuned arms has SD sqrt(q / 559) = 0.016-0.021 for a discordant share q of
  0.15-0.25; over 5 seeds the SD of the mean lies between 0.008 (seeds independent) and 0.021
  (perfectly correlated through the items), so a gain of 2.3-5.9 points is detectable at 80%
  power (2.8 SD). The accuracy lost to 20% swaps is expected to be a few points, so "recovers at
  least half of it" is testable only if the loss is at the large end; the table says when not.

Compute (2 shared cores, MiniLM at max_length 256, about 5 pairs/s training and 15 pairs/s
scoring): 10 members x 1 epoch of 1282 pairs (about 260 s each) plus their in-sample scoring
(about 85 s) and validation scoring (about 40 s): about 65 min; the arms flip-20% and adaptive
margin and the clean-data BT reference at 5 seeds (the BT arm of seed s is member s, the same run):
15 x 300 s, about 75 min. About 2.3 hours in all; ``--folds 2`` (cross-fitted strengths) adds 20
member runs on half the data each (about 45 min more) and 5 separate BT runs.

Design, fixed before the run:
- Swaps: ``random_flips(1282, 0.2, seed=--swap-seed)`` on the training side (seeded; the indices
  are written to ``WORK/data/swaps.json`` and the results), chosen and rejected exchanged there.
  Validation pairs keep HH's own labels ("clean" = not swapped by us).
- Members: ``--members`` MiniLM fine-tunes (dropout off, lr 1e-4, batch 16, 1 epoch, max_length
  256), seeds 0..M-1 (initial head and data order), trained on the noisy training side; strength
  mu = mean over members of r(chosen) - r(rejected) on the training pairs they trained on
  (**in-sample**, as in the paper); ``--folds K`` >= 2: K-fold cross-fitted by prompt hash instead.
- Detection: share of swaps among the weakest and the strongest 10% by mu (Wilson intervals;
  ``rewardlab.strength.swap_precision``), the same for the weakest 20% (= the swap rate; precision
  equals recall there), AUROC of -mu for "is swapped" (percentile bootstrap over pairs, 2000).
- Denoising arms (``rewardlab.strength.apply_recipe``, options fixed in advance): ``bt`` (noisy
  labels), ``flip20`` (flip the weakest 20% by mu), ``margin`` (adaptive margin, scale 1, mu
  clipped at 0), and ``clean`` (BT on the unswapped training labels: the accuracy the noise cost).
  Same training settings, seeds 0..S-1 shared by all arms. Clean-validation accuracy paired per
  seed (exact McNemar, Holm over every (arm, seed)), pooled over seeds (paired bootstrap of the
  seed-averaged correctness, Holm over the two recipes; t interval of the per-seed differences).
- Verdict rules (FIDELITY.md 004), stated before the run:
  detection *reproduced* if the weakest decile's swap share is >= 0.5 with a Wilson lower bound
  above 0.20 and the strongest decile's is <= 0.05 (the paper: about 84% vs 4% GPT-4
  disagreement in its weakest and strongest 500 pairs); *refuted at this scale* if the weakest
  decile's Wilson interval contains the 0.20 base rate; otherwise *partly reproduced* (low strength
  enriches swaps, short of the paper's separation).
  Denoising *reproduced* for a recipe if its pooled gain over BT is Holm-significant and at least
  half of the clean-minus-BT gap; *untestable here* if the clean-minus-BT gap is not significant
  (the swaps cost no measurable accuracy); otherwise *not reproduced in this setting*.

Resumable: every training run is a cell (``benchmarks/fidelity_common.train_cell``: a finished cell
is skipped, an interrupted one resumes from its last checkpoint); scores are recorded cell by cell
in ``RESULTS_DIR/fidelity_strength_scores.json``, committed as cells finish, and a cell whose
scores are recorded is not trained again (``ScoreCache.cell``): a machine replaced between sessions
loses at most the cell in progress. Run niced in the background:

    nice -n 10 python benchmarks/fidelity_strength.py --work runs/fidelity_strength

Tiny end-to-end check (minutes; writes its results under /tmp, not benchmarks/results):

    python benchmarks/fidelity_strength.py --work /tmp/x/work --results-dir /tmp/x/results \\
        --max-train 40 --max-val 24 --members 3 --arm-seeds 2 --max-steps 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import (  # noqa: E402
    DATA,
    REPO,
    RESULTS,
    ScoreCache,
    correct,
    fmt_ci,
    paired_arms,
    run_main,
    write_results,
)

RECIPES = {"flip20": ("flip_fraction", {"fraction": 0.2}), "margin": ("adaptive_margin", {"scale": 1.0, "clip_min": 0.0})}
PAPER = {"weakest_disagreement": 1 - 0.164, "strongest_disagreement": 1 - 0.956, "frac_negative": 0.25}


def prepare(work: Path, args) -> dict:
    """Train (noisy and clean) and validation files, and the swap indices; written once."""
    from rewardlab.data import load_preferences
    from rewardlab.strength import random_flips

    d = work / "data"
    files = {k: d / f"{k}.jsonl" for k in ("train_noisy", "train_clean", "val")}
    swaps_path = d / "swaps.json"
    if not (all(p.is_file() for p in files.values()) and swaps_path.is_file()):
        d.mkdir(parents=True, exist_ok=True)
        hh = load_preferences(DATA / "hh_rlhf_harmless.jsonl")
        train, val = hh.split(args.val_fraction, salt="fidelity-strength")
        if args.max_train:  # a seeded subsample, for the tiny check
            train = train.select(np.sort(np.random.default_rng(0).permutation(len(train))[:args.max_train]).tolist())
        if args.max_val:
            val = val.select(np.sort(np.random.default_rng(1).permutation(len(val))[:args.max_val]).tolist())
        swapped = random_flips(len(train), args.swap_rate, seed=args.swap_seed)
        ch, rj = list(train["chosen"]), list(train["rejected"])
        noisy = train.with_column("chosen", [r if s else c for c, r, s in zip(ch, rj, swapped)]) \
                     .with_column("rejected", [c if s else r for c, r, s in zip(ch, rj, swapped)])
        train.write(files["train_clean"])
        noisy.write(files["train_noisy"])
        val.write(files["val"])
        swaps_path.write_text(json.dumps({"swap_rate": args.swap_rate, "swap_seed": args.swap_seed,
                                          "n_train": len(train), "swapped": np.flatnonzero(swapped).tolist()}))
    swaps = json.loads(swaps_path.read_text())
    mask = np.zeros(swaps["n_train"], dtype=bool)
    mask[swaps["swapped"]] = True
    return {"files": {k: str(v) for k, v in files.items()}, "swapped": mask, "swaps": swaps}


def run_config(train_file: str, seed: int, args, objective: dict | None = None) -> dict:
    train = {"epochs": args.epochs, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.05, "seed": seed,
             "eval_every": 10_000, "save_every": 20, "log_every": 10, "progress": False, "disable_dropout": True,
             "reward_stats_max_pairs": 0}  # the serving statistics are not used here: skip their scoring pass
    if args.max_steps:
        train["max_steps"] = args.max_steps
    return {"model": {"name_or_path": args.model, "max_length": args.max_length},
            "data": {"train": train_file, "val_fraction": 0.0},
            "objective": objective or {"name": "bt"}, "train": train}


def strengths(work: Path, prep: dict, args) -> tuple[np.ndarray, dict]:
    """mu over the members (in-sample, or cross-fitted with ``--folds``), and the diffs [M, n]."""
    from rewardlab.data import load_preferences
    from rewardlab.strength import prompt_folds, strength_stats

    noisy = load_preferences(prep["files"]["train_noisy"])
    val = load_preferences(prep["files"]["val"])
    cache = ScoreCache(work, args.results_dir / "fidelity_strength_scores.json")
    diffs = np.empty((args.members, len(noisy)))
    if args.folds == 1:
        for m in range(args.members):
            # member m is also the BT arm of seed m (``arms``): its validation scores are recorded now,
            # while the model is at hand
            tables = {"train_noisy": noisy, **({"val": val} if m < args.arm_seeds else {})}
            diffs[m] = cache.cell(f"member{m}", run_config(prep["files"]["train_noisy"], m, args), tables)["train_noisy"]
            print(f"member {m + 1}/{args.members} done", flush=True)
    else:
        fold = prompt_folds([noisy.prompt_key(i) for i in range(len(noisy))], args.folds)
        for f in range(args.folds):
            held, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            path = work / "data" / f"train_noisy_notfold{f}.jsonl"
            if not path.is_file():
                noisy.select(rest.tolist()).write(path)
            for m in range(args.members):
                diffs[m, held] = cache.cell(f"fold{f}_member{m}", run_config(str(path), m, args),
                                            {f"fold{f}": noisy.select(held.tolist())})[f"fold{f}"]
                print(f"fold {f + 1}/{args.folds}, member {m + 1}/{args.members} done", flush=True)
    mu, sd = strength_stats(diffs)
    return mu, {"diffs_std_median": float(np.median(sd)), "mode": "in_sample" if args.folds == 1 else f"crossfit_{args.folds}"}


def detection(mu: np.ndarray, swapped: np.ndarray, n_boot: int = 2000) -> dict:
    from sklearn.metrics import roc_auc_score

    from rewardlab.eval.stats import interval_of, wilson_interval
    from rewardlab.strength import swap_precision

    out: dict = {}
    for name, frac, end in (("weakest_10", 0.1, "weakest"), ("strongest_10", 0.1, "strongest"),
                            ("weakest_20", float(swapped.mean()), "weakest")):
        sp = swap_precision(mu, swapped, frac, end=end)
        w = wilson_interval(sp["hits"], sp["k"]) if sp["k"] else None
        out[name] = {**sp, "interval": {"estimate": sp["precision"], "low": w["low"], "high": w["high"],
                                        "method": "Wilson"} if w else None}
    auc = float(roc_auc_score(swapped, -mu))
    rng = np.random.default_rng(0)
    reps = []
    for _ in range(n_boot):  # a hand loop: AUROC needs both arrays resampled together
        i = rng.integers(0, len(mu), len(mu))
        if 0 < swapped[i].sum() < len(i):
            reps.append(roc_auc_score(swapped[i], -mu[i]))
    out["auroc"] = {**interval_of(np.asarray(reps), auc), "method": f"percentile bootstrap over pairs ({len(reps)})"}
    out["frac_negative"] = {"all": float((mu < 0).mean()), "swapped": float((mu[swapped] < 0).mean()),
                            "clean": float((mu[~swapped] < 0).mean())}
    return out


def arms(work: Path, prep: dict, mu: np.ndarray, args) -> dict:
    """Clean-validation correctness of every (arm, seed)."""
    from rewardlab.data import load_preferences
    from rewardlab.strength import apply_recipe

    noisy = load_preferences(prep["files"]["train_noisy"]).with_column("strength_mean", mu.tolist())
    val = {"val": load_preferences(prep["files"]["val"])}
    files, objectives, counts = {}, {}, {}
    for arm, (recipe, opts) in RECIPES.items():
        path = work / "data" / f"train_{arm}.jsonl"
        table, objectives[arm], counts[arm] = apply_recipe(noisy, recipe, **opts)
        if not path.is_file():
            table.write(path)
        files[arm] = str(path)
    files["bt"], files["clean"] = prep["files"]["train_noisy"], prep["files"]["train_clean"]
    objectives["bt"] = objectives["clean"] = {"name": "bt"}
    cache = ScoreCache(work, args.results_dir / "fidelity_strength_scores.json")
    acc: dict = {a: {} for a in ("bt", "flip20", "margin", "clean")}
    for s in range(args.arm_seeds):  # seed-major: a finished seed is a usable paired comparison
        for arm in acc:
            same_as_member = arm == "bt" and args.folds == 1 and s < args.members
            name = f"member{s}" if same_as_member else f"{arm}_s{s}"
            acc[arm][s] = correct(cache.cell(name, run_config(files[arm], s, args, objectives[arm]), val)["val"])
        print(f"arm seed {s + 1}/{args.arm_seeds} done", flush=True)
    return {"acc": acc, "recipe_counts": counts, "objectives": objectives}


def verdicts(det: dict, recipes: dict, lost: dict) -> dict:
    w, s = det["weakest_10"], det["strongest_10"]
    base = det["weakest_20"]["base_rate"]
    if w["precision"] >= 0.5 and w["interval"]["low"] > base and s["precision"] <= 0.05:
        v_det = "reproduced"
    elif w["interval"]["low"] <= base <= w["interval"]["high"]:
        v_det = "refuted at this scale (weakest decile at the base rate)"
    else:
        v_det = "partly reproduced (low strength enriches swaps, short of the paper's separation)"
    gap = lost["arms"]["clean"]["pooled_difference"]
    out = {"detection": v_det}
    for arm, r in recipes["arms"].items():
        g = r["pooled_difference"]
        if not (gap["low"] > 0):
            out[arm] = "untestable here (the swaps cost no measurable accuracy: clean - BT interval includes 0)"
        elif g.get("reject") and g["estimate"] >= 0.5 * gap["estimate"]:
            out[arm] = "reproduced (recovers at least half of the accuracy lost to the swaps)"
        else:
            out[arm] = "not reproduced in this setting"
    return out


def markdown(res: dict) -> str:
    det, rec, lost, v = res["detection"], res["denoising"], res["noise_cost"], res["verdicts"]
    cfg = res["setting"]
    setting = (f"HH-RLHF harmless, {cfg['n_train']} training pairs ({cfg['n_swapped']} swapped, seed {cfg['swap_seed']}), "
               f"{cfg['n_val']} clean validation pairs; {cfg['members']} fine-tuned {cfg['model']} members "
               f"(max_length {cfg['max_length']}, {cfg['epochs']} epoch(s), dropout off), strengths {cfg['mode']}")
    rows = [
        ("Weakest pairs are mostly wrong labels", "GPT-4 disagrees with 83.6% of the weakest 500 (agreement 0.164)",
         f"swap share, weakest 10% by strength (n = {det['weakest_10']['k']})", fmt_ci(det["weakest_10"]["interval"]),
         ">= 0.5 with Wilson low > base rate (and strongest <= 0.05): reproduced; interval contains base rate: refuted",
         v["detection"]),
        ("Strongest pairs are almost all right", "GPT-4 disagrees with 4.4% of the strongest 500 (agreement 0.956)",
         f"swap share, strongest 10% (n = {det['strongest_10']['k']})", fmt_ci(det["strongest_10"]["interval"]),
         "<= 0.05 (part of the rule above)", v["detection"]),
        ("Strength ranks wrong labels first", "(no AUROC in the paper)", "AUROC of -strength for 'is swapped'",
         fmt_ci(det["auroc"]), "descriptive (0.5 = chance)", ""),
        ("About a quarter of pairs have strength < 0", "about 25% of HH", "share with mu < 0 (all / swapped / clean)",
         f"{det['frac_negative']['all']:.3f} / {det['frac_negative']['swapped']:.3f} / {det['frac_negative']['clean']:.3f}",
         "descriptive", ""),
        ("20% swaps cost accuracy", "(premise)", f"clean - BT, clean validation, {cfg['arm_seeds']} seeds",
         fmt_ci(lost["arms"]["clean"]["pooled_difference"]), "interval excludes 0, else denoising untestable", ""),
    ]
    for arm, label in (("flip20", "Flipping the weakest 20% helps"), ("margin", "Adaptive margin helps")):
        r = rec["arms"][arm]["pooled_difference"]
        rows.append((label, "gains on HH validation (flip 10-20%; margin 'almost always')",
                     f"{arm} - BT, clean validation, {cfg['arm_seeds']} seeds (Holm p {r.get('p_holm', float('nan')):.3g})",
                     fmt_ci(r), "Holm-significant and >= half of (clean - BT): reproduced", v[arm]))
    lines = ["# Seed 004: does low preference strength find wrong labels? (fine-tuned members, known swaps)", "",
             f"Setting: {setting}. Command: `{res['command']}`.", "",
             "| claim | paper | ours (measured as) | measured [95% interval] | verdict rule (stated before the run) | verdict |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Clean-validation accuracy by arm (mean over seeds, t interval over seeds):", "",
              "| arm | accuracy | difference to BT (pooled paired bootstrap) |", "|---|---|---|",
              f"| bt (noisy labels) | {fmt_ci(rec['baseline_accuracy'])} | |"]
    for arm in ("flip20", "margin"):
        lines.append(f"| {arm} | {fmt_ci(rec['arms'][arm]['accuracy'])} | {fmt_ci(rec['arms'][arm]['pooled_difference'])} |")
    lines.append(f"| clean labels (reference) | {fmt_ci(lost['arms']['clean']['accuracy'])} | "
                 f"{fmt_ci(lost['arms']['clean']['pooled_difference'])} |")
    lines += ["", "Per-seed exact McNemar against BT (Holm within each family: the two recipes' arm-seed tests; the clean reference's seeds):", "", "| arm | seed | accuracy | BT | McNemar p (Holm) |",
              "|---|---|---|---|---|"]
    for src in (rec, lost):
        for arm, r in src["arms"].items():
            for row in r["per_seed"]:
                lines.append(f"| {arm} | {row['seed']} | {row['arm']:.3f} | {row['baseline']:.3f} | "
                             f"{row['mcnemar_p']:.3g} ({row.get('mcnemar_p_holm', float('nan')):.3g}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "fidelity_strength")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--arm-seeds", type=int, default=5)
    ap.add_argument("--folds", type=int, default=1, help="1: in-sample strengths (the paper); K >= 2: cross-fitted")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None, help="cap per run (the tiny check)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--swap-rate", type=float, default=0.2)
    ap.add_argument("--swap-seed", type=int, default=0)
    ap.add_argument("--max-train", type=int, default=None, help="subsample the training side (the tiny check)")
    ap.add_argument("--max-val", type=int, default=None, help="subsample the validation side (the tiny check)")
    args = ap.parse_args()
    if args.arm_seeds < 2 or args.members < 2 or args.folds < 1:
        ap.error("--arm-seeds and --members must be >= 2, --folds >= 1")
    args.work.mkdir(parents=True, exist_ok=True)
    prep = prepare(args.work, args)
    mu, info = strengths(args.work, prep, args)
    det = detection(mu, prep["swapped"])
    print(json.dumps({k: det[k] for k in ("weakest_10", "strongest_10", "auroc")}, default=str), flush=True)
    a = arms(args.work, prep, mu, args)
    seeds = list(range(args.arm_seeds))
    rec = paired_arms({k: a["acc"][k] for k in ("bt", "flip20", "margin")}, "bt", seeds)
    lost = paired_arms({k: a["acc"][k] for k in ("bt", "clean")}, "bt", seeds)
    res = {"setting": {"n_train": int(len(mu)), "n_swapped": int(prep["swapped"].sum()), "swap_seed": args.swap_seed,
                       "n_val": int(len(a["acc"]["bt"][0])), "members": args.members, "arm_seeds": args.arm_seeds,
                       "model": args.model, "max_length": args.max_length, "epochs": args.epochs,
                       "max_steps": args.max_steps, **info, "recipes": RECIPES, "recipe_counts": a["recipe_counts"]},
           "command": " ".join(["python benchmarks/fidelity_strength.py"] + sys.argv[1:]),
           "paper": PAPER, "swapped_indices": prep["swaps"]["swapped"], "detection": det,
           "denoising": rec, "noise_cost": lost}
    res["verdicts"] = verdicts(det, rec, lost)
    write_results("fidelity_strength", res, markdown(res), args.results_dir)
    print(json.dumps(res["verdicts"], indent=2))


if __name__ == "__main__":
    run_main(main)
