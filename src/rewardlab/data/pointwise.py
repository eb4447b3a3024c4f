"""Pointwise training data: responses with a score, a correctness flag or named attributes.

Three row layouts, one per file (``"auto"`` detects it from the first valid row and holds every
later row to it, naming that row in errors, as the pair and item readers do):

- ``"score"``: ``prompt``, ``response``, ``score`` (a finite number);
- ``"correct"``: ``prompt``, ``responses`` (list), ``correct`` (one boolean per response), as
  ``../shared/data/gsm8k_solutions.jsonl``; every response becomes one row with target 0 or 1,
  and the responses of one row form one group (scaled BT pairs are formed within a group);
- ``"attributes"``: ``prompt``, ``response``, ``attributes`` (``{name: value}``): a value may be
  ``null``, ``NaN`` or absent, meaning *unlabelled* (masked in the loss). With ``attributes=``
  declared, a name outside that list is an error; without, the names are those seen, in order
  of first appearance.

The result is a :class:`PointwiseTable`: one entry per response, a target matrix ``[N, K]``
(NaN = unlabelled) with its column ``names``, a ``group`` id per response (responses of the same
prompt share it: the same prompt text, whatever row it came from) and each response's origin
(``file:LINE``). Bad rows raise :class:`~rewardlab.errors.DataError` naming file, line, field,
what was expected and what was found; ``on_error="skip"`` counts them in the report instead.
``num_labels`` (the model's number of outputs) must equal the table's K: a K-output model on a
one-column file is an error, not a silent broadcast.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.chat import type_name
from rewardlab.data.items import _field, _prompt, _texts, parsed_rows
from rewardlab.data.readers import units
from rewardlab.data.table import LoadReport
from rewardlab.errors import ConfigError, DataError

__all__ = ["POINTWISE_LAYOUTS", "PointwiseReport", "PointwiseTable", "detect_pointwise_layout",
           "pointwise_from_rows", "read_pointwise"]

POINTWISE_LAYOUTS = ("auto", "score", "correct", "attributes")
_ANY = ("a score row (prompt, response, score), a correctness row (prompt, responses, correct) or "
        "an attributes row (prompt, response, attributes: {name: value})")


@dataclass
class PointwiseReport(LoadReport):
    """A :class:`~rewardlab.data.table.LoadReport` for pointwise rows: ``layout``, responses kept,
    ``unlabelled`` (attribute values that were null/NaN/absent, per name) and
    ``unlabelled_rows`` (responses with no labelled attribute at all: kept, they add no loss)."""

    layout: str = "auto"
    n_responses: int = 0
    empty_responses: int = 0
    unlabelled: dict[str, int] = field(default_factory=dict)
    unlabelled_rows: int = 0

    def summary(self) -> str:
        lines = [super().summary().replace(f"kept {self.n_kept}", f"kept {self.n_kept} rows "
                                           f"({self.n_responses} responses)", 1),
                 f"layout: {self.layout}"]
        if self.unlabelled:
            lines.append("unlabelled values (masked): "
                         + ", ".join(f"{k} {n}" for k, n in self.unlabelled.items()))
        if self.unlabelled_rows:
            lines.append(f"kept {self.unlabelled_rows} responses with no labelled attribute (no loss)")
        if self.empty_responses:
            lines.append(f"kept {self.empty_responses} empty responses")
        return "\n".join(lines)


@dataclass
class PointwiseTable:
    """Responses with targets: ``target[i, k]`` is response i's value of ``names[k]`` (NaN when
    unlabelled); ``group[i]`` numbers the prompt (0, 1, … in order of first appearance)."""

    prompt: list[Any]
    response: list[str]
    target: np.ndarray
    names: tuple[str, ...]
    group: np.ndarray
    origin: list[str]
    source: list[str | None]
    layout: str
    report: PointwiseReport

    def __len__(self) -> int:
        return len(self.response)

    @property
    def num_labels(self) -> int:
        return len(self.names)

    def select(self, idx: Sequence[int] | np.ndarray) -> PointwiseTable:
        """The responses at ``idx`` (groups renumbered in order of first appearance)."""
        idx = np.asarray(idx, dtype=np.int64)
        _, first, inverse = np.unique(self.group[idx], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))
        return PointwiseTable([self.prompt[i] for i in idx], [self.response[i] for i in idx],
                              self.target[idx], self.names, order[inverse].astype(np.int64),
                              [self.origin[i] for i in idx], [self.source[i] for i in idx],
                              self.layout, self.report)


# ----------------------------------------------------------------------------- one row
def detect_pointwise_layout(row: Any) -> str:
    """``"attributes"``, ``"correct"`` or ``"score"`` for one row."""
    if not isinstance(row, dict):
        raise DataError(expected="a JSON object", got=type_name(row))
    if "attributes" in row:
        return "attributes"
    if "responses" in row or "correct" in row:
        return "correct"
    if "score" in row:
        return "score"
    raise DataError(f"fields found: {', '.join(map(str, row)) or '(none)'}", expected=_ANY,
                    got="none of these")


def _number(value: Any, name: str, *, allow_nan: bool, csv: bool) -> float:
    """A real number (NaN only where allowed; None counts as NaN there). CSV cells are text."""
    if value is None and allow_nan:
        return math.nan
    if csv and isinstance(value, str):
        if value.strip() == "" and allow_nan:
            return math.nan
        try:
            value = float(value)
        except ValueError:
            raise DataError(field=name, expected="a number", got=repr(value)) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(field=name, expected="a number", got=f"{type_name(value)} {value!r}"[:80])
    value = float(value)
    if math.isnan(value) and not allow_nan:
        raise DataError(field=name, expected="a number (NaN is not allowed here)", got="NaN")
    if math.isinf(value):
        raise DataError(field=name, expected="a finite number", got=repr(value))
    return value


def _score_row(row: dict, csv: bool, names: list[str], declared: bool) -> tuple[Any, list[str], list[dict]]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    response = _field(row, "response", "a response string")
    if not isinstance(response, str):
        raise DataError(field="response", expected="a string", got=type_name(response))
    score = _number(_field(row, "score", "a number"), "score", allow_nan=False, csv=csv)
    return prompt, [response], [{"score": score}]


def _correct_row(row: dict, csv: bool, names: list[str], declared: bool) -> tuple[Any, list[str], list[dict]]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    responses = _texts(_field(row, "responses", "a list of responses"), "responses")
    flags = _field(row, "correct", "a list of booleans, one per response")
    if not isinstance(flags, list) or len(flags) != len(responses):
        got = f"{len(flags)} values" if isinstance(flags, list) else type_name(flags)
        raise DataError(field="correct", expected=f"a list of {len(responses)} booleans (one per response)",
                        got=got)
    for i, flag in enumerate(flags):
        if not isinstance(flag, bool):
            raise DataError(field=f"correct[{i}]", expected="a boolean (true or false)", got=repr(flag))
    return prompt, list(responses), [{"correct": float(f)} for f in flags]


def _attributes_row(row: dict, csv: bool, names: list[str], declared: bool) -> tuple[Any, list[str], list[dict]]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    response = _field(row, "response", "a response string")
    if not isinstance(response, str):
        raise DataError(field="response", expected="a string", got=type_name(response))
    attrs = _field(row, "attributes", "an object {name: value}")
    if csv and isinstance(attrs, str) and attrs.startswith("{"):
        try:
            attrs = json.loads(attrs)
        except json.JSONDecodeError:
            pass
    if not isinstance(attrs, dict):
        raise DataError(field="attributes", expected="an object {name: value}", got=type_name(attrs))
    values = {}
    for name, value in attrs.items():
        if declared and name not in names:
            raise DataError(field=f"attributes.{name}",
                            expected=f"a declared attribute ({', '.join(names)})", got=f"'{name}'")
        values[name] = _number(value, f"attributes.{name}", allow_nan=True, csv=csv)
    return prompt, [response], [values]


_PARSERS = {"score": _score_row, "correct": _correct_row, "attributes": _attributes_row}


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


# ----------------------------------------------------------------------------- many rows
def pointwise_from_rows(
    rows: Iterable[tuple[str, Any]],
    *,
    layout: str = "auto",
    attributes: Sequence[str] | None = None,
    num_labels: int | None = None,
    on_error: str = "raise",
    label: str = "<rows>",
    csv: bool = False,
) -> PointwiseTable:
    """Rows ``(origin, dict or DataError)`` as a :class:`PointwiseTable` (see the module doc).

    ``attributes`` declares the attribute names (and their column order); ``num_labels`` is the
    number of model outputs the targets must match. Raises DataError at the bad row's origin
    (or counts it with ``on_error="skip"``) and when no row is kept.
    """
    if layout not in POINTWISE_LAYOUTS:
        raise ConfigError(f"layout must be one of {POINTWISE_LAYOUTS}, got {layout!r}")
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if num_labels is not None and num_labels < 1:
        raise ConfigError(f"num_labels must be >= 1, got {num_labels}")
    declared = attributes is not None
    names: list[str] = list(attributes or [])
    if declared and (not names or len(set(names)) != len(names)):
        raise ConfigError(f"attributes must be distinct names, at least one, got {names}")
    report = PointwiseReport(sources=[label], layout=layout)
    first_origin = None
    prompts: list[Any] = []
    responses: list[str] = []
    values: list[dict[str, float]] = []
    groups: list[int] = []
    origins: list[str] = []
    sources: list[str | None] = []
    group_of: dict[str, int] = {}

    def parse(row: Any, row_layout: str, origin: str) -> tuple[Any, list[str], list[dict]]:
        if not isinstance(row, dict):
            raise DataError(expected="a JSON object", got=type_name(row))
        return _PARSERS[row_layout](row, csv, names, declared)

    for origin, row, (prompt, texts, targets) in parsed_rows(rows, layout, detect_pointwise_layout, parse,
                                                               on_error, report):
        first_origin = first_origin or origin
        key = _prompt_key(prompt)
        g = group_of.setdefault(key, len(group_of))
        src = row.get("source")
        for text, target in zip(texts, targets):
            prompts.append(prompt)
            responses.append(text)
            values.append(target)
            groups.append(g)
            origins.append(origin)
            sources.append(None if src is None else str(src))
            report.empty_responses += not text.strip()
            if not declared:
                names += [n for n in target if n not in names]
        report.n_kept += 1
    if not responses:
        why = f"all {report.n_read} rows were skipped: {report.skipped}" if report.n_read else "no rows"
        raise DataError(why, file=label, expected="at least one pointwise row")
    fixed = report.layout  # the layout given, or the one detected from the first good row
    if fixed != "attributes":
        names = ["score" if fixed == "score" else "correct"]
    target = np.full((len(responses), len(names)), np.nan)
    col = {n: k for k, n in enumerate(names)}
    for i, row_values in enumerate(values):
        for name, v in row_values.items():
            target[i, col[name]] = v
    labelled = ~np.isnan(target)
    report.unlabelled = {n: int((~labelled[:, k]).sum()) for k, n in enumerate(names)
                         if (~labelled[:, k]).any()}
    report.unlabelled_rows = int((~labelled.any(axis=1)).sum())
    report.n_responses = len(responses)
    if num_labels is not None and num_labels != len(names):
        one = len(names) == 1
        _file, _, _line = (first_origin or label).rpartition(":")
        raise DataError(
            f"the model has num_labels={num_labels}; give one target per output"
            + (" (an attributes object with that many names)" if one else ""),
            file=_file or label, line=int(_line) if _line.isdigit() else None,
            field=names[0] if one else "attributes",
            expected=f"{num_labels} target columns", got=f"{len(names)} ({', '.join(names)})")
    return PointwiseTable(prompts, responses, target, tuple(names), np.asarray(groups, dtype=np.int64),
                          origins, sources, fixed, report)


def read_pointwise(
    spec: str | os.PathLike,
    *,
    layout: str = "auto",
    attributes: Sequence[str] | None = None,
    num_labels: int | None = None,
    on_error: str = "raise",
) -> PointwiseTable:
    """Read a data spec of pointwise rows (JSONL, CSV/TSV, JSON, Parquet, a directory, ``hf:``)
    with the readers of :func:`rewardlab.data.load_preferences` (line numbers kept)."""
    parts = list(units(spec))
    csv = any(_suffix(u.label) in (".csv", ".tsv") for u in parts)

    def rows() -> Iterator[tuple[str, Any]]:
        for unit in parts:
            for loc, raw in unit.rows:
                if isinstance(raw, dict) and "source" not in raw:
                    raw = {**raw, "source": unit.default_source}
                yield (f"{unit.label}:{loc}" if unit.text else f"{unit.label}: row {loc}"), raw

    label = parts[0].label if len(parts) == 1 else str(spec)
    return pointwise_from_rows(rows(), layout=layout, attributes=attributes, num_labels=num_labels,
                               on_error=on_error, label=label, csv=csv)


def _suffix(label: str) -> str:
    return os.path.splitext(label)[1].lower()
