"""Running rewardlab in a subprocess from tests: the environment, the CLI, a kill -9 after a checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def train_env() -> dict:
    """The test process's environment with one torch thread and no inherited launcher rank."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    return env


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """``python -m rewardlab.cli ARGS``, output captured as text."""
    return subprocess.run([sys.executable, "-m", "rewardlab.cli", *args], capture_output=True, text=True,
                          env=train_env(), **kw)


def kill9_after_checkpoint(config: Path, checkpoints: Path, step: int, timeout: float = 300) -> subprocess.Popen:
    """Start ``rewardlab train CONFIG``, SIGKILL it as soon as checkpoint ``step`` is complete; the
    finished process is returned (the caller checks that it was killed before the run ended)."""
    proc = subprocess.Popen([sys.executable, "-m", "rewardlab.cli", "train", str(config)], env=train_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = checkpoints / f"step-{step:06d}" / "COMPLETE"
    deadline = time.time() + timeout
    while time.time() < deadline and not done.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc
