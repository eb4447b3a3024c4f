"""Group keys for splits: which rows must stay on one side of a train/validation split, a strength
fold or a study split (``data.split_key``).

By default a row's group is its prompt, so no prompt is on both sides. Data where one problem has
several prompts needs a coarser key: HumanEvalPack states each problem in four languages, so a
split by prompt puts the same problem (with the same human bug, ported) on both sides. A key is:

- ``None``: the prompt (``PreferenceTable.prompt_key``);
- a column name (``"id"``, ``"task_id"``): that column's value, required on every row;
- a mapping ``{"field": F, "regex": R, "normalize": "none" | "alnum_lower"}``: the first group of
  ``R`` (or the whole match) searched in field ``F`` (``prompt``, ``source`` or a column), and
  with ``alnum_lower`` lowercased with everything but letters and digits removed. A row where
  ``R`` finds nothing is a :class:`DataError` naming the row and field.

``HUMANEVALPACK_PROBLEM`` groups HumanEvalPack by the function a prompt asks for, normalised
(``has_close_elements``, ``hasCloseElements``, ``HasCloseElements`` are one problem). Measured on
``../shared/data/humanevalpack.jsonl``: 656 pairs in 160 groups; 148 groups hold a problem's four
languages, 6 join two HumanEval problems that share a function name (kept together, which is
conservative), and 3 problems whose function is named differently across languages
(``words_string``/``wordsString``... ) fall into two groups each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rewardlab.errors import ConfigError, DataError

NORMALIZE = ("none", "alnum_lower")
HUMANEVALPACK_PROBLEM = {"field": "prompt", "regex": r"function `(?:[^`(=]*\s)?(\w+)\s*(?:=\s*)?\(",
                         "normalize": "alnum_lower"}


def check_split_key(split_key: Any) -> Any:
    """``split_key`` validated (a ConfigError naming ``data.split_key`` otherwise); returned as is."""
    if split_key is None or (isinstance(split_key, str) and split_key.strip()):
        return split_key
    if isinstance(split_key, Mapping):
        unknown = set(split_key) - {"field", "regex", "normalize"}
        if unknown:
            raise ConfigError(f"data.split_key: unknown key(s) {sorted(unknown)}; allowed: field, regex, normalize")
        if not isinstance(split_key.get("field"), str) or not isinstance(split_key.get("regex"), str):
            raise ConfigError("data.split_key: a mapping needs 'field' (prompt, source or a column) and 'regex' (strings)")
        try:
            re.compile(split_key["regex"])
        except re.error as err:
            raise ConfigError(f"data.split_key.regex: not a regular expression ({err})") from None
        if split_key.get("normalize", "none") not in NORMALIZE:
            raise ConfigError(f"data.split_key.normalize: expected one of {NORMALIZE}, got {split_key['normalize']!r}")
        return split_key
    raise ConfigError(f"data.split_key: expected a column name or {{field, regex[, normalize]}}, got {split_key!r}")


def group_keys(table, split_key: Any = None) -> list[str]:
    """One group key per row of a PreferenceTable (see the module docstring)."""
    check_split_key(split_key)
    if split_key is None:
        return [table.prompt_key(i) for i in range(len(table))]
    if isinstance(split_key, str):
        values = _column(table, split_key)
        missing = next((i for i, v in enumerate(values) if v is None or v == ""), None)
        if missing is not None:
            raise DataError("data.split_key names this column: every row needs a value", file=table.origin[missing],
                            field=split_key, expected="a value", got="none")
        return [str(v) for v in values]
    field = split_key["field"]
    values = [table.prompt_key(i) for i in range(len(table))] if field == "prompt" else _column(table, field)
    rx = re.compile(split_key["regex"])
    alnum = split_key.get("normalize", "none") == "alnum_lower"
    keys = []
    for i, value in enumerate(values):
        m = rx.search(str(value)) if value is not None else None
        if m is None:
            raise DataError(f"data.split_key.regex {rx.pattern!r} finds nothing", file=table.origin[i], field=field,
                            expected="a match in every row", got=repr(str(value)[:60]))
        key = m.group(1) if rx.groups else m.group(0)
        keys.append(re.sub(r"[^0-9a-z]", "", key.lower()) if alnum else key)
    return keys


def _column(table, name: str) -> list:
    if not table.has(name):
        raise DataError("data.split_key names a column the data does not have", file=table.origin[0] if len(table) else None,
                        field=name, expected="this column (keep it with the data)",
                        got=f"columns {', '.join(table.column_names)}")
    return list(table[name])
