"""Full fine-tuning vs LoRA at two ranks (issue #15): SmolLM2-135M-Instruct on HH-RLHF harmless.

Protocol: the same training pairs (a seeded subset of the 90% prompt-hash training split), the
same optimizer steps, batch and seed for every arm; only what is trained differs (and the
learning rate: 2e-5 for full fine-tuning as configs/smollm2_hh.yaml, 2e-4 for LoRA, the usual
10x; alpha = 2r, so the adapter scale alpha/r is the same at both ranks). Each arm is one
`rewardlab train` process, so its peak RSS (summary.json) is its own. Reported per arm:
validation accuracy on a held-out subset, training pairs/s, peak RSS, trainable parameters,
adapter size.

Throughput on a shared machine drifts, so besides the accuracy runs (one per arm), short timing
runs (`--timing-steps` steps, no validation) are repeated `--rounds` times with the arms
alternating (A B C A B C ...); the table quotes their median pairs/s and the ratio to full
fine-tuning. Every finished run is kept under --work (its summary.json is read back), so an
interrupted benchmark resumes where it stopped.

    python benchmarks/lora.py                       # -> benchmarks/results/lora.json, lora.md
    # the committed results (a 2-core CPU under heavy shared load):
    python benchmarks/lora.py --train-pairs 32 --val-pairs 64 --max-length 160 --rounds 3 --timing-steps 1
    # on a GPU (the loop uses it through accelerate; peak GPU memory is reported too), e.g.:
    python benchmarks/lora.py --train-pairs 2000 --val-pairs 500 --batch-size 8 --rounds 3 --timing-steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def arms(ranks: list[int], lr_full: float, lr_lora: float) -> dict[str, dict]:
    out = {"full": {"train": {"lr": lr_full}}}
    for r in ranks:
        out[f"lora_r{r}"] = {"train": {"lr": lr_lora}, "lora": {"r": r, "alpha": 2 * r, "dropout": 0.05}}
    return out


def config(arm: dict, out: Path, args, *, steps: int, validate: bool) -> dict:
    tree = {
        "output_dir": str(out),
        "model": {"name_or_path": args.model, "max_length": args.max_length},
        "data": {"train": str(DATA / "hh_rlhf_harmless.jsonl"), "val_fraction": 0.1,
                 "max_train_pairs": args.train_pairs, "max_val_pairs": args.val_pairs if validate else None},
        "objective": {"name": "bt"},
        "train": {"max_steps": steps, "batch_size": args.batch_size, "grad_accum": args.grad_accum,
                  "lr": None, "warmup_ratio": 0.1, "scheduler": "linear", "seed": args.seed,
                  "eval_every": 10_000, "save_every": 10_000, "log_every": 1, "eval_batch_size": 16,
                  "reward_stats_max_pairs": 0, "progress": False},
    }
    tree["train"].update(arm["train"])
    if "lora" in arm:
        tree["lora"] = dict(arm["lora"])
    if not validate:  # timing runs: no held-out scoring, all time is training
        tree["data"]["val_fraction"] = 0.0
        tree["data"].pop("max_val_pairs")
    return tree


def run(tree: dict, log: Path, threads: int) -> dict:
    """One `rewardlab train` process; its summary.json (reused if the run finished before)."""
    out = Path(tree["output_dir"])
    summary = out / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    if out.exists():  # an unfinished run: start it again from scratch
        import shutil

        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = out.parent / f"{out.name}.yaml"
    cfg.write_text(yaml.safe_dump(tree, sort_keys=False))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    t0 = time.time()
    with log.open("a") as f:
        res = subprocess.run([sys.executable, "-m", "rewardlab.cli", "train", str(cfg)], stdout=f, stderr=subprocess.STDOUT,
                             env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{cfg}: rewardlab train failed ({res.returncode}); see {log}")
    print(f"  {out.name}: {time.time() - t0:.0f} s wall", flush=True)
    return json.loads(summary.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--train-pairs", type=int, default=96)
    ap.add_argument("--val-pairs", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4, help="pairs per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--lr-full", type=float, default=2e-5)
    ap.add_argument("--lr-lora", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    ap.add_argument("--timing-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (the machine is shared)")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench_lora")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    steps = args.train_pairs // (args.batch_size * args.grad_accum)  # one epoch of the subset
    table = arms(args.ranks, args.lr_full, args.lr_lora)
    log = args.work / "train.log"
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    print(f"accuracy runs: {args.train_pairs} pairs, {steps} steps, validation {args.val_pairs} pairs", flush=True)
    for name, arm in table.items():
        s = run(config(arm, args.work / "acc" / name, args, steps=steps, validate=True), log, args.threads)
        results[name] = {
            "validation_accuracy": s["validation"]["accuracy"], "validation_n": s["validation"]["n"],
            "validation_mean_margin": s["validation"]["mean_margin"], "pairs_per_second_accuracy_run": s["pairs_per_second"],
            "train_seconds": s["train_seconds"], "peak_rss_bytes": s["peak_memory"]["rss_peak_bytes"],
            "cuda_max_allocated_bytes": s["peak_memory"].get("cuda_max_allocated_bytes"),  # on a GPU
            "trainable_params": s["parameters"]["trainable"], "total_params": s["parameters"]["total"],
            "adapter_bytes": s.get("lora", {}).get("adapter_bytes"), "steps": s["steps"], "pairs_seen": s["pairs_seen"],
            "lr": arm["train"]["lr"], "lora": arm.get("lora"),
        }
    print(f"timing runs: {args.rounds} rounds x {len(table)} arms x {args.timing_steps} steps, alternating", flush=True)
    for k in range(args.rounds):
        for name, arm in table.items():
            s = run(config(arm, args.work / "timing" / f"{name}-round{k}", args, steps=args.timing_steps, validate=False),
                    log, args.threads)
            results[name].setdefault("pairs_per_second_rounds", []).append(s["pairs_per_second"])
            results[name].setdefault("peak_rss_bytes_rounds", []).append(s["peak_memory"]["rss_peak_bytes"])
    for r in results.values():
        r["pairs_per_second_median"] = statistics.median(r["pairs_per_second_rounds"])
    # the ratio per round (each arm against the full run of its own round), then the median
    for name, r in results.items():
        ratios = [a / b for a, b in zip(r["pairs_per_second_rounds"], results["full"]["pairs_per_second_rounds"])]
        r["speed_vs_full_median"] = statistics.median(ratios)

    from rewardlab.runinfo import run_info

    payload = {"protocol": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "steps": steps, "results": results, "run": run_info(),
               "note": "2-core CPU shared with other jobs; throughput medians of alternating rounds"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lora.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "lora.md").write_text(markdown(payload))
    print(markdown(payload))


def markdown(p: dict) -> str:
    a = p["protocol"]
    lines = [f"# Full fine-tuning vs LoRA: {a['model']} on HH-RLHF harmless", "",
             f"{a['train_pairs']} training pairs, {p['steps']} steps of {a['batch_size']}x{a['grad_accum']} pairs, "
             f"max length {a['max_length']}, seed {a['seed']}, BT; validation {a['val_pairs']} held-out pairs "
             f"(prompt-hash split). lr {a['lr_full']} (full) / {a['lr_lora']} (LoRA, alpha = 2r, every linear "
             f"layer of the backbone, head saved in full). {a['threads']} torch thread(s) per run on a 2-core CPU "
             f"shared with other jobs: pairs/s are medians of {a['rounds']} alternating rounds of "
             f"{a['timing_steps']} steps.", "",
             "| arm | validation accuracy | pairs/s (median) | speed vs full | peak RSS, accuracy run (GB) "
             "| peak RSS, timing runs (GB) | trainable params | adapter (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in p["results"].items():
        adapter = f"{r['adapter_bytes'] / 1e6:.1f}" if r["adapter_bytes"] else "—"
        lines.append(f"| {name} | {r['validation_accuracy']:.3f} (n={r['validation_n']}) | {r['pairs_per_second_median']:.3f} "
                     f"| {r['speed_vs_full_median']:.2f}x | {r['peak_rss_bytes'] / 1e9:.2f} "
                     f"| {min(r['peak_rss_bytes_rounds']) / 1e9:.2f}–{max(r['peak_rss_bytes_rounds']) / 1e9:.2f} "
                     f"| {r['trainable_params']:,} "
                     f"({100 * r['trainable_params'] / r['total_params']:.2f}%) | {adapter} |")
    gpu = {n: r["cuda_max_allocated_bytes"] for n, r in p["results"].items() if r.get("cuda_max_allocated_bytes")}
    if gpu:
        lines += ["", "GPU max allocated: " + "; ".join(f"{n} {v / 1e9:.2f} GB" for n, v in gpu.items())]
    lines += ["", "Per-round pairs/s: " + "; ".join(
        f"{n} {', '.join(f'{v:.3f}' for v in r['pairs_per_second_rounds'])}" for n, r in p["results"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
