"""Statistics for evaluation results: intervals, paired tests between models, corrections.

Every accuracy in a result table carries an interval, and a comparison of two models on the
same items is paired (METHODS.md §10, DESIGN.md "Statistics"). The functions here are pure
(array-likes in, plain Python numbers and dicts out, JSON-serialisable) and work on *per-item
scores*: 1/0 (or True/False) for right/wrong, or a fraction where a tie policy gives partial
credit; :mod:`rewardlab.eval.items` produces such arrays for every item shape.

Library-backed where a library does it well:
- :func:`wilson_interval`: ``statsmodels.stats.proportion.proportion_confint(method="wilson")``;
- :func:`mcnemar_exact`: ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``;
- :func:`holm`: ``statsmodels.stats.multitest.multipletests(method="holm")``.

Hand-written where none does: the bootstrap. ``scipy.stats.bootstrap`` resamples items only
(no cluster resampling, which items that share a prompt need) and draws its resamples in a
Python-level batch loop per statistic; here the resamples are one vectorised index matrix
(items) or a matrix of cluster draws turned into per-cluster sums (clusters), and the paired
difference resamples the same items for both models.

Conventions as in :mod:`rewardlab.eval.metrics`: bad input raises ``ValueError``; an
undefined value is ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "wilson_interval",
    "accuracy_interval",
    "StratifiedBootstrap",
    "bootstrap_interval",
    "paired_bootstrap_difference",
    "mcnemar_exact",
    "holm",
    "compare_models",
]

Seed = int | np.random.Generator | np.random.SeedSequence | None
_CHUNK = 2_000_000  # elements of one resampled matrix block (16 MB of float64)


# ----------------------------------------------------------------------------- validation
def _scores(x: Any, name: str) -> np.ndarray:
    """Per-item scores as a non-empty, finite 1-D float array (booleans become 0/1)."""
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"{name}: expected numbers or booleans, got objects")
    arr = arr.astype(float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, got NaN or infinity")
    return arr


def _binary(x: Any, name: str) -> np.ndarray:
    """Per-item right/wrong as a boolean array; anything but 0/1 (or bools) is refused."""
    arr = _scores(x, name)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name}: expected 0/1 or booleans (right/wrong per item), got other values")
    return arr.astype(bool)


def _is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0) | (arr == 1)))


def _level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a number strictly between 0 and 1, got {level}")
    return level


def _n_boot(n_boot: int) -> int:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: expected a positive integer, got {n_boot}")
    return int(n_boot)


def _plain(label: Any) -> Any:
    """A group or cluster label as a plain Python value (numpy scalars unwrapped)."""
    return label.item() if isinstance(label, np.generic) else label


def _codes(labels: Iterable[Hashable], name: str, n: int) -> tuple[np.ndarray, list[Any]]:
    """Integer code per item (labels in order of first appearance) and the distinct labels."""
    mapping: dict[Any, int] = {}
    codes = []
    for label in labels:
        codes.append(mapping.setdefault(_plain(label), len(mapping)))
    if len(codes) != n:
        raise ValueError(f"{name}: expected {n} labels (one per item), got {len(codes)}")
    return np.asarray(codes, dtype=np.int64), list(mapping)


# ----------------------------------------------------------------------------- Wilson
def wilson_interval(k: int, n: int, level: float = 0.95) -> dict[str, Any]:
    """Wilson score interval for a proportion ``k / n``.

    Returns ``{"estimate", "low", "high", "level", "k", "n", "method": "wilson"}``; with
    ``n = 0`` the proportion is undefined and ``estimate``/``low``/``high`` are ``None``.
    Computed by ``statsmodels``' ``proportion_confint(k, n, alpha=1 - level, method="wilson")``.
    """
    level = _level(level)
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{name}: expected an integer count, got {value!r}")
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"expected counts 0 <= k <= n, got k={k}, n={n}")
    out: dict[str, Any] = {"estimate": None, "low": None, "high": None, "level": level,
                           "k": k, "n": n, "method": "wilson"}
    if n == 0:
        return out
    low, high = proportion_confint(k, n, alpha=1.0 - level, method="wilson")
    out.update(estimate=k / n, low=float(max(low, 0.0)), high=float(min(high, 1.0)))
    return out


# ----------------------------------------------------------------------------- bootstrap
def _resample_means(values: np.ndarray, codes: np.ndarray | None, n_boot: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the mean of ``values`` (vectorised).

    Items: each block of replicates is one ``(rows, n)`` index matrix. Clusters: draw
    ``n_clusters`` cluster indices per replicate; the replicate's mean is the sum of the drawn
    clusters' value sums over the sum of their sizes (the mean of all items of the drawn
    clusters, a cluster drawn twice counting twice).
    """
    if codes is None:
        n = values.size
        return np.concatenate([values[rng.integers(0, n, size=(rows, n))].mean(axis=1)
                               for rows in _block_rows(n_boot, n)])
    sums = np.bincount(codes, weights=values)
    sizes = np.bincount(codes).astype(float)
    g = sums.size
    blocks = []
    for rows in _block_rows(n_boot, g):
        draw = rng.integers(0, g, size=(rows, g))
        blocks.append(sums[draw].sum(axis=1) / sizes[draw].sum(axis=1))
    return np.concatenate(blocks)


def _block_rows(n_boot: int, width: int):
    """Row counts of the blocks of an ``(n_boot, width)`` resample matrix, at most ``_CHUNK``
    elements each (memory stays bounded for large n)."""
    step = max(1, _CHUNK // width)
    for start in range(0, n_boot, step):
        yield min(step, n_boot - start)


def _resample_statistic(values: np.ndarray, codes: np.ndarray | None, n_boot: int,
                        rng: np.random.Generator, statistic: Callable[..., Any]) -> np.ndarray:
    """Bootstrap replicates of a general ``statistic``.

    Items: ``statistic(matrix, axis=1)`` on blocks of the resampled ``(rows, n)`` matrix.
    Clusters: resamples have different sizes, so the statistic is called once per replicate
    on the items of the drawn clusters (slower; the mean has the vectorised path above).
    """
    if codes is None:
        n = values.size
        blocks = []
        for rows in _block_rows(n_boot, n):
            out = np.asarray(statistic(values[rng.integers(0, n, size=(rows, n))], axis=1), dtype=float)
            if out.shape != (rows,):
                raise ValueError(
                    f"statistic: expected one value per row when called with axis=1, got shape {out.shape}"
                )
            blocks.append(out)
        return np.concatenate(blocks)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    g = len(members)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([members[c] for c in rng.integers(0, g, size=g)])
        boot[b] = float(statistic(values[idx]))
    return boot


def _percentiles(boot: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high)


def _cluster_codes(clusters: Iterable[Hashable] | None, n: int) -> tuple[np.ndarray | None, int | None]:
    if clusters is None:
        return None, None
    codes, labels = _codes(clusters, "clusters", n)
    if len(labels) < 2:
        raise ValueError(
            f"clusters: expected at least 2 distinct clusters to resample, got {len(labels)}"
        )
    return codes, len(labels)


def bootstrap_interval(
    values: Any,
    statistic: Callable[..., Any] = np.mean,
    clusters: Iterable[Hashable] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: Seed = 0,
) -> dict[str, Any]:
    """Percentile bootstrap interval of ``statistic(values)`` over items (or clusters).

    ``values`` holds one score per item (e.g. 1/0 correctness). Without ``clusters`` the
    items are resampled with replacement; with ``clusters`` (one label per item, e.g. the
    prompt id when several items share a prompt) whole clusters are resampled, so items of
    one cluster always enter a resample together. The interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the ``n_boot`` replicates.

    ``statistic`` defaults to ``np.mean``, which has a fully vectorised path (an index matrix
    for items; per-cluster sums for clusters, where a replicate's mean is the mean over all
    items of its drawn clusters). Any other statistic must accept ``axis=1`` on a 2-D array
    for item resampling; with clusters it is called once per replicate.

    Returns ``{"estimate", "low", "high", "level", "n", "n_boot", "n_clusters", "method"}``
    (``n_clusters`` is ``None`` without clusters). Deterministic for a given ``seed``.
    The percentile bootstrap is known to under-cover for small ``n`` and proportions near 0
    or 1 (benchmarks/interval_coverage.py measures it); prefer :func:`wilson_interval` for a
    plain proportion.
    """
    x = _scores(values, "values")
    level, n_boot = _level(level), _n_boot(n_boot)
    codes, n_clusters = _cluster_codes(clusters, x.size)
    rng = np.random.default_rng(seed)
    if statistic is np.mean:
        estimate = float(x.mean())
        boot = _resample_means(x, codes, n_boot, rng)
    else:
        estimate = np.asarray(statistic(x), dtype=float)
        if estimate.ndim != 0:
            raise ValueError(f"statistic: expected one number for a 1-D array, got shape {estimate.shape}")
        estimate = float(estimate)
        boot = _resample_statistic(x, codes, n_boot, rng, statistic)
    low, high = _percentiles(boot, level)
    return {
        "estimate": estimate,
        "low": low,
        "high": high,
        "level": level,
        "n": int(x.size),
        "n_boot": n_boot,
        "n_clusters": n_clusters,
        "method": "cluster percentile bootstrap" if codes is not None else "percentile bootstrap",
    }


def paired_bootstrap_difference(
    correct_a: Any,
    correct_b: Any,
    clusters: Iterable[Hashable] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: Seed = 0,
) -> dict[str, Any]:
    """Paired bootstrap of ``mean(a) − mean(b)`` for two models scored on the same items.

    Each replicate resamples one set of items (or whole clusters) and uses it for both
    models, so the interval reflects only the variation of the per-item difference
    ``d = a − b``; it is the percentile interval of the replicates of ``mean(d*)``.

    Two-sided p-value for "no difference": the replicates centred on the observed
    difference ``δ`` approximate its null distribution, so
    ``p = (1 + #{|δ* − δ| >= |δ|}) / (1 + n_boot)`` (the ``+1`` keeps it above 0, as for a
    permutation test). ``δ = 0`` gives ``p = 1``.

    Returns ``{"estimate" (= mean_a − mean_b), "low", "high", "mean_a", "mean_b", "p_value",
    "level", "n", "n_boot", "n_clusters", "method"}``.
    """
    a, b = _scores(correct_a, "correct_a"), _scores(correct_b, "correct_b")
    if a.size != b.size:
        raise ValueError(f"expected arrays of equal length, got correct_a has {a.size}, correct_b has {b.size}")
    level, n_boot = _level(level), _n_boot(n_boot)
    codes, n_clusters = _cluster_codes(clusters, a.size)
    d = a - b
    delta = float(d.mean())
    boot = _resample_means(d, codes, n_boot, np.random.default_rng(seed))
    low, high = _percentiles(boot, level)
    extreme = int(np.sum(np.abs(boot - delta) >= abs(delta) - 1e-12))
    return {
        "estimate": delta,
        "low": low,
        "high": high,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "p_value": min(1.0, (1 + extreme) / (1 + n_boot)),
        "level": level,
        "n": int(a.size),
        "n_boot": n_boot,
        "n_clusters": n_clusters,
        "method": "paired cluster bootstrap" if codes is not None else "paired bootstrap",
    }


# ----------------------------------------------------------------------------- tests
def mcnemar_exact(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """Exact McNemar test: do two models, judged right/wrong on the same items, differ?

    Only the discordant items carry information: ``b`` = items A gets right and B wrong,
    ``c`` = items B gets right and A wrong. Under "no difference" ``b ~ Binomial(b + c, 1/2)``;
    the two-sided exact p-value is ``min(1, 2 · P(X <= min(b, c)))`` (statsmodels'
    ``mcnemar(table, exact=True)``). With no discordant item ``p = 1``.

    Returns ``{"b", "c", "n", "n_discordant", "statistic" (= min(b, c)), "p_value",
    "method"}``. Per-item scores other than 0/1 (partial credit for ties) raise ``ValueError``:
    use :func:`paired_bootstrap_difference` for those.
    """
    a, b_ = _binary(correct_a, "correct_a"), _binary(correct_b, "correct_b")
    if a.size != b_.size:
        raise ValueError(f"expected arrays of equal length, got correct_a has {a.size}, correct_b has {b_.size}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    both = int(np.sum(a & b_))
    neither = int(np.sum(~a & ~b_))
    if b + c == 0:
        p_value, statistic = 1.0, 0
    else:
        result = mcnemar([[both, b], [c, neither]], exact=True)
        p_value, statistic = float(min(1.0, result.pvalue)), int(result.statistic)
    return {
        "b": b,
        "c": c,
        "n": int(a.size),
        "n_discordant": b + c,
        "statistic": statistic,
        "p_value": p_value,
        "method": "exact McNemar (binomial on discordant pairs)",
    }


def holm(pvalues: Sequence[float | None] | Mapping[Hashable, float | None],
         alpha: float = 0.05) -> dict[str, Any]:
    """Holm's step-down correction of a family of p-values (statsmodels ``multipletests``).

    Sorted ascending, the ``i``-th smallest p-value (1-based) of ``m`` is multiplied by
    ``m − i + 1``, a running maximum keeps the adjusted values monotone, and values are capped
    at 1; a hypothesis is rejected when its adjusted p-value is ``<= alpha``. This controls the
    family-wise error rate at ``alpha`` under any dependence.

    ``pvalues`` is a sequence or a mapping (e.g. ``{subset: p}``); the result keeps its order
    and keys: ``{"p_adjusted", "reject", "alpha", "m", "method": "holm"}`` where
    ``p_adjusted``/``reject`` are lists for a sequence and dicts for a mapping. A ``None``
    p-value (an untestable hypothesis) is left out of the family and gets ``None``/``False``.
    """
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a number strictly between 0 and 1, got {alpha}")
    keys = list(pvalues) if isinstance(pvalues, Mapping) else None
    raw = [pvalues[k] for k in keys] if keys is not None else list(pvalues)
    present = [i for i, p in enumerate(raw) if p is not None]
    p = np.asarray([raw[i] for i in present], dtype=float)
    if p.size and (not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1))):
        raise ValueError("pvalues: expected numbers in [0, 1] (or None), got values outside it or NaN")
    adjusted: list[float | None] = [None] * len(raw)
    reject = [False] * len(raw)
    if p.size:
        flags, p_adj, _, _ = multipletests(p, alpha=alpha, method="holm")
        for i, value, flag in zip(present, p_adj, flags):
            adjusted[i], reject[i] = float(value), bool(flag)
    if keys is not None:
        return {"p_adjusted": dict(zip(keys, adjusted)), "reject": dict(zip(keys, reject)),
                "alpha": alpha, "m": int(p.size), "method": "holm"}
    return {"p_adjusted": adjusted, "reject": reject, "alpha": alpha, "m": int(p.size), "method": "holm"}


# ----------------------------------------------------------------------------- strata
class StratifiedBootstrap:
    """One fixed set of bootstrap resamples of items in strata (the subsets of a suite), whole
    clusters (prompts) resampled within each stratum, applied to any per-item vector.

    A suite's section and overall scores are formulas of its subsets' accuracies (pooled,
    RewardBench's Reasoning and Prior Sets rules, a weighted mean of sections); their interval
    is the percentile interval of the formula applied to each replicate of the subsets' means
    (:meth:`means`), the subsets' sizes held fixed as in the suite. Applying the *same* resamples
    to two models' per-item scores gives paired replicates of any difference of formulas.

    Hand-written for the reason given in the module docstring: no library resamples clusters
    within strata. Each stratum's replicates are a ``[n_boot, clusters]`` matrix of how often
    each cluster was drawn (a flat ``bincount`` of the draws), so a replicate mean is a matrix
    product of those counts with the per-cluster sums and sizes.
    """

    def __init__(self, strata: Iterable[Hashable], clusters: Iterable[Hashable] | None = None,
                 n_boot: int = 2000, seed: Seed = 0) -> None:
        strata = list(strata)
        if not strata:
            raise ValueError("strata: expected at least one item")
        n = len(strata)
        stratum_codes, self.labels = _codes(strata, "strata", n)
        cluster_codes = (np.arange(n) if clusters is None else _codes(clusters, "clusters", n)[0])
        self.n_boot = _n_boot(n_boot)
        self.n = n
        rng = np.random.default_rng(seed)
        self._parts = []
        for s in range(len(self.labels)):
            rows = np.flatnonzero(stratum_codes == s)
            _, local = np.unique(cluster_codes[rows], return_inverse=True)
            g = int(local.max()) + 1
            draws = rng.integers(0, g, size=(self.n_boot, g))
            flat = (draws + (np.arange(self.n_boot)[:, None] * g)).ravel()
            counts = np.bincount(flat, minlength=self.n_boot * g).reshape(self.n_boot, g).astype(np.float32)
            sizes = np.bincount(local, minlength=g).astype(np.float64)
            self._parts.append((rows, local, g, counts, counts @ sizes))

    def means(self, values: Any) -> dict[Any, np.ndarray]:
        """``{stratum: [n_boot] replicate means}`` of a per-item vector (one value per item)."""
        x = _scores(values, "values")
        if x.size != self.n:
            raise ValueError(f"values: expected {self.n} values (one per item), got {x.size}")
        out = {}
        for label, (rows, local, g, counts, size_sums) in zip(self.labels, self._parts):
            sums = np.bincount(local, weights=x[rows], minlength=g)
            out[label] = (counts @ sums) / size_sums
        return out


def interval_of(replicates: np.ndarray, estimate: float, level: float = 0.95) -> dict[str, Any]:
    """``{"estimate", "low", "high", "level"}``: the percentile interval of bootstrap replicates."""
    low, high = _percentiles(np.asarray(replicates, dtype=float), _level(level))
    return {"estimate": float(estimate), "low": low, "high": high, "level": _level(level)}


def accuracy_interval(values: Any, clusters: Iterable[Hashable] | None = None, *, n_boot: int = 2000,
                      level: float = 0.95, seed: Seed = 0) -> dict[str, Any]:
    """The interval of one subset's accuracy: Wilson when the items are 0/1 and independent
    (no two share a cluster), else the cluster (or item) percentile bootstrap: items sharing a
    prompt are correlated, and Wilson under-covers them (benchmarks/interval_coverage.py)."""
    x = _scores(values, "values")
    codes = None
    if clusters is not None:
        codes, labels = _codes(clusters, "clusters", x.size)
        if len(labels) == x.size:
            codes = None  # every item its own cluster
    return _accuracy_interval(x, codes, _n_boot(n_boot), _level(level), np.random.default_rng(seed))


# ----------------------------------------------------------------------------- comparison
def _accuracy_interval(x: np.ndarray, codes: np.ndarray | None, n_boot: int, level: float,
                       rng: np.random.Generator) -> dict[str, Any]:
    """Wilson for 0/1 items resampled independently; the (cluster) bootstrap otherwise."""
    if codes is None and _is_binary(x):
        return wilson_interval(int(x.sum()), int(x.size), level)
    if codes is not None and np.unique(codes).size < 2:  # one cluster: nothing to resample
        return {"estimate": float(x.mean()), "low": None, "high": None, "level": level,
                "n": int(x.size), "n_boot": n_boot, "n_clusters": 1, "method": "cluster percentile bootstrap"}
    labels = None if codes is None else codes.tolist()
    return bootstrap_interval(x, clusters=labels, n_boot=n_boot, level=level, seed=rng)


def _compare(a: np.ndarray, b: np.ndarray, codes: np.ndarray | None, n_boot: int, level: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """One row of :func:`compare_models` (before the Holm columns)."""
    row: dict[str, Any] = {"n": int(a.size)}
    row["a"] = _accuracy_interval(a, codes, n_boot, level, rng)
    row["b"] = _accuracy_interval(b, codes, n_boot, level, rng)
    if codes is not None and np.unique(codes).size < 2:
        row["difference"] = {"estimate": float(a.mean() - b.mean()), "low": None, "high": None,
                             "p_value": None, "n_clusters": 1, "method": "paired cluster bootstrap"}
    else:
        labels = None if codes is None else codes.tolist()
        row["difference"] = paired_bootstrap_difference(a, b, clusters=labels, n_boot=n_boot,
                                                        level=level, seed=rng)
    if _is_binary(a) and _is_binary(b):
        row["mcnemar"] = mcnemar_exact(a, b)
        row["test"], row["p_value"] = "mcnemar_exact", row["mcnemar"]["p_value"]
    else:
        row["mcnemar"] = None
        row["test"], row["p_value"] = "paired_bootstrap", row["difference"]["p_value"]
    return row


def compare_models(
    correct_a: Any,
    correct_b: Any,
    groups: Iterable[Hashable],
    *,
    clusters: Iterable[Hashable] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of models A and B on the same items, per subset and overall.

    ``correct_a``/``correct_b`` are per-item scores of the two models on the same items (same
    order), ``groups`` the subset of each item, ``clusters`` optionally the cluster (prompt)
    of each item for the bootstrap. For each subset (in order of first appearance) and for all
    items together, a row::

        {"subset", "n",
         "a", "b":        accuracy with its interval (Wilson for 0/1 scores without clusters,
                          else the (cluster) percentile bootstrap),
         "difference":    paired_bootstrap_difference(a, b) (estimate = acc_a − acc_b, CI, p),
         "mcnemar":       mcnemar_exact(a, b), or None when scores are not all 0/1,
         "test", "p_value": the test used for this row: "mcnemar_exact" when scores are 0/1,
                          else "paired_bootstrap" (its bootstrap p-value),
         "p_holm", "reject": Holm-adjusted p-value across the subsets and its decision at alpha}

    Holm's family is the subsets; the ``overall`` row is a single separate test and keeps
    ``p_holm = p_value`` (``reject`` at ``alpha`` unadjusted). Returns ``{"subsets": [rows],
    "overall": row, "alpha", "level", "n_boot", "correction": "holm"}``, all plain Python
    values. Each subset gets its own random stream spawned from ``seed``.
    """
    a, b = _scores(correct_a, "correct_a"), _scores(correct_b, "correct_b")
    if a.size != b.size:
        raise ValueError(f"expected arrays of equal length, got correct_a has {a.size}, correct_b has {b.size}")
    level, n_boot = _level(level), _n_boot(n_boot)
    group_codes, group_labels = _codes(groups, "groups", a.size)
    cluster_codes = None if clusters is None else _codes(clusters, "clusters", a.size)[0]
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(group_labels) + 1)]
    rows = []
    for g, label in enumerate(group_labels):
        mask = group_codes == g
        codes = None if cluster_codes is None else cluster_codes[mask]
        row = {"subset": label, **_compare(a[mask], b[mask], codes, n_boot, level, streams[g])}
        rows.append(row)
    corrected = holm([row["p_value"] for row in rows], alpha=alpha)
    for row, p_adj, flag in zip(rows, corrected["p_adjusted"], corrected["reject"]):
        row["p_holm"], row["reject"] = p_adj, flag
    overall = {"subset": "overall", **_compare(a, b, cluster_codes, n_boot, level, streams[-1])}
    overall["p_holm"] = overall["p_value"]
    overall["reject"] = bool(overall["p_value"] is not None and overall["p_value"] <= alpha)
    return {"subsets": rows, "overall": overall, "alpha": float(alpha), "level": level,
            "n_boot": n_boot, "correction": "holm"}
