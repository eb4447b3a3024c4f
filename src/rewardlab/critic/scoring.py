"""Scoring with critiques (METHODS §5, step 5): the model writes m critiques per response and the
reward is the mean of r(x, y, c_j).

Critiques are written through the generation layer (:mod:`rewardlab.generate`), by default its
``transformers`` backend on the Critic-RM's own directory (which plain ``AutoModelForCausalLM``
loads), rendered with the model's chat template and ending at the critique request of
:func:`~rewardlab.critic.prompts.joint_messages`. ``m``, the seed and the sampling settings come
from the model's ``critic`` settings (saved with it) unless overridden, and are recorded by
``rewardlab eval``. With a ``cache_dir`` generation resumes where a killed run stopped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.critic.prompts import CRITIQUE_ASK, joint_messages, prompt_messages
from rewardlab.errors import ConfigError, DataError


@dataclass
class CritiqueScores:
    rewards: np.ndarray  # [n] mean over the m critiques
    per_critique: np.ndarray  # [n, m] r(x, y, c_j)
    features: np.ndarray | None  # [n, d] mean of the pooled features over the critiques
    critiques: list[list[str]]  # [n][m]


def mean_over_critiques(per_critique: np.ndarray, m: int | None = None) -> np.ndarray:
    """The reward of each item: the mean of its first ``m`` critique-conditioned rewards
    (all when ``m`` is None). ``per_critique`` is [items, critiques]."""
    per_critique = np.asarray(per_critique, dtype=np.float64)
    if per_critique.ndim != 2 or per_critique.shape[1] == 0:
        raise ValueError(f"per_critique must be [items, m >= 1], got shape {per_critique.shape}")
    m = per_critique.shape[1] if m is None else m
    if not 1 <= m <= per_critique.shape[1]:
        raise ValueError(f"m must lie in 1..{per_critique.shape[1]}, got {m}")
    return per_critique[:, :m].mean(axis=1)


def critique_requests(prompts, responses, ask: str | None = None) -> list:
    """Generation requests for the model's own critiques: the joint conversation up to the ask."""
    from rewardlab.generate import GenerationRequest

    return [GenerationRequest(messages=joint_messages(p, r, None, ask=ask or CRITIQUE_ASK))
            for p, r in zip(prompts, responses)]


def writer_for(model, cache_dir: str | Path | None = None):
    """The model's critique writer: ``model.generator`` when set, else the transformers backend of
    the generation layer on the directory the model was loaded from."""
    if model.generator is not None:
        return model.generator
    if model.source_dir is None:
        raise ConfigError("this Critic-RM has no directory to write critiques with: save it and load it "
                          "with rewardlab.critic.load.load_model, or set model.generator")
    from rewardlab.generate import make_generator

    cache_dir = cache_dir if cache_dir is not None else model.cache_dir
    if cache_dir is not None:  # the generation cache knows the model by its path: add the weights' identity
        cache_dir = Path(cache_dir) / weights_key(model.source_dir)
    model.generator = make_generator("transformers", model=str(model.source_dir), cache_dir=cache_dir)
    return model.generator


def weights_key(directory: Path) -> str:
    """A short identity of a model directory's weights (names and contents: ``weights_fingerprint``),
    so a model retrained into the same directory does not reuse the critiques its predecessor wrote."""
    from rewardlab.generate.base import weights_fingerprint

    return "weights-" + weights_fingerprint(directory)[:12]


def score_with_critiques(model, prompts, responses, *, m: int | None = None, batch_size: int = 16,
                         padding_side: str | None = None, progress: bool = False) -> CritiqueScores:
    """Write ``m`` critiques per (prompt, response) with the model's writer, score each
    ``[x, y, ask, c_j]`` with the reward head, average. Items are never dropped: the ``drop``
    policy scores over-length items truncated from the right (counts in ``model.last_truncation``)."""
    c = model.critic
    m = c.critiques if m is None else m
    if m < 1:
        raise ConfigError(f"critiques (m) must be >= 1, got {m}")
    prompts, responses = list(prompts), list(responses)
    if not prompts:
        model.last_truncation = Counter()
        return CritiqueScores(np.zeros(0), np.zeros((0, m)), np.zeros((0, model.feature_dim), np.float32), [])
    budget = model.settings.max_length - c.max_new_tokens
    fitted = [fit_request(model.tokenizer, prompt_messages(p), r, budget, c.ask) for p, r in zip(prompts, responses)]
    n_cut = sum(f[2] for f in fitted)
    prompts, responses = [f[0] for f in fitted], [f[1] for f in fitted]
    texts = writer_for(model).generate(critique_requests(prompts, responses, c.ask), n=m,
                                       max_new_tokens=c.max_new_tokens, temperature=c.temperature,
                                       top_p=c.top_p, seed=c.seed, progress=progress)
    if len(texts) != len(prompts) or any(len(t) != m for t in texts):
        raise ConfigError(f"the critique writer returned {len(texts)} lists for {len(prompts)} requests "
                          f"(expected {m} critiques each)")
    out = score_given_critiques(model, prompts, responses, texts, batch_size=batch_size,
                                padding_side=padding_side, progress=progress)
    if n_cut:
        model.last_truncation["request_cut_to_fit"] = n_cut  # items, not critiques
    return out


def score_given_critiques(model, prompts, responses, critiques, *, batch_size: int = 16,
                          padding_side: str | None = None, progress: bool = False) -> CritiqueScores:
    """r(x, y, c_j) for critiques written elsewhere (a stronger judge, a program, a person) instead
    of by the model's writer, averaged over each item's critiques. ``critiques[i]`` is the list of
    item i's critiques; every item has the same number m >= 1. Items are never dropped: the ``drop``
    policy scores over-length items truncated from the right (counts in ``model.last_truncation``)."""
    prompts, responses, critiques = list(prompts), list(responses), list(critiques)
    if not (len(prompts) == len(responses) == len(critiques)):
        raise ConfigError(f"{len(prompts)} prompts, {len(responses)} responses and {len(critiques)} critique "
                          "lists: give one list of critiques per (prompt, response)")
    if not prompts:
        model.last_truncation = Counter()
        return CritiqueScores(np.zeros(0), np.zeros((0, 1)), np.zeros((0, model.feature_dim), np.float32), [])
    m = None
    for i, cs in enumerate(critiques):
        if isinstance(cs, str) or not isinstance(cs, (list, tuple)) or not cs:
            raise ConfigError(f"critiques[{i}]: expected a non-empty list of critique strings, got {type(cs).__name__}")
        if m is None:
            m = len(cs)
        if len(cs) != m:
            raise ConfigError(f"critiques[{i}]: {len(cs)} critiques where item 0 has {m}; every item needs the same number")
        bad = [j for j, c in enumerate(cs) if not isinstance(c, str)]
        if bad:
            raise ConfigError(f"critiques[{i}][{bad[0]}]: expected a string, got {type(cs[bad[0]]).__name__}")
    policy = "truncate_right" if model.settings.overlength == "drop" else model.settings.overlength
    items = [model.encode_joint(p, r, cs[j], overlength=policy)
             for p, r, cs in zip(prompts, responses, critiques) for j in range(m)]
    model.last_truncation = Counter(e.status for e in items)
    r, h = model.score_encoded(items, batch_size=batch_size, return_features=True,
                               padding_side=padding_side, progress=progress)
    per = r.reshape(len(prompts), m)
    feats = h.reshape(len(prompts), m, -1).mean(axis=1)
    return CritiqueScores(mean_over_critiques(per), per, feats, [list(cs) for cs in critiques])


GIVEN_COLUMNS = (("critiques_chosen", "critiques_rejected"), ("critique_chosen", "critique_rejected"))


def given_critiques(table) -> tuple[list[list[str]], list[list[str]]]:
    """The critiques a table carries, per side: ``critiques_chosen``/``critiques_rejected`` (lists,
    as ``rewardlab critique`` and ``rewardlab score`` write them) or else ``critique_chosen``/
    ``critique_rejected`` (one string each, as joint training reads). A missing column, an empty or
    non-text critique, or a row with another count of critiques than the first is a DataError
    naming the row and field."""
    from rewardlab.critic.joint import first_origin

    keys = next((k for k in GIVEN_COLUMNS if table.has(k[0]) and table.has(k[1])), None)
    if keys is None:
        raise DataError("scoring with the data's critiques reads them from these columns", file=first_origin(table),
                        field="critiques_chosen/critiques_rejected", expected="both columns (or critique_chosen/"
                        "critique_rejected)", got="no such columns")
    out: tuple[list, list] = ([], [])
    m = None
    for side, key in enumerate(keys):
        for i, value in enumerate(table[key]):
            cs = [value] if isinstance(value, str) else value
            origin = table.origin[i]
            if not isinstance(cs, (list, tuple)) or not cs:
                raise DataError("the critiques are missing", file=origin, field=key,
                                expected="a non-empty list of strings" if key.startswith("critiques_") else "a string",
                                got=type(value).__name__ if value is not None else "null")
            for c in cs:
                if not isinstance(c, str) or not c.strip():
                    raise DataError("a critique is empty or not text", file=origin, field=key,
                                    expected="non-empty strings", got=repr(c)[:40])
            if m is None:
                m = len(cs)
            if len(cs) != m:
                raise DataError(f"every response needs the same number of critiques (the first has {m})",
                                file=origin, field=key, expected=f"{m} critiques", got=str(len(cs)))
            out[side].append(list(cs))
    return out


def score_pairs_given(model, table, *, batch_size: int = 16, progress: bool = False) -> dict[str, np.ndarray]:
    """``reward_chosen``/``reward_rejected`` of every pair from the critiques the table carries
    (:func:`given_critiques`), averaged per response; nothing is generated."""
    crit_c, crit_r = given_critiques(table)
    prompts = list(table["prompt"])
    out = score_given_critiques(model, prompts * 2, list(table["chosen"]) + list(table["rejected"]),
                                crit_c + crit_r, batch_size=batch_size, progress=progress)
    n = len(table)
    return {"reward_chosen": out.rewards[:n], "reward_rejected": out.rewards[n:]}


def fit_request(tokenizer, prompt, response: str, budget: int, ask: str | None = None):
    """(prompt, response, cut?) whose critique request, rendered with the chat template, holds at
    most ``budget`` tokens (the model's max_length minus the critique's max_new_tokens), so the
    critique and the conversation it judges fit in what the reward head reads. Like the
    ``truncate_prompt_left`` policy: the prompt loses tokens from its start (message by message for
    a conversation), then, if that is not enough, the response from its end."""
    if budget < 16:
        raise ConfigError(f"max_length minus critique max_new_tokens leaves {budget} tokens for the conversation")

    def size(p, r) -> int:
        text = tokenizer.apply_chat_template(joint_messages(p, r, None, ask=ask or CRITIQUE_ASK), tokenize=False,
                                             add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def cut_left(text: str, k: int) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer.decode(ids[k:]) if k < len(ids) else ""

    cut = False
    for _ in range(8):  # re-tokenising cut text can shift a token or two: a few rounds converge
        excess = size(prompt, response) - budget
        if excess <= 0:
            return prompt, response, cut
        cut = True
        if isinstance(prompt, str) and prompt:
            prompt = cut_left(prompt, excess)
        elif isinstance(prompt, list) and any(m["content"] for m in prompt):
            prompt = [dict(m) for m in prompt]
            first = next(m for m in prompt if m["content"])
            first["content"] = cut_left(first["content"], excess)
        else:
            ids = tokenizer(response, add_special_tokens=False)["input_ids"]
            response = tokenizer.decode(ids[:max(len(ids) - excess, 0)])
    if size(prompt, response) > budget:
        raise ConfigError(f"cannot fit the critique request into {budget} tokens (the template and ask alone "
                          "are longer): raise model.max_length or lower critic.max_new_tokens")
    return prompt, response, cut
