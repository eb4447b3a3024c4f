"""Reward ensembles of 5 and WARM on MiniLM (issue 23, item 4; docs/ensembles.md).

Design, fixed before the run:
- Backbone MiniLM (dropout off), max_length 256; training pairs: the training side (prompt hash,
  ``val_fraction`` 0.2) of hh_rlhf_harmless, up to ``--train-pairs``; one epoch, lr 5e-5, batch 16.
- One ensemble of ``--members`` (5) trained by ``rewardlab train`` with
  ``train.ensemble: {members: 5, vary: order}``: every member starts from the same head draw and
  reads the data in its own order (so WARM may average them; docs/ensembles.md).
- Test pairs (never trained on): the validation side of hh_rlhf_harmless (in distribution) and all
  of pandalm_test (a shift: other prompts, other annotators), up to ``--test-pairs`` each.
- Arms on the same test pairs: each member; the ensemble with ``mean``, ``min`` and
  ``mean_minus_std`` (λ = 1) on standardised members; WARM (``rewardlab warm``, the members'
  weights averaged).
- Reported: accuracy with Wilson intervals per arm and test set; ensemble mean − each member,
  paired bootstrap and exact McNemar, Holm over the members; WARM − ensemble mean and WARM − the
  members' mean accuracy (paired bootstrap); the AUROC of the members' spread of the margin
  (std over members of r_c − r_r) for predicting a wrongly ordered pair (by the ensemble mean),
  with a bootstrap interval; served vs offline: the largest |reward served − reward scored
  offline| over every test item through ``rewardlab serve``'s app on 127.0.0.1.

Power (written before the run): about 370 HH + 894 PandaLM test pairs. Members of one ensemble
disagree on few pairs (discordant share q about 0.05-0.10 between the ensemble and one member),
so a paired difference has SD about sqrt(q / n): 0.006-0.009 on all 1264 pairs, 0.012-0.016 on
HH alone. At 80% power (2.8 SD) the design detects an ensemble gain of 1.8-2.5 points overall,
3.3-4.6 on HH alone: the 1-2 points ensembles usually add may be reported as inconclusive. The
spread's AUROC (about 300 wrong of 1264 pairs) has SE about 0.02: an AUROC of 0.56 is
distinguishable from 0.5.

Cost on this 2-core machine: MiniLM trains about 4 pairs/s, so 5 members of one epoch over
1470 pairs take about 30 min; scoring 1264 pairs (2528 items) with 5 members + WARM about
6-8 min; total about 40 min. Resumable and checkpointed: the ensemble resumes member by member
(``rewardlab train --resume``), WARM is written once, scores are cached per model in
``WORK/scores.json``; rerun the same command to continue.

    nice -n 10 python benchmarks/ensemble.py --work runs/ensemble_bench
    python benchmarks/ensemble.py --tiny --work /tmp/ensemble/bench      # end-to-end check, minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def config(work: Path, args) -> Path:
    cfg = {
        "output_dir": str(work / "ensemble"),
        "model": {"name_or_path": "minilm", "max_length": args.max_length},
        "data": {"train": str(DATA / "hh_rlhf_harmless.jsonl"), "val_fraction": 0.2,
                 "max_train_pairs": args.train_pairs, "max_val_pairs": args.val_pairs},
        "objective": {"name": "bt"},
        "train": {"epochs": args.epochs, "batch_size": 16, "lr": 5e-5, "seed": 0, "eval_every": 10_000,
                  "save_every": 20, "log_every": 10, "progress": False, "disable_dropout": True,
                  "reward_stats_max_pairs": 500,
                  "ensemble": {"members": args.members, "vary": "order", "aggregation": "mean"}},
    }
    if args.max_steps:
        cfg["train"]["max_steps"] = args.max_steps
    path = work / "ensemble.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def train(work: Path, cfg: Path) -> None:
    out = work / "ensemble"
    manifest = out / "ensemble.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("complete"):
        return
    again = ["--resume"] if manifest.is_file() else []
    print(f"training the ensemble{' (resuming)' if again else ''}", flush=True)
    run([sys.executable, "-m", "rewardlab.cli", "train", str(cfg), *again], work / "train.log")


def warm(work: Path) -> Path:
    out = work / "warm"
    if not (out / "model.safetensors").is_file():
        print("WARM: averaging the members", flush=True)
        run([sys.executable, "-m", "rewardlab.cli", "warm", str(work / "ensemble"), "--out", str(out), "--overwrite"],
            work / "warm.log")
    return out


def test_sets(args) -> dict:
    from rewardlab.data import load_preferences

    hh = load_preferences(str(DATA / "hh_rlhf_harmless.jsonl"))
    _, hh_test = hh.split(0.2, salt="rewardlab")  # the training run's own split (val_fraction 0.2)
    panda = load_preferences(str(DATA / "pandalm_test.jsonl"))
    sets = {"hh_heldout": hh_test, "pandalm": panda}
    return {k: t.select(list(range(min(len(t), args.test_pairs)))) for k, t in sets.items()}


def score_all(work: Path, sets: dict) -> dict:
    """Per test set: the members' standardised rewards (chosen, rejected) and WARM's; cached."""
    from rewardlab.models.ensemble import load_ensemble
    from rewardlab.models.reward_model import RewardModel

    cache = work / "scores.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    ens = None
    for name, table in sets.items():
        if f"{name}/members" not in scores:
            ens = ens or load_ensemble(work / "ensemble", aggregation="mean")
            s = ens.score_pairs(table, batch_size=32)
            scores[f"{name}/members"] = {"chosen": s["members_chosen"].tolist(), "rejected": s["members_rejected"].tolist()}
            cache.write_text(json.dumps(scores))
        if f"{name}/warm" not in scores:
            w = RewardModel.from_pretrained(work / "warm").score_pairs(table, batch_size=32)
            scores[f"{name}/warm"] = {"chosen": w["reward_chosen"].tolist(), "rejected": w["reward_rejected"].tolist()}
            cache.write_text(json.dumps(scores))
    return scores


def served_vs_offline(work: Path, sets: dict) -> dict:
    """Every test item scored through the server's app (uvicorn on 127.0.0.1) and offline."""
    import httpx
    import uvicorn

    from rewardlab.models.ensemble import load_ensemble
    from rewardlab.serve.app import create_app
    from rewardlab.serve.server import bind_socket

    ens = load_ensemble(work / "ensemble", aggregation="mean_minus_std", lam=1.0)
    prompts, responses = [], []
    for t in sets.values():
        prompts += list(t["prompt"]) * 2
        responses += list(t["chosen"]) + list(t["rejected"])
    offline = ens.score_members(prompts, responses, batch_size=32)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(ens, max_batch=32), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    got, spread = [], []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=600) as c:
            for start in range(0, len(prompts), 64):
                body = c.post("/score", json={"items": [{"prompt": p, "response": r} for p, r in
                                                        zip(prompts[start:start + 64], responses[start:start + 64])]})
                body.raise_for_status()
                got += body.json()["rewards"]
                spread += body.json()["spread"]
    finally:
        server.should_exit = True
        thread.join(60)
    return {"items": len(prompts), "aggregation": "mean_minus_std (lambda 1)",
            "max_abs_reward_difference": float(np.max(np.abs(np.asarray(got) - offline.reward))),
            "max_abs_spread_difference": float(np.max(np.abs(np.asarray(spread) - offline.spread)))}


def analyse(scores: dict, sets: dict, served: dict, args) -> dict:
    from sklearn.metrics import roc_auc_score

    from rewardlab.eval import stats
    from rewardlab.models.ensemble import aggregate, member_spread

    out: dict = {"members": args.members, "served_vs_offline": served, "sets": {}}
    for name in sets:
        mc, mr = np.asarray(scores[f"{name}/members"]["chosen"]), np.asarray(scores[f"{name}/members"]["rejected"])
        wc, wr = np.asarray(scores[f"{name}/warm"]["chosen"]), np.asarray(scores[f"{name}/warm"]["rejected"])
        n, k = mc.shape
        correct = {f"member_{j}": (mc[:, j] > mr[:, j]).astype(int) for j in range(k)}
        for how in ("mean", "min", "mean_minus_std"):
            correct[f"ensemble_{how}"] = (aggregate(mc, how, 1.0) > aggregate(mr, how, 1.0)).astype(int)
        correct["warm"] = (wc > wr).astype(int)
        acc = {a: stats.wilson_interval(int(c.sum()), n) for a, c in correct.items()}
        res: dict = {"n": n, "accuracy": {a: {key: v[key] for key in ("estimate", "low", "high")} for a, v in acc.items()}}
        # the ensemble mean against each member: paired, Holm over the members
        tests = []
        for j in range(k):
            d = stats.paired_bootstrap_difference(correct["ensemble_mean"], correct[f"member_{j}"], seed=j)
            m = stats.mcnemar_exact(correct["ensemble_mean"], correct[f"member_{j}"])
            tests.append({"member": j, "difference": d["estimate"], "low": d["low"], "high": d["high"],
                          "mcnemar_p": m["p_value"]})
        holm = stats.holm([t["mcnemar_p"] for t in tests])
        for t, p, rej in zip(tests, holm["p_adjusted"], holm["reject"]):
            t["mcnemar_p_holm"], t["reject"] = p, bool(rej)
        res["ensemble_mean_minus_member"] = tests
        members_mean = np.mean([correct[f"member_{j}"] for j in range(k)], axis=0)
        res["warm_minus_ensemble_mean"] = _diff(stats, correct["warm"], correct["ensemble_mean"])
        res["warm_minus_members_mean"] = _diff(stats, correct["warm"], members_mean)
        res["ensemble_mean_minus_members_mean"] = _diff(stats, correct["ensemble_mean"], members_mean)
        # the members' spread of the margin as a detector of wrongly ordered pairs
        wrong = 1 - correct["ensemble_mean"]
        spread = member_spread(mc - mr)
        if 0 < wrong.sum() < n:
            rng = np.random.default_rng(0)
            boots = []
            for _ in range(1000):
                i = rng.integers(0, n, n)
                if 0 < wrong[i].sum() < n:
                    boots.append(roc_auc_score(wrong[i], spread[i]))
            res["spread_auroc_wrong_pair"] = {"estimate": float(roc_auc_score(wrong, spread)),
                                              "low": float(np.quantile(boots, 0.025)),
                                              "high": float(np.quantile(boots, 0.975)), "n_wrong": int(wrong.sum()),
                                              "method": "percentile bootstrap over pairs (1000)"}
        out["sets"][name] = res
    return out


def _diff(stats, a, b) -> dict:
    d = stats.paired_bootstrap_difference(a, b, seed=0)
    return {k: d[k] for k in ("estimate", "low", "high", "p_value")}


def write_md(res: dict, path: Path, command: str) -> None:
    lines = [f"# Reward ensembles of {res['members']} and WARM (MiniLM, benchmarks/ensemble.py)", "",
             f"Command: `{command}`", ""]
    for name, r in res["sets"].items():
        lines += [f"## {name} ({r['n']} pairs)", "", "| arm | accuracy | 95% Wilson |", "|---|---|---|"]
        for arm, a in r["accuracy"].items():
            lines.append(f"| {arm} | {a['estimate']:.3f} | {a['low']:.3f}-{a['high']:.3f} |")
        lines += ["", "| comparison | difference | 95% paired bootstrap |", "|---|---|---|"]
        for key in ("ensemble_mean_minus_members_mean", "warm_minus_ensemble_mean", "warm_minus_members_mean"):
            d = r[key]
            lines.append(f"| {key} | {d['estimate']:+.3f} | {d['low']:+.3f} to {d['high']:+.3f} |")
        for t in r["ensemble_mean_minus_member"]:
            lines.append(f"| ensemble_mean - member_{t['member']} | {t['difference']:+.3f} | {t['low']:+.3f} to "
                         f"{t['high']:+.3f} (McNemar p {t['mcnemar_p']:.3g}, Holm {t['mcnemar_p_holm']:.3g}) |")
        if "spread_auroc_wrong_pair" in r:
            a = r["spread_auroc_wrong_pair"]
            lines += ["", f"AUROC of the members' margin spread for a wrong pair: {a['estimate']:.3f} "
                          f"({a['low']:.3f}-{a['high']:.3f}; {a['n_wrong']} wrong pairs)"]
        lines.append("")
    s = res["served_vs_offline"]
    lines += [f"Served vs offline ({s['items']} items, {s['aggregation']}): max |reward difference| "
              f"{s['max_abs_reward_difference']:.2e}, max |spread difference| {s['max_abs_spread_difference']:.2e}", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "ensemble_bench")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--val-pairs", type=int, default=64)
    ap.add_argument("--test-pairs", type=int, default=100_000, help="at most this many pairs per test set")
    ap.add_argument("--tiny", action="store_true", help="a few steps and pairs: checks the script end to end")
    ap.add_argument("--results", type=Path, default=None, help="where ensemble.{json,md} go (default "
                                                               "benchmarks/results; --tiny: WORK)")
    args = ap.parse_args()
    if args.tiny:
        args.max_steps, args.train_pairs, args.val_pairs, args.test_pairs = 3, 48, 16, 24
        args.max_length = 64
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.results or (args.work if args.tiny else REPO / "benchmarks" / "results")
    train(args.work, config(args.work, args))
    warm(args.work)
    sets = test_sets(args)
    scores = score_all(args.work, sets)
    served = served_vs_offline(args.work, sets)
    res = analyse(scores, sets, served, args)
    command = "python benchmarks/ensemble.py " + " ".join(sys.argv[1:])
    res["command"] = command
    (results / "ensemble.json").write_text(json.dumps(res, indent=2) + "\n")
    write_md(res, results / "ensemble.md", command)
    print((results / "ensemble.md").read_text())


if __name__ == "__main__":
    main()
