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


# ------------------------------------------------------------------ bad input (issue 25)
def invoke(*args, env: dict | None = None):
    """``rewardlab ARGS`` in this process (Typer's CliRunner): stdout and stderr apart."""
    from typer.testing import CliRunner

    from rewardlab.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})})


def assert_bad_input(result, *needles: str) -> str:
    """A refused input: exit status 2, exactly one ``error:`` line on stderr holding every needle
    (the option, file or field), no traceback anywhere, no error on stdout. Returns the line."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "error" not in result.stdout, result.stdout
    return lines[0]


def snapshot(root: Path) -> dict:
    """Every file and directory under ``root`` with its size and modification time: equal
    snapshots before and after a refused command mean it left nothing behind and changed nothing."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def read_only_dir(path: Path):
    """``path`` made a directory nothing can be written in: immutable (``chattr +i``, which stops
    root too), else mode 0o555 for a user that is not root; None when neither holds here. The
    caller undoes it with ``writable_again(path)``."""
    import shutil

    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        return path
    if os.geteuid() != 0:
        path.chmod(0o555)
        return path
    return None


def writable_again(path: Path) -> None:
    import shutil

    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    if path.exists():
        path.chmod(0o755)


def check_refused(argv, needles, paths: dict, env: dict | None = None, request=None) -> str:
    """Run ``rewardlab ARGV`` (``{name}`` filled from ``paths``) and check it was refused as
    :func:`assert_bad_input` says, leaving ``paths["root"]`` exactly as it was. Returns the line.
    With pytest's ``request``, an argument naming ``{locked}`` gets the ``locked_dir`` fixture
    (built only for the cases that need it)."""
    if request is not None and any("{locked}" in str(a) for a in argv):
        paths["locked"] = request.getfixturevalue("locked_dir")
    args = [str(a).format(**paths) for a in argv]
    before = snapshot(paths["root"])
    result = invoke(*args, env=env)
    line = assert_bad_input(result, *(str(n).format(**paths) for n in needles))
    assert snapshot(paths["root"]) == before, "the refused command wrote or changed files"
    return line
