"""Evaluation suites and RewardBench v1 scoring.

A suite is a YAML file naming subsets of preference data, each in one RewardBench section::

    name: shared
    description: ...
    subsets:
      - name: xstest-should-refuse
        section: Safety
        data: xstest_pairs.jsonl          # relative paths resolve against data_root
        source: "xstest/should-refuse/*"  # optional: fnmatch glob on the row's `source`
      - name: hep-go
        section: Reasoning
        data: "hf:allenai/reward-bench@filtered"   # `hf:` specs are passed on untouched
        subset_column: subset                      # optional, together with `subset`:
        subset: hep-go                             # rows whose column equals this value

A subset without a selector takes every row of its data. ``kind`` says what its rows are:
``pairs`` (the default), or items beyond pairs (``rewardlab.data.items``): ``best_of_n`` (one
chosen above every rejected), ``rm_bench`` (the 3x3 style matrix), ``pointwise`` (best-of-k
selection among responses with correctness labels) or ``ties`` (RewardBench 2's Ties formula);
``layout`` names the item rows' layout (``auto`` detects it). A suite's ``scoring`` is
``rewardbench_v1`` (the default, METHODS.md §7: sections outside RewardBench v1's five are
reported but left out of the overall score; they must be listed under ``extra_sections``, so a
misspelt section stays an error) or ``mean`` (the overall score is the unweighted mean
of the sections, RewardBench 2's rule). Built-in suites live next to this module in ``suites/``
(``shared``, ``rewardbench``, ``rewardbench2``); see :func:`score_suite` and :func:`combine`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewardlab.errors import ConfigError, DataError

__all__ = [
    "SECTIONS",
    "SECTION_WEIGHTS",
    "DEFAULT_DATA_ROOT",
    "SubsetSpec",
    "Suite",
    "builtin_suites",
    "load_suite",
    "select_rows",
    "rows_by_subset",
    "score_suite",
]

SECTIONS: tuple[str, ...] = ("Chat", "Chat Hard", "Safety", "Reasoning", "Prior Sets")
SECTION_WEIGHTS: dict[str, int] = {
    "Chat": 2,
    "Chat Hard": 2,
    "Safety": 2,
    "Reasoning": 2,
    "Prior Sets": 1,
}
#: Reasoning subset weighted as much as all other Reasoning subsets (the hep-*) together.
MATH_SUBSET = "math-prm"
#: Relative ``data:`` paths resolve against this, itself relative to the current directory.
DEFAULT_DATA_ROOT = Path("../shared/data")
BUILTIN_DIR = Path(__file__).with_name("suites")

_SUITE_KEYS = {"name", "description", "subsets", "scoring", "extra_sections"}
_SUBSET_KEYS = {"name", "section", "data", "source", "subset_column", "subset", "kind", "layout"}
KINDS = ("pairs", "best_of_n", "rm_bench", "pointwise", "ties")
SCORINGS = ("rewardbench_v1", "mean")


@dataclass(frozen=True)
class SubsetSpec:
    """One scored subset: its section, data spec and row filter.

    ``data`` is resolved (an absolute path, or an ``hf:`` spec as written). The filter is
    either ``source`` (fnmatch glob on the ``source`` column) or ``subset_column`` plus
    ``subset`` (equality), or neither (all rows).
    """

    name: str
    section: str
    data: str
    source: str | None = None
    subset_column: str | None = None
    subset: str | None = None
    kind: str = "pairs"
    layout: str = "auto"

    def describe_filter(self) -> str:
        """The row filter in words, e.g. ``source ~ 'xstest/*'``."""
        if self.source is not None:
            return f"source ~ {self.source!r}"
        if self.subset_column is not None:
            return f"{self.subset_column} == {self.subset!r}"
        return "all rows"


@dataclass(frozen=True)
class Suite:
    """A named list of subsets; ``path`` is the YAML it came from."""

    name: str
    description: str
    subsets: tuple[SubsetSpec, ...]
    path: Path
    data_root: Path
    scoring: str = "rewardbench_v1"

    def subset(self, name: str) -> SubsetSpec:
        """The subset called ``name``."""
        for spec in self.subsets:
            if spec.name == name:
                return spec
        raise KeyError(f"suite {self.name!r} has no subset {name!r}")

    def data_specs(self) -> list[str]:
        """Distinct data specs in order of first use (load each once)."""
        return list(dict.fromkeys(spec.data for spec in self.subsets))

    def subsets_for(self, data: str) -> list[SubsetSpec]:
        """The subsets that read ``data``."""
        return [spec for spec in self.subsets if spec.data == data]

    def keep_columns(self, data: str) -> list[str]:
        """Extra columns the selectors of ``data`` need (pass to ``load_preferences(keep_columns=)``).

        ``source`` is not listed: the readers always carry it.
        """
        return sorted({s.subset_column for s in self.subsets_for(data) if s.subset_column is not None})


# ----------------------------------------------------------------------------- loading
def builtin_suites() -> list[str]:
    """Names of the suites shipped with rewardlab."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _suite_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A built-in suite's YAML for a bare name, else the given path."""
    text = os.fspath(name_or_path)
    if text in builtin_suites():
        return BUILTIN_DIR / f"{text}.yaml"
    path = Path(text)
    if not path.is_file():
        raise ConfigError(
            f"suite {text!r}: not a built-in suite ({', '.join(builtin_suites())}) "
            "and no such YAML file"
        )
    return path


def _resolve_data(data: str, data_root: Path) -> str:
    """``hf:`` specs and absolute paths as written; relative paths under ``data_root``."""
    if data.startswith("hf:") or Path(data).is_absolute():
        return data
    return os.path.abspath(data_root / data)


def _optional_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    """``raw[key]`` if present, checked to be a non-empty string."""
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _parse_subset(raw: Any, where: str, data_root: Path, sections: Sequence[str] | None) -> SubsetSpec:
    """One ``subsets:`` entry, validated."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _SUBSET_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SUBSET_KEYS)}")
    fields = {key: _optional_str(raw, key, where) for key in _SUBSET_KEYS}
    for key in ("name", "section", "data"):
        if fields[key] is None:
            raise ConfigError(f"{where}: '{key}' is required")
    if sections is not None and fields["section"] not in sections:
        raise ConfigError(f"{where}: section {fields['section']!r} is not one of {list(sections)} "
                          "(RewardBench v1's, plus the suite's extra_sections)")
    fields["kind"] = fields["kind"] or "pairs"
    fields["layout"] = fields["layout"] or "auto"
    if fields["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind {fields['kind']!r} is not one of {list(KINDS)}")
    if fields["kind"] == "pairs" and fields["layout"] != "auto":
        raise ConfigError(f"{where}: 'layout' applies to item kinds ({', '.join(KINDS[1:])}), not to pairs")
    if (fields["subset_column"] is None) != (fields["subset"] is None):
        raise ConfigError(f"{where}: 'subset_column' and 'subset' go together")
    if fields["source"] is not None and fields["subset_column"] is not None:
        raise ConfigError(f"{where}: use either 'source' or 'subset_column'/'subset', not both")
    fields["data"] = _resolve_data(fields["data"], data_root)
    return SubsetSpec(**fields)


def load_suite(
    name_or_path: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None
) -> Suite:
    """Load a built-in suite by name (``shared``, ``rewardbench``) or a suite YAML by path.

    Relative ``data:`` paths resolve against ``data_root`` (default ``../shared/data``
    relative to the current directory). Raises :class:`ConfigError` on a malformed suite.
    """
    path = _suite_path(name_or_path)
    root = Path(data_root) if data_root is not None else DEFAULT_DATA_ROOT
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping with 'name' and 'subsets'")
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SUITE_KEYS)}")
    name = _optional_str(raw, "name", str(path))
    if name is None:
        raise ConfigError(f"{path}: 'name' is required")
    entries = raw.get("subsets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'subsets' must be a non-empty list")
    scoring = _optional_str(raw, "scoring", str(path)) or "rewardbench_v1"
    if scoring not in SCORINGS:
        raise ConfigError(f"{path}: scoring {scoring!r} is not one of {list(SCORINGS)}")
    extra = raw.get("extra_sections") or []
    if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
        raise ConfigError(f"{path}: 'extra_sections' must be a list of section names, got {extra!r}")
    if extra and scoring != "rewardbench_v1":
        raise ConfigError(f"{path}: 'extra_sections' applies to scoring rewardbench_v1 (with mean, any section counts)")
    allowed = list(SECTIONS) + extra if scoring == "rewardbench_v1" else None
    subsets = tuple(
        _parse_subset(entry, f"{path}: subsets[{i}]", root, allowed) for i, entry in enumerate(entries)
    )
    names = [spec.name for spec in subsets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate subset name(s) {duplicates}")
    description = _optional_str(raw, "description", str(path)) or ""
    if scoring == "rewardbench_v1" and all(spec.section not in SECTIONS for spec in subsets):
        raise ConfigError(f"{path}: no subset is in a RewardBench v1 section ({', '.join(SECTIONS)}); "
                          "use scoring: mean for other sections")
    return Suite(name=name, description=description, subsets=subsets, path=path, data_root=root, scoring=scoring)


# ----------------------------------------------------------------------------- selection
def _n_rows(table_columns: Mapping[str, Sequence[Any]]) -> int:
    """Row count of a column table, checking that all columns agree."""
    lengths = {name: len(col) for name, col in table_columns.items()}
    if not lengths:
        raise ValueError("table_columns: expected at least one column")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"table_columns: columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def _column(table_columns: Mapping[str, Sequence[Any]], name: str, spec: SubsetSpec) -> Sequence[Any]:
    """The column a subset filters on, or a DataError naming the data and subset."""
    if name not in table_columns:
        raise DataError(
            f"subset {spec.name!r} filters on {spec.describe_filter()}",
            file=spec.data,
            field=name,
            expected="this column in the table",
            got=f"columns {sorted(table_columns)}",
        )
    return table_columns[name]


def select_rows(table_columns: Mapping[str, Sequence[Any]], subset: SubsetSpec) -> list[int]:
    """Indices of the rows of a loaded table (``{column: values}``) that belong to ``subset``."""
    n = _n_rows(table_columns)
    if subset.source is not None:
        sources = _column(table_columns, "source", subset)
        rows = []
        for i, value in enumerate(sources):
            if not isinstance(value, str):
                raise DataError(
                    f"subset {subset.name!r} filters on {subset.describe_filter()}",
                    file=subset.data, row=i, field="source",
                    expected="a string", got=type(value).__name__,
                )
            if fnmatch.fnmatchcase(value, subset.source):
                rows.append(i)
        return rows
    if subset.subset_column is not None:
        values = _column(table_columns, subset.subset_column, subset)
        return [i for i, value in enumerate(values) if value == subset.subset]
    return list(range(n))


def rows_by_subset(
    table_columns: Mapping[str, Sequence[Any]], subsets: Sequence[SubsetSpec]
) -> tuple[dict[str, list[int]], list[int]]:
    """Rows of each subset of one table, and the rows that no subset selects.

    Raises :class:`DataError` when a row falls into two subsets (it would be scored twice).
    Callers should report the unselected rows: they are not evaluated.
    """
    selected = {spec.name: select_rows(table_columns, spec) for spec in subsets}
    owner: dict[int, str] = {}
    for name, rows in selected.items():
        for i in rows:
            if i in owner:
                raise DataError(
                    f"row selected by both subsets {owner[i]!r} and {name!r}",
                    file=subsets[0].data, row=i,
                )
            owner[i] = name
    unselected = [i for i in range(_n_rows(table_columns)) if i not in owner]
    return selected, unselected


# ----------------------------------------------------------------------------- scoring
def _validated_counts(
    subset_results: Mapping[str, tuple[Any, int]], suite: Suite
) -> dict[str, tuple[Any, int]]:
    """``{name: (correct, n)}`` (n an int, correct an int or a sum of partial credits), checked
    against the suite and for consistency."""
    if not subset_results:
        raise ValueError("subset_results: expected counts for at least one subset")
    known = {spec.name for spec in suite.subsets}
    unknown = sorted(set(subset_results) - known)
    if unknown:
        raise ValueError(f"subset_results: subset(s) {unknown} are not in suite {suite.name!r}")
    counts = {}
    for name, value in subset_results.items():
        try:
            raw_correct, raw_n = value
            n_correct, n = float(raw_correct), int(raw_n)
        except (TypeError, ValueError) as err:
            raise ValueError(f"subset_results[{name!r}]: expected (correct, n), got {value!r}") from err
        if n_correct.is_integer():
            n_correct = int(n_correct)  # items right; a sum of partial credits keeps its fraction
        if n < 1 or not 0 <= n_correct <= n:
            raise ValueError(
                f"subset_results[{name!r}]: expected 0 <= correct <= n and n >= 1, "
                f"got correct={n_correct}, n={n}"
            )
        counts[name] = (n_correct, n)
    return counts


def _pooled(members: list[tuple[str, Any, int]]) -> Any:
    """Example-count-weighted mean of ``(name, mean, n)`` members (means may be arrays)."""
    return sum(n * m for _, m, n in members) / sum(n for _, _, n in members)


def _section_score(section: str, members: list[tuple[str, Any, int]]) -> Any:
    """Score of one section from its ``(name, mean, n)`` members (RewardBench v1 rules)."""
    if section == "Prior Sets":
        return sum(m for _, m, _ in members) / len(members)
    if section == "Reasoning":
        math = [m for m in members if m[0] == MATH_SUBSET]
        rest = [m for m in members if m[0] != MATH_SUBSET]
        if math and rest:
            return (_pooled(math) + _pooled(rest)) / 2
    return _pooled(members)


def combine(means: Mapping[str, Any], ns: Mapping[str, int], suite: Suite) -> dict[str, Any]:
    """Section and overall scores from per-subset means, by the suite's ``scoring`` rule.

    ``means[name]`` is a subset's score (a number, or an array of bootstrap replicates: the
    formula is applied elementwise, so intervals of sections and of the overall score come from
    the same code as the point values); ``ns[name]`` its item count. Sections are scored as in
    :func:`score_suite`. ``rewardbench_v1``: overall = the weighted mean of the present v1
    sections (sections outside the five are scored but ``excluded``); ``mean``: the unweighted
    mean of all sections. Returns ``{"sections": {name: score}, "overall", "weights", "excluded"}``.
    """
    order = list(dict.fromkeys(spec.section for spec in suite.subsets))
    if suite.scoring == "rewardbench_v1":
        order = [s for s in SECTIONS if s in order] + [s for s in order if s not in SECTIONS]
    sections = {}
    for section in order:
        members = [(spec.name, means[spec.name], ns[spec.name]) for spec in suite.subsets
                   if spec.section == section and spec.name in means]
        if members:
            sections[section] = (_section_score(section, members) if suite.scoring == "rewardbench_v1"
                                 else _pooled(members))
    if suite.scoring == "rewardbench_v1":
        weights = {s: SECTION_WEIGHTS[s] for s in sections if s in SECTION_WEIGHTS}
    else:
        weights = {s: 1 for s in sections}
    excluded = [s for s in sections if s not in weights]
    overall = sum(w * sections[s] for s, w in weights.items()) / sum(weights.values()) if weights else None
    return {"sections": sections, "overall": overall, "weights": weights, "excluded": excluded}


def score_suite(subset_results: Mapping[str, tuple[Any, int]], suite: Suite,
                scores: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Score per-subset results the suite's way (RewardBench v1 by default).

    ``subset_results`` maps subset name to ``(correct, n)``: correct = items right (pairs with
    ``r_c > r_r`` strictly; a sum of partial credits where a tie policy gives some). Rules
    (METHODS.md §7), for ``scoring: rewardbench_v1``:

    - a section's score is the example-count-weighted accuracy of its subsets;
    - Reasoning: ``math-prm`` weighs as much as all other Reasoning subsets (the hep-*)
      combined, i.e. ``(acc(math-prm) + pooled acc(hep-*)) / 2`` when both are present;
    - Prior Sets: the unweighted mean of its subsets' accuracies;
    - overall: the mean of the present sections weighted Chat 2, Chat Hard 2, Safety 2,
      Reasoning 2, Prior Sets 1; other sections (e.g. Best-of-N) are scored but not in it.

    ``scoring: mean``: a section is the pooled accuracy of its subsets, overall the unweighted
    mean of the sections (RewardBench 2).

    ``scores`` gives the score of subsets that are not a proportion of right items (RewardBench
    2's Ties formula); their ``subset_results`` entry is ``(None, n)`` and ``correct`` stays None.

    Returns ``{"suite", "subsets": {name: {"section", "n", "correct", "accuracy"}},
    "sections": {name: {"score", "n"}}, "overall", "weights" (those of the sections used),
    "excluded_sections", "missing_sections", "missing_subsets", "note"}``. ``note`` says in words
    what a missing or excluded section means for ``overall`` (``None`` when nothing is).
    Accuracies and scores are fractions in [0, 1]; the raw counts are kept so results can be
    recomputed exactly.
    """
    scores = dict(scores or {})
    counts = _validated_counts({k: ((0, v[1]) if k in scores else v) for k, v in subset_results.items()}, suite)
    subsets = {
        spec.name: {
            "section": spec.section,
            "n": counts[spec.name][1],
            "correct": None if spec.name in scores else counts[spec.name][0],
            "accuracy": float(scores[spec.name]) if spec.name in scores else counts[spec.name][0] / counts[spec.name][1],
        }
        for spec in suite.subsets
        if spec.name in counts
    }
    scored = combine({k: v["accuracy"] for k, v in subsets.items()}, {k: v["n"] for k, v in subsets.items()}, suite)
    sections = {name: {"score": score, "n": sum(v["n"] for v in subsets.values() if v["section"] == name)}
                for name, score in scored["sections"].items()}
    weights = scored["weights"]
    notes = []
    missing = ([section for section in SECTIONS if section not in sections]
               if suite.scoring == "rewardbench_v1" else [])
    if missing:
        notes.append(
            f"No data for {', '.join(missing)}: overall is the weighted mean of the "
            f"{len(weights)} present section(s) ({', '.join(f'{s} {w}' for s, w in weights.items())}) "
            "and is not comparable with a full RewardBench v1 score."
        )
    if scored["excluded"]:
        notes.append(f"{', '.join(scored['excluded'])}: scored, but not part of the RewardBench v1 overall score.")
    return {
        "suite": suite.name,
        "subsets": subsets,
        "sections": sections,
        "overall": scored["overall"],
        "weights": weights,
        "excluded_sections": scored["excluded"],
        "missing_sections": missing,
        "missing_subsets": [spec.name for spec in suite.subsets if spec.name not in counts],
        "note": " ".join(notes) or None,
    }
