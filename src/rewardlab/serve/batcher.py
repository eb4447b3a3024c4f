"""The dynamic micro-batcher: concurrent requests merged into one scoring call.

Requests wait in a queue; the batcher takes the oldest and, until ``max_batch`` items are
waiting or the oldest has waited ``max_wait_s``, lets more arrive. It then takes whole requests,
oldest first, up to ``max_batch`` items (a single larger request goes alone and is scored in
chunks of ``max_batch``), and runs ``score_fn`` on them in one worker thread: torch releases the
GIL, so the event loop keeps accepting and parsing requests meanwhile. ``score_fn`` sorts the
items by length (``RewardModel.score_encoded`` does), so each forward pass pads little. It returns
one row per item: a reward, or (an ensemble) the members' rewards, shape ``(items, k)``.

A failing scoring call fails the requests of that call only; the batcher keeps running. ``stop``
drains: every request already submitted is still scored before the loop ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class ShuttingDown(RuntimeError):
    """The batcher no longer accepts requests."""


@dataclass
class _Job:
    items: Sequence
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


def take_jobs(sizes: Sequence[int], max_batch: int) -> int:
    """How many of the waiting requests (their item counts, oldest first) one call takes: whole
    requests while the total stays within ``max_batch``, and always at least the oldest."""
    total, n = 0, 0
    for size in sizes:
        if n and total + size > max_batch:
            break
        total += size
        n += 1
    return n


def length_groups(lengths: Sequence[int], max_batch: int, max_padding: float) -> list[list[int]]:
    """Split items into forward passes: indices sorted by length (longest first), cut greedily so
    that no pass holds more than ``max_batch`` items and padding is at most ``max_padding`` of
    each pass's tokens (rows x longest). ``max_padding`` 1 keeps passes of ``max_batch`` items as
    ``RewardModel.score`` makes them.

    Why: a micro-batch holds whatever requests arrived together, so its lengths are mixed; padded
    to the longest, HH items fill about half the tokens. On CPU the cost of a pass is about its
    token count whatever the rows, so shorter passes of similar lengths do the same work in less
    time; on a GPU, where a pass's fixed cost dominates, a larger ``max_padding`` keeps passes big.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        g = groups[-1] if groups else None
        if g is not None and len(g) < max_batch:
            longest = lengths[g[0]]
            rows = len(g) + 1
            pad = rows * longest - (sum(lengths[j] for j in g) + lengths[i])
            if pad <= max_padding * rows * longest:
                g.append(i)
                continue
        groups.append([i])
    return groups


class MicroBatcher:
    """Merge concurrent ``submit`` calls into scoring calls of up to ``max_batch`` items."""

    def __init__(self, score_fn: Callable[[list], np.ndarray], *, max_batch: int = 32,
                 max_wait_s: float = 0.005, on_batch: Callable[[int, int, float], None] | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.score_fn, self.max_batch, self.max_wait_s = score_fn, max_batch, max_wait_s
        self.on_batch = on_batch
        self._waiting: deque[_Job] = deque()
        self._waiting_items = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    @property
    def queued_items(self) -> int:
        return self._waiting_items

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-score")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop accepting requests, score those already submitted, end the loop."""
        self._stopping = True
        if self._arrived is not None:
            self._arrived.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, items: Sequence) -> np.ndarray:
        """Rewards of ``items`` (in order), scored together with other requests' items."""
        if self._stopping or self._task is None:
            raise ShuttingDown("the server is shutting down")
        if not items:
            return np.zeros(0, dtype=np.float64)
        job = _Job(items, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        self._waiting_items += len(items)
        self._arrived.set()
        return await job.future

    async def _wait_for_more(self) -> None:
        oldest = self._waiting[0]
        while self._waiting_items < self.max_batch and not self._stopping:
            timeout = oldest.arrived + self.max_wait_s - time.monotonic()
            if timeout <= 0:
                return
            self._arrived.clear()
            try:  # waiting on an Event is safe to cancel (unlike Queue.get under wait_for on 3.11)
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                if self._stopping:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            await self._wait_for_more()
            n = take_jobs([len(j.items) for j in self._waiting], self.max_batch)
            jobs = [self._waiting.popleft() for _ in range(n)]
            items = [item for job in jobs for item in job.items]
            self._waiting_items -= len(items)
            start = time.perf_counter()
            try:
                rewards = await loop.run_in_executor(self._executor, self.score_fn, items)
                rewards = np.asarray(rewards, dtype=np.float64)
                if rewards.ndim not in (1, 2) or rewards.shape[0] != len(items):  # 2-D: an ensemble's members
                    raise RuntimeError(f"score_fn returned shape {rewards.shape} for {len(items)} items")
            except Exception as e:  # noqa: BLE001 - fail these requests, keep serving
                log.exception("scoring %d items failed", len(items))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(items), len(jobs), time.perf_counter() - start)
            offset = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(rewards[offset:offset + len(job.items)])
                offset += len(job.items)
