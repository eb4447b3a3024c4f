"""Focal Reward vs static and GDPO aggregation (issue #13): a simulated GRPO testbed and real TRL GRPO.

(a) ``sim``: a softmax policy over a fixed pool of candidate responses per prompt, each candidate
with known binary criterion scores. Criteria 0-1 are *easy* (most candidates meet them, they
saturate quickly), criteria 2-3 *hard* (few candidates meet them), and meeting a hard criterion
makes a candidate less likely to meet the easy ones (a trade-off, as a longer, more complete answer
against "be short"). Every step samples a batch of prompts and a group of rollouts per prompt,
scores them, turns scores into advantages with the aggregator under test (the functions of
rewardlab.rubric.aggregators, the very code RubricReward uses) and takes one Adam step on
−mean(A · log π). Same pools, seeds, optimizer and step count for every aggregator. Measured
exactly (no sampling noise): the policy's expected score per criterion, averaged over prompts;
"mean" = the mean over criteria (the rubric's uniform weights, whatever weights an aggregator
trains with), "worst" = the lowest criterion. Static baselines include
several weightings (uniform, hard criteria x1.5, x2, x4) so that focal is compared with the best static
weighting, not only the uniform one.

(b) ``trl``: TRL's GRPOTrainer on SmolLM2-135M-Instruct (CPU, float32 explicitly, no gradient
checkpointing) through ``rewardlab grpo``'s ``run_grpo``, on short-answer prompts of the bundled
sample (capitals, categories, opposites, spelling), with the rubric configs/rubrics/short_answers.yaml
(rule checks + the MiniLM reward model that ``rewardlab demo`` trains); weighted_sum vs gdpo vs
focal, the same steps and seeds; held-out greedy answers scored by the rubric (mean, worst
criterion) and wall time. Each (aggregator, seed) cell is written as it finishes; reruns skip done cells.

    python benchmarks/focal.py sim --seeds 24 --steps 300            # 8.6 min on the shared CPU
    python benchmarks/focal.py sim --seeds 8 --steps 900 --every 30 --out benchmarks/results/focal_sim_long \
        --methods weighted_sum weighted_sum_hard1.5x gdpo min focal_ema
    # runs/demo_rm/model: `rewardlab demo --out runs/demo_rm --epochs 1` (validation accuracy 0.730)
    python benchmarks/focal.py trl --seeds 0 1 --steps 10 --completion-tokens 24 --lr 5e-5 --eval-prompts 16 \
        --threads 1 --reward-model runs/demo_rm/model     # the committed run; ~30 s a step on the 2-core CPU
        # shared with six other jobs (load ~11) with one torch thread; two threads took ~270 s a step there
Results: benchmarks/results/focal_sim.{json,md,png}, benchmarks/results/focal_trl.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rewardlab.rubric import aggregators as agg

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# name -> (aggregator, weights, options)
SIM_METHODS = {
    "weighted_sum": ("weighted_sum", [1, 1, 1, 1], {}),
    "weighted_sum_hard1.5x": ("weighted_sum", [1, 1, 1.5, 1.5], {}),
    "weighted_sum_hard2x": ("weighted_sum", [1, 1, 2, 2], {}),
    "weighted_sum_hard4x": ("weighted_sum", [1, 1, 4, 4], {}),
    "min": ("min", [1, 1, 1, 1], {}),
    "gdpo": ("gdpo", [1, 1, 1, 1], {}),
    "focal_batch": ("focal", [1, 1, 1, 1], {"gamma": 2.0, "estimator": "batch"}),
    "focal_ema": ("focal", [1, 1, 1, 1], {"gamma": 2.0, "estimator": "ema"}),
    "focal_group": ("focal", [1, 1, 1, 1], {"gamma": 2.0, "estimator": "group"}),
    "focal_adv_ema": ("focal", [1, 1, 1, 1], {"gamma": 2.0, "estimator": "ema", "level": "advantage"}),
}


def make_pools(rng: np.random.Generator, prompts: int, pool: int, tradeoff: bool = True) -> np.ndarray:
    """Binary criterion scores (prompts, pool, 4): easy criteria 0-1, hard 2-3, traded off by a
    latent 'thoroughness' u of each candidate. ``tradeoff=False`` (the control): the easy and the
    hard criteria read two independent latents, so the same marginal rates without the trade-off."""
    u = rng.random((prompts, pool, 1))
    v = u if tradeoff else rng.random((prompts, pool, 1))
    p = np.concatenate([0.95 - 0.55 * v, 0.95 - 0.55 * v, 0.02 + 0.5 * u ** 2, 0.02 + 0.5 * u ** 2], axis=-1)
    return (rng.random(p.shape) < p).astype(np.float64)


def run_sim_cell(method: str | tuple, seed: int, *, prompts: int, pool: int, batch: int, group: int, steps: int,
                 lr: float, every: int, tradeoff: bool = True) -> dict:
    """One simulated GRPO run; ``method`` names a SIM_METHODS entry or is an (aggregator, weights,
    options) triple."""
    name, weights, opts = SIM_METHODS[method] if isinstance(method, str) else method
    rng = np.random.default_rng(seed)
    scores = torch.as_tensor(make_pools(rng, prompts, pool, tradeoff))
    logits = torch.zeros(prompts, pool, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    wbar = torch.full((scores.shape[-1],), 1.0 / scores.shape[-1], dtype=torch.float64)  # the rubric's (uniform) weights
    ema = None
    curve = []
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            with torch.no_grad():
                expected = (torch.softmax(logits, -1)[..., None] * scores).sum(1).mean(0)  # (K,)
            curve.append({"step": step, "criteria": expected.tolist(), "mean": float(expected @ wbar),
                          "worst": float(expected.min())})
        if step == steps:
            break
        ids = torch.randperm(prompts, generator=gen)[:batch]
        probs = torch.softmax(logits[ids], -1)
        picks = torch.multinomial(probs.detach(), group, replacement=True, generator=gen)  # (batch, group)
        s = torch.gather(scores[ids], 1, picks[..., None].expand(-1, -1, scores.shape[-1]))
        if name == "focal" and opts.get("estimator") == "ema":
            ema = agg.estimate_saturation(s, "ema", previous=ema, beta=0.9)
            out = agg.focal(s, weights, gamma=opts["gamma"], saturation=ema, level=opts.get("level", "reward"))
        else:
            out = agg.aggregate(name, s, weights, **opts)
        logp = torch.log_softmax(logits[ids], -1).gather(1, picks)
        loss = -(out.advantages.detach() * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"method": method, "seed": seed, "curve": curve}


def sim(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    torch.set_num_threads(1)
    cells, t0 = [], time.perf_counter()
    kw = dict(prompts=args.prompts, pool=args.pool, batch=args.batch, group=args.group, steps=args.steps,
              lr=args.lr, every=args.every)
    for seed in range(args.seeds):
        for method in args.methods:
            cells.append(run_sim_cell(method, seed, **kw))
        print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = {}
    for method in args.methods:
        final = [c["curve"][-1] for c in cells if c["method"] == method]
        worst = np.array([f["worst"] for f in final])
        mean = np.array([f["mean"] for f in final])
        crit = np.array([f["criteria"] for f in final])
        mid = [c["curve"][len(c["curve"]) // 4] for c in cells if c["method"] == method]
        table[method] = {"final_mean": float(mean.mean()), "final_mean_se": float(mean.std(ddof=1) / np.sqrt(len(mean))),
                         "final_worst": float(worst.mean()), "final_worst_se": float(worst.std(ddof=1) / np.sqrt(len(worst))),
                         "final_criteria": crit.mean(0).tolist(),
                         "quarter_worst": float(np.mean([m["worst"] for m in mid])),
                         "seeds": len(final)}
    # paired differences focal - best static (by final worst) per seed
    static = [m for m in args.methods if m.startswith("weighted_sum")]
    best_static = max(static, key=lambda m: table[m]["final_worst"]) if static else None
    paired = {}
    if best_static:
        for m in args.methods:
            a = np.array([c["curve"][-1]["worst"] for c in cells if c["method"] == m])
            b = np.array([c["curve"][-1]["worst"] for c in cells if c["method"] == best_static])
            am = np.array([c["curve"][-1]["mean"] for c in cells if c["method"] == m])
            bm = np.array([c["curve"][-1]["mean"] for c in cells if c["method"] == best_static])
            paired[m] = {"worst_diff": float((a - b).mean()), "worst_diff_se": float((a - b).std(ddof=1) / np.sqrt(len(a))),
                         "worst_wins": int((a > b).sum()), "mean_diff": float((am - bm).mean()),
                         "mean_diff_se": float((am - bm).std(ddof=1) / np.sqrt(len(a)))}
    result = {"settings": vars(args) | {"methods": args.methods}, "table": table, "best_static": best_static,
              "paired_vs_best_static": paired, "seconds": round(time.perf_counter() - t0, 1),
              "curves": {m: {"steps": [p["step"] for p in cells[i]["curve"]],
                             "mean": np.mean([[p["mean"] for p in c["curve"]] for c in cells if c["method"] == m], 0).tolist(),
                             "worst": np.mean([[p["worst"] for p in c["curve"]] for c in cells if c["method"] == m], 0).tolist(),
                             "criteria": np.mean([[p["criteria"] for p in c["curve"]] for c in cells if c["method"] == m], 0).tolist()}
                         for i, m in enumerate(args.methods)}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "focal_sim.json").write_text(json.dumps(result, indent=1))
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for m in args.methods:
        c = result["curves"][m]
        style = "-" if m.startswith("focal") else "--"
        axes[0].plot(c["steps"], c["mean"], style, label=m)
        axes[1].plot(c["steps"], c["worst"], style, label=m)
    for m in ("weighted_sum", "focal_ema"):
        if m in result["curves"]:
            crit = np.array(result["curves"][m]["criteria"])
            for k in range(crit.shape[1]):
                axes[2].plot(result["curves"][m]["steps"], crit[:, k], "-" if m == "focal_ema" else "--",
                             label=f"{m} c{k} ({'easy' if k < 2 else 'hard'})")
    for ax, title in zip(axes, ("weighted mean score", "worst-criterion score", "per criterion")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=6)
    fig.suptitle(f"Simulated GRPO, {args.seeds} seeds (means over seeds)")
    fig.savefig(out / "focal_sim.png", dpi=100)
    lines = ["| method | final mean | final worst | worst at 1/4 of training | criteria (easy, easy, hard, hard) |",
             "|---|---|---|---|---|"]
    for m, r in table.items():
        lines.append(f"| {m} | {r['final_mean']:.3f} ± {r['final_mean_se']:.3f} | {r['final_worst']:.3f} ± "
                     f"{r['final_worst_se']:.3f} | {r['quarter_worst']:.3f} | "
                     + ", ".join(f"{v:.3f}" for v in r["final_criteria"]) + " |")
    if best_static:
        lines += ["", f"Paired vs the best static weighting by final worst criterion ({best_static}), "
                  f"{args.seeds} seeds (± standard error):", "",
                  "| method | Δ worst | seeds with higher worst | Δ mean |", "|---|---|---|---|"]
        for m, p in paired.items():
            lines.append(f"| {m} | {p['worst_diff']:+.3f} ± {p['worst_diff_se']:.3f} | {p['worst_wins']}/{args.seeds} | "
                         f"{p['mean_diff']:+.3f} ± {p['mean_diff_se']:.3f} |")
    (out / "focal_sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ----------------------------------------------------------------------------- (b) real TRL GRPO
TASKS = ("capitals", "categories", "opposites", "spelling")


def trl_prompts(work: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    """Short-answer prompts of the bundled sample, split by prompt hash (held-out = the demo's
    validation prompts are not guaranteed: the reward model may have seen some prompts)."""
    from rewardlab.data import sample_path
    from rewardlab.data.table import unit_hash

    rows = [json.loads(l) for l in sample_path().read_text().splitlines() if l.strip()]
    seen, prompts = set(), []
    for r in rows:
        if r["source"] in TASKS and r["prompt"] not in seen:
            seen.add(r["prompt"])
            prompts.append(r["prompt"])
    prompts.sort(key=lambda p: unit_hash("focal-bench", p))
    work.mkdir(parents=True, exist_ok=True)
    train, held = work / "train_prompts.jsonl", work / "eval_prompts.jsonl"
    train.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[n_eval:n_eval + n_train]))
    held.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[:n_eval]))
    return train, held


def trl(args) -> None:
    import yaml

    from rewardlab.rubric.grpo import load_recipe, run_grpo

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    rm = Path(args.reward_model)
    if not args.prompts_only and not (rm / "config.json").is_file():
        from rewardlab.demo import run_demo

        print(f"training the reward model criterion with rewardlab demo into {rm.parent}", flush=True)
        run_demo(rm.parent, epochs=1.0)
    train, held = trl_prompts(work, args.train_prompts, args.eval_prompts)
    if args.prompts_only:
        print(f"wrote {train} and {held}")
        return
    rubric = yaml.safe_load((REPO / "configs" / "rubrics" / "short_answers.yaml").read_text())
    for c in rubric["criteria"]:
        if c["scorer"]["type"] == "reward_model":
            c["scorer"]["path"] = str(rm.resolve())
    rubric_path = work / "rubric.yaml"
    rubric_path.write_text(yaml.safe_dump(rubric, sort_keys=False))
    cells_dir = Path(args.out) / "focal_trl_cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.aggregators:
            cell = cells_dir / f"{name}-s{seed}.json"
            if cell.exists():
                print(f"{cell.name}: done before, skipped", flush=True)
                continue
            sets = [f"output_dir={work / f'{name}-s{seed}'}", f"rubric={rubric_path}", f"prompts.train={train}",
                    f"prompts.eval={held}", f"aggregator.name={name}", f"seed={seed}", f"grpo.max_steps={args.steps}",
                    "save_model=false", f"eval.before={'true' if name == args.aggregators[0] else 'false'}",
                    f"grpo.max_completion_length={args.completion_tokens}", f"eval.max_new_tokens={args.completion_tokens}",
                    f"grpo.learning_rate={args.lr:.6e}", f"grpo.per_device_train_batch_size={args.batch}"]
            recipe = load_recipe(REPO / "configs" / "grpo_focal.yaml", sets)
            t0 = time.perf_counter()
            s = run_grpo(recipe, log=lambda m: print(m, flush=True))
            s["wall_seconds"] = round(time.perf_counter() - t0, 1)
            keep = {k: s[k] for k in ("recipe", "precision", "trl_settings", "train_seconds", "wall_seconds",
                                      "eval_before", "eval_after", "versions", "git_commit", "n_train_prompts",
                                      "n_eval_prompts") if k in s}
            keep["train_log"] = [{k: v for k, v in rec.items() if k.startswith(("rubric/", "reward", "step", "loss"))}
                                 for rec in s["log_history"]]
            keep["threads"] = args.threads
            cell.write_text(json.dumps(keep, indent=1, default=str))
            ea = s.get("eval_after", {})
            print(f"{cell.name}: held-out mean {ea.get('weighted_mean')}, worst {ea.get('worst_criterion')}, "
                  f"{s['train_seconds']} s training", flush=True)
    summarise_trl(cells_dir, Path(args.out))


def summarise_trl(cells_dir: Path, out: Path) -> None:
    cells = [json.loads(p.read_text()) for p in sorted(cells_dir.glob("*.json"))]
    if not cells:
        return
    rows, before = [], None
    for c in cells:
        name, seed = c["recipe"]["aggregator"]["name"], c["recipe"]["seed"]
        before = c.get("eval_before", before)
        e = c["eval_after"]
        rows.append({"aggregator": name, "seed": seed, "mean": e["weighted_mean"], "worst": e["worst_criterion"],
                     "criteria": e["criteria"], "train_seconds": c["train_seconds"]})
    result = {"cells": rows, "before": before and {k: before[k] for k in ("weighted_mean", "worst_criterion", "criteria")},
              "precision": cells[0]["precision"], "steps": cells[0]["recipe"]["grpo"].get("max_steps"),
              "grpo": cells[0]["recipe"]["grpo"], "threads": cells[0].get("threads")}
    (out / "focal_trl.json").write_text(json.dumps(result, indent=1))
    names = list(rows[0]["criteria"])
    lines = ["| policy | seed | held-out mean | worst criterion | " + " | ".join(names) + " | train time (s) |",
             "|---" * (5 + len(names)) + "|"]
    if before:
        lines.append(f"| initial SmolLM2-135M-Instruct | – | {before['weighted_mean']:.3f} | {before['worst_criterion']:.3f} | "
                     + " | ".join(f"{before['criteria'][n]:.3f}" for n in names) + " | – |")
    for r in rows:
        lines.append(f"| {r['aggregator']} | {r['seed']} | {r['mean']:.3f} | {r['worst']:.3f} | "
                     + " | ".join(f"{r['criteria'][n]:.3f}" for n in names) + f" | {r['train_seconds']:.0f} |")
    by_agg = {}
    for r in rows:
        by_agg.setdefault(r["aggregator"], []).append(r)
    if any(len(v) > 1 for v in by_agg.values()):
        lines += ["", "Means over seeds (± standard error when there are several):", "",
                  "| aggregator | seeds | held-out mean | worst criterion | " + " | ".join(names) + " | train time (s) |",
                  "|---" * (5 + len(names)) + "|"]
        for name, rs in by_agg.items():
            def ms(xs):
                xs = np.asarray(xs, dtype=float)
                se = xs.std(ddof=1) / np.sqrt(len(xs)) if len(xs) > 1 else float("nan")
                return f"{xs.mean():.3f} ± {se:.3f}"
            lines.append(f"| {name} | {len(rs)} | {ms([r['mean'] for r in rs])} | {ms([r['worst'] for r in rs])} | "
                         + " | ".join(f"{np.mean([r['criteria'][n] for r in rs]):.3f}" for n in names)
                         + f" | {np.mean([r['train_seconds'] for r in rs]):.0f} |")
        result["by_aggregator"] = {k: {"seeds": len(v), "mean": float(np.mean([r["mean"] for r in v])),
                                       "worst": float(np.mean([r["worst"] for r in v]))} for k, v in by_agg.items()}
        (out / "focal_trl.json").write_text(json.dumps(result, indent=1))
    (out / "focal_trl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    s = sub.add_parser("sim")
    s.add_argument("--seeds", type=int, default=24)
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--prompts", type=int, default=32)
    s.add_argument("--pool", type=int, default=64)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--group", type=int, default=8)
    s.add_argument("--lr", type=float, default=0.05)
    s.add_argument("--every", type=int, default=10)
    s.add_argument("--methods", nargs="+", default=list(SIM_METHODS))
    s.add_argument("--out", default=str(RESULTS))
    t = sub.add_parser("trl")
    t.add_argument("--seeds", type=int, nargs="+", default=[0])
    t.add_argument("--steps", type=int, default=12)
    t.add_argument("--aggregators", nargs="+", default=["weighted_sum", "gdpo", "focal"])
    t.add_argument("--train-prompts", type=int, default=48)
    t.add_argument("--eval-prompts", type=int, default=32)
    t.add_argument("--reward-model", default="runs/focal_bench/rm/model")
    t.add_argument("--work", default="runs/focal_bench")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--prompts-only", action="store_true", help="only write the prompt files into --work")
    t.add_argument("--completion-tokens", type=int, default=40)
    t.add_argument("--lr", type=float, default=5e-6)
    t.add_argument("--batch", type=int, default=8, help="completions per step (prompts x num_generations)")
    t.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    sim(args) if args.part == "sim" else trl(args)


if __name__ == "__main__":
    main()
