"""Load test of `rewardlab serve` on loopback: served vs offline throughput, latency, correctness.

A reward model (an untrained head on --model: throughput does not depend on the head's values)
is saved to a temporary directory and served by the real command (`python -m rewardlab serve`,
a subprocess, API key set). Texts: the first --texts (prompt, response) items of --data (chosen
and rejected sides). In each round, side by side:

- offline: `RewardModel.score` on all texts in this process (what `rewardlab score` runs), with
  the same torch threads and batch size as the server;
- served, for each client count (1, 8, 32): that many concurrent clients (asyncio + httpx, one
  keep-alive connection each) send --requests requests of --items-per-request items, bounded by
  --level-seconds. Every 10th request is malformed (cycling through malformed JSON, a wrong
  type, an empty list, too many items, a text over the limit, an oversized body, a missing API
  key) and must get its 4xx; every valid request must get 200 with the offline rewards (within
  --tol). Valid requests go to /score, and for chat-template models every other one to
  /get_reward with the chat-rendered text.

Reported per client count (medians over rounds): items/s of valid items, p50/p99 latency of
valid requests, the ratio served/offline items/s (each round's served run against the same
round's offline run), mean items per scoring call; counts of 5xx, wrong rewards, unexpected
statuses, transport errors.

    python benchmarks/serve_load.py --model minilm --rounds 3                       # results/serve_load_minilm.*
    python benchmarks/serve_load.py --model smollm2-135m --texts 128 --out-name serve_load_smollm2
    python benchmarks/serve_load.py --quick                                          # smoke run

Writes benchmarks/results/<out-name>.json and .md, prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
KEY = "bench-key"
MALFORMED = ("malformed_json", "wrong_type", "empty_list", "too_many_items", "text_too_long", "body_too_large",
             "no_api_key")
EXPECTED_STATUS = {"malformed_json": 400, "wrong_type": 400, "empty_list": 400, "too_many_items": 400,
                   "text_too_long": 400, "body_too_large": 413, "no_api_key": 401}
# Server limits for the run (small enough that the oversized bodies stay cheap on loopback).
MAX_ITEMS, MAX_CHARS, MAX_BODY_MB = 64, 20_000, 0.25


def load_items(path: Path, n: int) -> tuple[list, list]:
    prompts, responses = [], []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            for side in ("chosen", "rejected"):
                prompts.append(row["prompt"])
                responses.append(row[side])
            if len(prompts) >= n:
                break
    return prompts[:n], responses[:n]


def prepare_model(name: str, max_length: int, workdir: Path):
    from rewardlab.models.reward_model import RewardModel

    if Path(name, "config.json").is_file():
        return RewardModel.from_pretrained(name), Path(name)
    import torch

    torch.manual_seed(0)
    rm = RewardModel.from_backbone(name, max_length=max_length)
    out = rm.save_pretrained(workdir / "model")
    return RewardModel.from_pretrained(out), out  # scored exactly as the server loads it


def start_server(model_dir: Path, args, max_padding: float, log_path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(args.threads),
           "BENCH_KEY": KEY, "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "rewardlab", "serve", str(model_dir), "--port", "0",
           "--threads", str(args.threads), "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--max-padding", str(max_padding), "--api-key-env", "BENCH_KEY", "--max-items", str(MAX_ITEMS),
           "--max-chars", str(MAX_CHARS), "--max-body-mb", str(MAX_BODY_MB)]
    log = open(log_path, "w")  # a file, not a pipe: an unread pipe would block the server's logging
    proc = subprocess.Popen(cmd, stderr=log, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 300
    url = None
    while url is None:
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", log_path.read_text())
        url = m.group(1) if m else None
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.2)
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
        if time.monotonic() > deadline:
            raise RuntimeError("server not healthy")


def malformed_request(kind: str) -> tuple[str, bytes, dict]:
    auth = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    if kind == "malformed_json":
        return "/score", b'{"items": [{"prompt": "p", "response": ', auth
    if kind == "wrong_type":
        return "/score", json.dumps({"items": [{"prompt": "p", "response": 7}]}).encode(), auth
    if kind == "empty_list":
        return "/get_reward", json.dumps({"query": []}).encode(), auth
    if kind == "too_many_items":
        return "/get_reward", json.dumps({"query": ["q"] * (MAX_ITEMS + 1)}).encode(), auth
    if kind == "text_too_long":
        return "/classify", json.dumps({"input": "x" * (MAX_CHARS + 1)}).encode(), auth
    if kind == "body_too_large":
        n = int(MAX_BODY_MB * 2**20) // 1000 + 10
        return "/get_reward", json.dumps({"query": ["y" * 990] * n}).encode(), auth
    if kind == "no_api_key":
        return "/score", json.dumps({"items": [{"prompt": "p", "response": "r"}]}).encode(), {}
    raise ValueError(kind)


async def run_level(url: str, clients: int, plan: dict, args) -> dict:
    """``clients`` concurrent clients working through the request plan; bounded in count and time."""
    n_req = args.requests
    next_index = iter(range(n_req))
    lat, valid_items = [], 0
    counts = {"ok": 0, "wrong_rewards": 0, "malformed_rejected": 0, "malformed_unexpected": 0, "5xx": 0,
              "unexpected_status": 0, "transport_errors": 0}
    max_diff = 0.0
    deadline = time.monotonic() + args.level_seconds
    auth = {"Authorization": f"Bearer {KEY}"}

    async def client_loop():
        nonlocal valid_items, max_diff
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1)) as c:
            for i in next_index:
                if time.monotonic() > deadline:
                    return
                if i % 10 == 9:  # 10% malformed
                    kind = MALFORMED[(i // 10) % len(MALFORMED)]
                    path, raw, headers = malformed_request(kind)
                    try:
                        r = await c.post(path, content=raw, headers=headers)
                    except httpx.TransportError:
                        counts["transport_errors"] += 1
                        continue
                    if r.status_code >= 500:
                        counts["5xx"] += 1
                    ok = r.status_code == EXPECTED_STATUS[kind] and r.json().get("error", {}).get("field")
                    counts["malformed_rejected" if ok else "malformed_unexpected"] += 1
                    continue
                idx = plan["indices"][i]
                use_query = plan["chat"] and i % 2 == 1
                if use_query:
                    path, payload = "/get_reward", {"query": [plan["queries"][j] for j in idx]}
                else:
                    path = "/score"
                    payload = {"items": [{"prompt": plan["prompts"][j], "response": plan["responses"][j]} for j in idx]}
                t0 = time.perf_counter()
                try:
                    r = await c.post(path, json=payload, headers=auth)
                except httpx.TransportError:
                    counts["transport_errors"] += 1
                    continue
                elapsed = time.perf_counter() - t0
                if r.status_code >= 500:
                    counts["5xx"] += 1
                    continue
                if r.status_code != 200:
                    counts["unexpected_status"] += 1
                    continue
                got = np.array(r.json()["rewards"])
                diff = float(np.max(np.abs(got - plan["reference"][idx])))
                max_diff = max(max_diff, diff)
                counts["ok" if diff <= args.tol else "wrong_rewards"] += 1
                lat.append(elapsed)
                valid_items += len(idx)

    before = batch_stats(url)
    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    wall = time.perf_counter() - t0
    after = batch_stats(url)
    calls = after[1] - before[1]
    return {
        "clients": clients, "wall_s": wall, "valid_items": valid_items, "items_per_s": valid_items / wall,
        "p50_ms": 1000 * float(np.percentile(lat, 50)) if lat else None,
        "p99_ms": 1000 * float(np.percentile(lat, 99)) if lat else None,
        "mean_items_per_call": (after[0] - before[0]) / calls if calls else None,
        "max_abs_diff": max_diff, **counts,
    }


def batch_stats(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    get = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # noqa: E731
    return get("rewardlab_batch_items_sum"), get("rewardlab_batch_items_count")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--data", default=str(DATA / "hh_rlhf_harmless.jsonl"))
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--items-per-request", type=int, default=4)
    ap.add_argument("--requests", type=int, default=90, help="requests per client level (10%% malformed)")
    ap.add_argument("--level-seconds", type=float, default=180)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-padding", type=float, nargs="+", default=[0.2, 1.0],
                    help="server --max-padding values compared side by side (one server each)")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--out-name", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: few texts and requests, one round")
    args = ap.parse_args()
    if args.quick:
        args.texts, args.requests, args.rounds, args.clients = 32, 20, 1, [1, 8]
    out_name = args.out_name or f"serve_load_{Path(args.model).name.replace('-', '_')}"

    import torch

    from rewardlab.data.chat import to_messages
    from rewardlab.runinfo import run_info

    torch.set_num_threads(args.threads)
    prompts, responses = load_items(Path(args.data), args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        rm, model_dir = prepare_model(args.model, args.max_length, Path(tmp))
        chat = rm.settings.render == "chat"
        reference = rm.score(prompts, responses, batch_size=1)  # unpadded: the reference rewards
        n, k = len(prompts), args.items_per_request
        plan = {"prompts": prompts, "responses": responses, "reference": reference, "chat": chat,
                "indices": [np.arange(i * k, i * k + k) % n for i in range(args.requests)],
                "queries": [rm.tokenizer.apply_chat_template(to_messages(p, r), tokenize=False)
                            for p, r in zip(prompts, responses)] if chat else None}
        servers = {mp: start_server(model_dir, args, mp, Path(tmp) / f"server_{mp}.log") for mp in args.max_padding}
        rounds = []
        try:
            for rnd in range(args.rounds):
                t0 = time.perf_counter()
                offline = rm.score(prompts, responses, batch_size=args.max_batch)
                offline_s = time.perf_counter() - t0
                entry = {"round": rnd, "offline_items_per_s": n / offline_s,
                         "offline_max_abs_diff": float(np.max(np.abs(offline - reference))), "levels": []}
                print(f"round {rnd}: offline {n / offline_s:.1f} items/s", flush=True)
                for clients in args.clients:  # A B A B: the servers alternate at each client count
                    for mp, (_, url) in servers.items():
                        res = asyncio.run(run_level(url, clients, plan, args))
                        res["max_padding"] = mp
                        res["ratio_to_offline"] = res["items_per_s"] / entry["offline_items_per_s"]
                        entry["levels"].append(res)
                        print(f"  max padding {mp:g}, {clients:>3} clients: {res['items_per_s']:.1f} items/s, p50 "
                              f"{res['p50_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms, ratio "
                              f"{res['ratio_to_offline']:.2f}, {res['mean_items_per_call']:.1f} items/call, 5xx "
                              f"{res['5xx']}, wrong {res['wrong_rewards']}, malformed rejected "
                              f"{res['malformed_rejected']}", flush=True)
                rounds.append(entry)
        finally:
            exits = {}
            for mp, (proc, _) in servers.items():
                proc.terminate()  # SIGTERM: drain, then exit 0
                exits[str(mp)] = proc.wait(timeout=120)
    summary = []
    for mp in args.max_padding:
        for clients in args.clients:
            levels = [lv for r in rounds for lv in r["levels"] if lv["clients"] == clients and lv["max_padding"] == mp]
            med = lambda key: float(np.median([lv[key] for lv in levels]))  # noqa: E731
            total = lambda key: int(sum(lv[key] for lv in levels))  # noqa: E731
            summary.append({"max_padding": mp, "clients": clients, "items_per_s": med("items_per_s"),
                            "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
                            "ratio_to_offline": med("ratio_to_offline"),
                            "mean_items_per_call": med("mean_items_per_call"),
                            **{key: total(key) for key in ("ok", "wrong_rewards", "malformed_rejected",
                                                           "malformed_unexpected", "5xx", "unexpected_status",
                                                           "transport_errors")},
                            "max_abs_diff": max(lv["max_abs_diff"] for lv in levels)})
    offline_med = float(np.median([r["offline_items_per_s"] for r in rounds]))
    result = {"config": {k: v for k, v in vars(args).items()}, "model_render": rm.settings.render,
              "server_limits": {"max_items": MAX_ITEMS, "max_chars": MAX_CHARS, "max_body_mb": MAX_BODY_MB},
              "offline_items_per_s_median": offline_med, "summary": summary, "rounds": rounds,
              "server_exit_status_after_sigterm": exits, "cpu_count": os.cpu_count(),
              "note": "2-core machine shared with other jobs; server, clients and the offline pass on the same cores",
              **run_info()}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{out_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# rewardlab serve under load: {args.model} (max length {args.max_length}, {args.items_per_request} "
             f"items/request, {args.threads} torch thread(s), max batch {args.max_batch}, max wait "
             f"{args.max_wait_ms:g} ms)", "",
             f"Offline `RewardModel.score` (batch {args.max_batch}), median of {len(rounds)} rounds: "
             f"**{offline_med:.1f} items/s**. Served: medians over rounds; counts summed over rounds. "
             "10% of requests malformed. Machine: 2 cores shared with other jobs.", "",
             "| server --max-padding | clients | items/s | served / offline | p50 ms | p99 ms | items per scoring call "
             "| valid ok | wrong rewards | malformed → expected 4xx | other | 5xx | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        other = s["malformed_unexpected"] + s["unexpected_status"] + s["transport_errors"]
        lines.append(f"| {s['max_padding']:g} | {s['clients']} | {s['items_per_s']:.1f} | {s['ratio_to_offline']:.2f} | "
                     f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['mean_items_per_call']:.1f} | {s['ok']} | "
                     f"{s['wrong_rewards']} | {s['malformed_rejected']} | {other} | {s['5xx']} | "
                     f"{s['max_abs_diff']:.1e} |")
    lines.append(f"\nServers' exit status after SIGTERM: {exits}.")
    lines += ["", f"Command: `python benchmarks/serve_load.py {' '.join(sys.argv[1:])}`", ""]
    (out / f"{out_name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
