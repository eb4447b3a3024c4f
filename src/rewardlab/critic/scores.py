"""Parsing a critique's final score (METHODS §5 step 1: each critique ends with a score 1-10).

The rule (one pure function, tested against hand examples): the score is the number in the
**last** match in the text of either pattern

- ``score`` followed by optional ``:``/``=``/``is`` and markdown ``*``, then a number, optionally
  ``/10`` or ``out of 10`` (``Score: 7``, ``**Score:** 7/10``, ``final score = 8.5``);
- a number followed by ``/10`` or ``out of 10`` (``I rate it 6/10``, ``3 out of 10``).

The number may be a decimal. If the last match lies outside [1, 10] (``Score: 0``, ``15/10``) or
nothing matches, the score is ``None``: the critique is kept, counted as a parse failure, and
ignored by the means and filters. Matching is case-insensitive.
"""

from __future__ import annotations

import re

_NUM = r"(\d+(?:\.\d+)?)"
_OF_TEN = r"(?:\s*/\s*10(?!\.?\d)|\s+out\s+of\s+10(?!\.?\d))"
SCORE_PATTERNS = (
    re.compile(r"\bscore\b\s*\**\s*(?:[:=]|\bis\b)?\s*\**\s*" + _NUM + r"(?!\.?\d)(?:" + _OF_TEN + r")?", re.I),
    re.compile(r"(?<![\d.])" + _NUM + _OF_TEN, re.I),
)
SCORE_MIN, SCORE_MAX = 1.0, 10.0


def parse_score(text: str | None) -> float | None:
    """The critique's score by the rule above, or ``None``."""
    if not text:
        return None
    last = None  # (end position, value)
    for pattern in SCORE_PATTERNS:
        for m in pattern.finditer(text):
            if last is None or m.end() > last[0] or (m.end() == last[0] and m.start() < last[2]):
                last = (m.end(), float(m.group(1)), m.start())
    if last is None:
        return None
    value = last[1]
    return value if SCORE_MIN <= value <= SCORE_MAX else None


def score_histogram(scores) -> dict[str, int]:
    """Counts of scores rounded to integers 1..10 plus ``null`` (unparseable)."""
    hist = {str(k): 0 for k in range(1, 11)}
    hist["null"] = 0
    for s in scores:
        if s is None:
            hist["null"] += 1
        else:
            hist[str(int(min(max(round(s), 1), 10)))] += 1
    return hist
