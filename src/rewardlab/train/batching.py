"""Which pairs form each micro-batch, and how they are laid out for the forward pass.

- Order: as :func:`micro_batch_indices` (a pure function of seed, epoch, position, rank), or,
  with ``group_by_length``, mega-batches of ``mega_batches`` global batches sorted by pair length
  (as transformers' ``group_by_length``): the epoch's shuffled order is cut into mega-batches, each
  sorted longest first, cut into global batches, and those batches shuffled within the mega-batch.
  Still a pure function of (seed, epoch), so resume stays exact.
- Layout: padded 2B rows (``packing: none``), one flat packed row (``padding_free``), or one row
  with each pair's prompt once (``shared_prompt``); see ``rewardlab.models.packing``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rewardlab.models import packing
from rewardlab.models.pairs import EncodedPairs, collate_pairs

MEGA_BATCHES = 50  # global batches per length-sorted mega-batch (transformers' LengthGroupedSampler uses 50)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), so resume is exact."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def micro_batches_per_epoch(n: int, global_batch: int) -> int:
    return math.ceil(n / global_batch)


def micro_batch_indices(n: int, seed: int, micro: int, global_batch: int, rank: int, world: int) -> np.ndarray:
    """Indices of micro-batch ``micro`` (counted over all epochs) for one rank.

    The last global batch of an epoch wraps around to the epoch's first items, as
    ``DistributedSampler`` pads, so every rank gets a full share and no rank waits on an empty one.
    """
    per_epoch = micro_batches_per_epoch(n, global_batch)
    epoch, pos = divmod(micro, per_epoch)
    order = epoch_order(n, seed, epoch)
    take = np.arange(pos * global_batch, (pos + 1) * global_batch) % n
    global_idx = order[take]
    per_rank = global_batch // world
    return global_idx[rank * per_rank:(rank + 1) * per_rank]


def pair_lengths(pairs: EncodedPairs) -> np.ndarray:
    """Length that decides a pair's padded width: its longer side."""
    return np.asarray([max(len(c.input_ids), len(r.input_ids)) for c, r in zip(pairs.chosen, pairs.rejected)],
                      dtype=np.int64)


def length_grouped_order(lengths: np.ndarray, seed: int, epoch: int, global_batch: int,
                         mega_batches: int = MEGA_BATCHES) -> np.ndarray:
    """The epoch's order with similar lengths in the same global batch (pure in seed, epoch)."""
    n = len(lengths)
    order = epoch_order(n, seed, epoch)
    rng = np.random.default_rng([seed, epoch, 1])
    size = mega_batches * global_batch
    out = []
    for start in range(0, n, size):
        chunk = order[start:start + size]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches = [chunk[i:i + global_batch] for i in range(0, len(chunk), global_batch)]
        out.extend(batches[k] for k in rng.permutation(len(batches)))
    return np.concatenate(out) if out else order


def micro_batch_pairs(pairs: EncodedPairs, seed: int, micro: int, global_batch: int, rank: int, world: int,
                      group_by_length: bool = False, lengths: np.ndarray | None = None) -> np.ndarray:
    """Indices of micro-batch ``micro`` for one rank (see ``collate.micro_batch_indices``)."""
    n = len(pairs)
    if not group_by_length:
        return micro_batch_indices(n, seed, micro, global_batch, rank, world)
    lengths = pair_lengths(pairs) if lengths is None else lengths
    epoch, pos = divmod(micro, micro_batches_per_epoch(n, global_batch))
    order = length_grouped_order(lengths, seed, epoch, global_batch)
    global_idx = order[np.arange(pos * global_batch, (pos + 1) * global_batch) % n]
    per_rank = global_batch // world
    return global_idx[rank * per_rank:(rank + 1) * per_rank]


def make_batch(model, pairs: EncodedPairs, idx, mode: str = "none") -> tuple[dict, dict]:
    """The model inputs for pairs ``idx`` (chosen items, then rejected) and their pair columns."""
    if mode == "none":
        return collate_pairs(model, pairs, idx)
    chosen, rejected = [pairs.chosen[i] for i in idx], [pairs.rejected[i] for i in idx]
    if mode == "padding_free":
        batch = packing.pack_items(chosen + rejected)
    elif mode == "shared_prompt":
        batch = packing.pack_shared_prompt(chosen, rejected)
    else:
        raise ValueError(f"unknown packing mode {mode!r}")
    cols = {k: torch.as_tensor(v[idx], dtype=torch.float32) for k, v in pairs.columns.items()}
    return batch, cols
