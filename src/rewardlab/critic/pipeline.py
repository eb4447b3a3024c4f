"""``rewardlab critique``: critiques of every response of a preference set, consistency filters,
refinement. Orchestration only: the rules live in ``scores``, ``filters`` and ``refine``.

Outputs (see docs/critic_rm.md):
- ``out``: the kept pairs (the Critic-RM training set) with every critique column and the training
  targets ``critique_chosen`` / ``critique_rejected`` (one string each);
- ``report_dir/all_pairs.<suffix>``: every pair with its critiques, scores and filter decision
  (``critic_filter``; ``critique_chosen``/``critique_rejected`` null when dropped);
- ``report_dir/summary.json``: counts, parse failures, score histograms and filter counts per
  source, refinement counts, generation throughput, the configuration and provenance.
The generation cache (``report_dir/gen_cache`` unless given) makes a rerun continue.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Callable

from rewardlab.critic.filters import REASONS, FilterConfig, PairDecision, filter_pair
from rewardlab.critic.prompts import (DEFAULT_CRITIQUE_TEMPLATE, check_template, critique_request, prompt_as_text,
                                      rank_request, score_followup_request, summ_request)
from rewardlab.critic.refine import check_mode, first_kept, top_k, with_score_line
from rewardlab.critic.scores import parse_score, score_histogram
from rewardlab.errors import ConfigError, DataError
from rewardlab.generate import GenerationRequest, Generator

SIDES = ("chosen", "rejected")


@dataclass
class CritiqueConfig:
    n: int = 4
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    template: str = DEFAULT_CRITIQUE_TEMPLATE
    filters: FilterConfig = field(default_factory=FilterConfig)
    refine: str = "none"
    rank_k: int = 1
    refine_max_new_tokens: int = 256
    refine_temperature: float = 0.0  # meta-judge and summaries greedy by default
    max_chars: int = 6000  # per prompt and per response put in a critique request
    score_followup: bool = False  # ask again for the score alone when a critique has none
    followup_max_new_tokens: int = 4
    on_empty: str = "error"  # an empty response: error | skip (counted) | keep (critiqued as is)

    def __post_init__(self) -> None:
        check_template(self.template)
        check_mode(self.refine, self.rank_k)
        if self.on_empty not in ("error", "skip", "keep"):
            raise ConfigError(f"on_empty must be error, skip or keep, got {self.on_empty!r}")
        if self.n < 1 or self.max_chars < 100:
            raise ConfigError(f"need n >= 1 and max_chars >= 100, got n={self.n}, max_chars={self.max_chars}")
        if min(self.max_new_tokens, self.refine_max_new_tokens, self.followup_max_new_tokens) < 1:
            raise ConfigError("max_new_tokens, refine_max_new_tokens and followup_max_new_tokens must be >= 1")
        for name in ("temperature", "refine_temperature", "top_p"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


def load_template(path: str | Path) -> str:
    """A critique template file (UTF-8, with ``{prompt}`` and ``{response}``)."""
    from rewardlab.config import read_text_file

    return check_template(read_text_file(path, "critique template"), origin=str(path))


def clip(text: str, max_chars: int, keep: str) -> tuple[str, bool]:
    """``text`` cut to ``max_chars`` keeping its ``start`` or ``end``, with a visible marker."""
    if len(text) <= max_chars:
        return text, False
    if keep == "end":
        return "[...]\n" + text[-max_chars:], True
    return text[:max_chars] + "\n[...]", True


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


def run_critique(data: Any, out: str | Path, generator: Generator, cfg: CritiqueConfig = CritiqueConfig(), *,
                 report_dir: str | Path | None = None, limit: int | None = None, on_error: str = "raise",
                 progress: bool = True, log: Callable[[str], None] = lambda s: None) -> dict:
    """Critique, filter and refine ``data``; write ``out``, ``report_dir``; return the summary."""
    from rewardlab.data import load_preferences
    from rewardlab.runinfo import run_info

    out = Path(out)
    report_dir = Path(report_dir) if report_dir is not None else out.with_name(out.stem + "_critique")
    table = load_preferences(data, limit=limit, on_error=on_error)
    sources = table["source"] if table.has("source") else ["all"] * len(table)
    skipped_empty: Counter = Counter()
    rows, texts = [], []  # kept row indices; per row (prompt text, chosen, rejected) after clipping
    truncated = Counter()
    for i in range(len(table)):
        empty = [s for s in SIDES if not table[s][i].strip()]
        if empty and cfg.on_empty == "error":
            raise DataError("empty response: there is nothing to critique (on_empty: skip to skip and count "
                            "such pairs, keep to critique them anyway)", file=table.origin[i], field=empty[0],
                            expected="a non-empty response")
        if empty and cfg.on_empty == "skip":
            skipped_empty[sources[i]] += 1
            continue
        prompt, cut_p = clip(prompt_as_text(table["prompt"][i]), cfg.max_chars, keep="end")
        chosen, cut_c = clip(table["chosen"][i], cfg.max_chars, keep="start")
        rejected, cut_r = clip(table["rejected"][i], cfg.max_chars, keep="start")
        truncated[sources[i]] += cut_p + cut_c + cut_r
        rows.append(i)
        texts.append((prompt, chosen, rejected))
    if not rows:
        raise DataError("every pair was skipped (empty responses)", file=str(data), expected="at least one pair")
    log(f"{len(rows)} pairs: {2 * len(rows)} responses x {cfg.n} critiques")

    # 1. critiques
    requests = []
    for prompt, chosen, rejected in texts:
        for resp in (chosen, rejected):
            requests.append(GenerationRequest(critique_request(prompt, resp, cfg.template),
                                              key="crit-" + _key(prompt, resp)))
    generated = generator.generate(requests, n=cfg.n, max_new_tokens=cfg.max_new_tokens,
                                   temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed, progress=progress)
    gen_stats = [{"step": "critiques", **generator.last_stats.to_dict()}]
    crit = {s: [list(generated[2 * k + j]) for k in range(len(rows))] for j, s in enumerate(SIDES)}
    scores = {s: [[parse_score(t) for t in crit[s][k]] for k in range(len(rows))] for s in SIDES}
    row_sources = [sources[i] for i in rows]
    first_failures: Counter = Counter()
    for k in range(len(rows)):
        first_failures[row_sources[k]] += sum(x is None for s in SIDES for x in scores[s][k])
    followup_counts: Counter = Counter()
    if cfg.score_followup:  # 1b. critiques without a score are continued with the score prefix
        followup_counts = _score_followup(generator, cfg, texts, crit, scores, gen_stats, progress)

    # 2. filters
    decisions: list[PairDecision] = [filter_pair(scores["chosen"][k], scores["rejected"][k], cfg.filters)
                                     for k in range(len(rows))]
    kept_rows = [k for k, d in enumerate(decisions) if d.keep]
    keep_mask = {s: [d.keep_chosen if s == "chosen" else d.keep_rejected for d in decisions] for s in SIDES}

    # 3. refinement
    target, extra, refine_counts = _refine(generator, cfg, texts, crit, scores, decisions, keep_mask, gen_stats,
                                           progress)

    # 4. tables and summary
    result = table.select(rows)
    columns: dict[str, list] = {}
    for s in SIDES:
        columns[f"critiques_{s}"] = crit[s]
        columns[f"critique_scores_{s}"] = scores[s]
        columns[f"critique_mean_{s}"] = [d.mean_chosen if s == "chosen" else d.mean_rejected for d in decisions]
        columns[f"critique_keep_{s}"] = [list(m) for m in keep_mask[s]]
    columns["critic_filter"] = [d.reason for d in decisions]
    columns.update(extra)
    for s in SIDES:
        columns[f"critique_{s}"] = target[s]
    for name, values in columns.items():
        result = result.with_column(name, values)
    all_path = report_dir / f"all_pairs{out.suffix or '.jsonl'}"
    result.write(all_path)
    kept_table = result.select(kept_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept_table.write(out)

    summary = {
        "command": "critique",
        "data": str(data) if isinstance(data, (str, Path)) else [str(d) for d in data],
        "out": str(out), "all_pairs": str(all_path),
        "generator": {"model_id": generator.model_id, "template_id": generator.template_id,
                      "cache": str(generator.cache.path) if generator.cache is not None else None},
        "config": {**asdict(cfg), "filters": asdict(cfg.filters),
                   "template": "default" if cfg.template == DEFAULT_CRITIQUE_TEMPLATE else cfg.template},
        "generation": gen_stats,
        "refine": dict(refine_counts),
        "score_followup": dict(followup_counts) if cfg.score_followup else None,
        "totals": _group_summary(list(range(len(rows))), scores, decisions, sum(skipped_empty.values()),
                                 sum(truncated.values()), crit, sum(first_failures.values())),
        "by_source": {src: _group_summary([k for k, r in enumerate(row_sources) if r == src], scores, decisions,
                                          skipped_empty[src], truncated[src], crit, first_failures[src])
                      for src in sorted(set(row_sources) | set(skipped_empty))},
        "provenance": run_info(),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _response(texts: list[tuple], k: int, side: str) -> str:
    return texts[k][1 + SIDES.index(side)]


def _score_followup(generator: Generator, cfg: CritiqueConfig, texts, crit, scores, gen_stats, progress) -> Counter:
    """Score critiques that have none by continuing them with ``SCORE_PREFIX`` (in place)."""
    counts: Counter = Counter()
    jobs = [(k, s, j) for k in range(len(texts)) for s in SIDES for j in range(cfg.n) if scores[s][k][j] is None]
    reqs = [GenerationRequest(score_followup_request(texts[k][0], _response(texts, k, s), crit[s][k][j], cfg.template),
                              key="score-" + _key(texts[k][0], _response(texts, k, s), crit[s][k][j]))
            for k, s, j in jobs]
    replies = generator.generate(reqs, n=1, max_new_tokens=cfg.followup_max_new_tokens, temperature=0.0,
                                 seed=cfg.seed, progress=progress) if reqs else []
    gen_stats.append({"step": "score_followup", **generator.last_stats.to_dict()})
    for (k, s, j), reply in zip(jobs, replies):
        value = parse_score("Score: " + reply[0].strip())  # the number right after the prefix
        counts["asked"] += 1
        if value is not None:
            scores[s][k][j] = value
            crit[s][k][j] = f"{crit[s][k][j].rstrip()}\nScore: {value:g}"
            counts["scored"] += 1
    return counts


def _refine(generator: Generator, cfg: CritiqueConfig, texts, crit, scores, decisions, keep_mask, gen_stats,
            progress) -> tuple[dict, dict, Counter]:
    """(targets per side, extra columns, counts) of the refinement mode; selection rules in refine.py."""
    n_rows = len(texts)
    target = {s: [None] * n_rows for s in SIDES}
    extra: dict[str, list] = {}
    counts: Counter = Counter()
    kept_rows = [k for k, d in enumerate(decisions) if d.keep]
    if cfg.refine == "none":
        for k in kept_rows:
            for s in SIDES:
                target[s][k] = crit[s][k][first_kept(keep_mask[s][k])]
    elif cfg.refine == "rank":
        jobs = [(k, s, j) for k in kept_rows for s in SIDES for j, kept in enumerate(keep_mask[s][k]) if kept]
        reqs = [GenerationRequest(rank_request(texts[k][0], _response(texts, k, s), crit[s][k][j]),
                                  key="rank-" + _key(texts[k][0], _response(texts, k, s), crit[s][k][j]))
                for k, s, j in jobs]
        meta_texts = generator.generate(reqs, n=1, max_new_tokens=cfg.refine_max_new_tokens,
                                        temperature=cfg.refine_temperature, top_p=cfg.top_p, seed=cfg.seed,
                                        progress=progress) if reqs else []
        gen_stats.append({"step": "rank", **generator.last_stats.to_dict()})
        meta = {s: [[None] * cfg.n for _ in range(n_rows)] for s in SIDES}
        for (k, s, j), texts_j in zip(jobs, meta_texts):
            meta[s][k][j] = parse_score(texts_j[0])
            counts["meta_judgements"] += 1
            counts["meta_parse_failures"] += meta[s][k][j] is None
        for s in SIDES:
            extra[f"critique_meta_scores_{s}"] = [list(m) if d.keep else None for m, d in zip(meta[s], decisions)]
            extra[f"critiques_ranked_{s}"] = [None] * n_rows
        for k in kept_rows:
            for s in SIDES:
                best = top_k(meta[s][k], keep_mask[s][k], cfg.rank_k)
                extra[f"critiques_ranked_{s}"][k] = [crit[s][k][j] for j in best]
                target[s][k] = crit[s][k][best[0]]
    else:  # summ
        jobs, reqs = [], []
        for k in kept_rows:
            for s in SIDES:
                idx = [j for j, kept in enumerate(keep_mask[s][k]) if kept]
                if len(idx) == 1:
                    target[s][k] = crit[s][k][idx[0]]
                    counts["single_critique_used_as_is"] += 1
                    continue
                kept_texts = [crit[s][k][j] for j in idx]
                jobs.append((k, s, idx))
                reqs.append(GenerationRequest(summ_request(texts[k][0], _response(texts, k, s), kept_texts),
                                              key="summ-" + _key(texts[k][0], _response(texts, k, s), *kept_texts)))
        summaries = generator.generate(reqs, n=1, max_new_tokens=cfg.refine_max_new_tokens,
                                       temperature=cfg.refine_temperature, top_p=cfg.top_p, seed=cfg.seed,
                                       progress=progress) if reqs else []
        gen_stats.append({"step": "summ", **generator.last_stats.to_dict()})
        for (k, s, idx), summary in zip(jobs, summaries):
            text, appended = with_score_line(summary[0], [scores[s][k][j] for j in idx])
            target[s][k] = text
            counts["summaries"] += 1
            counts["score_line_appended"] += appended
    return target, extra, counts


def _group_summary(ks: list[int], scores: dict, decisions: list[PairDecision], skipped: int, truncated: int,
                   crit: dict, first_failures: int) -> dict:
    """Counts of one group of pairs (a source, or all)."""
    flat = {s: [x for k in ks for x in scores[s][k]] for s in SIDES}
    n_crit = sum(len(v) for v in flat.values())
    failures = sum(x is None for v in flat.values() for x in v)
    reasons = Counter(decisions[k].reason for k in ks)
    scored = [k for k in ks if decisions[k].mean_chosen is not None and decisions[k].mean_rejected is not None]
    agree = sum(decisions[k].mean_chosen > decisions[k].mean_rejected for k in scored)
    group = {
        "pairs": len(ks),
        "skipped_empty_pairs": skipped,
        "truncated_fields": truncated,
        "critiques": n_crit,
        "empty_critiques": sum(not t.strip() for s in SIDES for k in ks for t in crit[s][k]),
        "parse_failures_first_pass": first_failures,  # before the score follow-up (if any)
        "parse_failures": failures,
        "parse_failure_rate": round(failures / n_crit, 4) if n_crit else None,
        "mean_score": {s: (round(fmean(v), 3) if (v := [x for x in flat[s] if x is not None]) else None)
                       for s in SIDES},
        "histogram": {s: score_histogram(flat[s]) for s in SIDES},
        "judge_accuracy": round(agree / len(scored), 4) if scored else None,
        "filter": {r: reasons.get(r, 0) for r in REASONS},
        "kept_pairs": reasons.get("kept", 0),
        "kept_critiques": {s: sum(sum(decisions[k].keep_chosen if s == "chosen" else decisions[k].keep_rejected)
                                  for k in ks) for s in SIDES},
    }
    return group
