"""The one table type that flows through rewardlab: validated preference pairs in columns."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.data.chat import TEMPLATE_COLUMNS, check_chat_template_kwargs, check_tools, template_kwargs
from rewardlab.errors import ConfigError, DataError

REQUIRED = ("prompt", "chosen", "rejected")
KNOWN = ("margin", "weight", "source", "id", "flip", *TEMPLATE_COLUMNS)
NUMERIC_PREFIXES = ("golden_", "strength_")
WRITE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_N_EXAMPLES = 10


@dataclass
class LoadReport:
    """What loading read, kept, skipped and noticed; nothing is dropped without a count here.

    ``skipped`` maps a reason to a count (only with ``on_error="skip"``), ``skipped_examples``
    keeps the first messages as ``file:line: message``. Empty responses and identical pairs are
    kept and counted. ``ignored_columns`` names input columns that were neither recognised nor
    listed in ``keep_columns``.
    """

    sources: list[str] = field(default_factory=list)
    n_read: int = 0
    n_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    empty_chosen: int = 0
    empty_rejected: int = 0
    identical: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    def count_skip(self, err: DataError) -> None:
        """Count a skipped row under its reason (field and expectation) and keep an example."""
        field = re.sub(r"\[\d+\]", "[]", err.field) if err.field else None
        reason = f"{field}: expected {err.expected}" if field else f"expected {err.expected}"
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.skipped_examples) < _N_EXAMPLES:
            self.skipped_examples.append(str(err))

    def count_pair(self, chosen: str, rejected: str) -> None:
        """Count a kept pair's empty (or blank) responses and whether chosen equals rejected."""
        self.empty_chosen += not chosen.strip()
        self.empty_rejected += not rejected.strip()
        self.identical += chosen == rejected

    def summary(self) -> str:
        """A few readable lines for the terminal."""
        lines = [f"read {self.n_read} rows from {len(self.sources)} source(s), kept {self.n_kept}"]
        if self.skipped:
            total = sum(self.skipped.values())
            reasons = "; ".join(f"{n} x {why}" for why, n in sorted(self.skipped.items()))
            lines.append(f"skipped {total}: {reasons}")
            lines += [f"  e.g. {ex}" for ex in self.skipped_examples[:3]]
        if self.empty_chosen or self.empty_rejected:
            lines.append(
                f"kept empty responses: {self.empty_chosen} chosen, {self.empty_rejected} rejected"
            )
        if self.identical:
            lines.append(f"kept {self.identical} pairs whose chosen equals rejected")
        if self.ignored_columns:
            lines.append(f"ignored columns (use keep_columns): {', '.join(self.ignored_columns)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def merge(self, other: LoadReport) -> LoadReport:
        """A new report adding ``other``'s counts to this one's."""
        skipped = dict(self.skipped)
        for reason, n in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        return LoadReport(
            sources=self.sources + other.sources,
            n_read=self.n_read + other.n_read,
            n_kept=self.n_kept + other.n_kept,
            skipped=skipped,
            skipped_examples=(self.skipped_examples + other.skipped_examples)[:_N_EXAMPLES],
            empty_chosen=self.empty_chosen + other.empty_chosen,
            empty_rejected=self.empty_rejected + other.empty_rejected,
            identical=self.identical + other.identical,
            ignored_columns=sorted(set(self.ignored_columns) | set(other.ignored_columns)),
        )


class PreferenceTable:
    """Preference pairs held as columns of equal length.

    ``columns`` always has ``prompt``, ``chosen``, ``rejected``; it may also hold ``margin``,
    ``weight``, ``source``, ``id``, ``golden_*``, ``strength_*`` and any column kept with
    ``keep_columns``. A prompt is a string or a list of ``{role, content}`` messages; responses
    are strings. ``origin[i]`` says where row ``i`` came from (``path:line`` or
    ``path: row N``). ``format`` is the input format ('explicit', 'hh', 'implicit' (prompts are
    HH dialogue strings), 'conversational' or 'mixed'); ``report`` describes the load the rows
    came from. Tables are treated as immutable: every transformation returns a new one.
    """

    def __init__(
        self,
        columns: dict[str, list],
        origin: list[str] | None = None,
        format: str = "explicit",
        report: LoadReport | None = None,
    ) -> None:
        missing = [name for name in REQUIRED if name not in columns]
        if missing:
            raise DataError(f"missing column(s) {missing}", expected="prompt, chosen, rejected")
        lengths = {name: len(values) for name, values in columns.items()}
        n = lengths["prompt"]
        if any(length != n for length in lengths.values()):
            raise DataError("columns differ in length", expected="equal lengths", got=str(lengths))
        origin = origin if origin is not None else [f"<table>: row {i}" for i in range(n)]
        if len(origin) != n:
            raise DataError("origin differs in length from the columns", expected=str(n))
        self.columns, self.origin, self.format, self.report = columns, origin, format, report

    @staticmethod
    def from_records(
        records: list[dict],
        origin: list[str],
        format: str,
        report: LoadReport | None = None,
        keep: Sequence[str] = (),
    ) -> PreferenceTable:
        """A table from row dicts. Column order: required, margin/weight/source/id,
        golden_*/strength_* (sorted), then ``keep`` in order; a row lacking a column gets None.
        """
        present = set().union(*records)
        names = list(REQUIRED) + [n for n in KNOWN if n in present]
        names += sorted(n for n in present if n.startswith(NUMERIC_PREFIXES))
        names += [n for n in keep if n in present and n not in names]
        return PreferenceTable({n: [r.get(n) for r in records] for n in names}, origin, format, report)

    def __len__(self) -> int:
        return len(self.columns["prompt"])

    def __getitem__(self, name: str) -> list:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns are {self.column_names}")
        return self.columns[name]

    def __repr__(self) -> str:
        return f"PreferenceTable({len(self)} rows, format={self.format!r}, columns={self.column_names})"

    @property
    def column_names(self) -> list[str]:
        """Column names in table order."""
        return list(self.columns)

    def has(self, name: str) -> bool:
        """Whether the table has column ``name``."""
        return name in self.columns

    def select(self, indices: Iterable[int]) -> PreferenceTable:
        """A new table of the rows at ``indices`` (in that order)."""
        idx = list(indices)
        columns = {name: [values[i] for i in idx] for name, values in self.columns.items()}
        return PreferenceTable(columns, [self.origin[i] for i in idx], self.format, self.report)

    def head(self, n: int) -> PreferenceTable:
        """The first ``n`` rows."""
        return self.select(range(min(n, len(self))))

    def with_column(self, name: str, values: Sequence) -> PreferenceTable:
        """A new table with column ``name`` added or replaced."""
        if len(values) != len(self):
            raise DataError(
                f"new column {name!r} has the wrong length", expected=str(len(self)), got=str(len(values))
            )
        columns = {**self.columns, name: list(values)}
        return PreferenceTable(columns, list(self.origin), self.format, self.report)

    def records(self) -> list[dict]:
        """The rows as dicts."""
        names = self.column_names
        return [dict(zip(names, row)) for row in zip(*(self.columns[n] for n in names))]

    def template_kwargs(self) -> list[dict | None]:
        """Per row, what the chat template gets besides the messages: ``tools`` and the entries of
        ``chat_template_kwargs`` (:func:`rewardlab.data.chat.template_kwargs`); None for a row
        with neither (every row when the table has neither column)."""
        tools = self.columns.get("tools") or [None] * len(self)
        extra = self.columns.get("chat_template_kwargs") or [None] * len(self)
        return [template_kwargs(t, k) for t, k in zip(tools, extra)]

    def prompt_key(self, i: int) -> str:
        """Canonical text of prompt ``i`` (JSON for message lists); what :meth:`split` hashes."""
        prompt = self.columns["prompt"][i]
        if isinstance(prompt, str):
            return prompt
        return json.dumps(prompt, sort_keys=True, ensure_ascii=False)

    def split(
        self, val_fraction: float = 0.1, salt: str = "rewardlab", keys: Sequence[str] | None = None
    ) -> tuple[PreferenceTable, PreferenceTable]:
        """Deterministic (train, val) split by a SHA-256 hash of each row's group key.

        The key is the prompt unless ``keys`` gives one per row (``rewardlab.data.splits``): all
        rows sharing a key land on the same side, so no group is in both; the validation side
        holds about ``val_fraction`` of the distinct keys. The same data and salt give the same
        split on any machine and Python version.
        """
        train, val = self.split_indices(val_fraction, salt, keys)
        return self.select(train), self.select(val)

    def split_indices(self, val_fraction: float = 0.1, salt: str = "rewardlab",
                      keys: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
        """The row indices of :meth:`split`'s (train, val) sides."""
        if not 0.0 <= val_fraction <= 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1], got {val_fraction}")
        if keys is None:
            keys = [self.prompt_key(i) for i in range(len(self))]
        elif len(keys) != len(self):
            raise ValueError(f"keys: expected one per row ({len(self)}), got {len(keys)}")
        in_val = [unit_hash(salt, key) < val_fraction for key in keys]
        return [i for i, v in enumerate(in_val) if not v], [i for i, v in enumerate(in_val) if v]

    def to_arrow(self) -> Any:
        """The columns as a ``pyarrow.Table`` (message lists become list<struct<role, content>>)."""
        import pyarrow as pa

        arrays = {}
        for name, values in self.columns.items():
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                raise DataError(
                    f"column cannot be stored in Arrow ({err}); mixed strings and message lists?",
                    field=name,
                ) from err
        return pa.table(arrays)

    def write(self, path: str | Path) -> None:
        """Write the table, the format chosen by suffix: .jsonl, .json, .csv or .parquet.

        In CSV, lists and dicts (message lists, kept structured columns) are JSON-encoded,
        numbers written with ``repr`` precision and ``None`` as an empty cell.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in WRITE_SUFFIXES:
            raise DataError(f"cannot write {path}", file=str(path), expected=f"a suffix in {WRITE_SUFFIXES}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(self.to_arrow(), path)
        elif suffix == ".csv":
            _write_csv(path, self.column_names, self.records())
        elif suffix == ".json":
            path.write_text(json.dumps(self.records(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        else:
            with path.open("w", encoding="utf-8") as f:
                for record in self.records():
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")

    @staticmethod
    def concat(tables: Sequence[PreferenceTable]) -> PreferenceTable:
        """Rows of all ``tables`` in order.

        Columns are the union; a table lacking a column contributes ``None`` to it. The format is
        the shared one, or ``'mixed'``; reports are merged.
        """
        if not tables:
            raise DataError(expected="at least one table to concatenate")
        names = list(dict.fromkeys(name for t in tables for name in t.column_names))
        columns = {
            name: [v for t in tables for v in (t.columns.get(name) or [None] * len(t))] for name in names
        }
        origin = [o for t in tables for o in t.origin]
        formats = {t.format for t in tables}
        reports = [t.report for t in tables if t.report is not None]
        report = None
        for r in reports:
            report = r if report is None else report.merge(r)
        return PreferenceTable(columns, origin, formats.pop() if len(formats) == 1 else "mixed", report)


def is_known_column(name: str) -> bool:
    """Whether ``name`` is a recognised optional column (margin, weight, source, id, golden_*...)."""
    return name in KNOWN or name.startswith(NUMERIC_PREFIXES)


def check_optional(name: str, value: Any) -> Any:
    """A recognised optional column's value, validated; None stands for a missing value.

    ``source`` is a string, ``id`` a string or integer, ``weight`` a finite number >= 0 and
    ``margin``, ``golden_*``, ``strength_*`` finite numbers (returned as float), ``flip`` 0 or 1
    (or a bool); ``tools`` and ``chat_template_kwargs`` as :func:`rewardlab.data.chat.check_tools`
    and :func:`~rewardlab.data.chat.check_chat_template_kwargs` say (kept as given).
    """
    if value is None:
        return None
    if name == "tools":
        return check_tools(value)
    if name == "chat_template_kwargs":
        return check_chat_template_kwargs(value)
    if name == "source":
        if not isinstance(value, str):
            raise DataError(field=name, expected="a string", got=type(value).__name__)
        return value
    if name == "id":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DataError(field=name, expected="a string or an integer", got=type(value).__name__)
        return value
    if name == "flip" and isinstance(value, bool):
        return float(value)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "flip" and (not is_number or value not in (0, 1)):
        raise DataError(field=name, expected="0 or 1 (1 = flip this pair's label)", got=repr(value))
    if not is_number or not math.isfinite(value) or (name == "weight" and value < 0):
        expected = "a finite number >= 0" if name == "weight" else "a finite number"
        raise DataError(field=name, expected=expected, got=repr(value) if is_number else type(value).__name__)
    return float(value)


def unit_hash(salt: str, text: str) -> float:
    """A stable hash of ``salt`` and ``text`` mapped to [0, 1)."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _csv_cell(value: Any) -> str:
    """One value as CSV text: JSON for structures, empty for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write_csv(path: Path, names: list[str], records: list[dict]) -> None:
    """Write ``records`` as a CSV file with a header row."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for record in records:
            writer.writerow([_csv_cell(record[name]) for name in names])
