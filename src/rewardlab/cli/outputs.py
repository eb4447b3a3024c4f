"""Output locations checked before the work: one helper for every command that writes.

A command resolves its outputs first and tries them, so a mistake costs a second, not a run:

- ``output_file(path, option, suffixes=..., overwrite=...)``: a file to write. Refused when it is
  a directory, when its suffix is not one the command writes (the format follows the suffix, and
  the file is written under exactly the name given), when it exists already (an earlier result)
  unless ``overwrite``, and when its directory cannot be created or written.
- ``output_dir(path, option, results=..., overwrite=..., resume=...)``: a run directory. Refused
  when it is a file, when it holds an earlier run's ``results`` unless ``overwrite`` (or
  ``resume``: continuing is what a resumable command does), and when it cannot be created or
  written.
- ``writable_dir(path, option)``: a cache directory (reused on purpose): creatable and writable.

"Writable" is tried, not guessed from permission bits: a temporary file is created and removed
in the nearest directory that exists (the output itself or its first existing parent), which
catches read-only filesystems, immutable directories and missing permissions alike, also for
root. Nothing else is created, so a command that fails afterwards leaves no empty directory
behind. Every refusal is a :class:`~rewardlab.errors.ConfigError` whose message starts with the
option, as the command's other errors (``rewardlab.cli.common.fail`` prints it on one line).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rewardlab.errors import ConfigError


def _words(suffixes: Sequence[str]) -> str:
    items = list(suffixes)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its first parent that exists (``.`` for a bare relative name)."""
    p = path
    while True:
        try:
            if p.exists() or p.is_symlink():
                return p
        except OSError:  # a parent we may not even look into: probed (and refused) below
            return p
        if p.parent == p:
            return p
        p = p.parent


def _try_writing(path: Path, option: str, shown: Path) -> None:
    """Refuse ``path`` unless a file can be created in its nearest existing directory."""
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise ConfigError(f"{option} {shown}: {anchor} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rewardlab-write-check-", dir=anchor)
    except OSError as e:
        raise ConfigError(f"{option} {shown}: cannot write in {anchor} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)


def output_file(path: str | Path, option: str = "--out", *, suffixes: Sequence[str] | None = None,
                overwrite: bool = False, what: str = "file") -> Path:
    """Check a file a command is about to write (see the module docstring); returns it as a Path."""
    path = Path(path)
    expected = f"a {_words(suffixes)} {what}" if suffixes else f"a {what}"
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; expected {expected}")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        got = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise ConfigError(f"{option} {path}: expected {expected} (the format follows the suffix), got {got}")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise ConfigError(f"{option} {path} already exists (an earlier result): pass --overwrite to replace "
                              "it, or choose another path")
        try:
            with path.open("r+b"):  # opened for writing, not changed
                pass
        except OSError as e:
            raise ConfigError(f"{option} {path}: cannot write it ({e.strerror or e})") from None
        _try_writing(path.parent, option, path)
        return path
    _try_writing(path.parent, option, path)
    return path


def earlier_results(path: Path, results: Sequence[str]) -> list[str]:
    """Which of ``results`` (names in the directory; ``model/`` style for directories) are there."""
    found = []
    for name in results:
        p = path / name.rstrip("/")
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    return found


def output_dir(path: str | Path, option: str = "--out", *, results: Sequence[str] = (), overwrite: bool = False,
               resume: bool | None = None, resumable: bool = True, holds: str = "") -> Path:
    """Check a run directory a command is about to write (see the module docstring).

    ``results``: the names an earlier run leaves there (``summary.json``, ``model/``). ``resume``:
    None when the command cannot continue a run; True/False for one that can (``resumable``: whether
    this directory holds something to continue, for the hint). ``holds``: what goes inside, for the
    message when a file is given (``scores.csv, summary.json, report.html``).
    """
    path = Path(path)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue the earlier run or replace it")
    if path.exists() and not path.is_dir():
        inside = f" ({holds} go inside)" if holds else ""
        raise ConfigError(f"{option} {path}: is a file; expected a directory{inside}")
    found = earlier_results(path, results) if path.is_dir() else []
    if found and not (overwrite or resume):
        hint = ("pass --resume to continue it, --overwrite to replace it" if resume is not None and resumable
                else "pass --overwrite to replace them")
        raise ConfigError(f"{option} {path} holds an earlier run's results ({', '.join(found)}): {hint}, or choose "
                          "another directory")
    _try_writing(path, option, path)
    return path


def writable_dir(path: str | Path, option: str) -> Path:
    """A directory (a cache, reused on purpose) that can be created and written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file; expected a directory")
    _try_writing(path, option, path)
    return path


def remove_results(path: str | Path, results: Sequence[str]) -> list[str]:
    """Delete an earlier run's ``results`` from ``path`` (``--overwrite`` of a run directory whose
    stale files would mislead: an old checkpoint resumed, an old model beside new metrics).
    Only the named results go; anything else in the directory stays."""
    path = Path(path)
    removed = earlier_results(path, results) if path.is_dir() else []
    for name in removed:
        p = path / name.rstrip("/")
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed
