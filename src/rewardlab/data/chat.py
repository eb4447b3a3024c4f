"""Turn structure of preference pairs: HH dialogue strings, ``{role, content}`` message lists,
and the row formats built from them (explicit, hh, implicit, conversational).

Every prompt representation a :class:`~rewardlab.data.PreferenceTable` may hold (plain string,
HH dialogue string, message list) becomes a message list through :func:`to_messages`, which is
what a tokenizer's chat template renders. :func:`normalize_pair` turns one raw row of any
format into (prompt, chosen response, rejected response).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple

from rewardlab.errors import DataError

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
ROLES = ("system", "user", "assistant")
FORMATS = ("auto", "explicit", "implicit", "conversational", "hh")
_ANY = "a string or a list of {role, content} messages"

_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


def is_hh(text: str) -> bool:
    """True when ``text`` is an HH dialogue: a ``Human:`` turn and a ``\\n\\nAssistant:`` turn."""
    return ASSISTANT in text and (HUMAN in text or text.startswith("Human:"))


def parse_hh(text: str) -> list[dict]:
    """Split an HH dialogue string into ``{role, content}`` messages.

    ``Human`` turns become ``user``, ``Assistant`` turns ``assistant``; contents are stripped.
    A trailing empty assistant turn (a prompt ending in ``\\n\\nAssistant:``) is dropped, and text
    before the first turn, if any, becomes a ``system`` message.

    >>> parse_hh("\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: bye\\n\\nAssistant:")
    [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}, \
{'role': 'user', 'content': 'bye'}]
    """
    parts = _TURN.split(text)
    if len(parts) == 1:
        raise DataError(expected="an HH dialogue with '\\n\\nHuman:' turns", got=repr(text[:60]))
    preamble = parts[0].strip()
    messages = [{"role": "system", "content": preamble}] if preamble else []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": _HH_ROLE[speaker], "content": content.strip()})
    if messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def to_messages(prompt: str | list[dict], response: str) -> list[dict]:
    """The conversation ``prompt`` followed by ``response`` as an assistant turn.

    A message-list prompt is extended; an HH dialogue string is parsed with :func:`parse_hh`;
    any other string becomes a single user message.
    """
    if isinstance(prompt, list):
        head = [dict(m) for m in prompt]
    elif is_hh(prompt):
        head = parse_hh(prompt)
    else:
        head = [{"role": "user", "content": prompt}]
    return head + [{"role": "assistant", "content": response}]


# ---------------------------------------------------------------- chat template context
# TRL's RewardTrainer passes a row's ``tools`` and ``chat_template_kwargs`` to the chat template
# (``apply_chat_template(messages, tools=tools, **chat_template_kwargs)``, a JSON-string ``tools``
# decoded); rewardlab reads the same two columns and renders them the same way.
TEMPLATE_COLUMNS = ("tools", "chat_template_kwargs")
# apply_chat_template's own arguments, which rewardlab sets for each rendering (or, for
# ``chat_template``, which the model's recorded template decides): a row may not override them.
RESERVED_TEMPLATE_KEYS = (
    "conversation", "chat_template", "add_generation_prompt", "continue_final_message", "tokenize",
    "padding", "truncation", "max_length", "return_tensors", "return_dict", "return_assistant_tokens_mask",
    "tokenizer_kwargs",
)


def _decode_json(value: str, field: str, expected: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise DataError(field=field, expected=expected, got=f"a string that is not JSON ({err.msg})") from None


def check_tools(value: object, field: str = "tools") -> object:
    """A row's ``tools``: a list of tool (function) schemas, each a JSON object, or that list as a
    JSON string (as Hub datasets store it; TRL decodes it). None means no tools. Returned as given
    (a string stays a string, so written outputs keep the input's form)."""
    expected = "a list of tool schemas (JSON objects), or that list as a JSON string"
    if value is None:
        return None
    decoded = _decode_json(value, field, expected) if isinstance(value, str) else value
    if not isinstance(decoded, list):
        raise DataError(field=field, expected=expected, got=type_name(decoded))
    for i, tool in enumerate(decoded):
        if not isinstance(tool, dict):
            raise DataError(field=f"{field}[{i}]", expected="a tool schema (a JSON object)", got=type_name(tool))
    return value


def check_chat_template_kwargs(value: object, field: str = "chat_template_kwargs") -> object:
    """A row's ``chat_template_kwargs``: an object of template variables (e.g. ``{"enable_thinking":
    false}``), or that object as a JSON string (CSV cells). None means none. Keys must be strings and
    must not be arguments rewardlab sets (``RESERVED_TEMPLATE_KEYS``). Returned as given."""
    expected = "an object of chat template variables, or that object as a JSON string"
    if value is None:
        return None
    decoded = _decode_json(value, field, expected) if isinstance(value, str) else value
    if not isinstance(decoded, dict):
        raise DataError(field=field, expected=expected, got=type_name(decoded))
    for key in decoded:
        if not isinstance(key, str):
            raise DataError(field=field, expected="string keys", got=repr(key))
        if key in RESERVED_TEMPLATE_KEYS:
            raise DataError(field=f"{field}.{key}", expected="a template variable, not an argument of "
                            "apply_chat_template that rewardlab sets", got=repr(key))
    return value


def template_kwargs(tools: object = None, chat_template_kwargs: object = None) -> dict | None:
    """The keyword arguments ``apply_chat_template`` gets for one row, by TRL's rule: ``tools``
    (decoded from JSON when a string; an empty list is no tools, as TRL's ``tools or None``), then the
    ``chat_template_kwargs`` entries (which win on a shared key, as in TRL's dict merge). None when
    the row has neither. Inputs are checked (:func:`check_tools`, :func:`check_chat_template_kwargs`)."""
    check_tools(tools)
    check_chat_template_kwargs(chat_template_kwargs)
    tools = json.loads(tools) if isinstance(tools, str) else tools
    extra = json.loads(chat_template_kwargs) if isinstance(chat_template_kwargs, str) else chat_template_kwargs
    out = {"tools": tools} if tools else {}
    out.update(extra or {})
    return out or None


def type_name(value: object) -> str:
    """A short name of ``value``'s type for error messages (``null`` for None; a type may name
    itself with a ``display_name``)."""
    return "null" if value is None else getattr(type(value), "display_name", type(value).__name__)


def validate_messages(value: object, field: str) -> list[dict]:
    """Check a list of ``{role, content}`` messages; return it with only those two keys.

    Errors name the offending element, e.g. field ``chosen[2].role``.
    """
    if not isinstance(value, list):
        raise DataError(field=field, expected="a list of {role, content} messages", got=type_name(value))
    if not value:
        raise DataError(field=field, expected="at least one message", got="an empty list")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise DataError(
                field=f"{field}[{i}]", expected="a {role, content} object", got=type_name(message)
            )
        for key in ("role", "content"):
            if key not in message:
                raise DataError(field=f"{field}[{i}].{key}", expected=f"a '{key}' key", got="none")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(field=f"{field}[{i}].role", expected=f"one of {', '.join(ROLES)}", got=repr(role))
        if not isinstance(content, str):
            raise DataError(field=f"{field}[{i}].content", expected="a string", got=type_name(content))
        messages.append({"role": role, "content": content})
    return messages


def final_assistant(rest: list[dict], field: str, offset: int) -> str:
    """The content of the one assistant message left after the prompt (at index ``offset``)."""
    if len(rest) != 1:
        raise DataError(
            field=field, expected="one final assistant message after the prompt", got=f"{len(rest)} messages"
        )
    if rest[0]["role"] != "assistant":
        raise DataError(field=f"{field}[{offset}].role", expected="'assistant'", got=repr(rest[0]["role"]))
    return rest[0]["content"]


def strip_prompt(prompt: list[dict], messages: list[dict]) -> list[dict]:
    """``messages`` without a leading copy of ``prompt`` (full conversations repeat it)."""
    return messages[len(prompt) :] if messages[: len(prompt)] == prompt else messages


def split_hh(chosen: str, rejected: str, field: str = "chosen") -> tuple[str, str, str]:
    """Split two full HH dialogues into (prompt, chosen response, rejected response).

    The prompt is the shared text up to and including the last shared ``\\n\\nAssistant:``; the
    single space that follows the marker is not part of a response. Each side must then hold
    one final assistant turn.
    """
    common = os.path.commonprefix([chosen, rejected])
    cut = common.rfind(ASSISTANT)
    if cut < 0:
        raise DataError(
            "no '\\n\\nAssistant:' turn is common to chosen and rejected",
            field=field,
            expected="full dialogues that share a prompt up to a shared turn boundary",
        )
    cut += len(ASSISTANT)
    responses = [_drop_separator(text[cut:]) for text in (chosen, rejected)]
    if any(HUMAN in r for r in responses):
        raise DataError(
            field=field,
            expected="one final assistant turn after the shared prompt",
            got="a further '\\n\\nHuman:' turn",
        )
    return chosen[:cut], responses[0], responses[1]


def split_messages(
    chosen: list[dict], rejected: list[dict], field: str = "chosen"
) -> tuple[list[dict], list[dict], list[dict]]:
    """Split two full conversations into (shared leading messages, chosen rest, rejected rest)."""
    n = 0
    limit = min(len(chosen), len(rejected)) - 1
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise DataError(
            "chosen and rejected share no leading message",
            field=field,
            expected="conversations that share their leading messages up to a shared turn boundary",
        )
    return chosen[:n], chosen[n:], rejected[n:]


def _drop_separator(response: str) -> str:
    """Remove the one space that separates ``Assistant:`` from its text."""
    return response[1:] if response.startswith(" ") else response


class Keys(NamedTuple):
    """Input column names of prompt, chosen and rejected."""

    prompt: str
    chosen: str
    rejected: str


def detect_format(row: dict, keys: Keys) -> str:
    """The format a row is in: 'conversational', 'implicit', 'hh' or 'explicit'.

    A message-list prompt with string responses (the normalized form rewardlab writes) counts
    as conversational.
    """
    chosen = _required(row, keys.chosen)
    if isinstance(chosen, list):
        return "conversational"
    if not isinstance(chosen, str):
        raise DataError(field=keys.chosen, expected=_ANY, got=type_name(chosen))
    if keys.prompt not in row:
        return "implicit"
    prompt = row[keys.prompt]
    if isinstance(prompt, list):
        return "conversational"
    return "hh" if isinstance(prompt, str) and is_hh(prompt) else "explicit"


def normalize_pair(row: dict, fmt: str, keys: Keys) -> tuple[str | list[dict], str, str]:
    """(prompt, chosen response, rejected response) of a row in format ``fmt``."""
    if fmt in ("explicit", "hh"):
        prompt, chosen, rejected = (_string(row, key, fmt) for key in keys)
        return prompt, chosen, rejected
    if fmt == "implicit" and not isinstance(row.get(keys.chosen), list):
        return split_hh(_string(row, keys.chosen, fmt), _string(row, keys.rejected, fmt), keys.chosen)
    if fmt == "implicit" or keys.prompt not in row:
        chosen = validate_messages(_required(row, keys.chosen), keys.chosen)
        rejected = validate_messages(_required(row, keys.rejected), keys.rejected)
        prompt, rest_c, rest_r = split_messages(chosen, rejected, keys.chosen)
        n = len(prompt)
        return prompt, final_assistant(rest_c, keys.chosen, n), final_assistant(rest_r, keys.rejected, n)
    raw = row[keys.prompt]
    if isinstance(raw, str):
        prompt = [{"role": "user", "content": raw}]
    else:
        prompt = validate_messages(raw, keys.prompt)
    text_ok = isinstance(raw, list)  # message-list prompt + string responses: the normalized form
    chosen = _response(row, keys.chosen, prompt, text_ok)
    return prompt, chosen, _response(row, keys.rejected, prompt, text_ok)


def _response(row: dict, key: str, prompt: list[dict], text_ok: bool) -> str:
    """The response text of ``row[key]``: a string (if ``text_ok``), or messages ending in one
    assistant message, optionally preceded by a copy of ``prompt``."""
    value = _required(row, key)
    if text_ok and isinstance(value, str):
        return value
    messages = validate_messages(value, key)
    rest = strip_prompt(prompt, messages)
    return final_assistant(rest, key, len(messages) - len(rest))


def _required(row: dict, key: str) -> Any:
    """``row[key]``, or a DataError naming the missing field, the columns found and how to map them."""
    if key not in row:
        raise DataError(missing_column_message(list(row)), field=key, expected=_ANY)
    return row[key]


def missing_column_message(found: list) -> str:
    """The columns a row has, and how to name the ones that hold prompt, chosen and rejected."""
    shown = ", ".join(str(c) for c in found[:20]) + (f", ... ({len(found)} in all)" if len(found) > 20 else "")
    return (f"missing column; the columns found are: {shown or '(none)'}. Map yours with "
            "--prompt-key/--chosen-key/--rejected-key (score, eval --data) or data.prompt_key, "
            "data.chosen_key, data.rejected_key in a run config")


def _string(row: dict, key: str, fmt: str) -> str:
    """``row[key]`` checked to be a string."""
    value = _required(row, key)
    if not isinstance(value, str):
        raise DataError(field=key, expected=f"a string (format '{fmt}')", got=type_name(value))
    return value
