"""Refinement (METHODS §5 step 3): from the kept critiques of a response to one training target.

Pure selection rules (the generator calls live in ``critic.pipeline``):

- ``none``: the first kept critique in sample order;
- ``rank``: the generator, as meta-judge, scores every kept critique (``Score: N``, parsed by
  ``parse_score``); the ``k`` best are kept, best first, ties broken by sample order and
  unparseable meta-scores ranked last; the target is the best one;
- ``summ``: the generator condenses the kept critiques into one; a single kept critique is used as
  is. A summary without a parseable score gets the line ``Score: N`` appended, N the rounded mean
  of the kept critiques' scores, so every target ends with a score (counted in the summary).
"""

from __future__ import annotations

from typing import Sequence

from rewardlab.critic.scores import parse_score
from rewardlab.errors import ConfigError

MODES = ("none", "rank", "summ")


def check_mode(mode: str, k: int = 1) -> str:
    if mode not in MODES:
        raise ConfigError(f"refine must be one of {', '.join(MODES)}, got {mode!r}")
    if k < 1:
        raise ConfigError(f"rank k must be >= 1, got {k}")
    return mode


def kept_indices(keep: Sequence[bool]) -> list[int]:
    return [i for i, flag in enumerate(keep) if flag]


def first_kept(keep: Sequence[bool]) -> int | None:
    """``none``: the first kept critique's index (None if none is kept)."""
    kept = kept_indices(keep)
    return kept[0] if kept else None


def top_k(meta_scores: Sequence[float | None], keep: Sequence[bool], k: int) -> list[int]:
    """``rank``: indices of the ``k`` best kept critiques by meta-score, best first; ties by index,
    unparseable (None) meta-scores last."""
    kept = kept_indices(keep)
    kept.sort(key=lambda i: (meta_scores[i] is None, -(meta_scores[i] or 0.0), i))
    return kept[:k]


def with_score_line(text: str, scores: Sequence[float | None]) -> tuple[str, bool]:
    """``summ``: ``text`` unchanged if it has a parseable score, else with ``Score: N`` appended
    (N = the mean of the parseable ``scores`` rounded half up). Returns (text, appended)."""
    if parse_score(text) is not None:
        return text, False
    values = [s for s in scores if s is not None]
    if not values:
        return text, False
    n = int(min(max(sum(values) / len(values) + 0.5, 1), 10))  # half up
    return f"{text.rstrip()}\nScore: {n}", True
