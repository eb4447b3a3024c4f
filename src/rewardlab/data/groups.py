"""Responses grouped by prompt (MetaRM's meta data, METHODS §4): chosen and rejected of a
preference table pooled per prompt, duplicates removed, capped, every choice counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.readers import load_preferences
from rewardlab.errors import ConfigError, DataError


@dataclass
class MetaGroups:
    """Responses grouped by prompt: ``responses[g]`` are the distinct responses to ``prompts[g]``
    (at least two, at most ``max_responses``); ``origin[g]`` where the prompt's first row was read;
    ``report`` the counts of what loading kept and left out."""

    prompts: list[Any]
    responses: list[list[str]]
    origin: list[str]
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)


def group_responses(table, max_responses: int = 4, *, label: str = "meta data") -> MetaGroups:
    """Group a PreferenceTable's responses by prompt: chosen and rejected pooled, duplicates
    removed (first occurrence order), prompts with fewer than two distinct responses left out and
    counted, at most ``max_responses`` per prompt kept (the first ones; the rest counted)."""
    if max_responses < 2:
        raise ConfigError(f"max_responses must be >= 2, got {max_responses}")
    by_prompt: dict[str, int] = {}
    prompts, responses, origin = [], [], []
    for i, (p, c, r) in enumerate(zip(table["prompt"], table["chosen"], table["rejected"])):
        key = table.prompt_key(i)
        g = by_prompt.get(key)
        if g is None:
            g = by_prompt[key] = len(prompts)
            prompts.append(p)
            responses.append([])
            origin.append(table.origin[i])
        for text in (c, r):
            if text not in responses[g]:
                responses[g].append(text)
    keep = [g for g in range(len(prompts)) if len(responses[g]) >= 2]
    capped = sum(max(len(responses[g]) - max_responses, 0) for g in keep)
    report = {"rows": len(table), "prompts": len(prompts), "groups": len(keep),
              "prompts_with_one_response": len(prompts) - len(keep), "responses_over_cap": capped,
              "max_responses": max_responses}
    if not keep:
        sources = ", ".join((table.report.sources if table.report else []) or sorted({o.split(":")[0] for o in table.origin}))
        raise DataError("MetaRM needs several responses to one prompt (rows sharing a prompt, or a chosen "
                        f"and a rejected that differ); {report['prompts']} prompt(s) have one distinct response each",
                        file=sources or label, expected="at least two distinct responses to some prompt",
                        got="one per prompt")
    k = [min(len(responses[g]), max_responses) for g in keep]
    report["responses"] = int(sum(k))
    report["k_histogram"] = {int(v): int(n) for v, n in zip(*np.unique(k, return_counts=True))}
    return MetaGroups([prompts[g] for g in keep], [responses[g][:max_responses] for g in keep],
                      [origin[g] for g in keep], report)


def load_meta_groups(spec, max_responses: int = 4, **load_kwargs) -> MetaGroups:
    """Read a preference data spec (``rewardlab.data.load_preferences``: files, directories,
    ``hf:``; malformed rows raise ``DataError`` naming file and line) and group it by prompt."""
    return group_responses(load_preferences(spec, **load_kwargs), max_responses, label=str(spec))
