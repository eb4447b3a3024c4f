"""Pointwise and multi-attribute reward models on frozen MiniLM embeddings (issue #24).

Stages (each reads the embedding cache the first one fills):

- ``embed``: MiniLM (all-MiniLM-L6-v2, CLS pooling, pair render, max 256 tokens) embeddings of
  the solutions of a fixed 400-question subset of GSM8K, a fixed 100-pair subset of
  HumanEvalPack and of HH-RLHF harmless (chosen and rejected), and each prompt alone (max 64
  tokens, its end: the gating input).
- ``gsm8k``: correctness head (BCE on single solutions) vs BT head (correct-vs-wrong pairs of
  the same training questions), best-of-4 accuracy and AUROC on held-out questions.
- ``attributes``: stage 1 ridge + stage 2 gating vs a single BT head, by source.
- ``synthetic``: stage 1 recovery of known linear maps.

    nice -n 15 python benchmarks/attributes.py --cache /tmp/pointwise/embed_cache

Writes benchmarks/results/attributes.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
# Subsets fixed by hash, sized to the CPU budget of a shared 2-core machine (MiniLM at nice 15
# embedded about 0.5 texts/s there while this ran).
N_GSM8K = 400  # questions (of 666), 4 solutions each
N_HH = 100     # pairs of HH-RLHF harmless (of 1,841)
N_HEP = 100    # pairs of HumanEvalPack (of 656, all four languages)
ITEM_SPEC = dict(model="minilm", max_length=256)
PROMPT_SPEC = dict(model="minilm", max_length=64)  # the gating's input: the prompt alone (its end)


def _read(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _fixed_subset(rows: list[dict], n: int, key: str = "chosen") -> list[dict]:
    """The n rows of lowest hash of prompt + ``key`` (a fixed subset, in file order)."""
    keep = set(sorted(range(len(rows)), key=lambda i: _h(rows[i]["prompt"] + str(rows[i][key])))[:n])
    return [r for i, r in enumerate(rows) if i in keep]


def load_sets() -> dict[str, list[dict]]:
    """The rows used: N_GSM8K GSM8K questions, N_HEP HumanEvalPack pairs, N_HH HH pairs."""
    return {"gsm8k": _fixed_subset(_read("gsm8k_solutions.jsonl"), N_GSM8K, key="reference"),
            "humanevalpack": _fixed_subset(_read("humanevalpack.jsonl"), N_HEP),
            "hh": _fixed_subset(_read("hh_rlhf_harmless.jsonl"), N_HH)}


def items_of(sets: dict[str, list[dict]]) -> tuple[list, list]:
    """All (prompt, response) items to embed."""
    prompts, responses = [], []
    for r in sets["gsm8k"]:
        prompts += [r["prompt"]] * len(r["responses"])
        responses += list(r["responses"])
    for name in ("humanevalpack", "hh"):
        for r in sets[name]:
            prompts += [r["prompt"], r["prompt"]]
            responses += [r["chosen"], r["rejected"]]
    return prompts, responses


def unique_prompts(sets: dict[str, list[dict]]) -> list:
    seen: dict[str, None] = {}
    for rows in sets.values():
        for r in rows:
            seen.setdefault(r["prompt"], None)
    return list(seen)


def embed_all(cache: str, log=print):
    from rewardlab.embed.extract import EmbedSpec, embed_texts

    sets = load_sets()
    prompts, responses = items_of(sets)
    n_gsm = 4 * len(sets["gsm8k"])  # GSM8K first (the first measurement), then the rest
    embed_texts(prompts[:n_gsm], responses[:n_gsm], EmbedSpec(**ITEM_SPEC), cache_dir=cache, log=log,
                batch_size=16, flush_every=64)
    items = embed_texts(prompts, responses, EmbedSpec(**ITEM_SPEC), cache_dir=cache, log=log,
                        batch_size=16, flush_every=64)
    ups = unique_prompts(sets)
    prompt_vecs = embed_texts(ups, [""] * len(ups), EmbedSpec(**PROMPT_SPEC), cache_dir=cache,
                              log=log, batch_size=32, flush_every=128)
    return sets, items, ups, prompt_vecs


def embed_gsm8k_all(cache: str, log=print):
    """All 666 questions of the shared GSM8K half (the correctness experiment; the 400-question
    subset above stays the multi-attribute experiment's, whose suite stage needs the rest unseen)."""
    from rewardlab.embed.extract import EmbedSpec, embed_texts

    rows = _read("gsm8k_solutions.jsonl")
    prompts = [r["prompt"] for r in rows for _ in r["responses"]]
    responses = [t for r in rows for t in r["responses"]]
    return rows, embed_texts(prompts, responses, EmbedSpec(**ITEM_SPEC), cache_dir=cache, log=log,
                             batch_size=16, flush_every=64).embeddings


N_FOLDS = 5


def _folds(keys: list[str], n_folds: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """A fold per key (0..n_folds-1) by a seeded hash: every prompt is held out exactly once."""
    return np.array([int(_h(f"{seed}:{k}"), 16) % n_folds for k in keys])


def _split(keys: list[str], test_fraction: float, seed: int) -> np.ndarray:
    """True for the test side: a fixed fraction of the distinct keys, by a seeded hash."""
    distinct = sorted(set(keys))
    rank = {k: _h(f"{seed}:{k}") for k in distinct}
    test = set(sorted(distinct, key=rank.get)[: int(round(test_fraction * len(distinct)))])
    return np.array([k in test for k in keys])


def _auroc_interval(scores, labels, clusters, n_boot=2000):
    """AUROC with a cluster bootstrap interval (questions resampled), through
    rewardlab.eval.stats.bootstrap_interval with item indices as values."""
    from sklearn.metrics import roc_auc_score

    from rewardlab.eval.stats import bootstrap_interval

    scores, labels = np.asarray(scores), np.asarray(labels)

    def auc(idx):
        i = np.asarray(idx, dtype=int)
        y = labels[i]
        return roc_auc_score(y, scores[i]) if 0 < y.sum() < len(y) else np.nan

    return bootstrap_interval(np.arange(len(scores), dtype=float), auc, clusters=clusters, n_boot=n_boot)


def _auroc_difference(a, b, labels, clusters, n_boot=2000):
    """Paired AUROC difference a − b, the same resampled questions for both."""
    from sklearn.metrics import roc_auc_score

    from rewardlab.eval.stats import bootstrap_interval

    a, b, labels = np.asarray(a), np.asarray(b), np.asarray(labels)

    def diff(idx):
        i = np.asarray(idx, dtype=int)
        y = labels[i]
        if not 0 < y.sum() < len(y):
            return np.nan
        return roc_auc_score(y, a[i]) - roc_auc_score(y, b[i])

    return bootstrap_interval(np.arange(len(a), dtype=float), diff, clusters=clusters, n_boot=n_boot)


def _interval(d: dict) -> str:
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def _within_pairs(r: np.ndarray, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per correct-vs-wrong pair within a question: 1 if the correct solution scores higher (0.5
    on a tie), and the question of the pair (for a clustered interval)."""
    out, q_of = [], []
    for q, row in enumerate(rows):
        for i, ci in enumerate(row["correct"]):
            for j, cj in enumerate(row["correct"]):
                if ci and not cj:
                    d = r[4 * q + i] - r[4 * q + j]
                    out.append(1.0 if d > 0 else 0.5 if d == 0 else 0.0)
                    q_of.append(q)
    return np.asarray(out), np.asarray(q_of)


def gsm8k(sets, X, seeds=(0, 1, 2, 3, 4), log=print) -> dict:
    """Correctness (BCE) head vs BT head on correct-vs-wrong pairs of the same training questions,
    cross-fitted over N_FOLDS folds of questions (every question held out once); per seed, the
    out-of-fold scores of all questions are evaluated together."""
    import torch
    from sklearn.metrics import roc_auc_score

    from rewardlab.eval.items import best_of_k_selection
    from rewardlab.eval.stats import accuracy_interval, paired_bootstrap_difference
    from rewardlab.heads import fit_head
    from rewardlab.heads.pointwise import fit_pointwise_head

    torch.set_num_threads(1)
    rows = sets["gsm8k"]
    n = len(rows)
    q_of = np.repeat(np.arange(n), 4)
    y = np.concatenate([np.asarray(r["correct"], dtype=float) for r in rows])
    Xg = X[: 4 * n]
    fold_q = _folds([r["prompt"] for r in rows])
    head_cfg = {"kind": "linear", "lr": 1e-3, "batch_size": 256, "epochs": 200, "patience": 10,
                "val_fraction": 0.15, "weight_decay": 0.0}
    out: dict = {"n_questions": n, "folds": N_FOLDS, "head": head_cfg, "seeds": list(seeds), "by_seed": [],
                 "fraction_correct": float(y.mean())}
    corr = [np.asarray(r["correct"]) for r in rows]
    keep = {}
    t0 = time.perf_counter()
    for seed in seeds:
        oof = {"correctness": np.zeros(4 * n), "bt": np.zeros(4 * n)}
        n_pairs = []
        for f in range(N_FOLDS):
            train_q = np.flatnonzero(fold_q != f)
            tr_idx = np.concatenate([np.arange(4 * q, 4 * q + 4) for q in train_q])
            te_idx = np.flatnonzero(fold_q[q_of] == f)
            chosen, rejected = [], []
            for q in train_q:
                ok = [4 * q + j for j in range(4) if rows[q]["correct"][j]]
                bad = [4 * q + j for j in range(4) if not rows[q]["correct"][j]]
                chosen += [c for c in ok for _ in bad]
                rejected += [b for _ in ok for b in bad]
            n_pairs.append(len(chosen))
            bce = fit_pointwise_head(Xg[tr_idx], y[tr_idx], q_of[tr_idx], objective="correctness",
                                     config=head_cfg, seed=seed)
            bt = fit_head(Xg, chosen, rejected, objective="bt", config=head_cfg, seed=seed)
            oof["correctness"][te_idx] = bce.predict(Xg[te_idx])[:, 0]
            oof["bt"][te_idx] = bt.predict(Xg[te_idx])
        rec = {"seed": seed, "train_pairs_per_fold": n_pairs}
        for name, r in oof.items():
            sel = best_of_k_selection([r[4 * q: 4 * q + 4] for q in range(n)], corr)
            wp = _within_pairs(r, rows)
            rec[name] = {"best_of_4_mixed": sel["selected_mixed"], "best_of_4_all": sel["selected"],
                         "auroc": float(roc_auc_score(y, r)), "within_question_pair_accuracy": float(wp[0].mean())}
            keep.setdefault(seed, {})[name] = (r, sel)
        out["by_seed"].append(rec)
        log(f"gsm8k seed {seed}: {rec}")
    out["seconds"] = time.perf_counter() - t0
    (r_c, sel_c), (r_b, sel_b) = keep[seeds[0]]["correctness"], keep[seeds[0]]["bt"]
    mixed = sel_c["per_item"]["mixed"]
    s_c, s_b = sel_c["per_item"]["selected"][mixed], sel_b["per_item"]["selected"][mixed]
    rnd = sel_c["per_item"]["random"][mixed]
    out["seed0"] = {
        "n_mixed_questions": int(mixed.sum()),
        "best_of_4_mixed": {"correctness": accuracy_interval(s_c), "bt": accuracy_interval(s_b),
                            "random": float(rnd.mean()),
                            "correctness_minus_bt": paired_bootstrap_difference(s_c, s_b),
                            "correctness_minus_random": paired_bootstrap_difference(s_c, rnd),
                            "bt_minus_random": paired_bootstrap_difference(s_b, rnd)},
        "best_of_4_all": {"correctness": sel_c["selected"], "bt": sel_b["selected"],
                          "random": sel_c["random"], "oracle": sel_c["oracle"]},
        "within_question_pairs": {
            "correctness": accuracy_interval(_within_pairs(r_c, rows)[0], clusters=_within_pairs(r_c, rows)[1]),
            "bt": accuracy_interval(_within_pairs(r_b, rows)[0], clusters=_within_pairs(r_b, rows)[1]),
            "correctness_minus_bt": paired_bootstrap_difference(_within_pairs(r_c, rows)[0], _within_pairs(r_b, rows)[0],
                                                                clusters=_within_pairs(r_c, rows)[1])},
        "auroc": {"correctness": _auroc_interval(r_c, y, q_of), "bt": _auroc_interval(r_b, y, q_of),
                  "random": 0.5, "correctness_minus_bt": _auroc_difference(r_c, r_b, y, q_of)},
    }
    # over seeds: each mixed question's selection correctness averaged over the seeds
    avg = {name: np.mean([keep[sd][name][1]["per_item"]["selected"][mixed] for sd in seeds], axis=0)
           for name in ("correctness", "bt")}
    out["over_seeds"] = {
        "best_of_4_mixed": {"correctness": accuracy_interval(avg["correctness"]), "bt": accuracy_interval(avg["bt"]),
                            "random": float(rnd.mean()),
                            "correctness_minus_bt": paired_bootstrap_difference(avg["correctness"], avg["bt"]),
                            "correctness_minus_random": paired_bootstrap_difference(avg["correctness"], rnd),
                            "bt_minus_random": paired_bootstrap_difference(avg["bt"], rnd)}}
    return out


def attribute_data(sets, X, item_index, P, prompt_index) -> dict:
    """The responses with their attribute labels (NaN where unlabelled), the preference pairs
    (source, prompt, chosen row, rejected row), their embeddings X and prompt embeddings P."""
    names = ["harmless", "correct", "length"]
    # responses: (prompt, text, source, {attribute: value}); pairs: (source, prompt, i_chosen, i_rejected)
    resp, pairs = [], []

    def add(prompt, text, source, labels):
        resp.append((prompt, text, source, labels))
        return len(resp) - 1

    for r in sets["gsm8k"]:
        idx = [add(r["prompt"], t, "gsm8k", {"correct": float(c)}) for t, c in zip(r["responses"], r["correct"])]
        for i, ci in zip(idx, r["correct"]):
            for j, cj in zip(idx, r["correct"]):
                if ci and not cj:
                    pairs.append(("gsm8k", r["prompt"], i, j))
    for name, attr in (("humanevalpack", "correct"), ("hh", "harmless")):
        for r in sets[name]:
            i = add(r["prompt"], r["chosen"], name, {attr: 1.0})
            j = add(r["prompt"], r["rejected"], name, {attr: 0.0})
            pairs.append((name, r["prompt"], i, j))
    Y = np.full((len(resp), len(names)), np.nan)
    for i, (_, text, _, labels) in enumerate(resp):
        for k, a in enumerate(names):
            if a in labels:
                Y[i, k] = labels[a]
        Y[i, 2] = np.log1p(len(text))
    Xr = np.stack([X[item_index[(p, t)]] for p, t, _, _ in resp])
    Pp = np.stack([P[prompt_index[p]] for p, _, _, _ in resp])
    prompts = [p if isinstance(p, str) else json.dumps(p) for p, _, _, _ in resp]
    return {"names": names, "resp": resp, "pairs": pairs, "Y": Y, "X": Xr, "P": Pp, "prompts": prompts,
            "group": np.unique(prompts, return_inverse=True)[1],
            "pair_c": np.array([p[2] for p in pairs]), "pair_r": np.array([p[3] for p in pairs])}


HEAD_CFG = {"kind": "linear", "lr": 1e-3, "batch_size": 256, "epochs": 200, "patience": 10, "val_fraction": 0.15}
GATING = dict(hidden=(64,), lr=3e-3, weight_decay=1e-4, epochs=500, patience=30, seed=0)


def attributes(sets, X, item_index, P, prompt_index, seeds=(0, 1, 2, 3, 4), log=print) -> dict:
    """Stage 1 (ridge per attribute) + stage 2 (gating, BT on pairs) vs one BT head, by source."""
    import torch

    from rewardlab.eval.items import best_of_k_selection
    from rewardlab.eval.stats import accuracy_interval, paired_bootstrap_difference
    from rewardlab.heads import fit_head
    from rewardlab.heads.attributes import fit_attribute_ridge, fit_gating

    torch.set_num_threads(1)
    d = attribute_data(sets, X, item_index, P, prompt_index)
    names, resp, pairs, Y, Xr, Pp, prompts = (d[k] for k in ("names", "resp", "pairs", "Y", "X", "P", "prompts"))
    fold = _folds(prompts)
    group, pair_c, pair_r = d["group"], d["pair_c"], d["pair_r"]
    head_cfg = HEAD_CFG
    models = {m: np.zeros(len(resp)) for m in ("bt_head", "armo", "armo_len_decorrelated")}
    A = np.zeros((len(resp), len(names)))
    W = {m: np.zeros((len(resp), len(names))) for m in ("armo", "armo_len_decorrelated")}
    timing = {"stage1": [], "armo": [], "armo_len_decorrelated": []}
    alphas, labelled, stage1_by_fold = [], [], []
    for f in range(N_FOLDS):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        t0 = time.perf_counter()
        stage1 = fit_attribute_ridge(Xr[tr], Y[tr], names, group=group[tr])
        timing["stage1"].append(time.perf_counter() - t0)
        alphas.append(dict(zip(names, stage1.alpha.tolist())))
        labelled.append(stage1.info["n_labelled"])
        Af = stage1.predict(Xr)
        A[te] = Af[te]
        stage1_by_fold.append(Af)
        in_train = fold[pair_c] != f
        ci, ri = pair_c[in_train], pair_r[in_train]
        models["bt_head"][te] = fit_head(Xr, ci, ri, objective="bt", config=head_cfg, seed=0).predict(Xr[te])
        for label, dec in (("armo", None), ("armo_len_decorrelated", "length")):
            t0 = time.perf_counter()
            gate = fit_gating(Pp[ci], Af[ci], Af[ri], names, decorrelate=dec, **GATING)
            timing[label].append(time.perf_counter() - t0)
            models[label][te] = gate.reward(Pp[te], Af[te])
            W[label][te] = gate.weights(Pp[te])
        log(f"attributes fold {f} done")
    # further seeds (head and gating initialisation, data order; folds and stage 1 fixed)
    by_seed = {0: {m: v.copy() for m, v in models.items()}}
    for seed in seeds:
        if seed == 0:
            continue
        by_seed[seed] = {m: np.zeros(len(resp)) for m in models}
        for f in range(N_FOLDS):
            te, Af = np.flatnonzero(fold == f), stage1_by_fold[f]
            in_train = fold[pair_c] != f
            ci, ri = pair_c[in_train], pair_r[in_train]
            by_seed[seed]["bt_head"][te] = fit_head(Xr, ci, ri, objective="bt", config=head_cfg,
                                                    seed=seed).predict(Xr[te])
            for label, dec in (("armo", None), ("armo_len_decorrelated", "length")):
                gate = fit_gating(Pp[ci], Af[ci], Af[ri], names, decorrelate=dec, **{**GATING, "seed": seed})
                by_seed[seed][label][te] = gate.reward(Pp[te], Af[te])
        log(f"attributes seed {seed} done")
    from sklearn.metrics import r2_score, roc_auc_score

    quality = {}
    for k, a in enumerate(names):  # stage 1 on held-out responses (out of fold)
        rows = np.flatnonzero(~np.isnan(Y[:, k]))
        quality[a] = ({"auroc": float(roc_auc_score(Y[rows, k], A[rows, k]))} if a != "length"
                      else {"r2": float(r2_score(Y[rows, k], A[rows, k]))})
        quality[a]["n"] = int(len(rows))
    srcs = np.array([r[2] for r in resp])
    gates = {m: {"mean_weight_by_source": {src: dict(zip(names, np.round(W[m][srcs == src].mean(0), 3).tolist()))
                                           for src in ("gsm8k", "humanevalpack", "hh")},
                 "seconds_per_fold": float(np.mean(timing[m]))} for m in W}
    te_pairs = pairs
    by_source: dict = {}
    for src in ("gsm8k", "humanevalpack", "hh"):
        sp = [p for p in te_pairs if p[0] == src]
        c = np.array([p[2] for p in sp])
        r = np.array([p[3] for p in sp])
        clusters = [p[1] if isinstance(p[1], str) else json.dumps(p[1]) for p in sp]
        entry = {"n_pairs": len(sp), "n_prompts": len(set(clusters))}
        correct = {m: (s[c] > s[r]).astype(float) for m, s in models.items()}
        for m in models:
            entry[m] = accuracy_interval(correct[m], clusters=clusters)
        for m in ("armo", "armo_len_decorrelated"):
            entry[f"{m}_minus_bt_head"] = paired_bootstrap_difference(correct[m], correct["bt_head"], clusters=clusters)
        # over seeds: each pair's correctness averaged over the seeds, pairs resampled by prompt
        avg = {m: np.mean([(by_seed[sd][m][c] > by_seed[sd][m][r]).astype(float) for sd in by_seed], axis=0)
               for m in models}
        entry["over_seeds"] = {
            "seeds": sorted(by_seed),
            "per_seed": {m: [float((by_seed[sd][m][c] > by_seed[sd][m][r]).mean()) for sd in sorted(by_seed)]
                         for m in models},
            **{m: accuracy_interval(avg[m], clusters=clusters) for m in models},
            **{f"{m}_minus_bt_head": paired_bootstrap_difference(avg[m], avg["bt_head"], clusters=clusters)
               for m in ("armo", "armo_len_decorrelated")}}
        by_source[src] = entry
    # GSM8K best-of-4 on the held-out questions with mixed correctness
    bo4 = {}
    rows = sets["gsm8k"]
    base = 0
    groups4 = []
    for r in rows:
        groups4.append(list(range(base, base + 4)))
        base += 4
    test_groups = groups4
    corr = [np.array([bool(Y[i, 1]) for i in g]) for g in test_groups]
    for m, s in models.items():
        sel = best_of_k_selection([s[g] for g in test_groups], corr)
        mixed = sel["per_item"]["mixed"]
        bo4[m] = {"selected_mixed": accuracy_interval(sel["per_item"]["selected"][mixed]),
                  "random_mixed": sel["random_mixed"], "n_mixed": int(mixed.sum())}
        bo4[m]["_per_item"] = sel["per_item"]["selected"][mixed]
    for m in ("armo", "armo_len_decorrelated"):
        bo4[f"{m}_minus_bt_head"] = paired_bootstrap_difference(bo4[m]["_per_item"], bo4["bt_head"]["_per_item"])
    for m in models:
        bo4[m].pop("_per_item")
    by_source["gsm8k_best_of_4"] = bo4
    # length: correlation of each model's reward with response length on the test responses
    length_corr = {m: float(np.corrcoef(s, Y[:, 2])[0, 1]) for m, s in models.items()}
    return {"attributes": names, "n_responses": len(resp), "n_pairs": len(pairs), "folds": N_FOLDS,
            "labelled_rows_per_fold": labelled, "alpha_per_fold": alphas,
            "stage1_seconds_per_fold": float(np.mean(timing["stage1"])), "stage1_out_of_fold": quality,
            "gating": gates, "by_source": by_source, "reward_length_correlation": length_corr}


SUITE_MODELS = ("bt_head", "armo", "armo_len_decorrelated")


def suite_stage(sets, X, item_index, cache: str, work: Path, pairs_per_subset: int, log=print) -> dict:
    """Stage 1 + 2 (both variants) and the single BT head, each trained on all the rows above,
    exported as Hugging Face models and evaluated by ``rewardlab eval`` on the shared suite by
    section, paired, on copies of its files without any training prompt (and, for HumanEvalPack,
    without any training problem in another language)."""
    import sys

    import torch
    from statsmodels.stats.multitest import multipletests

    from rewardlab.data import load_preferences
    from rewardlab.data.splits import HUMANEVALPACK_PROBLEM, group_keys
    from rewardlab.embed.extract import EmbedSpec, embed_texts
    from rewardlab.eval.runner import evaluate, write_outputs
    from rewardlab.heads import fit_head
    from rewardlab.heads.attributes import fit_attribute_ridge, fit_gating
    from rewardlab.models.attributes import export_attribute_model
    from rewardlab.models.reward_model import RewardModel

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fidelity_common import prompt_key, suite_copy_without

    torch.set_num_threads(1)
    # The gating's input as the export computes it: the prompt alone at the model's max_length
    ups = unique_prompts(sets)
    spec = EmbedSpec(**{**PROMPT_SPEC, "max_length": ITEM_SPEC["max_length"]})
    pv = embed_texts(ups, [""] * len(ups), spec, cache_dir=cache, log=log, batch_size=32, flush_every=128)
    d = attribute_data(sets, X, item_index, pv.embeddings, {p: i for i, p in enumerate(ups)})
    names, Xr, Y, Pp, c, r = d["names"], d["X"], d["Y"], d["P"], d["pair_c"], d["pair_r"]
    stage1 = fit_attribute_ridge(Xr, Y, names, group=d["group"])
    A = stage1.predict(Xr)
    bt = fit_head(Xr, c, r, objective="bt", config=HEAD_CFG, seed=0)
    models = work / "models"
    dirs = {"bt_head": models / "bt_head", "armo": models / "armo", "armo_len_decorrelated": models / "armo_decorr"}
    coef, intercept = bt.linear_map()
    export_attribute_model("minilm", None, coef, intercept, dirs["bt_head"], max_length=ITEM_SPEC["max_length"])
    in_memory = {"bt_head": bt.predict(Xr)}
    gates = {}
    for label, dec in (("armo", None), ("armo_len_decorrelated", "length")):
        gate = fit_gating(Pp[c], A[c], A[r], names, decorrelate=dec, **GATING)
        gates[label] = gate
        export_attribute_model("minilm", names, stage1.coef, stage1.intercept, dirs[label], gating=gate.tensors(),
                               verbosity=dec, max_length=ITEM_SPEC["max_length"])
        in_memory[label] = gate.reward(Pp, A)
    # each export reproduces its in-memory model on a sample of the training responses
    check = np.arange(0, len(d["resp"]), max(1, len(d["resp"]) // 24))
    ps, ts = [d["resp"][i][0] for i in check], [d["resp"][i][1] for i in check]
    export_error = {}
    for m, path in dirs.items():
        rm = RewardModel.from_pretrained(path)
        got = rm.score(ps, ts)
        got = rm.gated(ps, got) if got.ndim == 2 else got
        export_error[m] = float(np.max(np.abs(got - in_memory[m][check])))
    log(f"export vs in-memory max |difference|: {export_error}")
    # the suite without training prompts (and HumanEvalPack without training problems)
    train_prompts = {prompt_key(p) for p in d["prompts"]}
    hep = load_preferences(DATA / "humanevalpack.jsonl")
    hep_keys = group_keys(hep, HUMANEVALPACK_PROBLEM)
    problem_of = {prompt_key(p): k for p, k in zip(hep["prompt"], hep_keys)}
    train_problems = {problem_of[prompt_key(x["prompt"])] for x in sets["humanevalpack"]}

    def drop(name, row):
        if name == "humanevalpack.jsonl":
            return problem_of[prompt_key(row["prompt"])] in train_problems
        return prompt_key(row["prompt"]) in train_prompts

    root = work / "suite"
    dropped = suite_copy_without(root, drop, DATA)
    log(f"suite copies: rows dropped per file {dropped}")
    ev = evaluate([dirs[m] for m in SUITE_MODELS], suite="shared", data_root=root,
                  max_pairs_per_subset=pairs_per_subset, log=log, progress=False)
    write_outputs(ev, work / "eval")
    res = ev.results
    name_of = dict(zip(res["models"], SUITE_MODELS)) if len(res["models"]) == 3 else {}
    per_model = {}
    for key, entry in res["models"].items():
        suite = entry["suite"]
        per_model[name_of.get(key, key)] = {
            "sections": suite["sections"], "overall": suite.get("overall"),
            "overall_interval": suite.get("overall_interval"),
            "subsets": {k: {"n": v["n"], "score": v.get("accuracy", v.get("score"))} for k, v in suite["subsets"].items()},
            "length_bias": entry["diagnostics"].get("length_bias", {})}
    comps = []
    for comp in res.get("comparisons", []):
        a, b = (name_of.get(x, x) for x in comp["models"])
        for sec, dd in (comp.get("sections") or {}).items():
            comps.append({"a": a, "b": b, "section": sec, **dd})
    if comps:
        holm = multipletests([x["p_value"] for x in comps], method="holm")[1]
        for x, p in zip(comps, holm):
            x["p_holm"] = float(p)
    gating_weights = {m: np.round(g.weights(Pp).mean(0), 3).tolist() for m, g in gates.items()}
    return {"pairs_per_subset": pairs_per_subset, "train_responses": len(d["resp"]), "train_pairs": len(d["pairs"]),
            "train_problems_humanevalpack": len(train_problems), "rows_dropped": dropped,
            "export_max_abs_error": export_error, "alpha": dict(zip(names, stage1.alpha.tolist())),
            "gating_mean_weights_train": gating_weights, "models": per_model, "section_comparisons": comps,
            "eval_dir": str(work / "eval")}


def render_suite_md(res: dict) -> str:
    s = res["suite"]
    models = list(SUITE_MODELS)
    sections = sorted({k for m in s["models"].values() for k in (m["sections"] or {})})
    lines = ["# Multi-attribute (stage 1 + stage 2) vs one BT head on the shared suite, by section", "",
             f"Command: `{res['command']}`. Frozen MiniLM (all-MiniLM-L6-v2, CLS pooling, 256 tokens); the "
             f"three models are trained on all {s['train_responses']} responses / {s['train_pairs']} pairs of "
             "the attributes experiment (GSM8K, HumanEvalPack, HH-RLHF harmless), exported as Hugging Face "
             "models (stage 1 as the classifier, the gating beside it) and evaluated by `rewardlab eval "
             f"--suite shared` at {s['pairs_per_subset']} pairs per subset on copies of the suite's files "
             "without any training prompt (HumanEvalPack: without any training problem, in every language). "
             f"Rows dropped: {s['rows_dropped']}. Each export reproduces its in-memory model within "
             + ", ".join(f"{m} {e:.1e}" for m, e in s["export_max_abs_error"].items()) + ".", "",
             "Section scores (95% stratified cluster-bootstrap intervals, as `rewardlab eval` reports them):", "",
             "| model | " + " | ".join(sections) + " | overall |", "|---|" + "---|" * (len(sections) + 1)]
    for m in models:
        e = s["models"][m]
        cells = []
        for sec in sections:
            v = (e["sections"] or {}).get(sec)
            ci = (v or {}).get("interval") or {}
            cells.append("-" if v is None else f"{v['score']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] (n = {v['n']})"
                         if ci else f"{v['score']:.3f} (n = {v['n']})")
        oi = e.get("overall_interval") or {}
        ov = e.get("overall")
        cells.append("-" if ov is None else f"{ov:.3f}" + (f" [{oi['low']:.3f}, {oi['high']:.3f}]" if oi else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences by section (paired stratified cluster bootstrap; Holm over all "
              f"{len(s['section_comparisons'])} section comparisons):", "",
              "| A − B | section | difference | p | p (Holm) |", "|---|---|---|---|---|"]
    for x in s["section_comparisons"]:
        lines.append(f"| {x['a']} − {x['b']} | {x['section']} | {x['difference']:+.3f} [{x['low']:+.3f}, "
                     f"{x['high']:+.3f}] | {x['p_value']:.3g} | {x.get('p_holm', float('nan')):.3g} |")
    lines += ["", "Length (characters) over the suite's pairs, as `rewardlab eval` reports it:", "",
              "| model | Spearman(reward, length) | accuracy, chosen longer | accuracy, chosen shorter |",
              "|---|---|---|---|"]
    for m in models:
        lb = s["models"][m]["length_bias"]
        lines.append(f"| {m} | {lb['spearman_reward_length']:+.3f} | {lb['acc_chosen_longer']:.3f} "
                     f"(n = {lb['n_chosen_longer']}) | {lb['acc_chosen_shorter']:.3f} (n = {lb['n_chosen_shorter']}) |")
    lines += ["", "Mean gating weights over the training prompts (" + ", ".join(res["suite_names"]) + "): "
              + "; ".join(f"{m} {w}" for m, w in s["gating_mean_weights_train"].items()) + ".", "",
              f"The full evaluation report (per subset, length diagnostics): `{s['eval_dir']}` (not committed).", ""]
    return "\n".join(lines) + "\n"


def synthetic(log=print) -> dict:
    """Stage 1 recovery of known linear maps: d = 384 (MiniLM's width), K = 5, n = 5000, 30% of
    the labels missing at random, attributes of unit variance plus label noise σ = 0.3; R² of the predictions against the noiseless
    truth on 1000 held-out rows."""
    from rewardlab.heads.attributes import fit_attribute_ridge

    rng = np.random.default_rng(0)
    n, d, k = 5000, 384, 5
    Xs = rng.normal(size=(n, d))
    W, b = rng.normal(size=(k, d)) / np.sqrt(d), rng.normal(size=k)  # each attribute: unit variance
    Y = Xs @ W.T + b + 0.3 * rng.normal(size=(n, k))
    Y[rng.random((n, k)) < 0.3] = np.nan
    t0 = time.perf_counter()
    fit = fit_attribute_ridge(Xs[:4000], Y[:4000], [f"a{i}" for i in range(k)])
    seconds = time.perf_counter() - t0
    truth = Xs[4000:] @ W.T + b
    pred = fit.predict(Xs[4000:])
    r2 = 1 - ((truth - pred) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)
    return {"n_train": 4000, "n_test": 1000, "dim": d, "attributes": k, "missing": 0.3, "noise": 0.3,
            "r2": r2.tolist(), "min_r2": float(r2.min()), "seconds": seconds,
            "alphas": fit.alpha.tolist()}


def _pct(d: dict) -> str:
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def _diff(d: dict) -> str:
    return f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (p = {d['p_value']:.3g})"


def render_md(res: dict) -> str:
    """The results as markdown (benchmarks/results/attributes.md)."""
    lines = ["# Pointwise and multi-attribute reward models on frozen MiniLM embeddings", "",
             f"Command: `{res['command']}` (2 shared CPU cores; embeddings cached). Embeddings: "
             f"all-MiniLM-L6-v2, CLS pooling (its pooler), pair render; responses at "
             f"{ITEM_SPEC['max_length']} tokens, prompts alone at {PROMPT_SPEC['max_length']} "
             f"(the gating's input). Heads are linear. Intervals are 95%.", ""]
    syn = res["synthetic"]
    lines += ["## Stage 1 recovers known linear maps", "",
              f"d = {syn['dim']}, K = {syn['attributes']} attributes of unit variance, {syn['n_train']} "
              f"training rows with {int(100 * syn['missing'])}% of the labels missing at random and label "
              f"noise σ = {syn['noise']}; R² against the noiseless truth on {syn['n_test']} held-out rows: "
              f"min {syn['min_r2']:.4f} (all: {', '.join(f'{r:.4f}' for r in syn['r2'])}); "
              f"{syn['seconds']:.1f} s for the five ridges with α chosen by validation "
              f"(7 alphas each).", ""]
    if "gsm8k" in res:
        g = res["gsm8k"]
        s0 = g["seed0"]
        b, a, wq = s0["best_of_4_mixed"], s0["auroc"], s0["within_question_pairs"]
        lines += ["## GSM8K: correctness (BCE) head vs BT head", "",
                  f"{g['n_questions']} questions (the shared half) × 4 solutions, "
                  f"{100 * g['fraction_correct']:.1f}% correct. Cross-fitted over {g['folds']} folds of "
                  "questions: each model is trained on the other folds' questions (the correctness head on "
                  "their single solutions with 0/1 labels, the BT head on all correct-vs-wrong pairs of the "
                  "same questions) and scores the held-out fold, so every question is scored out of "
                  "sample once. Best-of-4 accuracy on the questions that mix correct and wrong solutions "
                  "(only there can a selector differ from a random pick); AUROC of correctness over all "
                  "solutions (interval: questions resampled). Differences are paired (same questions).", "",
                  "| seed 0 | best-of-4 (mixed questions) | AUROC (all solutions) | correct-vs-wrong pairs within a question |",
                  "|---|---|---|---|",
                  f"| correctness (BCE) | {_pct(b['correctness'])} | {_pct(a['correctness'])} | {_pct(wq['correctness'])} |",
                  f"| BT on pairs | {_pct(b['bt'])} | {_pct(a['bt'])} | {_pct(wq['bt'])} |",
                  f"| random pick | {b['random']:.3f} | 0.5 | 0.5 |",
                  f"| correctness − BT | {_diff(b['correctness_minus_bt'])} | "
                  f"{a['correctness_minus_bt']['estimate']:+.3f} [{a['correctness_minus_bt']['low']:+.3f}, "
                  f"{a['correctness_minus_bt']['high']:+.3f}] | {_diff(wq['correctness_minus_bt'])} |",
                  f"| correctness − random | {_diff(b['correctness_minus_random'])} | | |",
                  f"| BT − random | {_diff(b['bt_minus_random'])} | | |", "",
                  "AUROC pools solutions across questions, so it also rewards telling easy questions (more "
                  "correct solutions) from hard ones; the within-question pair accuracy and best-of-4 only "
                  "count ranking within a question, which is what selection needs.", "",
                  f"n = {s0['n_mixed_questions']} mixed questions. Over all {g['n_questions']} questions "
                  f"(oracle {s0['best_of_4_all']['oracle']:.3f}): correctness {s0['best_of_4_all']['correctness']:.3f}, "
                  f"BT {s0['best_of_4_all']['bt']:.3f}, random {s0['best_of_4_all']['random']:.3f}.", "",
                  "Seeds (head initialisation and data order; the folds stay fixed):", "",
                  "| seed | BCE best-of-4 | BT best-of-4 | BCE AUROC | BT AUROC | BCE within-question | BT within-question |",
                  "|---|---|---|---|---|---|---|"]
        for rec in g["by_seed"]:
            lines.append(f"| {rec['seed']} | {rec['correctness']['best_of_4_mixed']:.3f} | "
                         f"{rec['bt']['best_of_4_mixed']:.3f} | {rec['correctness']['auroc']:.3f} | "
                         f"{rec['bt']['auroc']:.3f} | {rec['correctness']['within_question_pair_accuracy']:.3f} | "
                         f"{rec['bt']['within_question_pair_accuracy']:.3f} |")
        ov = g["over_seeds"]["best_of_4_mixed"]
        lines += ["", f"Over the {len(g['seeds'])} seeds (each mixed question's selection averaged over the "
                  f"seeds, questions resampled): correctness {_pct(ov['correctness'])}, BT {_pct(ov['bt'])}, "
                  f"random {ov['random']:.3f}; correctness − BT {_diff(ov['correctness_minus_bt'])}; "
                  f"correctness − random {_diff(ov['correctness_minus_random'])}; BT − random "
                  f"{_diff(ov['bt_minus_random'])}.", ""]
    if "attributes" in res:
        at = res["attributes"]
        lines += ["## Multi-attribute (stage 1 + stage 2) vs one BT head", "",
                  f"Responses: {at['n_responses']} (GSM8K solutions, HumanEvalPack and HH-RLHF harmless "
                  f"chosen/rejected); preference pairs: {at['n_pairs']} (GSM8K: every correct-vs-wrong pair "
                  "of a question; HumanEvalPack: correct vs buggy; HH: chosen vs rejected). Attributes and "
                  "what they are:", "",
                  "- `correct`: GSM8K's final-answer check and HumanEvalPack's correct-vs-buggy function: "
                  "objective labels. Unlabelled (NaN) on HH.",
                  "- `harmless`: 1 for HH's chosen response, 0 for its rejected one. This is **not** an "
                  "absolute harmlessness label: it says which of two responses a crowdworker found less "
                  "harmful, turned into a pointwise target. Unlabelled on GSM8K and HumanEvalPack.",
                  "- `length`: log(1 + characters) of the response: objective, on every response; used as "
                  "the verbosity attribute in the decorrelated variant.", "",
                  f"Cross-fitted over {at['folds']} folds of prompts: stage 1 (a ridge per attribute on its "
                  "labelled training rows, α by validation), stage 2 (gating MLP 384 → 64 → 3 on the prompt "
                  "embedding, BT on the training pairs with the frozen stage-1 scores) and the baseline (one "
                  "linear BT head on the same pairs and embeddings) are trained on four folds and score the "
                  "fifth. Pair accuracy by source, intervals with prompts resampled; differences paired.", "",
                  "| source | pairs | BT head | stage 1+2 | stage 1+2, length decorrelated | (1+2) − BT | "
                  "(1+2 decorrelated) − BT |", "|---|---|---|---|---|---|---|"]
        for src in ("gsm8k", "humanevalpack", "hh"):
            e = at["by_source"][src]
            lines.append(f"| {src} | {e['n_pairs']} | {_pct(e['bt_head'])} | {_pct(e['armo'])} | "
                         f"{_pct(e['armo_len_decorrelated'])} | {_diff(e['armo_minus_bt_head'])} | "
                         f"{_diff(e['armo_len_decorrelated_minus_bt_head'])} |")
        lines += ["", "Over the seeds (head and gating initialisation, data order; folds and stage 1 fixed): "
                  "each pair's correctness averaged over the seeds, prompts resampled:", "",
                  "| source | BT head | stage 1+2 | decorrelated | (1+2) − BT | (1+2 decorrelated) − BT |",
                  "|---|---|---|---|---|---|"]
        for src in ("gsm8k", "humanevalpack", "hh"):
            o = at["by_source"][src]["over_seeds"]
            lines.append(f"| {src} | {_pct(o['bt_head'])} | {_pct(o['armo'])} | {_pct(o['armo_len_decorrelated'])} | "
                         f"{_diff(o['armo_minus_bt_head'])} | {_diff(o['armo_len_decorrelated_minus_bt_head'])} |")
        from statsmodels.stats.multitest import multipletests

        fam = [(src, m) for src in ("gsm8k", "humanevalpack", "hh")
               for m in ("armo_minus_bt_head", "armo_len_decorrelated_minus_bt_head")]
        for label, get in (("seed 0", lambda src, m: at["by_source"][src][m]),
                           ("over the seeds", lambda src, m: at["by_source"][src]["over_seeds"][m])):
            ps = [get(src, m)["p_value"] for src, m in fam]
            holm = multipletests(ps, method="holm")[1]
            lines += ["", f"Holm over the six pair-accuracy comparisons ({label}): smallest p {min(ps):.3g} → "
                      f"{holm[int(np.argmin(ps))]:.3g}; {int((holm < 0.05).sum())} of 6 below 0.05."]
        bo = at["by_source"]["gsm8k_best_of_4"]
        lines += ["", f"GSM8K best-of-4 on the {bo['bt_head']['n_mixed']} mixed questions (random "
                  f"{bo['bt_head']['random_mixed']:.3f}): BT head {_pct(bo['bt_head']['selected_mixed'])}, "
                  f"stage 1+2 {_pct(bo['armo']['selected_mixed'])}, decorrelated "
                  f"{_pct(bo['armo_len_decorrelated']['selected_mixed'])}; (1+2) − BT "
                  f"{_diff(bo['armo_minus_bt_head'])}.", "",
                  "Stage 1 out of fold: " + ", ".join(
                      f"{k} " + (f"AUROC {v['auroc']:.3f}" if "auroc" in v else f"R² {v['r2']:.3f}") + f" (n = {v['n']})"
                      for k, v in at["stage1_out_of_fold"].items()) + ".", "",
                  "Mean gating weights on held-out prompts, by source (harmless, correct, length):", "",
                  "| variant | gsm8k | humanevalpack | hh |", "|---|---|---|---|"]
        for m, gdat in at["gating"].items():
            w = gdat["mean_weight_by_source"]
            lines.append(f"| {m} | " + " | ".join(
                ", ".join(f"{w[src][k]:.2f}" for k in at["attributes"]) for src in ("gsm8k", "humanevalpack", "hh"))
                + " |")
        lines += ["", "Correlation of each reward with log length over all responses: " + ", ".join(
            f"{m} {c:+.3f}" for m, c in at["reward_length_correlation"].items()) + ".", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/pointwise/embed_cache")
    ap.add_argument("--stage", default="all", choices=["embed", "all", "synthetic", "suite"])
    ap.add_argument("--work", default="/tmp/attributes_suite", help="suite stage: exports, suite copies, eval report")
    ap.add_argument("--suite-pairs", type=int, default=100, help="suite stage: pairs (items) per subset")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "attributes"))
    args = ap.parse_args()
    if args.stage == "embed":
        _, items, _, pv = embed_all(args.cache)
        print(items.stats, pv.stats)
        return
    if args.stage == "suite":
        sets, items, ups, pv = embed_all(args.cache)
        prompts, responses = items_of(sets)
        keyed: dict = {}
        for i, (p, t) in enumerate(zip(prompts, responses)):
            keyed.setdefault((p if isinstance(p, str) else json.dumps(p), t), i)
        out = {"command": f"OMP_NUM_THREADS=1 nice -n 15 python benchmarks/attributes.py --stage suite --cache "
                          f"{args.cache} --work {args.work} --suite-pairs {args.suite_pairs}",
               "suite_names": ["harmless", "correct", "length"],
               "suite": suite_stage(sets, items.embeddings, keyed, args.cache, Path(args.work), args.suite_pairs)}
        from rewardlab.runinfo import run_info

        out["run"] = run_info()
        target = Path(args.out + "_suite")
        target.with_suffix(".json").write_text(json.dumps(out, indent=2, default=float) + "\n")
        target.with_suffix(".md").write_text(render_suite_md(json.loads(json.dumps(out, default=float))))
        print(target.with_suffix(".md").read_text())
        return
    results: dict = {"command": "OMP_NUM_THREADS=1 nice -n 15 python benchmarks/attributes.py --cache " + args.cache,
                     "embedding": {"items": ITEM_SPEC, "prompts": PROMPT_SPEC},
                     "synthetic": synthetic()}
    print("synthetic", results["synthetic"])
    if args.stage == "all":
        sets, items, ups, pv = embed_all(args.cache)
        prompts, responses = items_of(sets)
        item_index = {}
        for i, (p, t) in enumerate(zip(prompts, responses)):
            item_index.setdefault((p if isinstance(p, str) else json.dumps(p), t), i)
        item_index = {k: v for k, v in item_index.items()}
        prompt_index = {p: i for i, p in enumerate(ups)}
        X = items.embeddings
        all_rows, X_all = embed_gsm8k_all(args.cache)
        results["gsm8k"] = gsm8k({"gsm8k": all_rows}, X_all)
        keyed = {(p, t): i for (p, t), i in item_index.items()}
        results["attributes"] = attributes(sets, X, keyed, pv.embeddings, prompt_index)
    from rewardlab.runinfo import run_info

    results["run"] = run_info()
    Path(args.out + ".json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    Path(args.out + ".md").write_text(render_md(json.loads(json.dumps(results, default=float))))
    print(json.dumps({k: v for k, v in results.items() if k != "run"}, indent=1, default=float)[:6000])


if __name__ == "__main__":
    main()
