"""Rubric files: YAML, validated at load; every error names the file and the field.

A rubric::

    name: concise-answers          # optional
    on_invalid: error              # error (default) | count: what a NaN/None/out-of-range score does
    criteria:
      - name: answer_tag           # unique, [A-Za-z0-9_.-]+
        weight: 2                  # >= 0, default 1
        scorer: {type: rule, regex: "<answer>.+</answer>", flags: [DOTALL]}
      - name: helpful
        scorer: {type: reward_model, path: runs/demo/model, map: {kind: sigmoid, center: 0, scale: 1}}
      - name: polite
        scorer: {type: judge, question: "Is the response polite?", answer: yes_no}
      - name: custom
        range: [0, 10]             # the raw score range; mapped linearly onto [0, 1]
        scorer: {type: rule, function: "mypkg.checks:score"}

The scorer types and their fields are in :mod:`rewardlab.rubric.scorers`. Errors read like
``rubric.yaml: field 'criteria[2].scorer.type': expected one of rule, reward_model, judge, got 'llm'``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.errors import DataError

INVALID_POLICIES = ("error", "count")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass
class Criterion:
    """One rubric criterion: its scorer maps (prompt, completion) to a raw score in ``range``."""

    name: str
    weight: float
    low: float
    high: float
    scorer: Any  # a rewardlab.rubric.scorers.Scorer
    spec: dict = field(default_factory=dict)

    def normalise(self, raw: float) -> float:
        """A raw score in [low, high] mapped linearly onto [0, 1]."""
        return (raw - self.low) / (self.high - self.low)


@dataclass
class Rubric:
    """Criteria plus the invalid-score policy; ``source`` names the file for messages."""

    criteria: list[Criterion]
    on_invalid: str = "error"
    name: str = ""
    source: str = "<rubric>"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.criteria]

    @property
    def weights(self) -> list[float]:
        return [c.weight for c in self.criteria]

    def __len__(self) -> int:
        return len(self.criteria)

    def score(self, prompts, completions, *, progress: bool = False):
        """Per-criterion [0, 1] scores of (prompt, completion) items: see :mod:`rewardlab.rubric.scoring`."""
        from rewardlab.rubric.scoring import score_items

        return score_items(self, prompts, completions, progress=progress)


def _err(source: str, where: str, expected: str, got: Any = None, message: str = "") -> DataError:
    got_text = None if got is None else repr(got)
    return DataError(message, file=source, field=where, expected=expected, got=got_text)


def _number(value: Any, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(source, where, "a finite number", value)
    return float(value)


def parse_rubric(data: Any, source: str = "<rubric>", *, generator=None) -> Rubric:
    """Validate a parsed rubric document and build its scorers (see the module docstring).

    ``generator``: a :class:`rewardlab.generate.Generator` every ``judge`` criterion uses instead
    of building its own from ``backend``/``model`` (tests pass a fake one).
    """
    from rewardlab.rubric.scorers import build_scorer

    if isinstance(data, list):
        data = {"criteria": data}
    if not isinstance(data, dict):
        raise _err(source, "<top level>", "a mapping with 'criteria' (or a list of criteria)", type(data).__name__)
    unknown = sorted(set(data) - {"name", "on_invalid", "criteria"})
    if unknown:
        raise _err(source, unknown[0], "one of name, on_invalid, criteria", message="unknown field")
    on_invalid = data.get("on_invalid", "error")
    if on_invalid not in INVALID_POLICIES:
        raise _err(source, "on_invalid", "one of " + ", ".join(INVALID_POLICIES), on_invalid)
    items = data.get("criteria")
    if not isinstance(items, list) or not items:
        raise _err(source, "criteria", "a non-empty list of criteria", items if items is None else type(items).__name__)
    criteria, seen = [], set()
    for i, item in enumerate(items):
        where = f"criteria[{i}]"
        if not isinstance(item, dict):
            raise _err(source, where, "a mapping with name, weight, scorer", type(item).__name__)
        unknown = sorted(set(item) - {"name", "weight", "range", "scorer"})
        if unknown:
            raise _err(source, f"{where}.{unknown[0]}", "one of name, weight, range, scorer", message="unknown field")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _err(source, f"{where}.name", "a name of letters, digits, '_', '.', '-'", name)
        if name in seen:
            raise _err(source, f"{where}.name", "a unique name", name, "duplicate criterion")
        seen.add(name)
        weight = _number(item.get("weight", 1.0), source, f"{where}.weight")
        if weight < 0:
            raise _err(source, f"{where}.weight", "a weight >= 0", weight)
        rng = item.get("range", [0, 1])
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise _err(source, f"{where}.range", "[low, high]", rng)
        low, high = (_number(v, source, f"{where}.range") for v in rng)
        if not low < high:
            raise _err(source, f"{where}.range", "low < high", rng)
        if "scorer" not in item:
            raise _err(source, f"{where}.scorer", "a scorer: {type: rule | reward_model | judge, ...}",
                       message="missing field")
        scorer = build_scorer(item["scorer"], source=source, where=f"{where}.scorer", generator=generator)
        if getattr(scorer, "fixed_range", None) is not None and (low, high) != scorer.fixed_range:
            raise _err(source, f"{where}.range", f"{list(scorer.fixed_range)} for this scorer", rng)
        criteria.append(Criterion(name, weight, low, high, scorer, dict(item)))
    if sum(c.weight for c in criteria) <= 0:
        raise _err(source, "criteria[*].weight", "at least one weight > 0", [c.weight for c in criteria])
    return Rubric(criteria, on_invalid, str(data.get("name", "")), source)


def load_rubric(path: str | Path, *, generator=None) -> Rubric:
    """Read and validate a rubric YAML file (a missing file, a directory, bytes that are not UTF-8
    and invalid YAML are one-line errors naming the file, and the line where there is one)."""
    from rewardlab.config import read_yaml_file

    data = read_yaml_file(path, "rubric YAML")
    return parse_rubric(data, str(path), generator=generator)
