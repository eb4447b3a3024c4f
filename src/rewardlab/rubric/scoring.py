"""Scoring items with a rubric, and the invalid-score policy.

A scorer's raw value is *invalid* when it is None, NaN (or not a number) or outside the
criterion's ``range`` (no tolerance: a value is never clipped). The rubric's ``on_invalid``:

- ``error`` (default): raise DataError naming the rubric file, the criterion, the item and the value;
- ``count``: the score becomes NaN, counted per criterion and kind (``none``, ``nan``,
  ``out_of_range``) in :attr:`RubricScores.invalid`. Aggregators skip NaN scores (a rollout's
  reward uses the criteria it has; a rollout with none gets advantage 0, as TRL does).

A judge answer that does not parse is not a scorer failure but a judge's: it is always NaN and
counted in :attr:`RubricScores.unparsed`, whatever ``on_invalid`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rewardlab.errors import DataError
from rewardlab.rubric.scorers import JudgeScorer


@dataclass
class RubricScores:
    """Scores of n items: ``scores`` (n, criteria) in [0, 1] with NaN where invalid, ``raw``
    (the scorers' values, NaN for None), invalid and unparsed counts per criterion."""

    names: list[str]
    scores: np.ndarray
    raw: np.ndarray
    invalid: dict[str, dict[str, int]] = field(default_factory=dict)
    unparsed: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict:
        """Invalid and unparsed counts, only the non-zero ones."""
        out = {}
        for name in self.names:
            inv = {k: v for k, v in self.invalid.get(name, {}).items() if v}
            if inv:
                out.setdefault(name, {})["invalid"] = inv
            if self.unparsed.get(name):
                out.setdefault(name, {})["unparsed"] = self.unparsed[name]
        return out


def classify(value) -> tuple[str, float]:
    """('ok' | 'none' | 'nan', float value) of a scorer's output."""
    if value is None:
        return "none", math.nan
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "nan", math.nan
    return ("nan", math.nan) if math.isnan(v) else ("ok", v)


def score_items(rubric, prompts, completions, *, progress: bool = False) -> RubricScores:
    """Score every (prompt, completion) with every criterion and apply the invalid-score policy."""
    prompts, completions = list(prompts), list(completions)
    if len(prompts) != len(completions):
        raise DataError(expected=f"as many prompts as completions ({len(completions)})", got=str(len(prompts)))
    n, k = len(completions), len(rubric.criteria)
    raw = np.full((n, k), np.nan)
    scores = np.full((n, k), np.nan)
    invalid = {c.name: {"none": 0, "nan": 0, "out_of_range": 0} for c in rubric.criteria}
    unparsed = {c.name: 0 for c in rubric.criteria}
    criteria = rubric.criteria
    if progress:
        from tqdm.auto import tqdm

        criteria = tqdm(criteria, desc="criteria", unit="criterion")
    for j, crit in enumerate(criteria):
        values = crit.scorer.score(prompts, completions) if n else []
        if len(values) != n:
            raise DataError(f"scorer returned {len(values)} scores for {n} items", file=rubric.source,
                            field=f"criteria[{j}] ({crit.name})")
        judge = isinstance(crit.scorer, JudgeScorer)
        for i, value in enumerate(values):
            kind, v = classify(value)
            if kind == "none" and judge:
                unparsed[crit.name] += 1
                continue
            if kind == "ok":
                raw[i, j] = v
                if crit.low <= v <= crit.high:
                    scores[i, j] = crit.normalise(v)
                    continue
                kind = "out_of_range"
            if rubric.on_invalid == "error":
                raise DataError(
                    f"item {i}: criterion {crit.name!r} scored {value!r} (on_invalid: count turns this "
                    "into a counted NaN)", file=rubric.source, field=f"criteria[{j}] ({crit.name})",
                    expected=f"a number in [{crit.low:g}, {crit.high:g}]", got=repr(value))
            invalid[crit.name][kind] += 1
    return RubricScores(rubric.names, scores, raw, invalid, unparsed)
