"""Pairs as token ids (``EncodedPairs``), and the batch that puts chosen and rejected through one
forward pass (``collate_pairs``): shared by the training loop, Critic-RM's pair encoder and scoring."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from rewardlab.errors import DataError
from rewardlab.models.inputs import Encoded

# Per-pair numeric columns that objectives may read (see rewardlab.objectives.LossInputs).
PAIR_COLUMNS = ("margin", "weight", "strength_mean", "strength_std", "flip")


@dataclass
class EncodedPairs:
    chosen: list[Encoded]
    rejected: list[Encoded]
    columns: dict[str, np.ndarray]  # float arrays, one value per pair
    rows: np.ndarray  # index of each pair in the source table
    truncation: Counter  # status -> count over both sides
    dropped: int  # pairs dropped by the 'drop' policy

    def __len__(self) -> int:
        return len(self.chosen)


def encode_pairs(model, table, encode_pair=None) -> EncodedPairs:
    """Encode every pair of a PreferenceTable with the model's tokenization settings.

    ``encode_pair(i, prompt, chosen, rejected) -> (Encoded, Encoded)`` replaces the default
    ``model.encode`` of each side (Critic-RM encodes joint conversations with critiques). The
    default gives each row's ``tools``/``chat_template_kwargs`` to the chat template."""
    if encode_pair is None:
        templates = table.template_kwargs()
        model.note_unused_templates(templates)

        def encode_pair(i, p, c, r):
            return model.encode(p, c, templates[i]), model.encode(p, r, templates[i])
    chosen, rejected, rows = [], [], []
    counts: Counter = Counter()
    dropped = 0
    for i, (p, c, r) in enumerate(zip(table["prompt"], table["chosen"], table["rejected"])):
        ec, er = encode_pair(i, p, c, r)
        counts[ec.status] += 1
        counts[er.status] += 1
        if ec.status == "dropped" or er.status == "dropped":
            dropped += 1
            continue
        chosen.append(ec)
        rejected.append(er)
        rows.append(i)
    rows_arr = np.asarray(rows, dtype=np.int64)
    return EncodedPairs(chosen, rejected, pair_columns(table, rows_arr), rows_arr, counts, dropped)


def pair_columns(table, rows_arr: np.ndarray) -> dict[str, np.ndarray]:
    """The per-pair numeric columns (PAIR_COLUMNS) of the kept rows, as float arrays."""
    columns = {}
    for name in PAIR_COLUMNS:
        if table.has(name):
            values = table[name]
            missing = next((i for i, v in enumerate(values) if v is None), None)
            if missing is not None:  # a column present on some rows only: no silent default
                raise DataError("the column is present on other rows; give it on every row or on none",
                                file=table.origin[missing], field=name, expected="a number", got="no value")
            values = np.asarray(values, dtype=np.float64)
            columns[name] = values[rows_arr] if len(rows_arr) else values[:0]
    return columns


def collate_pairs(model, pairs: EncodedPairs, idx) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One batch holding the chosen items then the rejected ones (2B rows), plus pair columns."""
    items = [pairs.chosen[i] for i in idx] + [pairs.rejected[i] for i in idx]
    batch = model.collate(items)
    cols = {k: torch.as_tensor(v[idx], dtype=torch.float32) for k, v in pairs.columns.items()}
    return batch, cols
