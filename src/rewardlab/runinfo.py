"""What every run records next to its outputs: package versions, git commit, platform, parameter counts."""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("rewardlab", "torch", "transformers", "accelerate", "datasets", "numpy", "tokenizers")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(start: Path | None = None) -> str:
    """The commit of the checkout rewardlab runs from (or of ``start``), 'unknown' outside git."""
    where = start or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if sha.returncode != 0:
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def peak_memory(device=None) -> dict:
    """Peak memory of this process so far: resident set size (``ru_maxrss``) and, on a CUDA
    device, ``torch.cuda.max_memory_allocated``."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"rss_peak_bytes": int(rss if sys.platform == "darwin" else rss * 1024)}  # Linux reports KiB
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        out["cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out


def run_info() -> dict:
    return {"versions": package_versions(), "git_commit": git_commit(), "platform": platform.platform()}


def parameter_counts(module) -> dict[str, int]:
    """Total and trainable parameters (each tensor counted once)."""
    seen, total, trainable = set(), 0, 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"total": total, "trainable": trainable}


def files_fingerprint(directory: str | Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES,
                      names: tuple[str, ...] = ("config.json",)) -> str:
    """A short identity (16 hex digits) of a local model directory: the names, sizes and full
    contents of its files whose suffix is in ``suffixes`` or whose name is in ``names`` (by default
    the weights and ``config.json``). Contents, not modification times, so the same files on another
    machine or after a reinstall give the same identity and changed weights a new one; the
    directory's own path is not part of it. "" when ``directory`` is not a local directory (a Hub
    name)."""
    d = Path(directory)
    if not d.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(d.iterdir()):
        if f.is_file() and (f.suffix in suffixes or f.name in names):
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{_file_digest(str(f.resolve()), st.st_size, st.st_mtime_ns)}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's contents, remembered per (path, size, mtime) in this process: the critic's
    writer asks for its weights' identity twice (its cache folder, then the generator's key)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()
