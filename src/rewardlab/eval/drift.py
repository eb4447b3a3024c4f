"""Over-optimisation monitoring of an RL run (docs/ensembles.md, "Watching a GRPO run").

A reward function of the RL loop (``RubricReward``, ``RemoteReward``) hands each batch to a
:class:`DriftMonitor`, which appends one JSON line per step to a file the user can plot: the mean
reward, the mean response length and (for an ensemble reward model) the mean member spread. The
golden reward is not knowable online, so "the proxy rises while the true reward falls" cannot be
seen here; what can be seen are its usual companions, and :func:`drift_warnings` names them:

- ``length_shift``: the response length's mean moved by at least ``min_shift`` pooled standard
  deviations at one step (:func:`change_point`; the classic length hack), and that step fits the
  lengths better than a straight line does (a steady drift is a trend, not a jump);
- ``spread_rising``: the reward rises and the members' disagreement rises with it (both OLS
  slopes > 0 with 95% intervals above 0: :func:`trend`), i.e. the policy is moving where the
  ensemble was not trained;
- ``reward_rising_length_rising``: reward and length rise together (both slopes significant).

These are prompts to look at samples and a held-out golden or rubric score, not verdicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats


@dataclass
class Trend:
    """OLS slope per step, its 95% interval, and the number of steps."""

    slope: float
    low: float
    high: float
    n: int

    def rising(self) -> bool:
        return self.n >= 3 and self.low > 0


def trend(values) -> Trend:
    """OLS slope of ``values`` against their step index (``scipy.stats.linregress``) with a 95%
    t interval; NaNs are skipped; fewer than 3 values: NaN."""
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < 3 or np.ptp(x) == 0:
        return Trend(float("nan"), float("nan"), float("nan"), int(len(y)))
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(y) - 2) * fit.stderr
    return Trend(float(fit.slope), float(fit.slope - half), float(fit.slope + half), int(len(y)))


@dataclass
class ChangePoint:
    """The best single split: the index where the second segment starts, the segments' means and
    the shift in pooled standard deviations."""

    index: int
    before: float
    after: float
    shift_sd: float
    sse: float  # the two segments' summed squared deviations


def change_point(values, *, min_segment: int = 3) -> ChangePoint | None:
    """One mean shift: the split minimising the two segments' summed squared deviations (each at
    least ``min_segment`` long). Hand-written: a single split by least squares is a few lines,
    and ruptures (the library for many) is not a dependency of this project."""
    y = np.asarray(values, dtype=np.float64)
    y = y[np.isfinite(y)]
    n = len(y)
    if n < 2 * min_segment:
        return None
    c1, c2 = np.cumsum(y), np.cumsum(y * y)
    best, best_k = np.inf, -1
    for k in range(min_segment, n - min_segment + 1):
        a_n, b_n = k, n - k
        a_s, b_s = c1[k - 1], c1[-1] - c1[k - 1]
        sse = (c2[k - 1] - a_s ** 2 / a_n) + (c2[-1] - c2[k - 1] - b_s ** 2 / b_n)
        if sse < best - 1e-12:
            best, best_k = sse, k
    before, after = y[:best_k].mean(), y[best_k:].mean()
    pooled = np.sqrt(max(best, 0.0) / max(n - 2, 1))
    if pooled > 0:
        shift = (after - before) / pooled
    else:  # two constant segments
        shift = 0.0 if after == before else float(np.copysign(np.inf, after - before))
    return ChangePoint(int(best_k), float(before), float(after), float(shift), float(max(best, 0.0)))


def linear_sse(values) -> float:
    """Summed squared residuals of the OLS line through ``values`` (NaNs skipped)."""
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < 3:
        return float("nan")
    fit = stats.linregress(x, y)
    return float(((y - fit.intercept - fit.slope * x) ** 2).sum())


def drift_warnings(records: list[dict], *, min_shift: float = 2.0, min_steps: int = 10) -> list[dict]:
    """The warnings of the module docstring from per-step records (``reward``, ``length``,
    ``spread``); nothing before ``min_steps`` steps."""
    if len(records) < min_steps:
        return []
    out = []
    col = {k: [r.get(k) if r.get(k) is not None else np.nan for r in records] for k in ("reward", "length", "spread")}
    steps = [r["step"] for r in records]
    cp = change_point(col["length"])
    if cp is not None and abs(cp.shift_sd) >= min_shift and cp.sse < linear_sse(col["length"]):
        out.append({"kind": "length_shift", "step": steps[cp.index], "before": cp.before, "after": cp.after,
                    "shift_sd": cp.shift_sd,
                    "message": f"response length moved from {cp.before:.1f} to {cp.after:.1f} at step "
                               f"{steps[cp.index]} ({cp.shift_sd:+.1f} pooled sd)"})
    reward, length, spread = trend(col["reward"]), trend(col["length"]), trend(col["spread"])
    if reward.rising() and spread.rising():
        out.append({"kind": "spread_rising", "reward_slope": reward.slope, "spread_slope": spread.slope,
                    "message": "reward and ensemble spread rise together: the policy moves where the members "
                               "disagree (check samples and a held-out score)"})
    if reward.rising() and length.rising():
        out.append({"kind": "reward_rising_length_rising", "reward_slope": reward.slope, "length_slope": length.slope,
                    "message": "reward and response length rise together (a length hack looks like this)"})
    return out


class DriftMonitor:
    """Appends ``{step, reward, reward_std, length, spread, n}`` per call to ``path`` (JSONL; a
    rerun appends) and keeps the records for :meth:`report`. ``write=False`` on other processes
    than the first."""

    def __init__(self, path: str | Path | None = None, *, write: bool = True, min_shift: float = 2.0,
                 min_steps: int = 10):
        self.path = Path(path) if path is not None else None
        self.write, self.min_shift, self.min_steps = write, min_shift, min_steps
        self.records: list[dict] = []
        self.warned: set[str] = set()

    def record(self, step: int, rewards, lengths, spread=None, **extra) -> dict:
        r = np.asarray([np.nan if v is None else v for v in rewards], dtype=np.float64)
        rec = {"step": int(step), "reward": _mean(r), "reward_std": float(np.nanstd(r)) if np.isfinite(r).any() else None,
               "length": _mean(lengths), "spread": None if spread is None else _mean(spread), "n": int(len(r)),
               **extra}
        self.records.append(rec)
        if self.write and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        return rec

    def warnings(self) -> list[dict]:
        return drift_warnings(self.records, min_shift=self.min_shift, min_steps=self.min_steps)

    def new_warnings(self) -> list[dict]:
        """Warnings of a kind not returned before (for a log line when one first appears)."""
        fresh = [w for w in self.warnings() if w["kind"] not in self.warned]
        self.warned |= {w["kind"] for w in fresh}
        return fresh

    def report(self) -> dict:
        """Trends (slope and 95% interval per step) of reward, length and spread, and the warnings."""
        col = {k: [np.nan if r.get(k) is None else r[k] for r in self.records] for k in ("reward", "length", "spread")}
        return {"steps": len(self.records), "trends": {k: vars(trend(v)) for k, v in col.items()},
                "length_change_point": (lambda c: None if c is None else {**vars(c), "step": self.records[c.index]["step"]})(
                    change_point(col["length"])),
                "warnings": self.warnings(), "file": None if self.path is None else str(self.path)}


def _mean(values) -> float | None:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    return float(np.nanmean(v)) if np.isfinite(v).any() else None
