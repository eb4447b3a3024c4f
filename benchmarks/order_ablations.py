"""Order consistency, cheap ablations (FIDELITY.md seed 001; issue 22): which difference between
today's study and the paper carries the sign of BT vs classification?

Today's setting (``configs/study_order_consistency.yaml``, ``benchmarks/results/study.md``):
the AlpacaEval pool (min 3 responses per prompt, 20% of prompts held out by hash), frozen MiniLM
mean-pooled embeddings (max length 256), an MLP head (1024-512, full batch, patience 3 on a 10%
validation split) and a LightGBM head (300 rounds at lr 0.1, early stopping after 20), noise
scale s = std of all golden rewards, ties counted as wrong in golden pairwise accuracy, pairs
drawn independently (items compared again and again). Each ablation changes ONE of these:

- ``fixed_scale``: s fixed so that cross-prompt pairs err 5% at beta 10
  (``rewardlab.data.simulate.scale_for_error_rate``; FIDELITY's choice for the full design);
- ``paper_stopping``: the paper's rule from its public code (Sun et al., step5_train_rms.py /
  networks.py: 30 epochs, last weights, a fifth of the data held out and never used to stop):
  ``early_stopping: false, val_fraction: 0.2``; LightGBM all 300 rounds;
- ``tie_half``: a tie in the predictions counts 0.5 in golden pairwise accuracy (evaluation
  only: the baseline's predictions, so Spearman and best-of-N are the baseline's);
- ``sparse``: every item in at most one pair (``max_per_item: 1``), at the same quantity.

Golden: ``--golden-model DIR`` scores the pool with a saved reward model (today's:
``runs/minilm_hh/model`` from ``configs/minilm_hh.yaml``, ~25 min of training). Without it, a
cheap stand-in of the same kind (what a 2-core machine shared with other jobs affords): an MLP
ensemble (5 x 256) on the same frozen MiniLM mean embeddings, trained with BT on
hh_rlhf_harmless (a harmlessness reward scoring helpfulness data, as today). Golden and features
then share the encoder *and* the pooling, so the target is exactly learnable by the heads: even
easier than today's fine-tuned-MiniLM golden, and further from the paper (whose golden is a
separate strong RM). Which golden ran is recorded in the results.

Statistics: per (condition, head, beta), BT − classification per seed (same seed: the same pairs
for both objectives), paired t-test and 95% t interval; the ablation's effect is the
difference-in-differences against the baseline per seed, also paired over seeds. Holm over all
tests of a family (one family per metric and kind of test). The power statement is computed
from the design before any cell runs and written first.

    nice -n 15 python benchmarks/order_ablations.py --work /tmp/order_ablations      # resumable
    python benchmarks/order_ablations.py --work /tmp/order_ablations --summarize-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = REPO.parent / "shared" / "data"

HEADS = {
    "mlp": {"kind": "mlp", "members": 1, "widths": [1024, 512], "batch_size": 10240, "epochs": 30, "patience": 3,
            "lr": 1.0e-3},
    "gbdt": {"kind": "gbdt", "members": 1, "gbdt": {"n_estimators": 300, "learning_rate": 0.1, "num_threads": 1,
                                                     "early_stopping_rounds": 20}},
}
CONDITIONS = ("baseline", "fixed_scale", "paper_stopping", "tie_half", "sparse")
TRAINED = ("baseline", "fixed_scale", "paper_stopping", "sparse")  # tie_half re-reads the baseline
METRICS = {"pairwise_accuracy": "golden pairwise accuracy", "spearman": "per-prompt Spearman",
           "bon_7": "best-of-7 gain"}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- setting
def prepare(work: Path, golden_model: str | None, *, max_length: int = 256, pool_prompts: int | None = None,
            golden_pairs: int | None = None, log=print) -> dict[str, Any]:
    """The pool with its golden reward and the MiniLM mean embeddings (both cached in ``work``).

    ``pool_prompts`` keeps the first prompts of the pool, ``golden_pairs`` the first pairs of the
    golden's training data, ``max_length`` the tokens embedded: the knobs that trade fidelity to
    today's setting (all prompts, all pairs, 256) for CPU time.
    """
    from rewardlab.embed.extract import EmbedSpec, embed_texts
    from rewardlab.study.golden import ResponsePool, build_pool

    data = [str(DATA / "alpacaeval_modelpairs.jsonl"), str(DATA / "alpacaeval_gpt4_judged.jsonl")]
    if golden_model:
        golden = {"kind": "reward_model", "model": golden_model, "batch_size": 32}
    else:
        train = DATA / "hh_rlhf_harmless.jsonl"
        if golden_pairs:
            sub = work / f"hh_rlhf_harmless_first{golden_pairs}.jsonl"
            if not sub.is_file():
                sub.write_text("".join(train.read_text().splitlines(keepends=True)[:golden_pairs]))
            train = sub
        golden = {"kind": "embedding_head", "train_data": str(train),
                  "embedding": {"model": "minilm", "pooling": "mean", "max_length": max_length},
                  "head": {"kind": "mlp", "members": 5, "widths": [256], "epochs": 30, "patience": 3}}
    key = _hash({"data": data, "golden": golden, "min_responses": 3, "pool_prompts": pool_prompts,
                 "max_length": max_length})
    pool_file = work / f"pool-{key}.parquet"
    if pool_file.is_file():
        pool = ResponsePool.read(pool_file)
    else:
        pool = build_pool(data, golden, min_responses=3, max_prompts=pool_prompts, log=log)
        pool.write(pool_file)
    emb_file = work / f"emb-minilm-mean-{key}.npy"
    if emb_file.is_file():
        X = np.load(emb_file)
    else:
        spec = EmbedSpec(model="minilm", pooling="mean", layer=-1, max_length=max_length)
        X = embed_texts(pool.prompt, pool.response, spec, batch_size=32, log=log).embeddings
        np.save(emb_file, X.astype(np.float32))
    is_test = pool.test_mask(0.2, "rewardlab")
    return {"pool": pool, "X": X, "is_test": is_test, "golden": golden, "key": key,
            "golden_description": pool.info.get("golden_description", "")}


def design(args) -> list[dict[str, Any]]:
    """Every cell, seed-major: an interrupted run has every condition at the seeds it finished."""
    cells = []
    for seed in range(args.seeds):
        for beta in args.betas:
            for head in args.heads:
                for cond in TRAINED:
                    for obj in ("bt", "classification"):
                        cells.append({"condition": cond, "head": head, "beta": beta, "seed": seed, "objective": obj,
                                      "quantity": args.quantity, "pairing": args.pairing})
    return cells


def run_cell(cell: dict[str, Any], setting: dict[str, Any], fixed_scale: float) -> dict[str, Any]:
    from rewardlab.data.simulate import simulate_pairs
    from rewardlab.eval.metrics import accuracy_from_counts, best_of_n_gain, golden_pair_counts, per_prompt_spearman
    from rewardlab.heads import HeadConfig, fit_head

    t0 = time.perf_counter()
    pool, X, is_test = setting["pool"], setting["X"], setting["is_test"]
    tr, te = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    cond = cell["condition"]
    beta = cell["beta"]
    sim = simulate_pairs(pool.golden[tr], pool.prompt_id[tr], n=cell["quantity"], pairing=cell["pairing"],
                         beta=None if beta < 0 else beta, scale=fixed_scale if cond == "fixed_scale" else "std",
                         seed=cell["seed"], max_per_item=1 if cond == "sparse" else None)
    head = dict(HEADS[cell["head"]])
    if cond == "paper_stopping":
        head.update(early_stopping=False, val_fraction=0.2)
    cfg = HeadConfig.model_validate(head)
    fitted = fit_head(X, tr[sim.chosen], tr[sim.rejected], objective=cell["objective"], config=cfg, seed=cell["seed"])
    pred = fitted.predict(X[te])
    g, pid = pool.golden[te], pool.prompt_id[te]
    counts = golden_pair_counts(pred, g, pid)
    bon = best_of_n_gain(pred, g, pid, [7], n_perm=100, seed=cell["seed"])
    info = fitted.info
    uses = np.bincount(np.concatenate([sim.chosen, sim.rejected]))
    return {**cell, "key": cell_key(cell),
            "pairwise_accuracy": accuracy_from_counts(counts, "wrong"),
            "pairwise_accuracy_half": accuracy_from_counts(counts, "half"),
            "tied_fraction": counts["tied"] / counts["pairs"],
            "spearman": per_prompt_spearman(pred, g, pid), "bon_7": bon[7],
            "label_error_rate": sim.label_error_rate, "scale": float(np.mean(sim.scale)),
            "max_uses": int(uses.max()), "mean_uses_of_used": float(uses[uses > 0].mean()),
            "epochs": (info.get("epochs") or info.get("best_iteration") or [None])[0],
            "seconds": time.perf_counter() - t0}


def cell_key(cell: dict[str, Any]) -> str:
    return _hash({k: cell[k] for k in ("condition", "head", "beta", "seed", "objective", "quantity", "pairing")})


def read_rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            rows[r["key"]] = r
    return rows


# ----------------------------------------------------------------------------- statistics
def power_statement(n_seeds: int, m: int, sd_acc: float = 0.014) -> dict[str, Any]:
    from study_summary import min_detectable_effect

    first = min_detectable_effect(n_seeds, 0.05 / m)
    last = min_detectable_effect(n_seeds, 0.05)
    return {"n_seeds": n_seeds, "tests_per_family": m, "mde_sd_first_holm_step": first, "mde_sd_uncorrected": last,
            "sd_assumed": sd_acc, "mde_accuracy_first_holm_step": first * sd_acc,
            "mde_accuracy_difference_in_differences": first * sd_acc * np.sqrt(2),
            "text": (f"{n_seeds} paired seeds per setting, {m} tests per family: a paired t-test at Holm's first step "
                     f"(alpha = 0.05/{m}) has 80% power for a mean difference of {first:.2f} SD of the paired "
                     f"differences ({last:.2f} SD at the last step, alpha = 0.05). At the SD of paired accuracy "
                     f"differences in today's study ({sd_acc}) that is {first * sd_acc:.3f} accuracy for "
                     f"BT − classification and about {first * sd_acc * np.sqrt(2):.3f} for an ablation's change of it "
                     f"(difference in differences, SD about sqrt(2) larger if the two are independent). Today's "
                     f"BT − classification differences were +0.02 to +0.06 accuracy: a sign flip of that size is "
                     f"detectable only in the larger part of that range.")}


def summarize(rows: list[dict], args, setting_info: dict, power: dict) -> dict[str, Any]:
    from study_summary import paired_test

    from rewardlab.eval.stats import holm

    by = {}
    for r in rows:
        by[(r["condition"], r["head"], r["beta"], r["seed"], r["objective"])] = r

    def value(cond, head, beta, seed, obj, metric):
        src = "baseline" if cond == "tie_half" else cond
        r = by.get((src, head, beta, seed, obj))
        if r is None:
            return None
        if metric == "pairwise_accuracy" and cond == "tie_half":
            return r["pairwise_accuracy_half"]
        return r[metric]

    def diffs(cond, head, beta, metric):
        out = {}
        for seed in range(args.seeds):
            b, c = value(cond, head, beta, seed, "bt", metric), value(cond, head, beta, seed, "classification", metric)
            if b is not None and c is not None:
                out[seed] = b - c
        return out

    results: dict[str, Any] = {"metrics": {}}
    for metric in METRICS:
        conds = CONDITIONS if metric == "pairwise_accuracy" else tuple(c for c in CONDITIONS if c != "tie_half")
        sign, did = [], []
        for cond in conds:
            for head in args.heads:
                for beta in args.betas:
                    d = diffs(cond, head, beta, metric)
                    t = paired_test(np.array(list(d.values())))
                    sign.append({"condition": cond, "head": head, "beta": beta, **t})
                    if cond != "baseline":
                        base = diffs("baseline", head, beta, metric)
                        common = sorted(set(d) & set(base))
                        dd = np.array([d[s] - base[s] for s in common])
                        did.append({"condition": cond, "head": head, "beta": beta, **paired_test(dd)})
        for family in (sign, did):
            h = holm([r["p"] for r in family])
            for r, p, rej in zip(family, h["p_adjusted"], h["reject"]):
                r["p_holm"], r["reject"] = p, bool(rej)
        results["metrics"][metric] = {"bt_minus_cls": sign, "change_vs_baseline": did}
    cond_stats = {}
    for cond in TRAINED:
        sel = [r for r in rows if r["condition"] == cond]
        if sel:
            cond_stats[cond] = {"label_error_rate_by_beta": {str(b): float(np.mean([r["label_error_rate"] for r in sel
                                                                                  if r["beta"] == b]))
                                                             for b in args.betas if any(r["beta"] == b for r in sel)},
                                "scale": float(np.mean([r["scale"] for r in sel])),
                                "max_uses": int(max(r["max_uses"] for r in sel)),
                                "mean_uses_of_used": float(np.mean([r["mean_uses_of_used"] for r in sel])),
                                "tied_fraction_mean": {h: float(np.mean([r["tied_fraction"] for r in sel if r["head"] == h]))
                                                       for h in args.heads if any(r["head"] == h for r in sel)},
                                "epochs_mean": {h: float(np.mean([r["epochs"] for r in sel if r["head"] == h]))
                                                for h in args.heads if any(r["head"] == h for r in sel)},
                                "cell_seconds_mean": float(np.mean([r["seconds"] for r in sel]))}
    results["conditions"] = cond_stats
    results["n_cells"] = len(rows)
    results["power"] = power
    results["setting"] = setting_info
    return results


def _ci(r):
    if r["mean"] is None:
        return "–"
    if r["low"] is None:
        return f"{r['mean']:+.3f} (n={r['n_seeds']})"
    return f"{r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"


def _p(p):
    return "–" if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def _beta(b):
    return "noiseless" if b < 0 else f"{b:g}"


def write_markdown(res: dict, args, path: Path, command: str) -> None:
    s = res["setting"]
    lines = [
        "# Order consistency: cheap ablations in today's setting (FIDELITY seed 001)",
        "",
        f"Script `benchmarks/order_ablations.py`; command: `{command}`. {res['n_cells']} cells finished of "
        f"{len(TRAINED) * len(args.heads) * len(args.betas) * args.seeds * 2}.",
        "",
        f"Setting: {s['pool']}; golden: {s['golden_description']}; features: frozen MiniLM, mean pooling, max "
        f"length {args.max_length}; {args.pairing} pairs, {args.quantity} per cell; heads as in "
        f"`configs/study_order_consistency.yaml` (MLP 1024-512 full batch, patience 3 on 10%; LightGBM 300 rounds, "
        f"lr 0.1, early stopping 20); seeds 0..{args.seeds - 1}, paired (a seed gives both objectives the same pairs "
        f"and split). Conditions (one change each against the baseline): fixed_scale (s = {s['fixed_scale']:.4g} "
        f"against the global std {s['global_scale']:.4g}, calibrated so cross-prompt pairs err 5% at beta 10), "
        f"paper_stopping (30 epochs / 300 rounds, last weights, 20% held out unused), tie_half (ties count 0.5; "
        f"evaluation only), sparse (every item in at most one pair).",
        "",
        "## Power (written before the run)",
        "",
        res["power"]["text"],
        "",
        "## Conditions as run",
        "",
        "| condition | s | label error by beta | max comparisons of an item | mean comparisons of a compared item | "
        "tied test pairs (mean, by head) | epochs / rounds (mean, by head) | s per cell |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cond, c in res["conditions"].items():
        err = ", ".join(f"{_beta(float(b))}: {v:.3f}" for b, v in c["label_error_rate_by_beta"].items())
        ties = ", ".join(f"{h} {v:.3f}" for h, v in c["tied_fraction_mean"].items())
        ep = ", ".join(f"{h} {v:.1f}" for h, v in c["epochs_mean"].items())
        lines.append(f"| {cond} | {c['scale']:.4g} | {err} | {c['max_uses']} | {c['mean_uses_of_used']:.2f} | {ties} "
                     f"| {ep} | {c['cell_seconds_mean']:.1f} s |")
    for metric, title in METRICS.items():
        m = res["metrics"][metric]
        lines += ["", f"## {title}", "",
                  "BT − classification per condition (mean over seeds, 95% t interval; p raw and Holm over the "
                  f"{len(m['bt_minus_cls'])} tests of this table). **Bold**: Holm p ≤ 0.05.", "",
                  "| condition | head | beta | seeds | BT − cls [95% CI] | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
        for r in m["bt_minus_cls"]:
            ci = _ci(r)
            lines.append(f"| {r['condition']} | {r['head']} | {_beta(r['beta'])} | {r['n_seeds']} | "
                         f"{'**' + ci + '**' if r.get('reject') else ci} | {_p(r['p'])} | {_p(r.get('p_holm'))} |")
        lines += ["", f"Change of BT − classification against the baseline (difference in differences per seed; Holm "
                      f"over the {len(m['change_vs_baseline'])} tests). Negative: the ablation moves the comparison "
                      f"towards classification.", "",
                  "| condition | head | beta | seeds | change [95% CI] | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
        for r in m["change_vs_baseline"]:
            ci = _ci(r)
            lines.append(f"| {r['condition']} | {r['head']} | {_beta(r['beta'])} | {r['n_seeds']} | "
                         f"{'**' + ci + '**' if r.get('reject') else ci} | {_p(r['p'])} | {_p(r.get('p_holm'))} |")
    lines += ["", "## Reading", "", verdict_text(res), ""]
    path.write_text("\n".join(lines) + "\n")


def verdict_text(res: dict) -> str:
    out = []
    acc = res["metrics"]["pairwise_accuracy"]
    for cond in CONDITIONS:
        rows = [r for r in acc["bt_minus_cls"] if r["condition"] == cond and r["mean"] is not None]
        if not rows:
            continue
        pos = sum(r["mean"] > 0 for r in rows)
        sig_bt = sum(r.get("reject", False) and r["mean"] > 0 for r in rows)
        sig_cls = sum(r.get("reject", False) and r["mean"] < 0 for r in rows)
        out.append(f"- {cond}: BT ahead in {pos} of {len(rows)} head × beta settings on accuracy; Holm-significant "
                   f"BT better {sig_bt}, classification better {sig_cls}.")
    for metric in METRICS:
        flips = [r for r in res["metrics"][metric]["change_vs_baseline"] if r.get("reject")]
        if flips:
            out.append(f"- {METRICS[metric]}: significant changes against the baseline: "
                       + "; ".join(f"{r['condition']} {r['head']} beta {_beta(r['beta'])} {r['mean']:+.3f}" for r in flips))
        else:
            out.append(f"- {METRICS[metric]}: no ablation changes BT − classification detectably (Holm).")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/order_ablations"))
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "order_ablations")
    ap.add_argument("--golden-model", default=None, help="a saved reward model as golden (today's: runs/minilm_hh/model)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--heads", nargs="+", default=["mlp", "gbdt"], choices=sorted(HEADS))
    ap.add_argument("--betas", nargs="+", type=float, default=[0.5, 10.0])
    ap.add_argument("--quantity", type=int, default=1200, help="pairs per cell (sparse: at most half the training items)")
    ap.add_argument("--pairing", default="cross_prompt", choices=["same_prompt", "cross_prompt"])
    ap.add_argument("--max-cells", type=int, default=None, help="run at most this many pending cells")
    ap.add_argument("--max-prompts", type=int, default=None, help="tiny runs: keep the first prompts of the pool")
    ap.add_argument("--pool-prompts", type=int, default=None, help="keep the first prompts of the pool (CPU budget)")
    ap.add_argument("--golden-pairs", type=int, default=None, help="train the stand-in golden on the first pairs only")
    ap.add_argument("--max-length", type=int, default=256, help="tokens embedded (today's: 256)")
    ap.add_argument("--summarize-only", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(1)
    from rewardlab.data.simulate import golden_scale, scale_for_error_rate

    args.work.mkdir(parents=True, exist_ok=True)
    setting = prepare(args.work, args.golden_model, max_length=args.max_length, pool_prompts=args.pool_prompts,
                      golden_pairs=args.golden_pairs)
    if args.max_prompts:
        keep = np.flatnonzero(setting["pool"].prompt_id < args.max_prompts)
        setting.update(pool=setting["pool"].select(keep), X=setting["X"][keep], is_test=setting["is_test"][keep])
    pool, tr = setting["pool"], np.flatnonzero(~setting["is_test"])
    fixed = scale_for_error_rate(pool.golden[tr], pool.prompt_id[tr], beta=10, error_rate=0.05, pairing="cross_prompt")
    cells = design(args)
    m = len(CONDITIONS) * len(args.heads) * len(args.betas)
    power = power_statement(args.seeds, m)
    info = {"pool": f"AlpacaEval pool ({len(pool)} items, {pool.n_prompts} prompts, "
                    f"{int(len(np.unique(pool.prompt_id[setting['is_test']])))} test prompts)",
            "golden": setting["golden"], "golden_description": setting["golden_description"],
            "fixed_scale": fixed, "global_scale": golden_scale(pool.golden[tr]),
            "train_items": int(len(tr)), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    store = args.work / f"cells-{setting['key']}{'-tiny' if args.max_prompts else ''}.jsonl"
    print(f"design: {len(cells)} cells; {power['text']}", flush=True)
    done = read_rows(store)
    if not args.summarize_only:
        pending = [c for c in cells if cell_key(c) not in done]
        if args.max_cells is not None:
            pending = pending[:args.max_cells]
        t0 = time.perf_counter()
        for k, cell in enumerate(pending, 1):
            row = run_cell(cell, setting, fixed)
            with store.open("a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            done[row["key"]] = row
            rate = (time.perf_counter() - t0) / k
            print(f"[{k}/{len(pending)}] {cell['condition']} {cell['head']} beta={cell['beta']:g} seed={cell['seed']} "
                  f"{cell['objective']}: acc {row['pairwise_accuracy']:.3f} ({row['seconds']:.1f} s; "
                  f"~{rate * (len(pending) - k) / 60:.0f} min left)", flush=True)
    rows = [done[cell_key(c)] for c in cells if cell_key(c) in done]
    res = summarize(rows, args, info, power)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    res["command"] = " ".join(["python", "benchmarks/order_ablations.py", *sys.argv[1:]])
    res["rows"] = rows
    args.results.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    write_markdown(res, args, args.results.with_suffix(".md"), res["command"])
    print(f"wrote {args.results.with_suffix('.md')} and .json ({len(rows)} cells)")


if __name__ == "__main__":
    main()
