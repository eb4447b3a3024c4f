"""Length-balanced training data (``data.length_balance``; docs/robust.md): within each source, the
chosen response is the longer one in half of the pairs whose two responses differ in length.

Lengths are in characters (Unicode code points) of the response text
(:func:`rewardlab.data.lengths.response_length`), the unit of ``eval``'s length rules and of the
length diagnostics. A pair is *longer-chosen* when len(chosen) > len(rejected), *shorter-chosen* when <, a *tie*
when equal. Ties say nothing about a length preference: they are kept as they are (weight 1) and
left out of the share, which is longer-chosen / (longer-chosen + shorter-chosen).

- ``resample``: the majority side of each source is subsampled, without replacement, to the size of
  the minority side (a seeded RNG per source); ties are all kept. Pairs are dropped, and counted.
- ``reweight``: every pair is kept; the majority side's pairs get weight (n_L + n_S) / (2 n_maj) and
  the minority side's (n_L + n_S) / (2 n_min), so both sides weigh half and the source's total weight
  is unchanged; an existing ``weight`` column is multiplied. The objectives read ``weight``
  (``objectives.pairwise.weighted_mean``).

The groups are the ``source`` column's values by default (``by="source_prefix"``: the part before
the first ``/``, e.g. ``alpacaeval-gpt4judge`` for ``alpacaeval-gpt4judge/tulu-2-dpo-70b>text_davinci_003``,
whose fine subsets are almost all on one side; ``by="all"``: the whole table). A group with pairs
on one side only cannot be balanced: it is left unchanged and reported
(``balanced: false``), never dropped.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from rewardlab.data.lengths import response_length
from rewardlab.data.table import PreferenceTable
from rewardlab.errors import DataError

__all__ = ["MODES", "BY", "length_sides", "balance_plan", "balance_groups", "length_balance"]

MODES = ("resample", "reweight")
BY = ("source", "source_prefix", "all")


def length_sides(chosen, rejected) -> np.ndarray:
    """+1 where the chosen response is longer, −1 where shorter, 0 on a tie."""
    c = np.asarray([response_length(x) for x in chosen], dtype=np.int64)
    r = np.asarray([response_length(x) for x in rejected], dtype=np.int64)
    return np.sign(c - r).astype(np.int64)


def _counts(sides: np.ndarray, weights: np.ndarray | None = None) -> dict:
    w = np.ones(len(sides)) if weights is None else weights
    longer, shorter = float(w[sides > 0].sum()), float(w[sides < 0].sum())
    out = {"n": int(len(sides)), "longer_chosen": int((sides > 0).sum()), "shorter_chosen": int((sides < 0).sum()),
           "ties": int((sides == 0).sum()),
           "longer_chosen_share": longer / (longer + shorter) if longer + shorter > 0 else None}
    if weights is not None:
        out["weighted"] = True
    return out


def balance_plan(sides: np.ndarray, sources: list[str], mode: Literal["resample", "reweight"],
                 seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pure: (kept row indices, their weight factors, report by source) for ``sides`` (see
    :func:`length_sides`) grouped by ``sources``. The RNG of a source is seeded from (seed, a CRC
    of its name), so a source's choice does not depend on the others."""
    if mode not in MODES:
        raise ValueError(f"length_balance must be one of {MODES}, got {mode!r}")
    sides = np.asarray(sides, dtype=np.int64)
    keep = np.ones(len(sides), dtype=bool)
    factor = np.ones(len(sides), dtype=np.float64)
    report: dict = {}
    for src in dict.fromkeys(sources):  # order of first appearance
        rows = np.flatnonzero(np.asarray([s == src for s in sources], dtype=bool))
        s = sides[rows]
        longer, shorter = rows[s > 0], rows[s < 0]
        entry = {"before": _counts(s)}
        if len(longer) == 0 or len(shorter) == 0:
            entry.update(balanced=False, reason="pairs on one side of length only" if len(longer) + len(shorter)
                         else "every pair is a tie", after=entry["before"])
            report[src] = entry
            continue
        small, large = (longer, shorter) if len(longer) <= len(shorter) else (shorter, longer)
        if mode == "resample":
            rng = np.random.default_rng([int(seed), zlib.crc32(str(src).encode())])
            drop = rng.permutation(large)[len(small):]
            keep[drop] = False
            entry["dropped"] = int(len(drop))
            entry["after"] = _counts(sides[rows[keep[rows]]])
        else:
            total = len(longer) + len(shorter)
            factor[small] = total / (2 * len(small))
            factor[large] = total / (2 * len(large))
            entry["after"] = _counts(s, factor[rows])
        entry["balanced"] = True
        report[src] = entry
    kept = np.flatnonzero(keep)
    return kept, factor[kept], report


def balance_groups(table: PreferenceTable, by: str = "source") -> list[str]:
    """The group of each row: its ``source`` (``"all"`` without the column), the source's prefix
    before the first ``/`` (the data set of an ``origin/subset`` source), or one group."""
    if by not in BY:
        raise ValueError(f"length_balance_by must be one of {BY}, got {by!r}")
    if by == "all" or not table.has("source"):
        return ["all"] * len(table)
    sources = ["" if s is None else str(s) for s in table["source"]]
    return sources if by == "source" else [s.split("/", 1)[0] for s in sources]


def length_balance(table: PreferenceTable, mode: Literal["resample", "reweight"], seed: int,
                   by: str = "source") -> tuple[PreferenceTable, dict]:
    """The table balanced as ``mode`` says (module docstring) within each group of ``by`` (see
    :func:`balance_groups`) and the report: per group, the counts before and after (longer-chosen,
    shorter-chosen, ties, longer-chosen share)."""
    sources = balance_groups(table, by)
    sides = length_sides(table["chosen"], table["rejected"])
    kept, factor, by_source = balance_plan(sides, sources, mode, seed)
    out = table.select(kept.tolist()) if len(kept) < len(table) else table
    if mode == "reweight":
        base = np.ones(len(out))
        if out.has("weight"):
            values = out["weight"]
            missing = next((i for i, v in enumerate(values) if v is None), None)
            if missing is not None:  # as models.pairs.pair_columns: no silent default
                raise DataError("the column is present on other rows; give it on every row or on none",
                                file=out.origin[missing], field="weight", expected="a number", got="no value")
            base = np.asarray(values, dtype=np.float64)
        out = out.with_column("weight", (base * factor).tolist())
    report = {"mode": mode, "by": by, "unit": "characters", "n_before": len(table), "n_after": len(out),
              "by_source": by_source}
    return out, report
