"""Training throughput side by side: TRL 1.x ``RewardTrainer`` vs ``rewardlab train``.

Same backbone, pairs, hyperparameters, steps, seed and initial weights for every arm:

- data: HH-RLHF harmless pairs (../shared/data) whose both sides fit ``--max-length`` under
  rewardlab's rendering (TRL drops longer pairs, rewardlab truncates; restricting makes both see
  identical tokens). Train pairs from the prompt-hash train split, validation pairs from the other.
- TRL gets the token ids rewardlab encodes (its processed-dataset input, ``chosen_ids`` and
  ``rejected_ids``) and the model rewardlab builds (same head initialisation from the seed, same
  pad token). TRL runs in float32 without gradient checkpointing (its config defaults to bf16 and
  gradient checkpointing; ``trl_default`` measures that as a finding, not as the reference),
  with TRL's default ``disable_dropout=True``; rewardlab arms set ``train.disable_dropout: true`` to do the
  same work (``*_dropout`` arms keep dropout on both sides: it costs about a quarter of a MiniLM step).
- Each run is a fresh subprocess with ``torch.set_num_threads(--threads)``; arms alternate
  A B A B ... in one invocation and ratios are taken repeat by repeat (the machine is shared).

Measured per run: pairs/s over the optimizer steps (TRL: from on_train_begin to the last
on_step_end; rewardlab: the loop's own step time; model loading, validation and export are outside
both), tokens through the model with padding and without, peak RSS, validation accuracy (each
model scores the validation pairs with the inputs it trained on).

The committed results came from (run from the repository root, ../shared beside it):

    python benchmarks/vs_trl.py --model minilm --train-pairs 96 --val-pairs 100 --steps 12 --batch-size 8 \
        --repeats 3 --arms trl rewardlab rewardlab_grouped rewardlab_packed \
        --once trl_dropout rewardlab_dropout --tag minilm
    python benchmarks/vs_trl.py --model smollm2-135m --train-pairs 8 --val-pairs 16 --steps 2 --batch-size 4 \
        --lr 2e-5 --repeats 2 --arms trl rewardlab_shared --tag smollm2
    python benchmarks/vs_trl.py --model smollm2-135m --train-pairs 16 --val-pairs 24 --steps 4 --batch-size 4 \
        --lr 2e-5 --repeats 3 --arms trl rewardlab_shared --once rewardlab_packed --tag smollm2_16
    python benchmarks/vs_trl.py --model minilm --train-pairs 16 --val-pairs 16 --steps 2 --batch-size 8 \
        --repeats 3 --arms trl trl_default --tag minilm_trl_default

Writes benchmarks/results/vs_trl_<tag>.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hh_rlhf_harmless.jsonl"
RESULTS = REPO / "benchmarks" / "results"

# name -> (kind, options). rewardlab options are `train.*` keys; TRL options are RewardConfig fields.
ARMS = {
    "trl": ("trl", {}),
    "trl_dropout": ("trl", {"disable_dropout": False}),
    "trl_default": ("trl", {"bf16": True, "gradient_checkpointing": True}),
    "rewardlab": ("rewardlab", {"disable_dropout": True, "packing": "none"}),
    "rewardlab_dropout": ("rewardlab", {"packing": "none"}),
    "rewardlab_grouped": ("rewardlab", {"disable_dropout": True, "packing": "none", "group_by_length": True}),
    "rewardlab_packed": ("rewardlab", {"disable_dropout": True, "packing": "padding_free"}),
    "rewardlab_grouped_packed": ("rewardlab", {"disable_dropout": True, "packing": "padding_free",
                                               "group_by_length": True}),
    "rewardlab_shared": ("rewardlab", {"disable_dropout": True, "packing": "shared_prompt"}),
}


# ---------------------------------------------------------------- data
def prepare_data(args, work: Path) -> dict:
    """Pairs whose both sides fit max_length, written as JSONL for the workers."""
    import numpy as np

    from rewardlab.data import load_preferences
    from rewardlab.models.reward_model import RewardModel

    rm = RewardModel.from_backbone(args.model, max_length=args.max_length, overlength="drop")
    table = load_preferences(str(DATA))
    train, val = table.split(0.1, salt="rewardlab")

    def fitting(t):
        keep = []
        for i, (p, c, r) in enumerate(zip(t["prompt"], t["chosen"], t["rejected"])):
            if rm.encode(p, c).status == "ok" and rm.encode(p, r).status == "ok":
                keep.append(i)
        return keep

    out = {}
    for name, t, n in (("train", train, args.train_pairs), ("validation", val, args.val_pairs)):
        keep = fitting(t)
        pick = sorted(np.random.default_rng(args.seed).permutation(keep)[:n].tolist())
        path = work / f"{name}.jsonl"
        t.select(pick).write(path)
        out[name] = {"path": str(path), "n": len(pick), "fitting": len(keep), "of": len(t)}
    return out


# ---------------------------------------------------------------- workers
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_rewardlab(spec: dict) -> dict:
    from rewardlab.config import parse_config
    from rewardlab.train.loop import train

    cfg = parse_config({
        "output_dir": spec["out"],
        "model": {"name_or_path": spec["model"], "max_length": spec["max_length"]},
        "data": {"train": spec["data"]["train"]["path"], "validation": spec["data"]["validation"]["path"]},
        "objective": {"name": "bt"},
        "train": {"max_steps": spec["steps"], "batch_size": spec["batch_size"], "lr": spec["lr"],
                  "warmup_ratio": spec["warmup_ratio"], "scheduler": "linear", "seed": spec["seed"],
                  "eval_every": 10 ** 6, "save_every": 10 ** 6, "log_every": spec["steps"],
                  "eval_batch_size": 16, "reward_stats_max_pairs": 0, "progress": False, **spec["options"]},
    })
    s = train(cfg)
    return {"pairs": s["pairs_seen"], "seconds": s["train_seconds"], "pairs_per_second": s["pairs_per_second"],
            "tokens_processed": s["tokens"]["processed"], "tokens_real": s["tokens"]["real"],
            "val_accuracy": s["validation"]["accuracy"], "val_n": s["validation"]["n"]}


def worker_trl(spec: dict) -> dict:
    import numpy as np
    from accelerate.utils import set_seed
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rewardlab.data import load_preferences
    from rewardlab.models.inputs import Encoded
    from rewardlab.models.reward_model import RewardModel

    set_seed(spec["seed"])  # as rewardlab's loop, before building the model: the same head init
    rm = RewardModel.from_backbone(spec["model"], max_length=spec["max_length"])

    def encoded(path):
        t = load_preferences(path)
        return ([rm.encode(p, c) for p, c in zip(t["prompt"], t["chosen"])],
                [rm.encode(p, r) for p, r in zip(t["prompt"], t["rejected"])])

    tc, tr = encoded(spec["data"]["train"]["path"])
    ds = Dataset.from_dict({"chosen_ids": [e.input_ids for e in tc], "rejected_ids": [e.input_ids for e in tr]})
    counts = {"processed": 0, "real": 0}

    class Counting(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            counts["processed"] += int(out["input_ids"].numel())
            counts["real"] += int(out["attention_mask"].sum())
            return out

    clock: dict = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            clock["end"] = time.perf_counter()

    options = {"bf16": False, "gradient_checkpointing": False, "disable_dropout": True, **spec["options"]}
    targs = RewardConfig(
        output_dir=spec["out"], use_cpu=True, per_device_train_batch_size=spec["batch_size"],
        learning_rate=spec["lr"], max_steps=spec["steps"], lr_scheduler_type="linear",
        warmup_steps=int(spec["warmup_ratio"] * spec["steps"]), weight_decay=0.0, max_grad_norm=1.0,
        seed=spec["seed"], data_seed=spec["seed"], logging_steps=spec["steps"], save_strategy="no",
        eval_strategy="no", report_to=[], max_length=spec["max_length"], dataloader_num_workers=0, **options)
    trainer = RewardTrainer(model=rm.model, args=targs, train_dataset=ds, processing_class=rm.tokenizer,
                            data_collator=Counting(pad_token_id=rm.tokenizer.pad_token_id), callbacks=[Clock()])
    trainer.train()
    seconds = clock["end"] - clock["start"]
    pairs = spec["steps"] * spec["batch_size"]
    # Validation as TRL trained: the same token ids, no token type ids (its collator passes none).
    vc, vr = encoded(spec["data"]["validation"]["path"])
    strip = [Encoded(e.input_ids, None, e.status) for e in vc + vr]
    rm.model.float()
    r = rm.score_encoded(strip, batch_size=16)
    rc, rrj = r[: len(vc)], r[len(vc):]
    return {"pairs": pairs, "seconds": seconds, "pairs_per_second": pairs / seconds,
            "tokens_processed": counts["processed"], "tokens_real": counts["real"],
            "val_accuracy": float(np.mean(rc > rrj)), "val_n": len(vc)}


def run_worker(spec_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    result = (worker_trl if spec["kind"] == "trl" else worker_rewardlab)(spec)
    result.update({"arm": spec["arm"], "wall_seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(),
                   "threads": torch.get_num_threads()})
    Path(spec["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------- orchestration
def launch(arm: str, repeat: int, args, data: dict, work: Path) -> dict:
    kind, options = ARMS[arm]
    run = work / f"{arm}-{repeat}"
    spec = {"arm": arm, "kind": kind, "options": options, "model": args.model, "max_length": args.max_length,
            "data": data, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "warmup_ratio": args.warmup_ratio, "seed": args.seed, "threads": args.threads,
            "out": str(run), "result": str(work / f"{arm}-{repeat}.result.json")}
    spec_path = work / f"{arm}-{repeat}.spec.json"
    spec_path.write_text(json.dumps(spec))
    env_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)]
    proc = subprocess.run(env_cmd, capture_output=True, text=True,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": str(args.threads),
                               "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        raise SystemExit(f"{arm} run {repeat} failed:\n{proc.stderr[-4000:]}")
    res = json.loads(Path(spec["result"]).read_text())
    res["repeat"] = repeat
    print(f"  {arm:18s} repeat {repeat}: {res['pairs_per_second']:.3f} pairs/s, {res['tokens_processed']} tokens "
          f"({res['tokens_real']} real), val acc {res['val_accuracy']:.3f}, peak {res['peak_rss_mb']:.0f} MB",
          flush=True)
    return res


def summarise(runs: list[dict], arms: list[str], reference: str) -> dict:
    by_arm = {a: [r for r in runs if r["arm"] == a] for a in arms}
    out = {}
    for a, rs in by_arm.items():
        if not rs:
            continue
        ratios = []
        for r in rs:  # the reference run of the same repeat
            ref = [x for x in by_arm.get(reference, []) if x["repeat"] == r["repeat"]]
            if ref:
                ratios.append(r["pairs_per_second"] / ref[0]["pairs_per_second"])
        out[a] = {
            "runs": len(rs),
            "pairs_per_second_median": statistics.median(r["pairs_per_second"] for r in rs),
            "pairs_per_second_all": [round(r["pairs_per_second"], 4) for r in rs],
            "ratio_to_reference_median": statistics.median(ratios) if ratios else None,
            "ratios": [round(x, 3) for x in ratios],
            "tokens_processed": statistics.median(r["tokens_processed"] for r in rs),
            "tokens_real": statistics.median(r["tokens_real"] for r in rs),
            "padding_fraction": statistics.median(1 - r["tokens_real"] / r["tokens_processed"] for r in rs),
            "real_tokens_per_second_median": statistics.median(r["tokens_real"] / r["seconds"] for r in rs),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rs),
            "val_accuracy": [round(r["val_accuracy"], 4) for r in rs],
            "val_n": rs[0]["val_n"],
        }
    return out


def markdown(result: dict) -> str:
    a = result["args"]
    lines = [f"# rewardlab vs TRL RewardTrainer: {a['model']}", "",
             f"{result['data']['train']['n']} HH-harmless training pairs (of {result['data']['train']['fitting']} "
             f"whose both sides fit {a['max_length']} tokens), {result['data']['validation']['n']} validation pairs; "
             f"batch {a['batch_size']} pairs, {a['steps']} steps, lr {a['lr']}, warmup {a['warmup_ratio']}, "
             f"seed {a['seed']}, float32, {a['threads']} torch thread(s) per run; arms alternate, "
             f"{a['repeats']} repeats; ratios to `{a['reference']}` taken repeat by repeat. "
             f"Machine: {result['machine']} (shared with other jobs: absolute numbers are floors).", "",
             "| arm | pairs/s (median) | ratio to reference (median; each repeat) | tokens processed | padding | "
             "real tokens/s | peak RSS MB | validation accuracy (each run) |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, s in result["summary"].items():
        ratio = "—" if s["ratio_to_reference_median"] is None else \
            f"{s['ratio_to_reference_median']:.2f}x ({', '.join(f'{x:.2f}' for x in s['ratios'])})"
        lines.append(f"| `{arm}` | {s['pairs_per_second_median']:.3f} | {ratio} | {s['tokens_processed']:.0f} | "
                     f"{100 * s['padding_fraction']:.1f}% | {s['real_tokens_per_second_median']:.0f} | "
                     f"{s['peak_rss_mb_median']:.0f} | {', '.join(f'{x:.3f}' for x in s['val_accuracy'])} "
                     f"(n={s['val_n']}) |")
    lines += ["", "Arms: " + "; ".join(f"`{k}` = {ARMS[k][0]} {ARMS[k][1] or '(defaults above)'}"
                                        for k in result["summary"]), "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--train-pairs", type=int, default=48)
    ap.add_argument("--val-pairs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arms", nargs="+", default=["trl", "rewardlab"], choices=sorted(ARMS))
    ap.add_argument("--reference", default="trl")
    ap.add_argument("--once", nargs="*", default=[], choices=sorted(ARMS), help="arms run in the first repeat only")
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    if args.worker:
        return run_worker(args.worker)
    tag = args.tag or args.model
    with tempfile.TemporaryDirectory(prefix="vs_trl-") as tmp:
        work = Path(tmp)
        data = prepare_data(args, work)
        counts = {k: {x: v[x] for x in ("n", "fitting", "of")} for k, v in data.items()}
        print(f"data: {json.dumps(counts)}", flush=True)
        runs = []
        for rep in range(args.repeats):
            for arm in args.arms + (args.once if rep == 0 else []):
                runs.append(launch(arm, rep, args, data, work))
    result = {"args": vars(args), "data": {k: {x: v[x] for x in ("n", "fitting", "of")} for k, v in data.items()},
              "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
              "command": "python benchmarks/vs_trl.py " + " ".join(sys.argv[1:]),
              "runs": runs, "summary": summarise(runs, args.arms + args.once, args.reference)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"vs_trl_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (RESULTS / f"vs_trl_{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
