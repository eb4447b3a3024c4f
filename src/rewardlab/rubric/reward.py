"""``RubricReward``: a rubric and an aggregator as a TRL ``GRPOTrainer`` reward function.

TRL 1.16 calls each reward function per process on that process's slice of the generation batch
as ``f(prompts=, completions=, completion_ids=, trainer_state=, log_extra=, log_metric=, **columns)``
and takes one float (or None) per completion; it then gathers the slices, combines the reward
functions (``multi_objective_aggregation``) and normalises per group itself. What the aggregators
of :mod:`rewardlab.rubric.aggregators` need is realised through that interface as follows (what
:meth:`RubricReward.grpo_config_kwargs` returns must be set on ``GRPOConfig``):

- ``output="reward"`` (default for ``weighted_sum``, ``min`` and ``focal`` with
  ``level="reward"``): the callable returns the aggregated reward R of each completion and TRL's
  default group normalisation (``scale_rewards="group"``, ``sum_then_normalize``) turns it into
  exactly the aggregator's advantages (same epsilon, same Bessel-corrected std).
- ``output="advantage"`` (default for ``gdpo`` and ``focal`` with ``level="advantage"``): the
  callable computes the aggregator's advantages on the *global* batch and returns them; with
  ``scale_rewards="none"`` TRL only subtracts each group's mean, which is 0 for these advantages
  (every per-criterion z-score has group mean 0, and so has their weighted sum and its batch
  z-score). TRL's advantages are then the aggregator's, up to float rounding, when no score is NaN.
  TRL's logged ``reward`` is then this advantage; the rubric's own numbers are in ``rubric/*``.
- ``gdpo`` can also be TRL's own: :meth:`RubricReward.criterion_funcs` gives one reward function
  per criterion (its [0, 1] score), to pass with ``reward_weights=rubric.weights`` and
  ``multi_objective_aggregation="normalize_then_sum"``.

Focal's saturation is estimated on the global batch: the per-criterion scores of every process
are all-gathered (``torch.distributed`` when initialised; ``gather=`` injects another gather, as
the tests do), every process computes the same weights and keeps the same EMA, and each returns
its own slice. Groups are consecutive runs of ``num_generations`` completions of the global batch
(TRL's ``RepeatSampler`` order); evaluation with another ``num_generations_eval`` is not supported
(leave it unset). Each call (training and evaluation alike) updates the EMA. Logged through
``log_metric`` (global-batch values): ``rubric/<criterion>/mean``, ``rubric/<criterion>/weight``,
``rubric/<criterion>/saturation`` (focal), ``rubric/worst_criterion``, ``rubric/mean_score``,
``rubric/invalid`` and ``rubric/unparsed`` (counts in this batch); a criterion scored by a reward
model ensemble also ``rubric/<criterion>/spread`` (the members' mean std on this process's items).
``drift=`` (a :class:`rewardlab.eval.drift.DriftMonitor`) records the mean reward, response length
and spread per call, for over-optimisation monitoring (docs/ensembles.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rewardlab.errors import ConfigError
from rewardlab.eval.drift import DriftMonitor
from rewardlab.rubric import aggregators as agg
from rewardlab.rubric.spec import Rubric

OUTPUTS = ("reward", "advantage")
Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


def torch_gather(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather rows (dim 0) of every process, in rank order; returns (global, this rank).
    Without an initialised process group: (local, 0). Slices may differ in length."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    x = local.to(device)
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=device)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    out = torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).to(local.device)
    return out, dist.get_rank()


class RubricReward:
    """A rubric + aggregator for ``GRPOTrainer(reward_funcs=[RubricReward(...)])`` (module docstring).

    ``aggregator``: weighted_sum, min, gdpo or focal; ``gamma``, ``saturation`` (batch, group,
    ema), ``ema_beta`` and ``level`` (reward, advantage) configure focal; ``num_generations`` must
    equal GRPOConfig's. ``gather``: ``local (n, c) -> (global (N, c), rank)``.
    """

    def __init__(self, rubric: Rubric, aggregator: str = "focal", *, num_generations: int,
                 gamma: float = 1.0, saturation: str = "batch", ema_beta: float = 0.9,
                 level: str = "reward", output: str | None = None, gather: Gather | None = None,
                 drift: DriftMonitor | None = None) -> None:
        if aggregator not in agg.AGGREGATORS:
            raise ConfigError(f"unknown aggregator {aggregator!r}; expected one of {agg.AGGREGATORS}")
        if saturation not in agg.SATURATION_ESTIMATORS:
            raise ConfigError(f"saturation must be one of {agg.SATURATION_ESTIMATORS}, got {saturation!r}")
        if level not in agg.FOCAL_LEVELS:
            raise ConfigError(f"level must be one of {agg.FOCAL_LEVELS}, got {level!r}")
        if num_generations < 2:
            raise ConfigError(f"num_generations must be >= 2 (GRPO groups), got {num_generations}")
        advantage_only = aggregator == "gdpo" or (aggregator == "focal" and level == "advantage")
        output = output or ("advantage" if advantage_only else "reward")
        if output not in OUTPUTS:
            raise ConfigError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "reward" and advantage_only:
            raise ConfigError(f"{aggregator} (level {level}) acts on advantages: it needs output='advantage' "
                              "(or criterion_funcs() with multi_objective_aggregation='normalize_then_sum')")
        self.rubric, self.aggregator, self.output = rubric, aggregator, output
        self.num_generations, self.gamma, self.saturation = num_generations, gamma, saturation
        self.ema_beta, self.level = ema_beta, level
        self.gather = gather or torch_gather
        self.drift = drift
        self.ema: torch.Tensor | None = None
        self.calls = 0
        self.last: agg.Aggregated | None = None
        self.__name__ = f"rubric_{aggregator}"  # TRL names reward functions by __name__

    # ------------------------------------------------------------------ TRL settings
    def grpo_config_kwargs(self) -> dict:
        """The GRPOConfig settings under which TRL realises this aggregator (module docstring)."""
        return {"multi_objective_aggregation": "sum_then_normalize",
                "scale_rewards": "group" if self.output == "reward" else "none"}

    def criterion_funcs(self) -> list[Callable]:
        """One TRL reward function per criterion ([0, 1] score; NaN-policy as the rubric's)."""
        from rewardlab.rubric.scoring import score_items

        funcs = []
        for crit in self.rubric.criteria:
            one = Rubric([crit], self.rubric.on_invalid, self.rubric.name, self.rubric.source)

            def func(prompts, completions, _one=one, **kwargs):
                s = score_items(_one, prompts, completions).scores[:, 0]
                return [None if np.isnan(v) else float(v) for v in s]
            func.__name__ = crit.name
            funcs.append(func)
        return funcs

    def state_dict(self) -> dict:
        return {"ema": None if self.ema is None else self.ema.tolist(), "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.ema = None if state.get("ema") is None else torch.tensor(state["ema"], dtype=torch.float64)
        self.calls = int(state.get("calls", 0))

    # ------------------------------------------------------------------ the call
    def aggregate_global(self, scores: torch.Tensor) -> agg.Aggregated:
        """Aggregate (N, criteria) global-batch scores in group order; updates the EMA."""
        n, k = scores.shape
        g = self.num_generations
        if n % g:
            raise ConfigError(f"global batch of {n} completions is not a whole number of groups of "
                              f"num_generations={g} (set RubricReward(num_generations=) as GRPOConfig's, and "
                              "leave num_generations_eval unset)")
        grouped = scores.reshape(n // g, g, k)
        w = self.rubric.weights
        if self.aggregator != "focal":
            return agg.aggregate(self.aggregator, grouped, w)
        sat = None
        if self.saturation == "ema":
            self.ema = agg.estimate_saturation(grouped, "ema", previous=self.ema, beta=self.ema_beta)
            sat = self.ema
        return agg.focal(grouped, w, gamma=self.gamma, saturation=sat, estimator=self.saturation, level=self.level)

    def __call__(self, prompts, completions, completion_ids=None, *, log_metric=None, **kwargs) -> list:
        result = self.rubric.score(prompts, completions)
        local = torch.as_tensor(result.scores, dtype=torch.float64)
        counts = torch.tensor([[sum(sum(v.values()) for v in result.invalid.values()),
                                sum(result.unparsed.values())]], dtype=torch.float64)
        scores, rank = self.gather(local)
        counts, _ = self.gather(counts)
        self._check_groups(prompts, rank, len(prompts))
        out = self.aggregate_global(scores)
        self.last, self.calls = out, self.calls + 1
        values = (out.rewards if self.output == "reward" else out.advantages).reshape(-1)
        start = rank * len(prompts)  # TRL's process slices: equal lengths, in rank order
        mine = values[start:start + len(prompts)]
        spreads = self._spreads()
        if log_metric is not None:
            self._log(scores, out, counts.sum(0), log_metric)
            for name, spread in spreads.items():
                log_metric(f"rubric/{name}/spread", float(np.mean(spread)))
        if self.drift is not None:
            self._record_drift(out, prompts, completions, completion_ids, spreads, kwargs.get("trainer_state"))
        return [None if torch.isnan(v) else float(v) for v in mine]

    def _spreads(self) -> dict[str, np.ndarray]:
        """The member spread of each criterion scored by an ensemble, on this call's items."""
        return {c.name: c.scorer.last_spread for c in self.rubric.criteria
                if getattr(c.scorer, "last_spread", None) is not None}

    def _record_drift(self, out, prompts, completions, completion_ids, spreads, state) -> None:
        from rewardlab.rubric.scorers import text_of

        rewards = out.rewards.reshape(-1)  # the global batch's aggregated rubric reward (the same on every process)
        lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                   else [len(text_of(c)) for c in completions])
        spread = np.concatenate(list(spreads.values())) if spreads else None
        step = getattr(state, "global_step", None)
        self.drift.record(self.calls if step is None else step, [float(v) for v in rewards], lengths, spread,
                          length_unit="tokens" if completion_ids is not None else "characters")

    def _check_groups(self, prompts, rank: int, n_local: int) -> None:
        """Completions of one group share their prompt (catches a num_generations mismatch)."""
        g, start = self.num_generations, rank * n_local
        for i in range(1, n_local):
            if (start + i) % g and prompts[i] != prompts[i - 1]:
                raise ConfigError(f"completions {start + i - 1} and {start + i} of one group of "
                                  f"num_generations={g} have different prompts: RubricReward(num_generations=) "
                                  "must equal GRPOConfig's (and num_generations_eval must be unset)")

    def _log(self, scores: torch.Tensor, out: agg.Aggregated, counts: torch.Tensor, log_metric) -> None:
        means = torch.nanmean(scores, dim=0)
        weights = out.weights if out.weights.dim() == 1 else out.weights.mean(0)
        weights = weights / weights.sum()
        for j, name in enumerate(self.rubric.names):
            log_metric(f"rubric/{name}/mean", float(means[j]))
            log_metric(f"rubric/{name}/weight", float(weights[j]))
            if out.saturation is not None:
                sat = out.saturation if out.saturation.dim() == 1 else out.saturation.mean(0)
                log_metric(f"rubric/{name}/saturation", float(sat[j]))
        finite = means[~torch.isnan(means)]
        if finite.numel():
            log_metric("rubric/worst_criterion", float(finite.min()))
        log_metric("rubric/mean_score", float(torch.nanmean(agg.weighted_mean(scores, torch.as_tensor(
            self.rubric.weights, dtype=scores.dtype)))))
        log_metric("rubric/invalid", float(counts[0]))
        log_metric("rubric/unparsed", float(counts[1]))
