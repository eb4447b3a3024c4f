"""The generation disk cache: append-only JSONL shards, one line per finished sample.

Each line is ``{"k": KEY, "text": ..., "tokens": N, "finish": "stop"|"length"}``, written with one
``write`` on a file opened for appending, under an exclusive ``flock`` and flushed at once, so a
process killed mid-run leaves at most one truncated last line. Reading tolerates exactly that: a
line that does not parse is ignored (counted in ``skipped_lines`` and logged), and the next append
starts on a fresh line. A rerun therefore finds every finished sample and redoes only the rest.

JSONL rather than sqlite: appends from several processes need no server or locking mode, a shard
can be inspected with ``head``, and a torn line is the only failure a kill can cause.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def cache_key(*parts) -> str:
    """A stable hex key of JSON-serialisable parts (sorted keys, no whitespace)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class GenerationCache:
    """Finished samples of one model: ``get(key)`` / ``put(key, record)`` over ``DIR/NAME.jsonl``."""

    def __init__(self, directory: str | Path, name: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{name}.jsonl"
        self.skipped_lines = 0
        self._data: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                    self._data[rec["k"]] = rec
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
                    log.warning("%s:%d: unreadable cache line ignored (a run killed mid-write?); "
                                "that sample is generated again", self.path, lineno)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put_many(self, items: list[tuple[str, dict]]) -> None:
        """Append finished samples (one locked write; a torn previous line is closed first)."""
        if not items:
            return
        lines = []
        for key, rec in items:
            rec = {"k": key, **rec}
            self._data[key] = rec
            lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                with self.path.open("rb") as f:  # does the file end mid-line (a killed writer)?
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        payload = b"\n" + payload
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
