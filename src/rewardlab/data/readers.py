"""Read preference pairs from files, directories and the Hub into a validated PreferenceTable.

Sources (a *spec*): a file (.jsonl/.ndjson, .json, .csv/.tsv, .parquet), a directory of such
files, a ``datasets`` ``save_to_disk`` directory (``dir@SPLIT`` picks a DatasetDict split,
default ``train``), ``hf:NAME[:CONFIG][@SPLIT]`` for the Hub, or a list of specs.
Each file becomes a stream of raw rows; each row is validated and normalized to the canonical
columns (see :func:`load_preferences`), and the file's rows become one PreferenceTable.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data.chat import FORMATS, Keys, detect_format, normalize_pair, type_name
from rewardlab.data.table import REQUIRED, LoadReport, PreferenceTable, check_optional, is_known_column
from rewardlab.errors import ConfigError, DataError

FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
ACCEPTED = (
    "a .jsonl/.ndjson, .json, .csv/.tsv or .parquet file, a directory of such files, "
    "a datasets save_to_disk directory (dir@SPLIT), hf:NAME[:CONFIG][@SPLIT], or a list of these"
)
_DATASETS_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_JSON_LIST_KEYS = ("data", "rows", "train")

Rows = Iterator[tuple[int, Any]]  # (1-based line or 0-based row, a record or a DataError)


@dataclass(frozen=True)
class Spec:
    """A parsed data spec: ``kind`` is ``'path'`` or ``'hf'``."""

    kind: str
    target: str
    config: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class _Options:
    """The row-level settings of one load_preferences call."""

    keys: Keys
    format: str
    on_error: str
    keep: tuple[str, ...]
    source: str | None
    keep_all: bool = False


@dataclass
class Unit:
    """One file or dataset to read: its label for messages and its rows."""

    label: str
    text: bool  # rows are addressed by line (text files) rather than by row index
    rows: Rows
    default_source: str


def sample_path() -> Path:
    """Path of the bundled sample dataset (preference pairs whose labels a program checks)."""
    return Path(__file__).parent / "sample" / "checked_pairs.jsonl"


def parse_spec(spec: str) -> Spec:
    """Parse ``hf:NAME[:CONFIG][@SPLIT]`` or ``PATH[@SPLIT]`` without touching disk or network."""
    if spec.startswith("hf:"):
        body, split = _split_suffix(spec[3:])
        name, _, config = body.partition(":")
        if not name:
            raise ConfigError(f"data spec {spec!r}: expected hf:NAME[:CONFIG][@SPLIT]")
        return Spec("hf", name, config or None, split)
    path, split = _split_suffix(spec)
    return Spec("path", path, None, split)


def _split_suffix(text: str) -> tuple[str, str | None]:
    """Split a trailing ``@SPLIT`` (no path separator after the ``@``) off ``text``."""
    head, sep, tail = text.rpartition("@")
    if sep and head and tail and "/" not in tail and os.sep not in tail:
        return head, tail
    return text, None


def load_preferences(
    spec: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    format: str = "auto",
    prompt_key: str = "prompt",
    chosen_key: str = "chosen",
    rejected_key: str = "rejected",
    on_error: str = "raise",
    limit: int | None = None,
    keep_columns: Sequence[str] = (),
    source: str | None = None,
    keep_all_columns: bool = False,
) -> PreferenceTable:
    """Load preference pairs into one validated :class:`PreferenceTable`.

    ``format`` is ``'auto'`` (detected per file from its first valid row), ``'explicit'``
    (prompt, chosen, rejected strings), ``'hh'`` (the same with Anthropic HH dialogue prompts),
    ``'implicit'`` (no prompt: full dialogues in chosen/rejected, split at the last shared turn
    boundary) or ``'conversational'`` (lists of ``{role, content}`` messages, with or without
    a prompt). ``prompt_key``/``chosen_key``/``rejected_key`` name the input columns, which are
    renamed to ``prompt``/``chosen``/``rejected``.

    Recognised optional columns are carried: ``margin``, ``weight`` (numbers, weight >= 0), ``flip`` (0/1),
    ``id``, ``source`` and numeric ``golden_*``/``strength_*``; other columns are kept only when
    named in ``keep_columns`` (or, with ``keep_all_columns``, all of them, in the order they first
    appear: ``rewardlab score`` writes ids and metadata back) and otherwise listed in
    ``report.ignored_columns``. ``tools`` and ``chat_template_kwargs`` (TRL's columns) are
    recognised and reach the chat template when the model renders with one. The ``source``
    column is always present: rows without one get the ``source`` argument, else the file stem
    (the directory name for datasets directories, the dataset name for ``hf:``), so per-source
    evaluation always works.

    Bad rows raise :class:`DataError` naming file, line (or row), field and what was expected;
    with ``on_error="skip"`` they are skipped and counted in ``table.report`` instead (file-level
    errors still raise). Empty responses and identical pairs are kept and counted. ``limit``
    caps the number of pairs kept in total.
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    if set(keep_columns) & set(REQUIRED):
        raise ConfigError(f"keep_columns must not name {REQUIRED}; use prompt_key/chosen_key/rejected_key")
    opts = _Options(Keys(prompt_key, chosen_key, rejected_key), format, on_error, tuple(keep_columns), source,
                    keep_all_columns)
    tables: list[PreferenceTable] = []
    remaining = limit
    for unit in units(spec):
        if remaining is not None and remaining <= 0:
            break
        table = _read_unit(unit, opts, remaining)
        tables.append(table)
        remaining = None if remaining is None else remaining - len(table)
    if not tables:
        raise DataError(f"no data in spec {spec!r}", expected=ACCEPTED)
    return tables[0] if len(tables) == 1 else PreferenceTable.concat(tables)


def units(spec: Any) -> Iterator[Unit]:
    """The files/datasets a spec names, in order, read lazily."""
    if isinstance(spec, (list, tuple)):
        for item in spec:
            yield from units(item)
        return
    if isinstance(spec, os.PathLike) or Path(str(spec)).exists():
        parsed = Spec("path", str(spec))
    elif isinstance(spec, str):
        parsed = parse_spec(spec)
    else:
        raise ConfigError(f"data spec must be a path, a string or a list of them, got {type(spec).__name__}")
    if parsed.kind == "hf":
        yield _hub_unit(parsed)
        return
    path = Path(parsed.target)
    if not path.exists():  # the reason first, then what a spec may be
        raise DataError(f"no such file or directory; a data spec is {ACCEPTED}", file=str(path))
    if path.is_dir():
        yield from _directory_units(path, parsed.split)
    elif parsed.split is not None:
        raise DataError(f"@{parsed.split} applies to datasets directories only", file=str(path))
    else:
        yield file_unit(path)


def _directory_units(path: Path, split: str | None) -> Iterator[Unit]:
    """A datasets save_to_disk directory, or each supported file of a plain directory."""
    if any((path / marker).exists() for marker in _DATASETS_MARKERS):
        yield _saved_dataset_unit(path, split)
        return
    if split is not None:
        raise DataError(f"@{split} needs a datasets save_to_disk directory", file=str(path), expected=ACCEPTED)
    files = sorted(
        p for p in path.iterdir() if p.suffix.lower() in FILE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataError("directory holds no supported data file", file=str(path), expected=ACCEPTED)
    for file in files:
        yield file_unit(file)


def file_unit(path: Path) -> Unit:
    """A unit for one file, by suffix."""
    suffix = path.suffix.lower()
    label = str(path)
    if suffix in (".jsonl", ".ndjson"):
        return Unit(label, True, _jsonl_rows(path), path.stem)
    if suffix in (".csv", ".tsv"):
        return Unit(label, True, _csv_rows(path, "\t" if suffix == ".tsv" else ","), path.stem)
    if suffix == ".json":
        return Unit(label, False, _json_rows(path), path.stem)
    if suffix == ".parquet":
        return Unit(label, False, _parquet_rows(path), path.stem)
    raise DataError(f"unsupported file suffix {path.suffix!r}", file=label, expected=ACCEPTED)


# Files are parsed here, not by `datasets`, whose builders lose line numbers and coerce types.


def _jsonl_rows(path: Path) -> Rows:
    """(line, object or DataError) for each non-blank line of a JSONL file."""
    with path.open("rb") as f:  # decoded line by line, so a non-UTF-8 line is named by its number
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:  # a row error: --skip-bad-rows / on_error: skip skips it
                yield number, DataError(utf8_message(raw, err), expected="UTF-8 text")
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                yield number, DataError(json_error_message(err, line), expected="a JSON object")


def json_error_message(err: json.JSONDecodeError, line: str) -> str:
    """``invalid JSON: <reason> at column N`` for a decoding error within one line of a file.

    ``json`` counts lines and columns within the string it was given; a JSONL line ends in its
    newline, so an unterminated object is reported at "line 2 column 1" of that string. The
    column here is within the file's line (1-based); the end of the line is said as such.
    """
    text = line.rstrip("\r\n")
    if err.pos >= len(text):
        return f"invalid JSON: {err.msg} at the end of the line (column {len(text) + 1})"
    return f"invalid JSON: {err.msg} at column {err.pos + 1}"


def first_invalid_utf8(path: Path) -> tuple[int, int, bytes] | None:
    """(1-based line, 1-based byte column, the bad bytes) of the first invalid UTF-8 in a file."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, err.start + 1, raw[err.start:err.end]
    return None


def utf8_message(raw: bytes, err: UnicodeDecodeError) -> str:
    """What is wrong in one line's bytes: ``byte 0xe9 at column 16 is not UTF-8; ...`` (pure)."""
    return _bad_bytes(raw[err.start:err.end], err.start + 1)


def _bad_bytes(bad: bytes, column: int) -> str:
    shown = " ".join(f"0x{b:02x}" for b in bad)
    return f"byte {shown} at column {column} is not UTF-8; re-save the file as UTF-8"


def _utf8_error(path: Path, err: UnicodeDecodeError) -> DataError:
    """A DataError naming the line (not the decoder's offset within a read buffer)."""
    found = first_invalid_utf8(path)
    if found is None:  # pragma: no cover - the decoder failed, so a line fails too
        return DataError(str(err), file=str(path), expected="UTF-8 text")
    line, column, bad = found
    return DataError(_bad_bytes(bad, column), file=str(path), line=line, expected="UTF-8 text")


def _decoded(lines: Iterator[str], path: Path) -> Iterator[str]:
    """Lines of a text file, a decoding failure turned into a file-level DataError naming the line."""
    try:
        yield from lines
    except UnicodeDecodeError as err:
        raise _utf8_error(path, err) from err


def _csv_rows(path: Path, delimiter: str) -> Rows:
    """(line where the record starts, dict or DataError) for each record of a CSV/TSV file."""
    csv.field_size_limit(2**31 - 1)  # long responses exceed the 128 KiB default
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(_decoded(f, path), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise DataError(str(err), file=str(path), line=start, expected="well-formed CSV") from err
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                expected = f"{len(header)} fields as in the header"
                yield line, DataError(expected=expected, got=f"{len(cells)} fields")
            else:
                yield line, {name: _csv_value(name, cell) for name, cell in zip(header, cells)}


def _csv_value(name: str, text: str) -> Any:
    """A CSV cell as a value: JSON lists of objects (messages) decoded, known numbers parsed,
    blank optional cells as None; everything else stays text."""
    if text.startswith("[{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        return value if isinstance(value, list) and all(isinstance(m, dict) for m in value) else text
    if not is_known_column(name):
        return text
    if text == "":
        return None
    if name in ("id", "source", "tools", "chat_template_kwargs"):  # text (the template columns: JSON, checked later)
        return text
    try:
        return float(text)
    except ValueError:
        return text  # validation reports a string where a number was expected


def _json_rows(path: Path) -> Rows:
    """(row index, object) for a JSON list, or a list under 'data', 'rows' or 'train'."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(
            f"invalid JSON: {err.msg} at column {err.colno}", file=str(path), line=err.lineno,
            expected="a JSON document"
        ) from err
    except UnicodeDecodeError as err:
        raise _utf8_error(path, err) from err
    if isinstance(data, dict):
        data = next((data[k] for k in _JSON_LIST_KEYS if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        raise DataError(
            file=str(path),
            expected="a list of objects, or an object with a list under 'data', 'rows' or 'train'",
            got=type(data).__name__,
        )
    yield from enumerate(data)


def _parquet_rows(path: Path) -> Rows:
    """(row index, dict) for each row of a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(str(err), file=str(path), expected="a Parquet file") from err
    yield from enumerate(table.to_pylist())


def _saved_dataset_unit(path: Path, split: str | None) -> Unit:
    """A unit for a ``datasets`` save_to_disk directory (Dataset or DatasetDict)."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    label = str(path)
    if isinstance(loaded, datasets.DatasetDict):
        split = split or "train"
        if split not in loaded:
            raise DataError(f"no split {split!r}", file=label, expected=f"one of {sorted(loaded)}", got=split)
        loaded, label = loaded[split], f"{path}@{split}"
    elif split is not None:
        raise DataError(f"@{split} given but the directory holds a single Dataset", file=label)
    return Unit(label, False, enumerate(loaded), path.name)


class HubUnreachable(DataError):
    """An ``hf:`` spec whose data needs the Hugging Face Hub, which cannot be reached: ``file`` is
    the spec, ``reason`` what the connection said, ``HINT`` what to do."""

    HINT = "connect, or load the data once online and set HF_HUB_OFFLINE=1 to use the local datasets cache"

    def __init__(self, label: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"this data needs the Hugging Face Hub, which cannot be reached ({reason}); {self.HINT}",
                         file=label)


HUB_TIMEOUT_S = 10.0


def _hub_reachable(repo_id: str, timeout: float = HUB_TIMEOUT_S) -> tuple[bool, str]:
    """(whether the Hub answered, why not): one request, no retries (``datasets`` alone retries
    for half a minute before its ConnectionError)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().dataset_info(repo_id, timeout=timeout)
    except HfHubHTTPError:  # the Hub answered (not found, gated, ...): load_dataset says what
        return True, ""
    except Exception as err:  # connection refused, DNS failure, timeout, proxy: the network is the problem
        return False, f"{type(err).__name__}: {err}".splitlines()[0]
    return True, ""


def _hub_unit(spec: Spec) -> Unit:
    """A unit for ``hf:NAME[:CONFIG][@SPLIT]`` via ``datasets.load_dataset``; a Hub that cannot be
    reached is a :class:`HubUnreachable` at once (offline flags set: after the cache was tried)."""
    import datasets

    split = spec.split or "train"
    label = f"hf:{spec.target}" + (f":{spec.config}" if spec.config else "") + f"@{split}"
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if not offline:
        reached, why = _hub_reachable(spec.target)
        if not reached:
            raise HubUnreachable(label, why)
    try:
        dataset = datasets.load_dataset(spec.target, spec.config, split=split)
    except ConnectionError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HubUnreachable(label, first) from None
    return Unit(label, False, enumerate(dataset), spec.target)


def _record(raw: Any, fmt: str, opts: _Options, default_source: str) -> dict:
    """One validated, normalized row as a dict of canonical columns."""
    prompt, chosen, rejected = normalize_pair(raw, fmt, opts.keys)
    record: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    for name, value in raw.items():
        if name in opts.keys:
            continue
        if is_known_column(name):
            record[name] = check_optional(name, value)
        elif name in opts.keep or (opts.keep_all and name not in REQUIRED):  # a renamed-away `prompt` stays out
            record[name] = value
    if record.get("source") is None:
        record["source"] = default_source
    return record


def _as_object(raw: Any) -> dict:
    """The raw row as a dict, or the DataError its reader found."""
    if isinstance(raw, DataError):
        raise raw
    if not isinstance(raw, dict):
        raise DataError(expected="a JSON object", got=type_name(raw))
    return raw


def _read_unit(unit: Unit, opts: _Options, limit: int | None) -> PreferenceTable:
    """Validate and normalize one file's rows into a table with its LoadReport."""
    report = LoadReport(sources=[unit.label])
    records: list[dict] = []
    origin: list[str] = []
    ignored: set[str] = set()
    extras: dict[str, None] = {}  # with keep_all: the unrecognised columns kept, in order of first appearance
    fmt = None if opts.format == "auto" else opts.format
    detected_at = None
    for loc, raw in unit.rows:
        if limit is not None and len(records) >= limit:
            break
        report.n_read += 1
        where = f"{unit.label}:{loc}" if unit.text else f"{unit.label}: row {loc}"
        try:
            row = _as_object(raw)
            row_fmt = fmt or detect_format(row, opts.keys)
            record = _record(row, row_fmt, opts, opts.source or unit.default_source)
        except DataError as err:
            note = f"format '{fmt}' detected from {detected_at}" if detected_at else ""
            located = _locate(err, unit, loc, note)
            if opts.on_error == "raise":
                raise located from None
            report.count_skip(located)
            continue
        if fmt is None:
            fmt, detected_at = row_fmt, where
        used = {opts.keys.chosen, opts.keys.rejected} | ({opts.keys.prompt} if fmt != "implicit" else set())
        ignored |= set(row) - used - (set(record) - set(REQUIRED))
        if opts.keep_all:
            extras.update((name, None) for name in record if name not in extras)
        report.count_pair(record["chosen"], record["rejected"])
        records.append(record)
        origin.append(where)
    if not records:
        why = f"all {report.n_read} rows were skipped: {report.skipped}" if report.n_read else "no rows"
        raise DataError(why, file=unit.label, expected="at least one preference pair")
    for name in opts.keep:
        if not any(name in record for record in records):
            raise DataError("named in keep_columns but absent", file=unit.label, field=name,
                            expected="a column")
    report.n_kept = len(records)
    report.ignored_columns = sorted(ignored)
    return PreferenceTable.from_records(records, origin, fmt, report, opts.keep + tuple(extras))


def _locate(err: DataError, unit: Unit, loc: int, note: str) -> DataError:
    """``err`` with the file and line (or row) filled in and ``note`` appended."""
    message = "; ".join(part for part in (err.message, note) if part)
    return DataError(
        message,
        file=unit.label,
        line=loc if unit.text else None,
        row=None if unit.text else loc,
        field=err.field,
        expected=err.expected,
        got=err.got,
    )
