"""Denoising recipes that read preference strengths (METHODS §4).

A recipe turns per-pair strengths μ̂ (``strength_mean``) into what a trainer consumes: an
objective from the shared registry, per-pair columns for it, and which pairs to keep. The same
plan serves the fine-tuning loop (``apply_recipe`` writes a table with a ``flip`` column or a
subset; the objective goes in the run config) and the embedding heads (``fit_head(columns=...)``).

Recipes (name → what it does):

* ``bt``: plain Bradley–Terry, strengths ignored (the baseline).
* ``flip_fraction``: flip the labels of the ``fraction`` lowest-μ̂ pairs (default 0.1).
* ``flip_negative``: flip the labels of the pairs with μ̂ < 0.
* ``smooth_all``: label smoothing with ``alpha`` (default 0.1) on every pair.
* ``smooth_negative``: label smoothing only where μ̂ < 0 (plain BT elsewhere).
* ``adaptive_margin``: L = −log σ(d − scale · max(μ̂, 0)); μ̂ clipped at 0 by default
  (``clip_min``; a negative margin would push suspect pairs' rewards apart the other way).
* ``top_subset``: train only on the ``keep`` highest-μ̂ fraction (default 0.7; drops the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.errors import ConfigError
from rewardlab.objectives.pairwise import flip_mask

# recipe -> the options it takes
OPTIONS: dict[str, frozenset[str]] = {
    "bt": frozenset(), "flip_fraction": frozenset({"fraction"}), "flip_negative": frozenset(),
    "smooth_all": frozenset({"alpha"}), "smooth_negative": frozenset({"alpha"}),
    "adaptive_margin": frozenset({"scale", "clip_min"}), "top_subset": frozenset({"keep"}),
}
RECIPES = tuple(OPTIONS)


@dataclass
class DenoisePlan:
    """``objective`` (registry mapping), ``columns`` (per-pair floats over the kept pairs) and
    ``keep`` (bool mask over the input pairs); ``counts`` says how many pairs were touched."""

    objective: dict[str, Any]
    columns: dict[str, np.ndarray]
    keep: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def plan_recipe(name: str, strength: np.ndarray, **options: Any) -> DenoisePlan:
    """The plan of recipe ``name`` for strengths ``strength [n]`` (see the module docstring)."""
    mu = np.asarray(strength, dtype=np.float64)
    if mu.ndim != 1:
        raise ConfigError(f"strength must be 1-D, got shape {mu.shape}")
    if not np.isfinite(mu).all():
        bad = int(np.flatnonzero(~np.isfinite(mu))[0])
        raise ConfigError(f"strength_mean is not finite at row {bad}")
    n = len(mu)
    keep = np.ones(n, dtype=bool)
    if name not in OPTIONS:
        raise ConfigError(f"unknown denoising recipe {name!r}; choose from {', '.join(RECIPES)}")
    extra = set(options) - OPTIONS[name]
    if extra:
        raise ConfigError(f"recipe {name!r} takes {sorted(OPTIONS[name]) or 'no options'}, got {sorted(extra)}")
    if name == "bt":
        return DenoisePlan({"name": "bt"}, {}, keep, {"n": n})
    if name in ("flip_fraction", "flip_negative"):
        if name == "flip_fraction":
            fraction = float(options.get("fraction", 0.1))
            if not 0 <= fraction <= 1:
                raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
            mask = flip_mask(mu, fraction=fraction).numpy()
        else:
            mask = mu < 0
        return DenoisePlan({"name": "flip"}, {"flip": mask.astype(np.float32)}, keep,
                           {"n": n, "flipped": int(mask.sum())})
    if name in ("smooth_all", "smooth_negative"):
        alpha = float(options.get("alpha", 0.1))
        obj = {"name": "label_smoothing", "alpha": alpha, "only_negative_strength": name == "smooth_negative"}
        cols = {"strength_mean": mu.astype(np.float32)} if name == "smooth_negative" else {}
        return DenoisePlan(obj, cols, keep, {"n": n, "smoothed": int((mu < 0).sum()) if name == "smooth_negative" else n})
    if name == "adaptive_margin":
        clip_min = options.get("clip_min", 0.0)
        obj = {"name": "adaptive_margin", "scale": float(options.get("scale", 1.0)), "clip_min": clip_min}
        return DenoisePlan(obj, {"strength_mean": mu.astype(np.float32)}, keep, {"n": n})
    # top_subset
    frac = float(options.get("keep", 0.7))
    if not 0 < frac <= 1:
        raise ConfigError(f"keep must be in (0, 1], got {frac}")
    n_keep = max(1, int(round(frac * n)))
    order = np.argsort(-mu, kind="stable")
    keep = np.zeros(n, dtype=bool)
    keep[order[:n_keep]] = True
    return DenoisePlan({"name": "bt"}, {}, keep, {"n": n, "kept": n_keep})


def apply_recipe(table, name: str, **options: Any):
    """``(table', objective)``: the table with the plan applied (a ``flip`` column, or the kept
    rows only) for the fine-tuning loop, and the objective mapping to put in the run config.
    The table must carry ``strength_mean`` (``rewardlab strength`` writes it)."""
    if not table.has("strength_mean"):
        raise ConfigError("the data has no strength_mean column; run `rewardlab strength` on it first")
    mu = np.asarray(table["strength_mean"], dtype=np.float64)
    plan = plan_recipe(name, mu, **options)
    out = table
    if "flip" in plan.columns:
        out = out.with_column("flip", [float(v) for v in plan.columns["flip"]])
    if not plan.keep.all():
        out = out.select(np.flatnonzero(plan.keep).tolist())
    return out, plan.objective, plan.counts
