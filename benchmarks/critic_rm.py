"""Critic-RM vs plain Bradley-Terry on CPU (issue #12): joint training and critique-averaged scoring.

Protocol: the same backbone (SmolLM2-135M-Instruct by default), pairs, steps, seed, learning rate,
batch and max length for both arms:

- ``bt``: a plain reward model (RewardModel, BT loss) trained on (prompt, chosen, rejected);
- ``critic``: a Critic-RM (causal LM + reward head, ``critic:`` section, BT as the reward part)
  trained on the same pairs with their critiques (``critique_chosen``/``critique_rejected``, written
  by ``rewardlab critique`` with SmolLM2 itself and consistency-filtered: ``benchmarks/critic_gen.py
  --part critique``).

Held out: ``--heldout-per-source`` pairs from each of hh_rlhf_harmless, humanevalpack and
llmbar_processed in ``../shared/data`` whose prompts are not among the training prompts (seeded).
``bt`` scores them directly; ``critic`` writes ``--m`` critiques per response (sampling, the saved
temperature/top_p, seed 0) and is scored with the mean over the first m = 1, 2, 4 of them (the
critiques of m = 1 are among those of m = 4, so the comparison isolates averaging). Reports accuracy
per source and overall (a tie is wrong), training pairs/s (summary.json; the runs are sequential on a
shared machine) and critique generation tokens/s. Everything is cached in ``--work`` (trained models,
held-out scores, the generation cache), so an interrupted run resumes.

    python benchmarks/critic_rm.py --train-data runs/critic_gen/critiques.jsonl \
        --heldout-per-source 10 --m 4 --epochs 2 --work runs/bench_critic_rm
    # what produced benchmarks/results/critic_rm.* (training critiques written here; CPU-sized):
    OMP_NUM_THREADS=2 python benchmarks/critic_rm.py --make-critiques 4 --no-filter --heldout-per-source 1 \
        --m 4 --epochs 1 --batch-size 4 --max-length 384 --max-new-tokens 96 --score-max-new-tokens 48 \
        --gen-batch-size 12 --work runs/bench_critic_rm
    # and the side-by-side training speed (benchmarks/results/critic_rm_speed.json):
    OMP_NUM_THREADS=2 python benchmarks/critic_rm.py --speed-only --make-critiques 4 --no-filter \
        --heldout-per-source 1 --batch-size 4 --max-length 384 --max-new-tokens 96 --work runs/bench_critic_rm

Writes benchmarks/results/critic_rm.json and critic_rm.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
SOURCES = {"hh_rlhf_harmless": "HH harmless", "humanevalpack": "HumanEvalPack", "llmbar_processed": "LLMBar"}
KEEP = ("critique_chosen", "critique_rejected")


def family(source: str) -> str:
    """The shared data file a pair's ``source`` comes from (hh-rlhf/..., humanevalpack/..., llmbar_processed/...)."""
    for name, prefix in (("hh_rlhf_harmless", "hh-rlhf"), ("humanevalpack", "humanevalpack"),
                         ("llmbar_processed", "llmbar")):
        if str(source).startswith(prefix):
            return name
    return str(source)


def _prompt_key(p) -> str:
    return p if isinstance(p, str) else json.dumps(p, sort_keys=True)


def make_train_critiques(args, work: Path) -> Path:
    """SmolLM2 writes the training critiques itself (``rewardlab critique``'s pipeline): the first
    ``--make-critiques`` pairs of each source of benchmarks/critic_gen.py's seeded sample, ``--critique-n``
    critiques per response; with ``--no-filter`` every pair is kept (the n = 1 consistency filter
    keeps only pairs whose two scores already rank them right)."""
    from rewardlab.critic.filters import FilterConfig
    from rewardlab.critic.pipeline import CritiqueConfig, run_critique
    from rewardlab.data import PreferenceTable, load_preferences
    from rewardlab.generate import make_generator

    out = work / "train_critiques.jsonl"
    summary_path = work / "train_critiques_critique" / "summary.json"
    if out.is_file() and summary_path.is_file():
        return out
    parts = []
    for name in SOURCES:  # as benchmarks/critic_gen.py's sample_pairs (a prefix of its sample)
        table = load_preferences(str(DATA / f"{name}.jsonl"))
        parts.append(table.select(sorted(random.Random(f"{args.seed}|{name}").sample(range(len(table)), args.make_critiques))))
    work.mkdir(parents=True, exist_ok=True)
    pairs = work / "train_pairs.jsonl"
    PreferenceTable.concat(parts).write(pairs)
    gen = make_generator("transformers", args.model, cache_dir=work / "train_gen_cache", batch_size=args.gen_batch_size)
    filters = FilterConfig(instance=False, critique_rule="none") if args.no_filter else FilterConfig()
    cfg = CritiqueConfig(n=args.critique_n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         seed=args.seed, max_chars=args.max_chars, on_empty="skip", filters=filters)
    run_critique(str(pairs), out, gen, cfg, report_dir=work / "train_critiques_critique", progress=True, log=print)
    if args.no_filter:
        # Unscored critiques (no parseable 'Score: N') count as unscored pairs even without filters; with
        # --no-filter every pair trains on its first critique, scored or not (all_pairs.jsonl).
        table = load_preferences(str(work / "train_critiques_critique" / "all_pairs.jsonl"),
                                 keep_columns=("critiques_chosen", "critiques_rejected"))
        for side in ("chosen", "rejected"):
            table = table.with_column(f"critique_{side}", [c[0] for c in table[f"critiques_{side}"]])
        table.write(out)
    return out


def build_data(args, work: Path) -> tuple[Path, Path]:
    """train.jsonl (the critique data as given) and heldout.jsonl (unseen prompts, k per source)."""
    from rewardlab.data import PreferenceTable, load_preferences

    train_path, held_path = work / "train.jsonl", work / "heldout.jsonl"
    if train_path.is_file() and held_path.is_file():
        return train_path, held_path
    train = load_preferences(args.train_data, keep_columns=KEEP)
    if args.max_train_pairs and len(train) > args.max_train_pairs:
        train = train.select(sorted(random.Random(args.seed).sample(range(len(train)), args.max_train_pairs)))
    seen = {_prompt_key(p) for p in train["prompt"]}
    for spec in args.exclude:  # e.g. every pair critiqued, kept or not
        seen |= {_prompt_key(p) for p in load_preferences(spec)["prompt"]}
    parts = []
    for name in SOURCES:
        table = load_preferences(str(DATA / f"{name}.jsonl"))
        pool = [i for i, p in enumerate(table["prompt"]) if _prompt_key(p) not in seen]
        pick = sorted(random.Random(f"heldout|{args.seed}|{name}").sample(pool, args.heldout_per_source))
        parts.append(table.select(pick))
    work.mkdir(parents=True, exist_ok=True)
    train.write(train_path)
    PreferenceTable.concat(parts).write(held_path)
    return train_path, held_path


def run_config(args, arm: str, train_path: Path, work: Path) -> dict:
    cfg = {"output_dir": str(work / arm),
           "model": {"name_or_path": args.model, "max_length": args.max_length},
           "data": {"train": str(train_path), "val_fraction": 0.0},
           "objective": {"name": "bt"},
           "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "log_every": 5, "save_every": 10, "eval_every": 10 ** 6, "warmup_ratio": 0.05,
                     "progress": True, "reward_stats_max_pairs": 32}}
    if arm == "critic":
        cfg["critic"] = {"lambda_schedule": args.schedule, "lambda_start": args.lambda_start,
                         "lambda_end": args.lambda_end, "critiques": args.m, "temperature": args.temperature,
                         "max_new_tokens": args.max_new_tokens, "seed": 0}
    return cfg


def train_arm(args, arm: str, train_path: Path, work: Path) -> dict:
    from rewardlab.config import parse_config
    from rewardlab.train import checkpoint
    from rewardlab.train.loop import train

    summary_path = work / arm / "summary.json"
    if not summary_path.is_file():
        print(f"training {arm}", flush=True)
        resume = checkpoint.latest(work / arm / "checkpoints") is not None
        train(parse_config(run_config(args, arm, train_path, work), f"critic_rm:{arm}"), resume=resume)
    return json.loads(summary_path.read_text())


def _accuracy(rc: np.ndarray, rr: np.ndarray, sources: list[str]) -> dict:
    ok = rc > rr  # a tie is wrong
    out = {name: {"n": int(sum(s == name for s in sources)),
                  "accuracy": float(np.mean([o for o, s in zip(ok, sources) if s == name]))} for name in SOURCES}
    out["all"] = {"n": int(len(ok)), "accuracy": float(ok.mean())}
    return out


def score_arms(args, held_path: Path, work: Path) -> dict:
    from rewardlab.critic.load import load_model
    from rewardlab.critic.scoring import mean_over_critiques, score_with_critiques
    from rewardlab.data import load_preferences
    from rewardlab.models.reward_model import RewardModel

    table = load_preferences(str(held_path))
    sources, n = [family(s) for s in table["source"]], len(table)
    cache = work / "heldout_scores.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    if "bt" not in scores:
        s = RewardModel.from_pretrained(work / "bt" / "model").score_pairs(table, batch_size=8)
        scores["bt"] = {"chosen": s["reward_chosen"].tolist(), "rejected": s["reward_rejected"].tolist()}
        cache.write_text(json.dumps(scores))
    if "critic" not in scores:
        model = load_model(work / "critic" / "model", critiques=args.m, cache_dir=work / "gen_cache")
        if args.score_max_new_tokens:  # shorter critiques when scoring (CPU budget): recorded in the report
            model.critic = model.critic.model_copy(update={"max_new_tokens": args.score_max_new_tokens})
        from rewardlab.critic.scoring import writer_for

        writer_for(model).batch_size = args.gen_batch_size
        t0 = time.perf_counter()
        out = score_with_critiques(model, list(table["prompt"]) * 2, list(table["chosen"]) + list(table["rejected"]),
                                   batch_size=8, progress=True)
        stats = model.generator.last_stats.to_dict()
        scores["critic"] = {"per_critique_chosen": out.per_critique[:n].tolist(),
                            "per_critique_rejected": out.per_critique[n:].tolist(),
                            "critiques_chosen": out.critiques[:n], "critiques_rejected": out.critiques[n:],
                            "generation": stats, "seconds": round(time.perf_counter() - t0, 1)}
        cache.write_text(json.dumps(scores))
    res = {"bt": _accuracy(np.array(scores["bt"]["chosen"]), np.array(scores["bt"]["rejected"]), sources)}
    pc, pr = np.array(scores["critic"]["per_critique_chosen"]), np.array(scores["critic"]["per_critique_rejected"])
    for m in sorted({1, 2, 4, args.m}):
        if m <= args.m:
            res[f"critic_m{m}"] = _accuracy(mean_over_critiques(pc, m), mean_over_critiques(pr, m), sources)
    res["generation"] = scores["critic"]["generation"]
    res["critic_scoring_seconds"] = scores["critic"]["seconds"]
    return res


def write_report(args, summaries: dict, acc: dict, n_train: dict) -> None:
    from rewardlab.runinfo import run_info

    out = args.results
    out.mkdir(parents=True, exist_ok=True)
    record = {"protocol": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "n_train_pairs": n_train, "accuracy": acc,
              "train": {arm: {k: s[k] for k in ("steps", "pairs_seen", "train_seconds", "pairs_per_second")}
                        for arm, s in summaries.items()},
              "machine": "2 shared CPU cores (7 engineers' jobs running at the same time)", "run": run_info()}
    crit = args.work / "train_critiques_critique" / "summary.json"
    if crit.is_file():  # the training critiques written here (--make-critiques)
        c = json.loads(crit.read_text())
        record["train_critiques"] = {"totals": c["totals"], "generation": c["generation"], "config": c["config"]}
    (out / "critic_rm.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    cols = list(SOURCES) + ["all"]
    lines = [f"# Critic-RM vs BT: {args.model}, {n_train['total']} training pairs, held out {args.heldout_per_source} pairs per source",
             "",
             f"Same pairs, {summaries['bt']['steps']} steps (batch {args.batch_size}, lr {args.lr}, seed {args.seed}, "
             f"max_length {args.max_length}); Critic-RM λ {args.schedule} {args.lambda_start} → {args.lambda_end}, "
             f"critiques sampled at temperature {args.temperature}, at most {args.max_new_tokens} tokens in training"
             + (f" and {args.score_max_new_tokens} when scoring" if args.score_max_new_tokens else "") + ". "
             "Accuracy in % (a tie is wrong); n per source below.", "",
             "| model | " + " | ".join(f"{SOURCES.get(c, c)} (n={acc['bt'][c]['n']})" for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, v in acc.items():
        if isinstance(v, dict) and "all" in v:
            label = "BT" if name == "bt" else f"Critic-RM, m = {name.split('_m')[1]}"
            lines.append(f"| {label} | " + " | ".join(f"{100 * v[c]['accuracy']:.1f}" for c in cols) + " |")
    g = acc["generation"]
    lines += ["", "| | BT | Critic-RM |", "|---|---:|---:|",
              f"| training pairs/s | {summaries['bt']['pairs_per_second']:.3f} | {summaries['critic']['pairs_per_second']:.3f} |",
              f"| training seconds | {summaries['bt']['train_seconds']:.0f} | {summaries['critic']['train_seconds']:.0f} |",
              "", f"Critique writing for scoring: {g['generated']} samples generated ({g['cached']} from cache), "
              f"{g['tokens']} tokens, {g['tokens_per_s']:.1f} tokens/s (batch {args.gen_batch_size}); "
              f"scoring the held-out set took {acc['critic_scoring_seconds']:.0f} s.",
              ] + ([f"Training critiques: written here by {args.model} ({record['train_critiques']['config']['n']} per response, "
                    f"max {record['train_critiques']['config']['max_new_tokens']} tokens, filters "
                    f"{'off' if args.no_filter else 'on'}): {record['train_critiques']['totals']['critiques']} critiques, "
                    f"score parse failures {record['train_critiques']['totals']['parse_failures']}; "
                    + (f"{record['train_critiques']['generation'][0]['tokens_per_s']} tokens/s."
                       if record['train_critiques']['generation'][0]['generated'] else "read back from the generation cache "
                       "(the run that wrote them was interrupted; see the log).")]
                   if "train_critiques" in record else []) + [
              "", "Measured on 2 CPU cores shared with other jobs; the two trainings ran one after the other, "
              "so the pairs/s ratio is indicative only. With this few pairs a difference of one pair per "
              "source is 100/n points: read the table as a smoke test of the method, not a ranking."]
    (out / "critic_rm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def speed(args, train_path: Path, work: Path) -> dict:
    """Training pairs/s side by side: BT and Critic-RM alternating A B A B, ``--speed-steps`` steps each
    on the same pairs (the first step of a run is timed too); medians and their ratio."""
    import statistics

    from rewardlab.config import parse_config
    from rewardlab.train.loop import train

    runs: dict[str, list[float]] = {"bt": [], "critic": []}
    for rep in range(args.speed_reps):
        for arm in ("bt", "critic"):
            cfg = run_config(args, arm, train_path, work / "speed")
            cfg["output_dir"] = str(work / "speed" / f"{arm}-{rep}")
            cfg["train"].update({"max_steps": args.speed_steps, "save_every": 10 ** 6, "progress": False,
                                 "reward_stats_max_pairs": 0})
            s = train(parse_config(cfg, f"critic_rm:speed:{arm}"))
            runs[arm].append(round(s["pairs_per_second"], 4))
            print(f"speed rep {rep} {arm}: {s['pairs_per_second']:.4f} pairs/s", flush=True)
    med = {arm: statistics.median(v) for arm, v in runs.items()}
    out = {"steps_per_run": args.speed_steps, "batch_size": args.batch_size, "pairs_per_second": runs,
           "median": med, "ratio_critic_over_bt": round(med["critic"] / med["bt"], 3)}
    (args.results / "critic_rm_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-data", help="pairs with critique_chosen/critique_rejected (else --make-critiques)")
    ap.add_argument("--make-critiques", type=int, default=0, metavar="K",
                    help="write the training critiques here: K pairs per source, --critique-n each")
    ap.add_argument("--critique-n", type=int, default=1)
    ap.add_argument("--no-filter", action="store_true", help="keep every critiqued pair (no consistency filter)")
    ap.add_argument("--max-chars", type=int, default=1500, help="characters of prompt/response in a critique request")
    ap.add_argument("--exclude", action="append", default=[], help="data whose prompts are never held out")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench_critic_rm")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where critic_rm.json/.md go")
    ap.add_argument("--max-train-pairs", type=int, default=None)
    ap.add_argument("--heldout-per-source", type=int, default=10)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--schedule", default="linear")
    ap.add_argument("--lambda-start", type=float, default=0.8)
    ap.add_argument("--lambda-end", type=float, default=0.2)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--score-max-new-tokens", type=int, default=None,
                    help="critique length when scoring held-out pairs (default: the trained model's, --max-new-tokens)")
    ap.add_argument("--gen-batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed-only", action="store_true", help="only the A B A B training-speed part")
    ap.add_argument("--speed-reps", type=int, default=2)
    ap.add_argument("--speed-steps", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.train_data is None:
        if not args.make_critiques:
            ap.error("give --train-data or --make-critiques K")
        args.train_data = str(make_train_critiques(args, args.work))
        args.exclude.append(str(args.work / "train_pairs.jsonl"))
    train_path, held_path = build_data(args, args.work)
    if args.speed_only:
        print(json.dumps(speed(args, train_path, args.work), indent=2))
        return
    summaries = {arm: train_arm(args, arm, train_path, args.work) for arm in ("bt", "critic")}
    acc = score_arms(args, held_path, args.work)
    from rewardlab.data import load_preferences

    train = load_preferences(str(train_path), keep_columns=KEEP)
    fams = [family(s) for s in train["source"]]
    n_train = {"total": len(train), **{s: fams.count(s) for s in SOURCES}}
    write_report(args, summaries, acc, n_train)


if __name__ == "__main__":
    main()
