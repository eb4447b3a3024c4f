"""Evaluation items beyond pairs: best-of-N, RM-Bench style triples, pointwise correctness.

Rows (already-parsed dicts, each with an origin such as ``data.jsonl:12`` for messages) become
one internal representation, :class:`Item`: a prompt, its *distinct* response texts (each is
scored once, however often it appears in the row) and, by ``kind``, which of them are chosen,
rejected or correct. Layouts read:

- ``"best_of_n"`` (RewardBench 2): ``prompt``, ``chosen`` (list), ``rejected`` (list); an
  optional ``num_correct`` must equal the number of chosen responses (RewardBench 2's Ties
  rows have several);
- ``"rmb"`` (RMB's Best-of-N sets, github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark):
  ``conversation_input`` (a list of ``{role, content, ...}`` messages, or a string),
  ``bon_best`` (``{"answer", "llm_name"}``), ``loser_list`` (a list of such), ``bon_uid``,
  ``category_path``;
- ``"rm_bench"`` (RM-Bench): ``prompt``, ``chosen`` and ``rejected`` with exactly three
  responses each, in the styles concise, detailed plain, detailed markdown;
- ``"pointwise"``: ``prompt``, ``responses`` (list), ``correct`` (one boolean each), as in
  ``../shared/data/gsm8k_solutions.jsonl``.

``"auto"`` detects the layout from the first valid row (RMB keys; ``responses``/``correct``;
three chosen and three rejected without RewardBench 2's ``num_correct``/``subset``; else
best-of-N) and holds every later row to it, naming the row it was detected from in errors.

Bad rows raise :class:`~rewardlab.errors.DataError` naming file and line (or row), field, what
was expected and what was found; ``on_error="skip"`` skips them and counts each reason in the
report instead. Duplicate response texts within a row are merged (and counted); empty responses
are kept (and counted). Nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.chat import type_name, validate_messages
from rewardlab.data.readers import units  # the readers' row streams (line numbers kept)
from rewardlab.data.table import LoadReport
from rewardlab.errors import ConfigError, DataError

__all__ = [
    "KINDS",
    "LAYOUTS",
    "Item",
    "ItemReport",
    "detect_layout",
    "item_from_row",
    "items_from_rows",
    "read_items",
    "unique_inputs",
]

KINDS = ("best_of_n", "rm_bench", "pointwise")
LAYOUTS = ("auto", "best_of_n", "rmb", "rm_bench", "pointwise")
_KIND_OF = {"best_of_n": "best_of_n", "rmb": "best_of_n", "rm_bench": "rm_bench", "pointwise": "pointwise"}
_ANY_LAYOUT = (
    "a best-of-N row (prompt, chosen: list, rejected: list), an RMB row (conversation_input, "
    "bon_best, loser_list), an RM-Bench row (prompt, chosen and rejected: 3 responses each) or a "
    "pointwise row (prompt, responses, correct)"
)
_STYLES = "3 responses (concise, detailed plain, detailed markdown)"


@dataclass(frozen=True)
class Item:
    """One evaluation item: a prompt and its distinct responses, each to be scored once.

    By ``kind``:
    - ``"best_of_n"``: ``chosen_idx`` (one, or several for RewardBench 2 Ties rows) and
      ``rejected_idx`` index ``responses``;
    - ``"rm_bench"``: ``chosen_idx``/``rejected_idx`` hold three indices each, by style
      (0 concise, 1 detailed plain, 2 detailed markdown); two styles with the same text share
      an index;
    - ``"pointwise"``: ``correct[i]`` is the correctness of ``responses[i]``; ``sample_idx``
      maps each response of the original row to its distinct text (a text sampled twice
      counts twice in a random pick).
    ``group`` is the benchmark's own subset label (``subset``, ``domain`` or
    ``category_path``) when the row has one; ``origin`` is where the row came from.
    """

    prompt: str | list[dict]
    responses: tuple[str, ...]
    kind: str
    chosen_idx: tuple[int, ...] = ()
    rejected_idx: tuple[int, ...] = ()
    correct: tuple[bool, ...] = ()
    sample_idx: tuple[int, ...] = ()
    source: str | None = None
    id: str | None = None
    group: str | None = None
    origin: str | None = None

    def split(self, rewards: Any) -> dict[str, np.ndarray]:
        """The item's rewards arranged for :mod:`rewardlab.eval.items`.

        ``rewards`` holds one reward per entry of ``responses``. Returns ``{"chosen",
        "rejected"}`` (best-of-N, RM-Bench: arrays in index order) or ``{"scores", "correct"}``
        (pointwise: one entry per response of the original row).
        """
        r = np.asarray(rewards, dtype=float)
        if r.shape != (len(self.responses),):
            raise ValueError(f"rewards: expected {len(self.responses)} values (one per distinct response), "
                             f"got shape {r.shape}")
        if self.kind == "pointwise":
            idx = list(self.sample_idx)
            return {"scores": r[idx], "correct": np.asarray(self.correct, dtype=bool)[idx]}
        return {"chosen": r[list(self.chosen_idx)], "rejected": r[list(self.rejected_idx)]}


@dataclass
class ItemReport(LoadReport):
    """A :class:`~rewardlab.data.table.LoadReport` for items: what was read, kept and skipped.

    Adds ``layout`` (as given or detected), ``kinds`` (items kept per kind),
    ``merged_duplicates`` (repeated response texts within a row, scored once) and
    ``empty_responses`` (kept). The pair counters of LoadReport stay 0.
    """

    layout: str = "auto"
    kinds: dict[str, int] = field(default_factory=dict)
    merged_duplicates: int = 0
    empty_responses: int = 0

    def summary(self) -> str:
        lines = [super().summary().replace(f"kept {self.n_kept}", f"kept {self.n_kept} items", 1)]
        lines.append(f"layout: {self.layout}; items per kind: "
                     + (", ".join(f"{k} {n}" for k, n in self.kinds.items()) or "none"))
        if self.merged_duplicates:
            lines.append(f"merged {self.merged_duplicates} repeated response texts within rows (scored once)")
        if self.empty_responses:
            lines.append(f"kept {self.empty_responses} empty responses")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- one row
def detect_layout(row: dict) -> str:
    """The layout of one row: ``"rmb"``, ``"pointwise"``, ``"rm_bench"`` or ``"best_of_n"``."""
    if not isinstance(row, dict):
        raise DataError(expected="a JSON object", got=type_name(row))
    if "conversation_input" in row or "bon_best" in row or "loser_list" in row:
        return "rmb"
    if "responses" in row or "correct" in row:
        return "pointwise"
    if "chosen" in row and "rejected" in row:
        chosen, rejected = row["chosen"], row["rejected"]
        if (isinstance(chosen, list) and isinstance(rejected, list) and len(chosen) == len(rejected) == 3
                and "num_correct" not in row and "subset" not in row):
            return "rm_bench"
        return "best_of_n"
    raise DataError(f"fields found: {', '.join(map(str, row)) or '(none)'}", expected=_ANY_LAYOUT,
                    got="none of these")


def _field(row: dict, name: str, expected: str) -> Any:
    if name not in row:
        raise DataError(f"fields found: {', '.join(map(str, row)) or '(none)'}", field=name,
                        expected=expected, got="no such field")
    return row[name]


def _texts(value: Any, name: str, *, min_len: int = 1) -> list[str]:
    """A list of response strings (errors name the element)."""
    if not isinstance(value, list):
        raise DataError(field=name, expected="a list of response strings", got=type_name(value))
    if len(value) < min_len:
        raise DataError(field=name, expected=f"at least {min_len} response" + ("s" if min_len > 1 else ""),
                        got="an empty list" if not value else f"{len(value)}")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise DataError(field=f"{name}[{i}]", expected="a string", got=type_name(text))
    return value


def _prompt(value: Any, name: str) -> str | list[dict]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return validate_messages(value, name)
    raise DataError(field=name, expected="a string or a list of {role, content} messages", got=type_name(value))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Pool:
    """Distinct response texts of one row, in order of first appearance."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.index: dict[str, int] = {}
        self.merged = 0

    def add(self, text: str) -> int:
        if text in self.index:
            self.merged += 1
            return self.index[text]
        self.index[text] = len(self.texts)
        self.texts.append(text)
        return self.index[text]


def _no_overlap(chosen: list[str], rejected: list[str], chosen_key: str, rejected_key: str) -> None:
    first = {}
    for i, text in enumerate(chosen):
        first.setdefault(text, i)
    for j, text in enumerate(rejected):
        if text in first:
            raise DataError(field=f"{rejected_key}[{j}]", expected=f"a response different from every {chosen_key} one",
                            got=f"the same text as {chosen_key}[{first[text]}]")


def _best_of_n(row: dict, chosen_key: str = "chosen", rejected_key: str = "rejected") -> dict[str, Any]:
    chosen = _texts(_field(row, chosen_key, "a list of chosen responses"), chosen_key)
    rejected = _texts(_field(row, rejected_key, "a list of rejected responses"), rejected_key)
    return _chosen_rejected(chosen, rejected, chosen_key, rejected_key)


def _chosen_rejected(chosen: list[str], rejected: list[str], chosen_key: str, rejected_key: str) -> dict[str, Any]:
    _no_overlap(chosen, rejected, chosen_key, rejected_key)
    pool = _Pool()
    chosen_idx = tuple(dict.fromkeys(pool.add(t) for t in chosen))
    rejected_idx = tuple(dict.fromkeys(pool.add(t) for t in rejected))
    return {"responses": tuple(pool.texts), "chosen_idx": chosen_idx, "rejected_idx": rejected_idx,
            "merged": pool.merged}


def _rb2(row: dict) -> dict[str, Any]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    parts = _best_of_n(row)
    if "num_correct" in row:
        k, n_chosen = row["num_correct"], len(row["chosen"])
        if isinstance(k, bool) or not isinstance(k, (int, float)) or k != n_chosen:
            raise DataError(field="num_correct", expected=f"the number of chosen responses ({n_chosen})",
                            got=repr(k))
    return {"prompt": prompt, "kind": "best_of_n", **parts,
            "group": _text(row.get("subset")), "id": _text(row.get("id"))}


def _answer(value: Any, name: str) -> str:
    if not isinstance(value, dict):
        raise DataError(field=name, expected="an {answer, llm_name} object", got=type_name(value))
    if "answer" not in value:
        raise DataError(field=f"{name}.answer", expected="an answer string", got="no such field")
    answer = value["answer"]
    if not isinstance(answer, str):
        raise DataError(field=f"{name}.answer", expected="a string", got=type_name(answer))
    return answer


def _rmb(row: dict) -> dict[str, Any]:
    prompt = _prompt(_field(row, "conversation_input", "the conversation (a list of messages)"),
                     "conversation_input")
    best = _answer(_field(row, "bon_best", "the best answer ({answer, llm_name})"), "bon_best")
    losers = _field(row, "loser_list", "a list of worse answers ({answer, llm_name})")
    if not isinstance(losers, list):
        raise DataError(field="loser_list", expected="a list of {answer, llm_name} objects", got=type_name(losers))
    if not losers:
        raise DataError(field="loser_list", expected="at least 1 response", got="an empty list")
    rejected = [_answer(v, f"loser_list[{i}]") for i, v in enumerate(losers)]
    try:
        parts = _chosen_rejected([best], rejected, "bon_best", "loser_list")
    except DataError as err:  # name the loser's answer, not a list index of strings
        raise DataError(field=f"{err.field}.answer", expected="an answer different from bon_best's",
                        got="the same text as bon_best") from None
    return {"prompt": prompt, "kind": "best_of_n", **parts,
            "group": _text(row.get("category_path")), "id": _text(row.get("bon_uid", row.get("id")))}


def _rm_bench(row: dict) -> dict[str, Any]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    sides = {}
    for key in ("chosen", "rejected"):
        value = _texts(_field(row, key, f"a list of {_STYLES}"), key)
        if len(value) != 3:
            raise DataError(field=key, expected=f"a list of {_STYLES}", got=f"{len(value)} responses")
        sides[key] = value
    _no_overlap(sides["chosen"], sides["rejected"], "chosen", "rejected")
    pool = _Pool()
    chosen_idx = tuple(pool.add(t) for t in sides["chosen"])
    rejected_idx = tuple(pool.add(t) for t in sides["rejected"])
    return {"prompt": prompt, "kind": "rm_bench", "responses": tuple(pool.texts), "chosen_idx": chosen_idx,
            "rejected_idx": rejected_idx, "merged": pool.merged,
            "group": _text(row.get("domain")), "id": _text(row.get("id"))}


def _pointwise(row: dict) -> dict[str, Any]:
    prompt = _prompt(_field(row, "prompt", "a prompt"), "prompt")
    responses = _texts(_field(row, "responses", "a list of responses"), "responses")
    flags = _field(row, "correct", "a list of booleans, one per response")
    if not isinstance(flags, list) or len(flags) != len(responses):
        got = f"{len(flags)} values" if isinstance(flags, list) else type_name(flags)
        raise DataError(field="correct", expected=f"a list of {len(responses)} booleans (one per response)", got=got)
    pool = _Pool()
    correct: list[bool] = []
    sample_idx = []
    for i, (text, flag) in enumerate(zip(responses, flags)):
        if not isinstance(flag, bool):
            raise DataError(field=f"correct[{i}]", expected="a boolean (true or false)", got=repr(flag))
        k = pool.add(text)
        if k == len(correct):
            correct.append(flag)
        elif correct[k] != flag:
            first = responses.index(text)
            raise DataError(field=f"correct[{i}]", expected=f"the same flag as correct[{first}] (the same response text)",
                            got=repr(flag))
        sample_idx.append(k)
    return {"prompt": prompt, "kind": "pointwise", "responses": tuple(pool.texts), "correct": tuple(correct),
            "sample_idx": tuple(sample_idx), "merged": pool.merged,
            "group": _text(row.get("subset")), "id": _text(row.get("id"))}


_PARSERS = {"best_of_n": _rb2, "rmb": _rmb, "rm_bench": _rm_bench, "pointwise": _pointwise}


def _parse(row: Any, layout: str, source: str | None, origin: str | None) -> tuple[Item, int]:
    """(Item, number of merged duplicate texts) of one row; DataError without location."""
    if not isinstance(row, dict):
        raise DataError(expected="a JSON object", got=type_name(row))
    fields = _PARSERS[layout](row)
    merged = fields.pop("merged")
    row_source = row.get("source")
    item = Item(**fields, source=_text(row_source) if row_source is not None else source, origin=origin)
    return item, merged


def _located(err: DataError, origin: str | None, note: str = "") -> DataError:
    """``err`` with the file and line (or row) of ``origin`` (``file:LINE`` or ``file: row N``)."""
    file, line, row = origin, None, None
    if origin is not None:
        if m := re.fullmatch(r"(.*): row (\d+)", origin):
            file, row = m.group(1), int(m.group(2))
        elif m := re.fullmatch(r"(.*):(\d+)", origin):
            file, line = m.group(1), int(m.group(2))
    message = "; ".join(part for part in (err.message, note) if part)
    return DataError(message, file=file, line=line, row=row, field=err.field, expected=err.expected, got=err.got)


def parsed_rows(rows: Iterable[tuple[str, Any]], layout: str, detect, parse, on_error: str, report):
    """Each row ``(origin, dict or DataError)`` parsed under one layout, as ``(origin, row, parsed)``.

    ``layout="auto"`` takes the layout ``detect(row)`` gives the first good row and applies it to
    every later row (``report.layout`` records it); ``parse(row, layout, origin)`` returns the
    parsed value or raises DataError. A bad row raises DataError at its origin (naming where the
    layout was detected), or with ``on_error="skip"`` is counted in ``report`` and skipped;
    ``report.n_read`` counts every row. Shared by the item and pointwise readers.
    """
    fixed = None if layout == "auto" else layout
    detected_at = None
    for origin, row in rows:
        report.n_read += 1
        try:
            if isinstance(row, DataError):
                raise row
            row_layout = fixed or detect(row)
            parsed = parse(row, row_layout, origin)
        except DataError as err:
            note = f"layout '{fixed}' detected from {detected_at}" if detected_at else ""
            located = _located(err, origin, note)
            if on_error == "raise":
                raise located from None
            report.count_skip(located)
            continue
        if fixed is None:
            fixed, detected_at = row_layout, origin
            report.layout = row_layout
        yield origin, row, parsed


def item_from_row(row: dict, origin: str | None = None, layout: str = "auto", source: str | None = None) -> Item:
    """One row as an :class:`Item`; a bad row raises DataError located at ``origin``."""
    _check_layout(layout)
    try:
        return _parse(row, detect_layout(row) if layout == "auto" else layout, source, origin)[0]
    except DataError as err:
        raise _located(err, origin) from None


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")


# ----------------------------------------------------------------------------- many rows
def items_from_rows(
    rows: Iterable[tuple[str, Any]],
    *,
    layout: str = "auto",
    on_error: str = "raise",
    source: str | None = None,
    label: str = "<rows>",
) -> tuple[list[Item], ItemReport]:
    """Rows ``(origin, dict)`` as items, with a report of what was read, kept and skipped.

    ``layout="auto"`` detects the layout from the first valid row and applies it to all rows.
    A bad row raises DataError at its origin; with ``on_error="skip"`` it is skipped and
    counted under its reason (``report.skipped``, with examples). ``source`` is the default
    for rows without a ``source`` field. A row value may itself be a DataError (a line that
    did not parse), which counts like any bad row. Raises DataError if no item is kept.
    """
    _check_layout(layout)
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    report = ItemReport(sources=[label], layout=layout)
    items: list[Item] = []
    def parse(row: Any, row_layout: str, origin: str) -> tuple[Item, int]:
        return _parse(row, row_layout, source, origin)

    for _origin, _row, (item, merged) in parsed_rows(rows, layout, detect_layout, parse, on_error, report):
        items.append(item)
        report.kinds[item.kind] = report.kinds.get(item.kind, 0) + 1
        report.merged_duplicates += merged
        report.empty_responses += sum(not text.strip() for text in item.responses)
    report.n_kept = len(items)
    if not items:
        why = f"all {report.n_read} rows were skipped: {report.skipped}" if report.n_read else "no rows"
        raise DataError(why, file=label, expected="at least one item")
    return items, report


def read_items(
    spec: str | os.PathLike,
    *,
    layout: str = "auto",
    on_error: str = "raise",
    source: str | None = None,
) -> tuple[list[Item], ItemReport]:
    """Read a data spec of item rows (a file: .jsonl/.ndjson, .json list, .parquet, ...; a
    directory of such files; ``hf:NAME[:CONFIG][@SPLIT]``) into items.

    The rows are read by the same readers as :func:`rewardlab.data.load_preferences` (line
    numbers kept for JSONL, row indices for JSON lists and Parquet); rows become items by
    :func:`items_from_rows`. ``source`` defaults to each file's stem.
    """
    parts = list(units(spec))

    def rows() -> Iterator[tuple[str, Any]]:
        for unit in parts:
            for loc, raw in unit.rows:
                if isinstance(raw, dict) and source is None and "source" not in raw:
                    raw = {**raw, "source": unit.default_source}
                yield (f"{unit.label}:{loc}" if unit.text else f"{unit.label}: row {loc}"), raw

    label = parts[0].label if len(parts) == 1 else str(spec)
    return items_from_rows(rows(), layout=layout, on_error=on_error, source=source, label=label)


def is_item_spec(spec: str | os.PathLike) -> bool:
    """Whether a data spec holds item rows (best-of-N, RM-Bench, RMB, pointwise) rather than
    pairs: its first row has list-of-text ``chosen``/``rejected``, ``responses``/``correct`` or
    RMB's keys. Reads one row; an unreadable first row counts as pairs (the pair reader then
    names the problem)."""
    for unit in units(spec):
        for _, raw in unit.rows:
            if not isinstance(raw, dict):
                return False
            if {"conversation_input", "bon_best", "loser_list", "responses", "correct"} & set(raw):
                return True
            chosen = raw.get("chosen")
            return isinstance(chosen, list) and bool(chosen) and all(isinstance(c, str) for c in chosen)
        return False
    return False


# ----------------------------------------------------------------------------- scoring once
def unique_inputs(items: Sequence[Item]) -> tuple[list[tuple[str | list[dict], str]], list[np.ndarray]]:
    """The distinct ``(prompt, response)`` inputs of all items, and where each item's are.

    Returns ``(inputs, index)``: score ``inputs`` once (one reward each, ``rewards``), then
    ``rewards[index[i]]`` holds the rewards of ``items[i].responses`` for :meth:`Item.split`.
    Items that share a prompt and a response text (RMB repeats answers across rows) share one
    input.
    """
    inputs: list[tuple[str | list[dict], str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    index = []
    for item in items:
        if isinstance(item.prompt, str):
            key_prompt = ("text", item.prompt)
        else:
            key_prompt = ("messages", json.dumps(item.prompt, sort_keys=True))
        rows = []
        for text in item.responses:
            key = (*key_prompt, text)
            if key not in seen:
                seen[key] = len(inputs)
                inputs.append((item.prompt, text))
            rows.append(seen[key])
        index.append(np.asarray(rows, dtype=np.int64))
    return inputs, index
