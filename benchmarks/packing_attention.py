"""Attention over a packed micro-batch on CPU: which way to confine attention to each item.

One micro-batch of 2B items (lengths drawn from the HH-harmless pairs that fit 256 MiniLM tokens,
or given), attention forward + backward only, float32, one thread, at MiniLM's shape (12 heads x
32, bidirectional) and SmolLM2-135M's (9 heads x 64, causal):

- ``padded``: [2B, H, L_max, D] with a padding mask (what the padded path computes);
- ``block_diagonal``: the flat [1, H, T, D] sequence, one SDPA call with a [T, T] block-diagonal mask;
- ``segments``: the flat sequence, one SDPA call per item (rewardlab's ``rewardlab_varlen``);
- ``flex``: FlexAttention with a block mask from the document ids (eager; ``--compile`` also tries
  torch.compile, which needs a C++ toolchain and minutes on this machine).

Every way is checked against per-item attention (max abs difference), then timed, alternating,
median of ``--repeats``.

    python benchmarks/packing_attention.py --repeats 5

Writes benchmarks/results/packing_attention.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
# 16 item lengths (8 pairs): a micro-batch of HH-harmless pairs that fit 256 MiniLM tokens
# (drawn once from benchmarks/vs_trl.py's data; mean about 150).
HH_LENGTHS = [246, 118, 201, 87, 163, 142, 230, 95, 176, 121, 208, 66, 154, 188, 111, 139]


def ways(causal: bool, compile_flex: bool):
    def padded(q, k, v, lengths):
        B, L = len(lengths), max(lengths)
        H, D = q.shape[1], q.shape[3]
        qp, kp, vp = (x.new_zeros(B, H, L, D) for x in (q, k, v))
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        for i, n in enumerate(lengths):
            s = starts[i]
            qp[i, :, :n], kp[i, :, :n], vp[i, :, :n] = q[0, :, s:s + n], k[0, :, s:s + n], v[0, :, s:s + n]
        valid = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
        mask = valid[:, None, None, :].expand(B, 1, L, L)
        if causal:
            mask = mask & torch.ones(L, L, dtype=torch.bool).tril()
        o = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask)
        return torch.cat([o[i, :, :n] for i, n in enumerate(lengths)], dim=1).unsqueeze(0)

    def doc_ids(lengths):
        return torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))

    def block_diagonal(q, k, v, lengths):
        d = doc_ids(lengths)
        mask = d[:, None] == d[None, :]
        if causal:
            mask = mask & torch.ones(len(d), len(d), dtype=torch.bool).tril()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def segments(q, k, v, lengths):
        outs, s = [], 0
        for n in lengths:
            outs.append(F.scaled_dot_product_attention(q[:, :, s:s + n], k[:, :, s:s + n], v[:, :, s:s + n],
                                                       is_causal=causal))
            s += n
        return torch.cat(outs, dim=2)

    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    compiled = torch.compile(flex_attention) if compile_flex else None

    def flex(q, k, v, lengths, fn=flex_attention):
        d = doc_ids(lengths)

        def keep(b, h, qi, ki):
            same = d[qi] == d[ki]
            return same & (qi >= ki) if causal else same

        bm = create_block_mask(keep, None, None, len(d), len(d), device="cpu")
        return fn(q, k, v, block_mask=bm)

    out = {"padded": padded, "block_diagonal": block_diagonal, "segments": segments, "flex": flex}
    if compiled is not None:
        out["flex_compiled"] = lambda q, k, v, lengths: flex(q, k, v, lengths, compiled)
    return out


def measure(shape: str, heads: int, dim: int, causal: bool, lengths: list[int], repeats: int, compile_flex: bool):
    torch.manual_seed(0)
    T = sum(lengths)
    q, k, v = (torch.randn(1, heads, T, dim, requires_grad=True) for _ in range(3))
    fns = ways(causal, compile_flex)
    ref = fns["segments"](q, k, v, lengths).detach()
    # the reference itself against item-by-item attention written out
    s, items = 0, []
    for n in lengths:
        w = (q[:, :, s:s + n] @ k[:, :, s:s + n].transpose(-1, -2)) / dim ** 0.5
        if causal:
            w = w.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
        items.append(w.softmax(-1) @ v[:, :, s:s + n])
        s += n
    by_hand = torch.cat(items, dim=2).detach()
    rows = {}
    for name, fn in fns.items():
        try:
            err = float((fn(q, k, v, lengths).detach() - by_hand).abs().max())
        except Exception as e:  # noqa: BLE001 - a way that does not run here is reported, not fatal
            rows[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        rows[name] = {"max_abs_error": err, "seconds": []}
    assert float((ref - by_hand).abs().max()) < 1e-4
    for _ in range(repeats):
        for name, fn in fns.items():
            if "seconds" not in rows[name]:
                continue
            t = time.perf_counter()
            fn(q, k, v, lengths).sum().backward()
            rows[name]["seconds"].append(time.perf_counter() - t)
            q.grad = k.grad = v.grad = None
    for r in rows.values():
        if "seconds" in r:
            r["median_seconds"] = statistics.median(r["seconds"])
    return {"shape": shape, "heads": heads, "head_dim": dim, "causal": causal, "tokens": T,
            "padded_tokens": len(lengths) * max(lengths), "ways": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd FlexAttention")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = [measure("minilm", 12, 32, False, HH_LENGTHS, args.repeats, args.compile),
               measure("smollm2-135m", 9, 64, True, HH_LENGTHS, args.repeats, args.compile)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "packing_attention.json").write_text(json.dumps({"args": vars(args), "threads": 1,
                                                               "results": results}, indent=2) + "\n")
    print("| shape | way | attention fwd+bwd s (median) | vs padded | max abs error |")
    print("|---|---|---|---|---|")
    for res in results:
        base = res["ways"]["padded"].get("median_seconds")
        for name, r in res["ways"].items():
            if "error" in r:
                print(f"| {res['shape']} | {name} | — | — | {r['error']} |")
            else:
                print(f"| {res['shape']} | {name} | {r['median_seconds']:.4f} | {base / r['median_seconds']:.2f}x | "
                      f"{r['max_abs_error']:.1e} |")


if __name__ == "__main__":
    main()
