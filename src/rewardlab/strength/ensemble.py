"""Preference strength from reward-model ensembles (METHODS §4; Wang et al. 2024).

For pair i and member m, ``d[m, i] = r_m(x, y_c) − r_m(x, y_r)``; the strength is
``μ̂_i = mean_m d[m, i]`` and ``σ̂_i = std_m d[m, i]`` (population std, ddof 0).

Members that trained on a pair score it favourably, so by default strengths are **cross-fitted**:
the pairs are cut into K folds by a hash of their prompt (all pairs of a prompt in one fold), an
ensemble of M members is trained on the other K − 1 folds and scores only the held-out fold. The
paper's **in-sample** variant (M members trained on all pairs, each pair scored by members that saw
it) is available as ``folds=1`` and is labelled ``in_sample`` in every output.

Members differ by seed, which sets their initialisation and their data order (``fit_head``'s
member seeds). Two backends:

* ``heads`` (default): linear / MLP / GBDT heads on frozen embeddings (``rewardlab.embed``), the
  M members of a fold trained at once as one vectorized ensemble. Seconds per fold.
* ``finetune``: M × K full fine-tuning runs of a backbone with the training loop
  (``rewardlab.train``), each on a fold's complement, scoring the held-out fold with the exported
  model. Costly; for small data or a GPU.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.errors import ConfigError

Log = Callable[[str], None]


@dataclass
class StrengthResult:
    """Per-pair strengths and how they were obtained.

    ``diffs[m, i]``: member m's reward difference on pair i (members of pair i's fold);
    ``fold[i]``: the fold that held pair i out (all 0 for in-sample); ``mode``: ``crossfit`` or
    ``in_sample``; ``info``: per-fold training details.
    """

    mean: np.ndarray
    std: np.ndarray
    diffs: np.ndarray
    fold: np.ndarray
    mode: str
    info: dict = field(default_factory=dict)


def strength_stats(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ̂, σ̂) over the member axis 0 of ``diffs [M, n]`` (σ̂ with ddof 0; 0 for one member)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1:
        raise ConfigError(f"diffs must be [members, pairs], got shape {d.shape}")
    return d.mean(0), d.std(0)


def prompt_hashes(prompt_keys: Sequence[str], salt: str = "rewardlab-strength") -> np.ndarray:
    """The 64-bit SHA-256 prefix of each prompt (with ``salt``) that decides its fold."""
    return np.fromiter((int.from_bytes(hashlib.sha256(f"{salt}\x00{text}".encode()).digest()[:8], "big")
                        for text in prompt_keys), dtype=np.uint64, count=len(prompt_keys))


def prompt_folds(prompt_keys: Sequence[str], k: int, salt: str = "rewardlab-strength") -> np.ndarray:
    """Fold in ``[0, k)`` of each pair from a SHA-256 hash of its prompt (same prompt, same fold).

    A hash rather than a random permutation so the assignment does not depend on the row order
    or on which other rows are present, the same convention as ``PreferenceTable.split``.
    """
    if k < 1:
        raise ConfigError(f"folds must be >= 1, got {k}")
    return (prompt_hashes(prompt_keys, salt) % np.uint64(k)).astype(np.int64)


def max_folds(prompt_keys: Sequence[str], upto: int, salt: str = "rewardlab-strength",
              budget_s: float = 2.0) -> tuple[int, bool]:
    """(the largest k <= ``upto`` for which every one of k hash folds holds a pair, exact): 1 when
    no k >= 2 does. Searched downward from min(upto, distinct prompts); past ``budget_s`` seconds
    (hundreds of thousands of prompts) the search goes on in steps of 10% and ``exact`` is False."""
    import time

    h = np.unique(prompt_hashes(prompt_keys, salt))
    k, exact, started = min(int(upto), len(h)), True, time.perf_counter()
    while k >= 2:
        if len(np.unique(h % np.uint64(k))) == k:
            return k, exact
        if exact and time.perf_counter() - started > budget_s:
            exact = False
        k = k - 1 if exact else int(k * 0.9)
    return 1, exact


def check_fold_count(prompt_keys: Sequence[str], fold: np.ndarray, k: int, option: str = "folds") -> None:
    """Refuse ``k`` folds when one of them would hold no pair, saying in one line (naming
    ``option``) how many folds the data allows (a fold with no pair has nothing to hold out)."""
    counts = np.bincount(np.asarray(fold, dtype=np.int64), minlength=k)
    empty = int((counts == 0).sum())
    if k == 1 or not empty:
        return
    best, exact = max_folds(prompt_keys, k - 1)
    n_prompts = len(set(prompt_keys))
    allows = (f"it allows at most {'' if exact else 'about '}{best} folds" if best >= 2
              else "it allows no cross-fitting (use folds 1, the in-sample variant)")
    raise ConfigError(f"{option} {k}: {empty} of the {k} folds would hold no pair (the data has {n_prompts} distinct "
                      f"prompt{'s' if n_prompts != 1 else ''}); {allows}")


def _check_folds(fold: np.ndarray, k: int) -> None:
    if k == 1:
        return
    counts = np.bincount(fold, minlength=k)
    if (counts == 0).any() or (counts == len(fold)).any():
        raise ConfigError(f"cross-fitting needs pairs in every fold and outside it; {int((counts == 0).sum())} of "
                          f"the {k} folds hold no pair (use fewer folds or more distinct prompts)")


def crossfit_heads(
    X_chosen: np.ndarray,
    X_rejected: np.ndarray,
    fold: np.ndarray,
    *,
    members: int = 10,
    head: Mapping[str, Any] | None = None,
    objective: Mapping[str, Any] | str = "bt",
    seed: int = 0,
    log: Log | None = None,
) -> StrengthResult:
    """Strengths from ensembles of embedding heads.

    ``X_chosen``/``X_rejected`` ``[n, d]`` are the pairs' vectors; ``fold [n]`` their folds. With
    a single fold (all zeros) the members train on, and score, every pair (in-sample). ``head``
    is a ``HeadConfig`` mapping (default: MLP d → 1024 → 512 → 1; ``members`` is set here).
    """
    from rewardlab.heads import HeadConfig, fit_head

    xc = np.asarray(X_chosen, dtype=np.float32)
    xr = np.asarray(X_rejected, dtype=np.float32)
    fold = np.asarray(fold, dtype=np.int64)
    n = len(xc)
    if xc.shape != xr.shape or xc.ndim != 2 or len(fold) != n:
        raise ConfigError(f"chosen {xc.shape}, rejected {xr.shape} and folds ({len(fold)}) do not match")
    if members < 1:
        raise ConfigError(f"members must be >= 1, got {members}")
    k = int(fold.max()) + 1 if n else 1
    _check_folds(fold, k)
    cfg = HeadConfig.model_validate({**dict(head or {}), "members": members})
    X = np.concatenate([xc, xr])
    diffs = np.empty((members, n), dtype=np.float64)
    info: dict[str, Any] = {"backend": "heads", "folds": k, "members": members, "head": cfg.model_dump(),
                            "objective": objective, "per_fold": []}
    for f in range(k):
        score_idx = np.flatnonzero(fold == f)
        train_idx = np.flatnonzero(fold != f) if k > 1 else score_idx
        fitted = fit_head(X, train_idx, n + train_idx, objective=objective, config=cfg, seed=seed * 1000 + f)
        r = np.asarray(fitted.predict_members(X), dtype=np.float64)  # [M, 2n]; GBDT heads too
        diffs[:, score_idx] = r[:, score_idx] - r[:, n + score_idx]
        info["per_fold"].append({"fold": f, "n_train": int(len(train_idx)), "n_scored": int(len(score_idx)),
                                 **{k_: v for k_, v in getattr(fitted, "info", {}).items() if k_ != "history"}})
        if log:
            log(f"fold {f + 1}/{k}: {members} members trained on {len(train_idx)} pairs, scored {len(score_idx)}")
    mean, std = strength_stats(diffs)
    return StrengthResult(mean, std, diffs, fold, "crossfit" if k > 1 else "in_sample", info)


def crossfit_finetune(
    table,
    fold: np.ndarray,
    run_config,
    *,
    members: int = 3,
    work_dir: str | Path | None = None,
    batch_size: int = 32,
    log: Log | None = None,
) -> StrengthResult:
    """Strengths from M × K fine-tuning runs of ``run_config`` (a ``RunConfig``), one per member
    and fold: member m of fold f trains on the pairs outside f (seed ``run_config.train.seed + m``,
    which sets initialisation of the head and the data order) and scores the pairs in f with its
    exported model. The validation split is disabled in these runs (the held-out fold is scored).
    """
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.train.loop import train

    fold = np.asarray(fold, dtype=np.int64)
    n = len(table)
    k = int(fold.max()) + 1 if n else 1
    _check_folds(fold, k)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="rewardlab-strength-"))
    work.mkdir(parents=True, exist_ok=True)
    diffs = np.empty((members, n), dtype=np.float64)
    info: dict[str, Any] = {"backend": "finetune", "folds": k, "members": members, "work_dir": str(work),
                            "per_run": []}
    for f in range(k):
        score_idx = np.flatnonzero(fold == f)
        train_idx = np.flatnonzero(fold != f) if k > 1 else score_idx
        data_file = work / f"fold{f}_train.jsonl"
        table.select(train_idx.tolist()).write(data_file)
        scored = table.select(score_idx.tolist())
        for m in range(members):
            cfg = copy.deepcopy(run_config)
            cfg.data.train = str(data_file)
            cfg.data.validation = None
            cfg.data.val_fraction = 0.0
            cfg.train.seed = int(run_config.train.seed) + m
            cfg.output_dir = str(work / f"fold{f}_member{m}")
            if log:
                log(f"fold {f + 1}/{k}, member {m + 1}/{members}: fine-tuning on {len(train_idx)} pairs")
            summary = train(cfg)
            model = RewardModel.from_pretrained(Path(cfg.output_dir) / "model")
            s = model.score_pairs(scored, batch_size=batch_size)
            diffs[m, score_idx] = (np.asarray(s["reward_chosen"], dtype=np.float64)
                                   - np.asarray(s["reward_rejected"], dtype=np.float64))
            info["per_run"].append({"fold": f, "member": m, "seed": cfg.train.seed,
                                    "n_train": int(len(train_idx)), "n_scored": int(len(score_idx)),
                                    "train_seconds": summary.get("train_seconds")})
    mean, std = strength_stats(diffs)
    return StrengthResult(mean, std, diffs, fold, "crossfit" if k > 1 else "in_sample", info)


def decile_groups(mu: np.ndarray, n_groups: int = 10) -> np.ndarray:
    """Group in ``[0, n_groups)`` of each pair by rank of μ̂ (0 = weakest), equal-sized up to one
    pair (ties broken by position, so groups are equal-sized even when μ̂ has ties)."""
    mu = np.asarray(mu, dtype=np.float64)
    n = len(mu)
    if n_groups < 1 or n < n_groups:
        raise ConfigError(f"cannot cut {n} pairs into {n_groups} groups")
    order = np.argsort(mu, kind="stable")
    groups = np.empty(n, dtype=np.int64)
    groups[order] = (np.arange(n) * n_groups) // n
    return groups


def random_flips(n: int, fraction: float, seed: int) -> np.ndarray:
    """Bool mask of round(fraction · n) pairs drawn uniformly without replacement (seeded): the
    pairs whose labels a known-noise experiment swaps."""
    if not 0 <= fraction <= 1:
        raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng([int(seed), 2024]).choice(n, int(round(fraction * n)), replace=False)] = True
    return mask


def swap_precision(mu: np.ndarray, swapped: np.ndarray, fraction: float, end: str = "weakest") -> dict[str, Any]:
    """How many known swaps the ``fraction`` weakest (or strongest) pairs by μ̂ hold.

    The set is the k = round(fraction · n) pairs of lowest μ̂ (``end="weakest"``) or highest
    (``end="strongest"``), ties broken by position (stable sort, so the set is deterministic).
    Returns ``{"k", "hits" (swaps in the set), "n_swapped", "precision" (hits / k: the share of
    swaps in the set; its chance value is the swap rate), "recall" (hits / n_swapped),
    "base_rate"}``; precision is None for an empty set, recall None without swaps.
    The paper's analogue is the GPT-4 disagreement of its weakest and strongest 500 pairs.
    """
    mu = np.asarray(mu, dtype=np.float64)
    swapped = np.asarray(swapped, dtype=bool)
    if mu.ndim != 1 or swapped.shape != mu.shape:
        raise ConfigError(f"strengths {mu.shape} and swap mask {swapped.shape} must be 1-D of one length")
    if not 0 <= fraction <= 1:
        raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
    if end not in ("weakest", "strongest"):
        raise ConfigError(f"end must be 'weakest' or 'strongest', got {end!r}")
    n, n_swapped = len(mu), int(swapped.sum())
    k = int(round(fraction * n))
    order = np.argsort(mu if end == "weakest" else -mu, kind="stable")
    hits = int(swapped[order[:k]].sum())
    return {"k": k, "hits": hits, "n_swapped": n_swapped, "precision": hits / k if k else None,
            "recall": hits / n_swapped if n_swapped else None, "base_rate": n_swapped / n if n else None}


def noise_detection(mu: np.ndarray, flipped: np.ndarray) -> dict[str, Any]:
    """How well low μ̂ finds flipped pairs: AUROC of −μ̂ (scikit-learn), and the precision and
    recall of the lowest-x% set, x the flipped fraction."""
    from sklearn.metrics import roc_auc_score

    mu = np.asarray(mu, dtype=np.float64)
    flipped = np.asarray(flipped, dtype=bool)
    n_flip = int(flipped.sum())
    out: dict[str, Any] = {"n": int(len(mu)), "n_flipped": n_flip}
    if n_flip == 0 or n_flip == len(mu):
        return {**out, "auroc": None, "precision_at_x": None, "recall_at_x": None}
    at_x = swap_precision(mu, flipped, n_flip / len(mu))  # k = n_flip: precision equals recall
    out.update(auroc=float(roc_auc_score(flipped, -mu)), precision_at_x=at_x["precision"], recall_at_x=at_x["recall"],
               frac_negative_flipped=float((mu[flipped] < 0).mean()),
               frac_negative_clean=float((mu[~flipped] < 0).mean()))
    return out


def summarize(mu: np.ndarray, std: np.ndarray, bins: int = 30) -> dict[str, Any]:
    """Counts for the summary: fraction with μ̂ < 0, quantiles of μ̂ and σ̂, a histogram of μ̂."""
    mu = np.asarray(mu, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    counts, edges = np.histogram(mu, bins=bins)
    q = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    return {
        "n": int(len(mu)),
        "frac_negative": float((mu < 0).mean()) if len(mu) else math.nan,
        "mean_quantiles": dict(zip([str(x) for x in q], np.quantile(mu, q).tolist())) if len(mu) else {},
        "std_quantiles": dict(zip([str(x) for x in q], np.quantile(std, q).tolist())) if len(std) else {},
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
    }
