"""Can any offline backbone tell a correct function from its one-bug copy on unseen problems?
(issue 21, NormBT: the probe that decides whether a SmolLM2-135M arm is worth its CPU hours).

The NormBT experiment (``benchmarks/fidelity_normbt.py``) can only test the paper's claim where
BT leaves chance on held-out code; fine-tuned MiniLM did not (bt_s0: 0.478 [0.424, 0.533] on 320
held-out pairs). Fine-tuning SmolLM2-135M (6x MiniLM's parameters) for the 10 cells of that design
would take tens of CPU hours on this machine, so first this forward-only probe, on the same
problem split (``fidelity_normbt.prepare``: half the HumanEvalPack problems, all four languages,
on each side):

1. **Zero-shot likelihood** (SmolLM2 only, a causal LM): the pair is ranked by the summed log
   probability of the response given the prompt (chat template, the response as the assistant
   turn). The two functions differ in a few tokens, so this asks whether the pre-trained model
   finds the bug less likely. No training: every pair is out of sample; reported on the held-out
   half (as the experiment) and on all 656 pairs.
2. **Frozen features + a linear head**: the pooled vector of each (prompt, response) (SmolLM2: the
   final, normed hidden state of the last token, what its reward head reads; MiniLM: the CLS
   pooler), a linear BT head and a linear NormBT head (``rewardlab.heads``; NormBT's distance on
   the standardised input) trained on the training half's code pairs, 5 head seeds, accuracy on
   the held-out half. Paired NormBT - BT per seed (McNemar) as a side result of a *different*
   setting (frozen features, linear head), labelled as such.
3. The eval-mode distance ||h_c - h_r|| of each backbone on the held-out pairs (NormBT's input).

Decision rule, fixed before the run: the SmolLM2 fine-tuning arm is run only if a SmolLM2 probe
(1 or 2) reaches at least 0.60 on the held-out code pairs with the lower 95% bound above 0.5; else
the NormBT verdict stays "inconclusive: no offline backbone leaves chance on held-out code", with
these numbers as the reason.

Power: 320 held-out pairs give a Wilson half-width of about 5.5 points, so 0.60 is told from 0.5.

Forward passes are cached per text under ``--work`` (chunks of 32, resumable); run niced
(a tiny end-to-end check: ``--work /tmp/probe_tiny --results /tmp/probe_tiny --limit 40 --seeds 2``):

    nice -n 10 python benchmarks/normbt_probe.py --work runs/normbt_probe

Writes benchmarks/results/normbt_probe.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity_common import RESULTS, fmt_ci, paired_arms, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LANGS = ("python", "js", "java", "go")


def code_tables(work: Path) -> dict:
    """The training half's code pairs and the held-out code pairs of the NormBT experiment."""
    import fidelity_normbt

    from rewardlab.data import load_preferences

    files = fidelity_normbt.prepare(work / "normbt_data", hh_train=800)
    train = load_preferences(files["train"])
    keep = [i for i, s in enumerate(train["source"]) if str(s).startswith("humanevalpack")]
    return {"train": train.select(keep), "test": load_preferences(files["test_code"])}


def _texts(tables: dict) -> list[tuple[str, str]]:
    out = []
    for name in ("train", "test"):
        t = tables[name]
        out += list(zip(t["prompt"], t["chosen"])) + list(zip(t["prompt"], t["rejected"]))
    return out


def smollm2_pass(texts: list[tuple[str, str]], cache: Path, max_length: int, log=print) -> dict:
    """Per (prompt, response): summed log p(response | prompt) under SmolLM2-135M-Instruct (chat
    template), its token count, and the last token's final hidden state. Chunks of 32 texts are
    saved as they finish, so an interrupted pass resumes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.models.backbone import ALIASES

    cache.mkdir(parents=True, exist_ok=True)
    chunk = 32
    n_chunks = (len(texts) + chunk - 1) // chunk
    todo = [k for k in range(n_chunks) if not (cache / f"chunk{k:04d}.npz").is_file()]
    if todo:
        path = ALIASES["smollm2-135m"]()
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
        t0 = time.perf_counter()
        for done, k in enumerate(todo):
            rows = {"logp": [], "tokens": [], "h": [], "truncated": []}
            for prompt, response in texts[k * chunk:(k + 1) * chunk]:
                user = [{"role": "user", "content": prompt}]
                head_text = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
                full_text = tok.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
                if not full_text.startswith(head_text):
                    raise RuntimeError("the chat template does not extend the prompt's rendering")
                # the prompt's tokens, then the rest's: the boundary where generation would put it
                # (tokenising the whole text can merge the generation prompt's newline with the response)
                head = tok(head_text, add_special_tokens=False)["input_ids"]
                full = head + tok(full_text[len(head_text):], add_special_tokens=False)["input_ids"]
                cut = max(0, len(full) - max_length)  # drop the prompt's start if the pair is too long
                ids = torch.tensor([full[cut:]])
                start = max(1, len(head) - cut)
                with torch.no_grad():
                    out = model(input_ids=ids, output_hidden_states=True)
                # only the positions that predict a response token (the prompt's need no softmax)
                logits = out.logits[0, start - 1:-1].double().log_softmax(-1)
                lp = logits.gather(-1, ids[0, start:, None])[:, 0]
                rows["logp"].append(float(lp.sum()))
                rows["tokens"].append(int(lp.numel()))
                rows["h"].append(out.hidden_states[-1][0, -1].float().numpy())
                rows["truncated"].append(cut > 0)
            np.savez(cache / f"chunk{k:04d}.npz", logp=np.array(rows["logp"]), tokens=np.array(rows["tokens"]),
                     h=np.stack(rows["h"]), truncated=np.array(rows["truncated"]))
            rate = (done + 1) * chunk / (time.perf_counter() - t0)
            log(f"smollm2 chunk {k + 1}/{n_chunks} ({rate:.2f} texts/s)")
    parts = [np.load(cache / f"chunk{k:04d}.npz") for k in range(n_chunks)]
    return {key: np.concatenate([p[key] for p in parts]) for key in ("logp", "tokens", "h", "truncated")}


def minilm_features(texts: list[tuple[str, str]], cache: Path, max_length: int, log=print) -> np.ndarray:
    from rewardlab.embed.extract import EmbedSpec, embed_texts

    res = embed_texts([p for p, _ in texts], [r for _, r in texts], EmbedSpec(model="minilm", max_length=max_length),
                      cache_dir=str(cache), log=log, batch_size=16, flush_every=64)
    return res.embeddings


def wilson(k: int, n: int) -> dict:
    from rewardlab.eval.stats import wilson_interval

    return wilson_interval(k, n)


def by_language(correct: np.ndarray, sources: list) -> dict:
    out = {}
    for lang in LANGS:
        idx = np.array([str(s).endswith(lang) for s in sources])
        if idx.any():
            out[lang] = wilson(int(correct[idx].sum()), int(idx.sum()))
    return out


def head_probe(X: np.ndarray, n_train: int, n_test: int, seeds, problems) -> dict:
    """Linear BT and NormBT heads on frozen features (train pairs -> held-out pairs), paired by
    head seed (``fidelity_common.paired_arms``: McNemar per seed, Holm, pooled over seeds)."""
    from rewardlab.heads import fit_head

    # layout of X: train chosen, train rejected, test chosen, test rejected
    tr_c, tr_r = np.arange(n_train), np.arange(n_train, 2 * n_train)
    off = 2 * n_train
    te_c, te_r = np.arange(off, off + n_test), np.arange(off + n_test, off + 2 * n_test)
    cfg = {"kind": "linear", "lr": 1e-3, "batch_size": 64, "epochs": 200, "patience": 10, "val_fraction": 0.15}
    acc: dict = {"bt": {}, "normbt": {}}
    for seed in seeds:
        for arm, objective in (("bt", {"name": "bt"}), ("normbt", {"name": "normbt", "beta": 0.9})):
            r = fit_head(X, tr_c, tr_r, objective=objective, config=cfg, seed=seed).predict(X)
            acc[arm][seed] = (r[te_c] > r[te_r]).astype(int)
    out = paired_arms(acc, "bt", list(seeds), clusters=problems)
    out["bt_wilson"] = {s: wilson(int(acc["bt"][s].sum()), n_test) for s in seeds}
    return out


def run(args) -> dict:
    from rewardlab.data.splits import HUMANEVALPACK_PROBLEM, group_keys

    work = args.work
    tables = code_tables(work)
    if args.limit:  # the tiny check (its own --work: the caches are by position)
        tables = {k: t.select(list(range(min(args.limit, len(t))))) for k, t in tables.items()}
    n_train, n_test = len(tables["train"]), len(tables["test"])
    texts = _texts(tables)
    problems = group_keys(tables["test"], HUMANEVALPACK_PROBLEM)
    sources = list(tables["test"]["source"])
    out: dict = {"n_train_pairs": n_train, "n_test_pairs": n_test, "max_length": args.max_length,
                 "head_seeds": list(range(args.seeds)), "backbones": {}}
    te = slice(2 * n_train, 2 * n_train + 2 * n_test)
    for backbone in args.backbones:
        t0 = time.perf_counter()
        entry: dict = {}
        if backbone == "smollm2":
            s = smollm2_pass(texts, work / "smollm2_cache", args.max_length)
            X = s["h"].astype(np.float64)
            lp_c = np.r_[s["logp"][:n_train], s["logp"][2 * n_train:2 * n_train + n_test]]
            lp_r = np.r_[s["logp"][n_train:2 * n_train], s["logp"][2 * n_train + n_test:]]
            win = (lp_c > lp_r).astype(int)
            held = win[n_train:]
            entry["zero_shot_likelihood"] = {
                "held_out": wilson(int(held.sum()), n_test), "held_out_by_language": by_language(held, sources),
                "all_pairs": wilson(int(win.sum()), n_train + n_test),
                "mean_logp_difference_held_out": float(np.mean(lp_c[n_train:] - lp_r[n_train:])),
                "truncated_texts": int(s["truncated"].sum())}
        else:
            X = minilm_features(texts, work / "minilm_cache", args.max_length).astype(np.float64)
        Xt = X[te]
        dist = np.linalg.norm(Xt[:n_test] - Xt[n_test:], axis=1)
        norms = np.linalg.norm(Xt, axis=1)
        entry["distance_held_out"] = {"median": float(np.median(dist)), "q10": float(np.quantile(dist, 0.1)),
                                      "q90": float(np.quantile(dist, 0.9)),
                                      "median_relative_to_norm": float(np.median(dist / norms[:n_test]))}
        entry["linear_heads"] = head_probe(X, n_train, n_test, range(args.seeds), problems)
        entry["seconds"] = time.perf_counter() - t0
        out["backbones"][backbone] = entry
        print(json.dumps({backbone: {k: v for k, v in entry.items() if k != "linear_heads"}}, default=float), flush=True)
    sm = out["backbones"].get("smollm2")
    if sm:
        cands = [sm["zero_shot_likelihood"]["held_out"]] + list(sm["linear_heads"]["bt_wilson"].values())
        best = max(cands, key=lambda c: c["estimate"])
        go = best["estimate"] >= 0.60 and best["low"] > 0.5
        out["decision"] = {"best_smollm2_probe": best, "run_smollm2_finetuning": bool(go),
                           "rule": "run the SmolLM2 arm only if a SmolLM2 probe reaches >= 0.60 on held-out code "
                                   "with the lower 95% bound above 0.5"}
    return out


_ci = fmt_ci


def markdown(res: dict) -> str:
    lines = ["# NormBT backbone probe: does any offline backbone leave chance on held-out code?", "",
             f"Command: `{res['command']}`. HumanEvalPack split by problem as in `fidelity_normbt.py`: "
             f"{res['n_train_pairs']} training code pairs, {res['n_test_pairs']} held-out code pairs "
             f"(four languages); max length {res['max_length']} tokens. Intervals: Wilson 95%.", ""]
    for name, e in res["backbones"].items():
        lines += [f"## {name}", ""]
        z = e.get("zero_shot_likelihood")
        if z:
            lines += [f"- zero-shot likelihood, held out: **{_ci(z['held_out'])}**; by language: "
                      + ", ".join(f"{k} {_ci(v)}" for k, v in z["held_out_by_language"].items())
                      + f"; all {z['all_pairs']['n']} pairs: {_ci(z['all_pairs'])}; mean log-p difference "
                        f"(chosen − rejected) {z['mean_logp_difference_held_out']:+.3f}; texts truncated: "
                        f"{z['truncated_texts']}"]
        d = e["distance_held_out"]
        lines += [f"- eval-mode distance ‖h_c − h_r‖ on held-out pairs: median {d['median']:.4f} "
                  f"(10%: {d['q10']:.4f}, 90%: {d['q90']:.4f}), {d['median_relative_to_norm']:.4f} of ‖h‖", "",
                  "| head seed | linear BT | linear NormBT | NormBT − BT | McNemar p (Holm) |", "|---|---|---|---|---|"]
        heads = e["linear_heads"]
        for r in heads["arms"]["normbt"]["per_seed"]:
            lines.append(f"| {r['seed']} | {_ci(heads['bt_wilson'][r['seed']])} | {r['arm']:.3f} | "
                         f"{r['difference']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | "
                         f"{r['mcnemar_p']:.3g} ({r['mcnemar_p_holm']:.3g}) |")
        nb = heads["arms"]["normbt"]
        lines += ["", f"Over seeds: BT {_ci(heads['baseline_accuracy'])}, NormBT {_ci(nb['accuracy'])}; "
                  f"NormBT − BT pooled {_ci(nb['pooled_difference'])} (a frozen-feature linear head: "
                  "not the paper's fine-tuned setting)."]
        lines.append("")
    if "decision" in res:
        dec = res["decision"]
        lines += ["## Decision (rule fixed before the run)", "", f"Rule: {dec['rule']}. Best SmolLM2 probe: "
                  f"{_ci(dec['best_smollm2_probe'])} → "
                  + ("run the SmolLM2 fine-tuning arm." if dec["run_smollm2_finetuning"] else
                     "do not run it; the NormBT verdict stays inconclusive (no backbone leaves chance)."), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "normbt_probe")
    ap.add_argument("--backbones", nargs="+", default=["minilm", "smollm2"], choices=["minilm", "smollm2"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--limit", type=int, default=None, help="first N pairs of each side (a tiny check, own --work)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    res = run(args)
    res["command"] = "nice -n 10 python benchmarks/normbt_probe.py --work " + str(args.work)
    from rewardlab.runinfo import run_info

    res["run"] = run_info()
    write_results("normbt_probe", res, markdown(res), args.results)
    print(markdown(res))


if __name__ == "__main__":
    main()
