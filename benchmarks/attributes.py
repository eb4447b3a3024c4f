"""Pointwise and multi-attribute reward models on frozen MiniLM embeddings (issue #24).

Stages (each reads the embedding cache the first one fills):

- ``embed``: MiniLM (all-MiniLM-L6-v2, CLS pooling, pair render, max 256 tokens) embeddings of
  every GSM8K solution, HumanEvalPack's chosen/rejected functions, a fixed 600-pair subset of
  HH-RLHF harmless (chosen/rejected), and each prompt alone (max 128 tokens: the gating input).
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
N_HH = 250   # pairs of HH-RLHF harmless (of 1,841): the CPU budget of a shared 2-core machine
N_HEP = 200  # pairs of HumanEvalPack (of 656, all four languages)
ITEM_SPEC = dict(model="minilm", max_length=256)
PROMPT_SPEC = dict(model="minilm", max_length=128)


def _read(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _fixed_subset(rows: list[dict], n: int) -> list[dict]:
    """The n rows of lowest hash of prompt + chosen (a fixed subset, in file order)."""
    keep = set(sorted(range(len(rows)), key=lambda i: _h(rows[i]["prompt"] + rows[i]["chosen"]))[:n])
    return [r for i, r in enumerate(rows) if i in keep]


def load_sets() -> dict[str, list[dict]]:
    """The rows used: every GSM8K question, N_HEP HumanEvalPack pairs, N_HH HH pairs."""
    return {"gsm8k": _read("gsm8k_solutions.jsonl"),
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
    items = embed_texts(prompts, responses, EmbedSpec(**ITEM_SPEC), cache_dir=cache, log=log,
                        batch_size=16, flush_every=256)
    ups = unique_prompts(sets)
    prompt_vecs = embed_texts(ups, [""] * len(ups), EmbedSpec(**PROMPT_SPEC), cache_dir=cache,
                              log=log, batch_size=32, flush_every=256)
    return sets, items, ups, prompt_vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/pointwise/embed_cache")
    ap.add_argument("--stage", default="all", choices=["embed", "all"])
    args = ap.parse_args()
    if args.stage == "embed":
        _, items, _, pv = embed_all(args.cache)
        print(items.stats, pv.stats)
        return


if __name__ == "__main__":
    main()
