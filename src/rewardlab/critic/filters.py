"""Consistency filters (METHODS §5 step 2): pure functions of the critique scores of one pair.

The paper publishes the idea, not the thresholds; this is a reconstruction, every choice a
parameter of ``FilterConfig``:

**Instance level.** m_c, m_r = the means of the parseable critique scores of chosen and rejected
(``None`` scores are left out). The pair is kept when m_c − m_r > ``instance_margin`` (default 0:
the critiques rank the pair as the label does). An exact tie (m_c == m_r) is dropped unless
``ties="keep"``. A side with no parseable score drops the pair (reason ``unscored``).

**Critique level** (within kept pairs), ``critique_rule``:

- ``cross_mean`` (default): a chosen critique is kept when its score > m_r + ``critique_margin``,
  a rejected one when its score < m_c − ``critique_margin`` (each side is judged against the
  other side's mean, so a critique is kept when it, alone, would rank the pair as the label does);
- ``threshold``: chosen critiques with score ≥ ``chosen_min``, rejected ones with score ≤
  ``rejected_max``;
- ``none``: every critique with a parseable score is kept.

Unparseable critiques are never kept at critique level. A kept pair left with no kept critique on a
side is dropped (reason ``no_consistent_critique``). Reasons are counted per source.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Literal, Sequence

from rewardlab.errors import ConfigError

Score = float | None
REASONS = ("kept", "unscored", "tie", "misranked", "no_consistent_critique")


@dataclass(frozen=True)
class FilterConfig:
    instance: bool = True
    instance_margin: float = 0.0
    ties: Literal["drop", "keep"] = "drop"
    critique_rule: Literal["cross_mean", "threshold", "none"] = "cross_mean"
    critique_margin: float = 0.0
    chosen_min: float = 6.0
    rejected_max: float = 5.0

    def __post_init__(self) -> None:
        if self.ties not in ("drop", "keep"):
            raise ConfigError(f"ties must be 'drop' or 'keep', got {self.ties!r}")
        if self.critique_rule not in ("cross_mean", "threshold", "none"):
            raise ConfigError(f"critique_rule must be cross_mean, threshold or none, got {self.critique_rule!r}")
        if self.instance_margin < 0 or self.critique_margin < 0:
            raise ConfigError("instance_margin and critique_margin must be >= 0")


@dataclass(frozen=True)
class PairDecision:
    keep: bool
    reason: str  # one of REASONS
    mean_chosen: float | None
    mean_rejected: float | None
    keep_chosen: tuple[bool, ...]  # per critique of the chosen response
    keep_rejected: tuple[bool, ...]


def mean_score(scores: Sequence[Score]) -> float | None:
    """Mean of the parseable scores, ``None`` if there is none."""
    values = [s for s in scores if s is not None]
    return fmean(values) if values else None


def instance_consistent(mean_chosen: float | None, mean_rejected: float | None, *, margin: float = 0.0,
                        ties: str = "drop") -> tuple[bool, str]:
    """(keep, reason) of the instance-level rule."""
    if mean_chosen is None or mean_rejected is None:
        return False, "unscored"
    diff = mean_chosen - mean_rejected
    if diff == 0:
        return ties == "keep", ("kept" if ties == "keep" else "tie")
    return (True, "kept") if diff > margin else (False, "misranked")


def critique_consistent(scores_chosen: Sequence[Score], scores_rejected: Sequence[Score],
                        cfg: FilterConfig = FilterConfig()) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Per-critique keep masks of the critique-level rule."""
    m_c, m_r = mean_score(scores_chosen), mean_score(scores_rejected)
    if cfg.critique_rule == "none":
        return tuple(s is not None for s in scores_chosen), tuple(s is not None for s in scores_rejected)
    if cfg.critique_rule == "threshold":
        return (tuple(s is not None and s >= cfg.chosen_min for s in scores_chosen),
                tuple(s is not None and s <= cfg.rejected_max for s in scores_rejected))
    d = cfg.critique_margin
    return (tuple(s is not None and m_r is not None and s > m_r + d for s in scores_chosen),
            tuple(s is not None and m_c is not None and s < m_c - d for s in scores_rejected))


def filter_pair(scores_chosen: Sequence[Score], scores_rejected: Sequence[Score],
                cfg: FilterConfig = FilterConfig()) -> PairDecision:
    """Both levels for one pair."""
    m_c, m_r = mean_score(scores_chosen), mean_score(scores_rejected)
    if cfg.instance:
        keep, reason = instance_consistent(m_c, m_r, margin=cfg.instance_margin, ties=cfg.ties)
    else:
        keep, reason = (m_c is not None and m_r is not None), ("kept" if m_c is not None and m_r is not None else "unscored")
    kc, kr = critique_consistent(scores_chosen, scores_rejected, cfg)
    if keep and (not any(kc) or not any(kr)):
        keep, reason = False, "no_consistent_critique"
    if not keep:
        kc, kr = tuple(False for _ in kc), tuple(False for _ in kr)
    return PairDecision(keep, reason, m_c, m_r, kc, kr)
