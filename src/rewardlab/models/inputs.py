"""Turn (prompt, response) into token ids: rendering, the over-length policy, padding.

One function decides how a pair is written for a backbone, so training, scoring, evaluation and
embedding all see exactly the same tokens:

- ``chat``: the tokenizer has a chat template (instruction-tuned decoders). The conversation is
  rendered with it; the prompt part is everything up to the generation prompt.
- ``pair``: encoders (BERT-like). ``[CLS] prompt [SEP] response [SEP]`` through the tokenizer's own
  pair post-processor.
- ``concat``: decoders without a template: the tokenizer's leading special tokens, then prompt text,
  then response text.

Over-length policies (``max_length`` counts every token, special ones included):
``truncate_prompt_left`` keeps the response whole and cuts the prompt from the left (if the
response alone is too long it is cut from the right, and counted as such); ``truncate_right`` cuts
from the end; ``drop`` marks the item so the caller can drop it and count it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from rewardlab.data.chat import to_messages
from rewardlab.errors import ConfigError

OVERLENGTH_POLICIES = ("truncate_prompt_left", "truncate_right", "drop")
RENDER_MODES = ("chat", "pair", "concat")


@dataclass
class Encoded:
    """Token ids of one (prompt, response) item and what truncation did to it."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    status: str  # ok | prompt_truncated | response_truncated | truncated_right | truncated_left | dropped


def prompt_as_text(prompt) -> str:
    """A prompt as plain text, for backbones without a chat template."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def render(tokenizer, mode: str, prompt, response: str, template: dict | None = None) -> tuple[str, str]:
    """Return (prompt_text, response_text) for the chosen render mode.

    ``template``: further keyword arguments of ``apply_chat_template`` for this item (a row's
    ``tools`` and ``chat_template_kwargs``, :meth:`rewardlab.data.PreferenceTable.template_kwargs`),
    given to both renderings (prompt and full conversation); only the ``chat`` mode has a template
    to give them to.
    """
    if mode == "chat":
        messages = to_messages(prompt, response)
        extra = template or {}
        prefix = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True, **extra)
        full = tokenizer.apply_chat_template(messages, tokenize=False, **extra)
        if full.startswith(prefix):
            return prefix, full[len(prefix):]
        return prefix, response
    return prompt_as_text(prompt), response


def cut_to_length(ids: list[int], roles: list[int | None], max_length: int, policy: str) -> tuple[list[int], str]:
    """Indices to keep after the over-length policy; roles: 0 prompt, 1 response, None special."""
    excess = len(ids) - max_length
    if excess <= 0:
        return list(range(len(ids))), "ok"
    if policy == "drop":
        return [], "dropped"
    drop: set[int] = set()
    if policy == "truncate_prompt_left":
        prompt_pos = [i for i, r in enumerate(roles) if r == 0]
        drop.update(prompt_pos[:excess])
        status = "prompt_truncated"
        if len(drop) < excess:
            resp_pos = [i for i, r in enumerate(roles) if r == 1]
            drop.update(resp_pos[len(resp_pos) - (excess - len(drop)):])
            status = "response_truncated"
    else:  # truncate_right: content tokens from the end, special tokens stay
        content = [i for i, r in enumerate(roles) if r is not None]
        drop.update(content[len(content) - excess:])
        status = "truncated_right"
    return [i for i in range(len(ids)) if i not in drop], status


def encode(tokenizer, mode: str, prompt, response: str, max_length: int, policy: str,
           template: dict | None = None) -> Encoded:
    """Encode one item under a render mode and an over-length policy (``template``: see :func:`render`)."""
    if policy not in OVERLENGTH_POLICIES:
        raise ConfigError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {policy!r}")
    p_text, r_text = render(tokenizer, mode, prompt, response, template)
    type_ids = None
    if mode == "pair":
        enc = tokenizer(p_text, r_text, add_special_tokens=True)
        ids = list(enc["input_ids"])
        roles = list(enc.sequence_ids())
        type_ids = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
    else:
        lead = [] if mode == "chat" else list(tokenizer("", add_special_tokens=True)["input_ids"])
        p_ids = tokenizer(p_text, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(r_text, add_special_tokens=False)["input_ids"]
        ids = lead + p_ids + r_ids
        roles = [None] * len(lead) + [0] * len(p_ids) + [1] * len(r_ids)
    keep, status = cut_to_length(ids, roles, max_length, policy)
    ids = [ids[i] for i in keep]
    if type_ids is not None:
        type_ids = [type_ids[i] for i in keep]
    return Encoded(ids, type_ids, status)


def unused_templates(mode: str, templates) -> int:
    """How many items carry template arguments (tools, chat_template_kwargs) that a render mode
    without a chat template cannot use (0 in ``chat`` mode): callers report the count."""
    return 0 if mode == "chat" or templates is None else sum(1 for t in templates if t)


def generation_marker(tokenizer) -> str | None:
    """The text a chat template puts before an assistant turn (``add_generation_prompt``), e.g.
    ``<|im_start|>assistant\n``; None when the template has no such suffix."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    turn = [{"role": "user", "content": "\x00rewardlab\x00"}]
    bare = tokenizer.apply_chat_template(turn, tokenize=False)
    prompted = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    marker = prompted[len(bare):] if prompted.startswith(bare) else ""
    return marker or None


def encode_text(tokenizer, mode: str, text: str, max_length: int, policy: str,
                marker: str | None = None) -> Encoded:
    """Encode one already-rendered text holding prompt and response together (e.g. OpenRLHF's query).

    ``chat``: the text as is, no special tokens added (a chat rendering holds them). With the
    template's generation ``marker`` in the text, it is split after its last occurrence into prompt
    and response, tokenized separately and truncated exactly as :func:`encode` does a rendered
    pair: the chat rendering of a conversation encodes to the same tokens as the pair.
    ``concat``: the tokenizer's leading special tokens, then the text. ``pair``: one segment with
    the tokenizer's special tokens (``[CLS] text [SEP]``). A text without a prompt/response split,
    over length, is cut from the left under ``truncate_prompt_left`` (the response is at the end;
    status ``truncated_left``), from the right under ``truncate_right``; ``drop`` marks it dropped.
    """
    if policy not in OVERLENGTH_POLICIES:
        raise ConfigError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {policy!r}")
    type_ids = None
    split = mode == "chat" and bool(marker) and marker in text
    if mode == "pair":
        enc = tokenizer(text, add_special_tokens=True)
        ids = list(enc["input_ids"])
        roles = list(enc.sequence_ids())
        type_ids = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
    elif split:
        cut = text.rindex(marker) + len(marker)
        p_ids = tokenizer(text[:cut], add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(text[cut:], add_special_tokens=False)["input_ids"]
        ids = p_ids + r_ids
        roles = [0] * len(p_ids) + [1] * len(r_ids)
    else:
        lead = [] if mode == "chat" else list(tokenizer("", add_special_tokens=True)["input_ids"])
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = lead + body
        roles = [None] * len(lead) + [0] * len(body)
    keep, status = cut_to_length(ids, roles, max_length, policy)
    ids = [ids[i] for i in keep]
    if type_ids is not None:
        type_ids = [type_ids[i] for i in keep]
    if not split and status == "prompt_truncated":
        status = "truncated_left"
    return Encoded(ids, type_ids, status)


def encode_many(tokenizer, mode, prompts, responses, max_length, policy,
                templates=None) -> tuple[list[Encoded], Counter]:
    """Encode a list of items (``templates``: one :func:`render` template per item, or None);
    also return the count of each truncation status."""
    templates = templates if templates is not None else [None] * len(prompts)
    out = [encode(tokenizer, mode, p, r, max_length, policy, t) for p, r, t in zip(prompts, responses, templates)]
    return out, Counter(e.status for e in out)


def pad_batch(items: list[Encoded], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad encoded items to the longest one; returns input_ids, attention_mask (and token_type_ids)."""
    longest = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.long)
    has_types = items[0].token_type_ids is not None
    types = torch.zeros((len(items), longest), dtype=torch.long) if has_types else None
    for i, e in enumerate(items):
        n = len(e.input_ids)
        sl = slice(0, n) if padding_side == "right" else slice(longest - n, longest)
        ids[i, sl] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[i, sl] = 1
        if has_types:
            types[i, sl] = torch.tensor(e.token_type_ids, dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask}
    if has_types:
        batch["token_type_ids"] = types
    return batch
