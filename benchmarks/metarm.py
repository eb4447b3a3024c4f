"""MetaRM vs plain BT on embedding heads: does the meta step help on shifted data? (METHODS §4)

Protocol (cheap on CPU: frozen MiniLM embeddings, MLP heads):

- train: ../shared/data/hh_rlhf_harmless.jsonl, 90/10 split by prompt hash
  (``PreferenceTable.split(0.1)``, salt "rewardlab", as elsewhere); in-distribution = the 10%.
- meta set (unlabelled, shifted): ../shared/data/alpacaeval_modelpairs.jsonl split 50/50 by prompt
  hash (salt "metarm"); the meta half's prompts become groups of their distinct model outputs
  (chosen and rejected pooled, up to ``--max-responses`` per prompt; labels unused).
- shifted test sets: the *other* half's model pairs (chosen = the stronger model); GPT-4-judged
  AlpacaEval pairs (../shared/data/alpacaeval_gpt4_judged.jsonl) on the held-out half's prompts
  and, separately, on the meta half's prompts (whose responses MetaRM saw unlabelled);
  ../shared/data/pandalm_test.jsonl (human labels).
- head: MLP 384 → 1024 → 512 → 1, one member, Adam lr 1e-3, batch 128, early stopping on a 10%
  split of the training pairs (``fit_head`` defaults otherwise); MetaRM via ``fit_head(meta=...)``:
  before every step θ′ = θ + η∇J on ``--meta-batch`` groups, the BT gradient taken at θ′.
- η grid including 0 (plain BT: the same code path, identical to no meta); seeds 0 1 2.
- J columns: the difference objective (2/k²)Σσ(|r_i − r_j|) of the trained heads, mean over the
  meta groups and over the held-out half's groups (what MetaRM's ascent pushes up).

Embeddings: MiniLM (``EmbedSpec(model="minilm", pooling="mean", max_length=256)``) through the
embedding cache (~/.cache/rewardlab/embeddings), so a rerun embeds nothing.

    python benchmarks/metarm.py                    # writes benchmarks/results/metarm.{json,md}
    python benchmarks/metarm.py --etas 0 1 --seeds 0 --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from rewardlab.data import PreferenceTable, load_preferences
from rewardlab.embed.extract import EmbedSpec, embed_texts
from rewardlab.heads import HeadConfig, fit_head
from rewardlab.data.groups import group_responses
from rewardlab.objectives.metarm import difference_objective

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SPEC = EmbedSpec(model="minilm", pooling="mean", max_length=256)


class Items:
    """Distinct (prompt, response) items and their embedding rows; pairs and groups index into it."""

    def __init__(self):
        self.prompts, self.responses, self.index = [], [], {}

    def add(self, prompt, response) -> int:
        key = (json.dumps(prompt, sort_keys=True) if not isinstance(prompt, str) else prompt, response)
        if key not in self.index:
            self.index[key] = len(self.prompts)
            self.prompts.append(prompt)
            self.responses.append(response)
        return self.index[key]

    def pairs(self, table: PreferenceTable) -> tuple[np.ndarray, np.ndarray]:
        c = [self.add(p, x) for p, x in zip(table["prompt"], table["chosen"])]
        r = [self.add(p, x) for p, x in zip(table["prompt"], table["rejected"])]
        return np.asarray(c), np.asarray(r)

    def groups(self, table: PreferenceTable, max_responses: int) -> tuple[np.ndarray, dict]:
        """[G, K] row indices, -1 padding, and the grouping report."""
        g = group_responses(table, max_responses)
        K = max(len(r) for r in g.responses)
        out = np.full((len(g), K), -1, dtype=np.int64)
        for i, (p, rs) in enumerate(zip(g.prompts, g.responses)):
            out[i, :len(rs)] = [self.add(p, r) for r in rs]
        return out, g.report


def build(args) -> dict:
    """Tables, index arrays into one item list, and the embeddings of every item."""
    hh_train, hh_val = load_preferences(DATA / "hh_rlhf_harmless.jsonl").split(0.1)
    # split(0.5) puts about half the prompts on each side: "meta" = the second side
    mp_test, mp_meta = load_preferences(DATA / "alpacaeval_modelpairs.jsonl").split(0.5, salt="metarm")
    meta_prompts = {mp_meta.prompt_key(i) for i in range(len(mp_meta))}
    gpt4 = load_preferences(DATA / "alpacaeval_gpt4_judged.jsonl")
    in_meta = [gpt4.prompt_key(i) in meta_prompts for i in range(len(gpt4))]
    gpt4_heldout = gpt4.select([i for i, m in enumerate(in_meta) if not m])
    gpt4_meta = gpt4.select([i for i, m in enumerate(in_meta) if m])
    panda = load_preferences(DATA / "pandalm_test.jsonl")
    if args.quick:
        rng = np.random.default_rng(0)
        hh_train = hh_train.select(np.sort(rng.permutation(len(hh_train))[:300]).tolist())
    items = Items()
    train = items.pairs(hh_train)
    tables = {"hh_val": hh_val, "modelpairs_heldout": mp_test, "gpt4_heldout": gpt4_heldout,
              "gpt4_meta_prompts": gpt4_meta, "pandalm": panda}
    tests = {k: items.pairs(t) for k, t in tables.items()}
    # a reference: "the longer response wins" (characters; a tie counts as wrong)
    longer = {k: float(np.mean([len(c) > len(r) for c, r in zip(t["chosen"], t["rejected"])])) for k, t in tables.items()}
    meta_groups, meta_report = items.groups(mp_meta, args.max_responses)
    heldout_groups, heldout_report = items.groups(mp_test, args.max_responses)
    t0 = time.perf_counter()
    emb = embed_texts(items.prompts, items.responses, SPEC, batch_size=32, log=print)
    print(f"{len(items.prompts)} items, {emb.stats['n_cached']} from cache, {time.perf_counter() - t0:.1f} s")
    return {"X": emb.embeddings, "train": train, "tests": tests, "meta_groups": meta_groups,
            "heldout_groups": heldout_groups, "longer_wins": longer,
            "sizes": {"hh_train": len(hh_train), **{k: len(v[0]) for k, v in tests.items()},
                      "meta_groups": meta_report, "heldout_groups": heldout_report,
                      "items": len(items.prompts)}}


def mean_J(rewards: np.ndarray, groups: np.ndarray) -> float:
    mask = torch.from_numpy(groups >= 0)
    r = torch.from_numpy(rewards[np.where(groups >= 0, groups, 0)])
    return float(difference_objective(r, mask))


def head_config(args) -> HeadConfig:
    return HeadConfig(kind="mlp", members=1, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr)


def gradient_scale(data: dict, seed: int, args) -> dict:
    """‖∇J‖ and ‖θ‖ of a freshly initialised head on the first meta batch: η‖∇J‖/‖θ‖ is the size
    of the meta perturbation relative to the weights (at the start of training)."""
    from rewardlab.heads.config import as_meta, member_seed
    from rewardlab.heads.trainer import Trainer

    x = torch.from_numpy(data["X"])
    meta = as_meta({"groups": data["meta_groups"], "eta": 1.0, "batch": args.meta_batch}, len(x))
    t = Trainer(x, *data["train"], "bt", None, head_config(args), seed, [member_seed(seed, 0)], None, None, meta)
    t._meta_J(t.model, 0).backward()
    grad = float(torch.sqrt(sum((p.grad ** 2).sum() for p in t.model.parameters())))
    weight = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in t.model.parameters())))
    return {"grad_J_norm": grad, "param_norm": weight}


def run_cell(data: dict, eta: float, seed: int, args) -> dict:
    cfg = head_config(args)
    meta = {"groups": data["meta_groups"], "eta": eta, "batch": args.meta_batch}
    t0 = time.perf_counter()
    head = fit_head(data["X"], *data["train"], objective="bt", config=cfg, seed=seed, meta=meta)
    seconds = time.perf_counter() - t0
    p = head.predict(data["X"])
    acc = {k: float(np.mean(p[c] > p[r])) for k, (c, r) in data["tests"].items()}
    return {"eta": eta, "seed": seed, "accuracy": acc, "J_meta": mean_J(p, data["meta_groups"]),
            "J_heldout": mean_J(p, data["heldout_groups"]), "epochs": head.info["epochs"][0],
            "best_epoch": head.info["best_epoch"][0], "steps": head.info["steps"], "seconds": seconds,
            "meta": head.info.get("meta")}


COLUMNS = [("hh_val", "HH val (in-dist.)"), ("modelpairs_heldout", "AlpacaEval model pairs, held-out half"),
           ("gpt4_heldout", "AlpacaEval GPT-4-judged, held-out prompts"),
           ("gpt4_meta_prompts", "AlpacaEval GPT-4-judged, meta prompts"), ("pandalm", "PandaLM test")]


def summarise(cells: list[dict], etas: list[float]) -> dict:
    """Per η: mean ± std over seeds, and the paired difference to η = 0 (same seed)."""
    base = {c["seed"]: c for c in cells if c["eta"] == 0}
    out = {}
    for eta in etas:
        runs = sorted((c for c in cells if c["eta"] == eta), key=lambda c: c["seed"])
        row = {}
        for key, _ in COLUMNS:
            v = np.array([c["accuracy"][key] for c in runs])
            d = np.array([c["accuracy"][key] - base[c["seed"]]["accuracy"][key] for c in runs if c["seed"] in base])
            row[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                        "per_seed": v.tolist(), "delta_mean": float(d.mean()) if len(d) else None,
                        "delta_std": float(d.std(ddof=1)) if len(d) > 1 else None}
        for key in ("J_meta", "J_heldout", "epochs", "seconds"):
            row[key] = float(np.mean([c[key] for c in runs]))
        out[str(eta)] = row
    return out


def write(summary: dict, cells: list[dict], data: dict, args, seconds: float) -> str:
    sizes = data["sizes"]
    head = ["η", *[f"{name} (n={sizes[k]})" for k, name in COLUMNS], "J meta groups", "J held-out groups", "epochs"]
    lines = ["# MetaRM vs plain BT on embedding heads", "",
             "Protocol (benchmarks/metarm.py): frozen MiniLM embeddings (mean pooling, max length 256); MLP head "
             f"384→1024→512→1, one member, Adam lr {args.lr}, batch {args.batch_size}, up to {args.epochs} epochs with "
             "early stopping on 10% of the training pairs. Train: HH-RLHF harmless, 90% of prompts "
             f"({sizes['hh_train']} pairs). Meta set: {sizes['meta_groups']['groups']} AlpacaEval prompts (a prompt-hash half "
             f"of alpacaeval_modelpairs) with {sizes['meta_groups']['responses']} distinct model outputs, unlabelled; "
             f"meta batch {args.meta_batch} prompts before every step; η = 0 is plain BT. Test sets: the other half's "
             "model pairs (chosen = the stronger model, noisy), GPT-4-judged AlpacaEval pairs split by the same prompt "
             "halves, PandaLM (human labels). Accuracy mean ± std over seeds "
             f"{sorted({c['seed'] for c in cells})}; Δ = paired difference to η = 0 (same seed), mean ± std. "
             "J = (2/k²)Σ_{i<j}σ(|r_i − r_j|) of the trained head, mean over groups. "
             f"Meta perturbation at initialisation: ‖∇J‖ = {data['scale']['grad_J_norm']:.3g}, "
             f"‖θ‖ = {data['scale']['param_norm']:.3g}, so η‖∇J‖/‖θ‖ = "
             + ", ".join(f"{data['scale']['grad_J_norm'] * float(e) / data['scale']['param_norm']:.2g} (η = {e})"
                         for e in summary if float(e) > 0) + ".", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| longer response wins (reference) | " + " | ".join(f"{data['longer_wins'][k]:.3f}" for k, _ in COLUMNS)
                 + " | | | |")
    for eta, row in summary.items():
        cols = []
        for key, _ in COLUMNS:
            s = row[key]
            cell = f"{s['mean']:.3f} ± {s['std']:.3f}"
            if float(eta) != 0 and s["delta_mean"] is not None:
                cell += f" (Δ {s['delta_mean']:+.3f} ± {s['delta_std'] or 0:.3f})"
            cols.append(cell)
        lines.append(f"| {eta} | " + " | ".join(cols) + f" | {row['J_meta']:.4f} | {row['J_heldout']:.4f} | {row['epochs']:.1f} |")
    # an automatic reading: which η moved which set by more than twice its paired standard error
    notes = []
    n = len({c["seed"] for c in cells})
    for eta, row in summary.items():
        if float(eta) == 0:
            continue
        moved = []
        for key, name in COLUMNS:
            s = row[key]
            if s["delta_std"] is None:  # one seed: no spread to compare with
                moved.append(f"{name} {s['delta_mean']:+.3f} (one seed)")
                continue
            se = s["delta_std"] / np.sqrt(n)
            if abs(s["delta_mean"]) > max(2 * se, 0.005):
                moved.append(f"{name} {s['delta_mean']:+.3f}")
        notes.append(f"- η = {eta}: " + ("; ".join(moved) if moved else "no set moved by more than twice its paired "
                                          "standard error (or 0.005)") + ".")
    lines += ["", ("Caveat on the design: the shift here is one of task as well as of distribution (a harmlessness "
                   "RM judged on helpfulness pairs, where the longer, more helpful answer usually wins), so accuracies "
                   "below 0.5 on the shifted sets mean the HH signal points the wrong way there; a move towards 0.5 "
                   "can come from flatter rewards (lower J) rather than from better discrimination. The paper's "
                   "setting (the same preference, responses of a newer policy) is not available offline here.")]
    lines += ["", ("Automatic reading (|mean Δ| > 2 × paired standard error and > 0.005; "
                   f"{n} seeds are few, so treat this as a screen, not a test):"), *notes, "",
              f"Total time {seconds:.0f} s on {platform.machine()} ({torch.get_num_threads()} torch threads)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--etas", nargs="+", type=float, default=[0.0, 0.1, 1.0, 10.0, 100.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--meta-batch", type=int, default=64, help="meta groups (prompts) per step")
    ap.add_argument("--max-responses", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--quick", action="store_true", help="300 training pairs (a smoke run; writes nothing)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    if 0.0 not in args.etas:
        args.etas = [0.0, *args.etas]
    t0 = time.perf_counter()
    data = build(args)
    data["scale"] = gradient_scale(data, args.seeds[0], args)
    cells = []
    for seed in args.seeds:
        for eta in args.etas:
            cell = run_cell(data, eta, seed, args)
            cells.append(cell)
            print(f"eta {eta:g} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in cell["accuracy"].items())
                  + f", J_meta {cell['J_meta']:.4f}, epochs {cell['epochs']} ({cell['seconds']:.1f} s)", flush=True)
    summary = summarise(cells, args.etas)
    seconds = time.perf_counter() - t0
    md = write(summary, cells, data, args, seconds)
    print(md)
    if args.quick:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metarm.json").write_text(json.dumps({
        "protocol": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"embedding": SPEC.as_dict()},
        "sizes": data["sizes"], "longer_wins": data["longer_wins"], "gradient_scale": data["scale"], "summary": summary, "cells": cells, "seconds": seconds}, indent=1) + "\n")
    (args.out / "metarm.md").write_text(md)


if __name__ == "__main__":
    main()
