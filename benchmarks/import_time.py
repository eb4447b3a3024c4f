"""Import time of ``import rewardlab`` and of ``rewardlab --help``, two source trees side by side.

Each round runs both commands once per tree, alternating A B A B (fresh interpreters), and the
table gives medians and the ratio B/A per command. Used for the restructuring issue (#19):

    git worktree add /tmp/before <commit>
    python benchmarks/import_time.py --a /tmp/before/src --b src --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "import rewardlab": [sys.executable, "-c", "import rewardlab"],
    "rewardlab --help": [sys.executable, "-c", "import sys; sys.argv = ['rewardlab', '--help']\n"
                         "from rewardlab.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass"],
}


def once(cmd: list[str], src: str) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="source directory A (the one before)")
    ap.add_argument("--b", required=True, help="source directory B (the one after)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "import_time.json")
    args = ap.parse_args()
    times: dict[str, dict[str, list[float]]] = {c: {"a": [], "b": []} for c in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the file cache once per side
        once(cmd, args.a), once(cmd, args.b)
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            times[name]["a"].append(once(cmd, args.a))
            times[name]["b"].append(once(cmd, args.b))
    print(f"| command | A median (s) | B median (s) | B/A (median of per-round ratios) |\n|---|---|---|---|")
    summary = {}
    for name, t in times.items():
        ratio = statistics.median(b / a for a, b in zip(t["a"], t["b"]))
        summary[name] = {"a_median": statistics.median(t["a"]), "b_median": statistics.median(t["b"]),
                         "ratio_median": ratio, "a": t["a"], "b": t["b"]}
        print(f"| `{name}` | {summary[name]['a_median']:.3f} | {summary[name]['b_median']:.3f} | {ratio:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"a": args.a, "b": args.b, "rounds": args.rounds, "results": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
