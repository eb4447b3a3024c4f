"""Vectorised MLP ensemble vs a loop of independent models (issue: embedding fast path).

Trains a k-member MLP reward-head ensemble (d → 1024 → 512 → 1, BT loss, Adam) on N pairs of
D-dim embeddings two ways, with the same members' data orders, batch size and number of epochs:

- vectorised: ``rewardlab.heads.fit_head`` (one module, member-leading parameters,
  ``torch.baddbmm``), no early stopping (``val_fraction: 0``) so both sides do the same steps;
- loop: k plain ``nn.Sequential`` MLPs with their own ``torch.optim.Adam``, trained one after
  another, chosen and rejected of each pair through the model (what one writes by hand).

Two kinds of data:

- ``distinct``: every pair has two items of its own (2N distinct rows): pure vectorisation;
- ``pool``: pairs drawn within prompts from a pool of responses (800 prompts x 7, as the
  study's golden pool), trained with full batches: the ensemble puts each distinct item through
  the heads once per step, the loop puts both sides of every pair through.

Achieved GFLOP/s counts the training arithmetic each side actually performs (forward 2·Σ a·b per
row and member; backward 2·Σ a·b for the weight gradients plus 2·Σ a·b of every layer but the
first for input gradients) divided by wall time. The peak is the best fp32 ``torch.mm`` rate of
square matrices measured in the same run with the same threads. Targets from the issue: >= 50%
of peak and >= 5x the loop.

    python benchmarks/heads.py --threads 1     # 10 members, 10k pairs, 576-dim, 3 epochs
    python benchmarks/heads.py --quick         # a seconds-long smoke run

Writes benchmarks/results/heads.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.heads import HeadConfig, fit_head, member_seed

REPO = Path(__file__).resolve().parents[1]


def matmul_peak(sizes: list[int], repeats: int) -> dict:
    """Best fp32 GFLOP/s of ``torch.mm`` on square matrices."""
    best = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        best[n] = 2 * n**3 / min(times) / 1e9
    return {"by_size": best, "peak_gflops": max(best.values())}


def train_flops(dims: list[int], rows: int) -> float:
    """Training arithmetic of one member over ``rows`` input rows (see module docstring)."""
    ab = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return float(rows) * (2 * sum(ab) + 2 * sum(ab) + 2 * sum(ab[1:]))


def make_data(n_pairs: int, dim: int, kind: str, seed: int = 0):
    """Item vectors and (chosen, rejected) index pairs; see the module docstring."""
    rng = np.random.default_rng(seed)
    if kind == "distinct":
        X = rng.standard_normal((2 * n_pairs, dim), dtype=np.float32)
        a, b = np.arange(n_pairs), np.arange(n_pairs, 2 * n_pairs)
    else:
        from rewardlab.data.simulate import simulate_pairs

        prompts, per_prompt = 800, 7
        X = rng.standard_normal((prompts * per_prompt, dim), dtype=np.float32)
        g = X @ rng.standard_normal(dim).astype(np.float32)
        sim = simulate_pairs(g, np.repeat(np.arange(prompts), per_prompt), n=n_pairs, beta=-1, seed=seed)
        return X, sim.chosen, sim.rejected
    g = X @ rng.standard_normal(dim).astype(np.float32)
    chosen = np.where(g[a] >= g[b], a, b)
    rejected = np.where(g[a] >= g[b], b, a)
    return X, chosen, rejected


def run_vectorised(X, chosen, rejected, cfg: HeadConfig, seed: int) -> float:
    t0 = time.perf_counter()
    fit_head(X, chosen, rejected, objective="bt", config=cfg, seed=seed)
    return time.perf_counter() - t0


def run_loop(X, chosen, rejected, cfg: HeadConfig, seed: int) -> float:
    """k independent nn.Sequential MLPs, one after another, same data orders as the ensemble."""
    x = torch.from_numpy(X)
    x = (x - x.mean(0)) / x.std(0, unbiased=False).clamp_min(1e-6)
    n = len(chosen)
    t0 = time.perf_counter()
    for j in range(cfg.members):
        s = member_seed(seed, j)
        torch.manual_seed(s)
        dims = [X.shape[1], *cfg.layer_widths(), 1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        rng = np.random.default_rng([s, 1])
        for _ in range(cfg.epochs):
            perm = rng.permutation(n)
            for start in range(0, n, cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                items = torch.from_numpy(np.concatenate([chosen[idx], rejected[idx]]))
                r = model(x[items]).squeeze(-1)
                b = len(idx)
                loss = F.softplus(-(r[:b] - r[b:])).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--widths", type=int, nargs="*", default=[1024, 512])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 128],
                    help="batch sizes (pairs) of the distinct-items runs")
    ap.add_argument("--pool-batch-sizes", type=int, nargs="+", default=[10240],
                    help="batch sizes of the pool runs (>= the pairs: full batches)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "heads.json")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.members, args.epochs = 600, 3, 1
        args.batch_sizes, args.pool_batch_sizes, args.peak_sizes, args.repeats = [256], [1000], [512], 2
        args.out = args.out.with_name("heads_quick.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peak = matmul_peak(args.peak_sizes, args.repeats)
    dims = [args.dim, *args.widths, 1]
    rows = []
    for kind, sizes in (("distinct", args.batch_sizes), ("pool", args.pool_batch_sizes)):
        X, chosen, rejected = make_data(args.pairs, args.dim, kind)
        for bs in sizes:
            cfg = HeadConfig(kind="mlp", members=args.members, widths=args.widths, batch_size=bs,
                             epochs=args.epochs, val_fraction=0.0, standardize=True)
            full = bs >= len(chosen)
            # rows through the heads per epoch and member: all pair sides, or each distinct item
            # once per full-batch step (the ensemble); the loop always runs both sides of each pair
            vec_rows = len(np.unique(np.concatenate([chosen, rejected]))) if full else 2 * len(chosen)
            loop_rows = 2 * len(chosen)
            small = cfg.model_copy(update={"epochs": 1})
            run_vectorised(X, chosen[:256], rejected[:256], small, seed=1)  # warm-up: first-call costs
            run_loop(X, chosen[:256], rejected[:256], small, seed=1)
            t_vec = run_vectorised(X, chosen, rejected, cfg, seed=0)
            t_loop = run_loop(X, chosen, rejected, cfg, seed=0)
            for mode, t, n_rows in (("vectorised", t_vec, vec_rows), ("loop", t_loop, loop_rows)):
                flops = train_flops(dims, n_rows) * args.epochs * args.members
                gf = flops / t / 1e9
                rows.append({"data": kind, "mode": mode, "batch_size": bs, "full_batch": full,
                             "rows_per_epoch": n_rows, "seconds": t, "gflop": flops / 1e9, "gflops": gf,
                             "fraction_of_peak": gf / peak["peak_gflops"]})
            rows[-2]["speedup_vs_loop"] = t_loop / t_vec
    meta = {"pairs": args.pairs, "dim": args.dim, "members": args.members, "widths": args.widths,
            "epochs": args.epochs, "threads": threads, "matmul_peak": peak, "torch": torch.__version__,
            "platform": platform.platform(), "processor": platform.processor(),
            "targets": {"fraction_of_peak": 0.5, "speedup_vs_loop": 5.0}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"matmul peak {peak['peak_gflops']:.1f} GFLOP/s ({threads} threads; by size "
          + ", ".join(f"{n}: {v:.1f}" for n, v in peak["by_size"].items()) + ")")
    print(f"{args.members} members x {args.epochs} epochs, {args.pairs} pairs of {args.dim}-dim, MLP {dims}")
    print(f"{'data':<9} {'mode':<11} {'batch':>6} {'rows/ep':>8} {'seconds':>9} {'GFLOP':>8} {'GFLOP/s':>8} "
          f"{'% peak':>7} {'speedup':>8}")
    for r in rows:
        sp = f"{r['speedup_vs_loop']:.2f}x" if "speedup_vs_loop" in r else ""
        print(f"{r['data']:<9} {r['mode']:<11} {r['batch_size']:>6} {r['rows_per_epoch']:>8} {r['seconds']:>9.2f} "
              f"{r['gflop']:>8.1f} {r['gflops']:>8.1f} {100 * r['fraction_of_peak']:>6.1f}% {sp:>8}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
