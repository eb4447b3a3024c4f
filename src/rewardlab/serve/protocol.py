"""Request parsing of the reward server: pure functions from a decoded JSON body to the items to
score, raising :class:`RequestError` naming the offending field.

Three protocols (METHODS.md §9):

- ``/get_reward`` (OpenRLHF's remote reward model): ``{"query": [str], "prompts"?, "labels"?}``;
  each query is a full prompt+response text (:class:`TextItem`). ``prompts`` and ``labels`` are
  checked (lists as long as ``query``) but not used: they serve rule-based reward functions.
- ``/classify`` (the subset of vLLM's classify API that verl calls): ``{"model"?, "input": str |
  [str]}`` (texts) or ``{"model"?, "messages": [{role, content}, ...]}`` (one conversation ending
  with the assistant's response); ``use_activation`` (default false: raw rewards; true: sigmoid)
  and ``truncate_prompt_tokens`` are honoured, other vLLM fields are ignored.
- ``/score`` (rewardlab's own): ``{"items": [{"prompt": str | messages, "response": str} |
  {"messages": [...]}]}``, rendered exactly as ``rewardlab score`` renders a pair
  (:class:`PairItem`); either form may add TRL's ``tools`` and ``chat_template_kwargs``, which
  reach the chat template as a data row's do. Unknown keys are errors here (a misspelt
  ``respone`` must not pass).

Hand-written rather than pydantic models: the protocols take unions (a string or a list of
strings, a prompt string or a message list) and every error must name the exact element
(``items[3].messages[1].role``) in the project's DataError form; ``validate_messages`` from
``data.chat`` is reused so a message list is checked the same way as in data files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field as dc_field

from rewardlab.data.chat import TEMPLATE_COLUMNS, template_kwargs, type_name, validate_messages
from rewardlab.errors import DataError, RewardlabError

MAX_INT_DIGITS = 40  # an integer of more digits in a request is kept as LongInteger (no 5,000-digit ints)


@dataclass(frozen=True)
class Limits:
    """What one request may hold. ``max_chars`` bounds each text (query, input, prompt, response,
    message content); the model's own ``max_length`` then truncates tokens as ``rewardlab score``
    does."""

    max_items: int = 256
    max_chars: int = 100_000
    max_body_bytes: int = 8 * 2**20


class RequestError(RewardlabError):
    """A request the server refuses: HTTP ``status``, an error ``kind`` (counted in the metrics)
    and the ``field`` it concerns."""

    def __init__(self, status: int, kind: str, field: str | None, message: str):
        self.status, self.kind, self.field, self.message = status, kind, field, message
        super().__init__(f"field '{field}': {message}" if field else message)

    def to_json(self) -> dict:
        return {"error": {"type": self.kind, "field": self.field, "message": str(self), "code": self.status}}


def invalid(field: str, expected: str, got: object | None = None, *, kind: str = "invalid_field",
            status: int = 400) -> RequestError:
    detail = f"expected {expected}" + (f", got {got}" if got is not None else "")
    return RequestError(status, kind, field, detail)


class LongInteger:
    """An integer literal of more than ``MAX_INT_DIGITS`` digits in a request body, kept as its
    digit count: no field takes one, so the field check names it (``truncate_prompt_tokens``:
    expected a positive integer, got an integer of 5001 digits) instead of Python refusing to
    convert it (a ValueError that was a 500)."""

    display_name = "integer too long"

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


def _parse_int(text: str) -> int | LongInteger:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else LongInteger(digits)


def decode_body(raw: bytes) -> object:
    """The JSON document of a request body; anything that is not one (bad bytes, bad syntax,
    nesting too deep for the decoder) is a 400 on field ``body``."""
    try:
        return json.loads(raw, parse_int=_parse_int)
    except RecursionError:
        raise RequestError(400, "malformed_json", "body", "expected a JSON document nested less deeply "
                           "(the decoder's recursion limit was reached)") from None
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise RequestError(400, "malformed_json", "body", f"expected a JSON document ({e})") from None


@dataclass(frozen=True)
class TextItem:
    """A full rendered text (prompt and response together); ``field`` names it in errors."""

    text: str
    field: str = dc_field(default="", compare=False)


@dataclass(frozen=True)
class PairItem:
    """A (prompt, response) pair; the prompt is a string or a list of {role, content} messages;
    ``field`` names the item in errors."""

    prompt: str | list[dict]
    response: str
    field: str = dc_field(default="", compare=False)
    template: dict | None = None  # the chat template's further arguments: tools, chat_template_kwargs


@dataclass(frozen=True)
class ClassifyRequest:
    items: list[TextItem | PairItem]
    model: str | None
    use_activation: bool
    truncate_prompt_tokens: int | None


# ------------------------------------------------------------------ field checks
def _object(body: object, field: str = "body") -> dict:
    if not isinstance(body, dict):
        raise invalid(field, "a JSON object", type_name(body))
    return body


def _text(value: object, field: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise invalid(field, "a string", type_name(value))
    if len(value) > limits.max_chars:
        raise invalid(field, f"at most {limits.max_chars} characters", f"{len(value)}", kind="text_too_long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate ("\ud800"): JSON allows it, no tokenizer takes it
        raise invalid(field, "valid Unicode text", f"a lone surrogate {value[e.start]!r} at character {e.start}") from None
    return value


def _list(value: object, field: str, limits: Limits) -> list:
    if not isinstance(value, list):
        raise invalid(field, "a list", type_name(value))
    if not value:
        raise invalid(field, "a non-empty list", "an empty list")
    if len(value) > limits.max_items:
        raise invalid(field, f"at most {limits.max_items} items", f"{len(value)}", kind="too_many_items")
    return value


def _required(body: dict, key: str, field: str | None = None) -> object:
    if key not in body:
        raise invalid(field or key, f"a '{key}' key", "none")
    return body[key]


def _messages(value: object, field: str, limits: Limits) -> list[dict]:
    try:
        messages = validate_messages(value, field)
    except DataError as e:
        raise invalid(e.field or field, e.expected or "a list of {role, content} messages", e.got) from None
    for i, m in enumerate(messages):
        _text(m["content"], f"{field}[{i}].content", limits)
    return messages


def _conversation(value: object, field: str, limits: Limits) -> PairItem:
    """A conversation whose last message is the assistant's response to score."""
    messages = _messages(value, field, limits)
    if len(messages) < 2:
        raise invalid(field, "a prompt message and a final assistant message", f"{len(messages)} message")
    if messages[-1]["role"] != "assistant":
        raise invalid(f"{field}[{len(messages) - 1}].role", "'assistant' (the response to score)",
                      repr(messages[-1]["role"]))
    return PairItem(messages[:-1], messages[-1]["content"], field)


def _unknown_keys(obj: dict, allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        field = f"{where}.{extra[0]}" if where else extra[0]
        raise invalid(field, f"only the keys {', '.join(allowed)}", f"unknown key {extra[0]!r}")


# ------------------------------------------------------------------ endpoints
def parse_get_reward(body: object, limits: Limits) -> list[TextItem]:
    """OpenRLHF's ``/get_reward``: one :class:`TextItem` per query."""
    body = _object(body)
    queries = _list(_required(body, "query"), "query", limits)
    items = [TextItem(_text(q, f"query[{i}]", limits), f"query[{i}]") for i, q in enumerate(queries)]
    for key in ("prompts", "labels"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise invalid(key, "a list", type_name(value))
        if len(value) != len(queries):
            raise invalid(key, f"one entry per query ({len(queries)})", f"{len(value)}")
    return items


def parse_classify(body: object, limits: Limits) -> ClassifyRequest:
    """vLLM's classify request: ``input`` (a string or a list of strings) or ``messages``."""
    body = _object(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("model", "a string", type_name(model))
    has_input, has_messages = "input" in body, "messages" in body
    if has_input == has_messages:
        raise invalid("input", "exactly one of 'input' and 'messages'",
                      "both" if has_input else "neither")
    if has_messages:
        items: list[TextItem | PairItem] = [_conversation(body["messages"], "messages", limits)]
    else:
        value = body["input"]
        if isinstance(value, str):
            items = [TextItem(_text(value, "input", limits), "input")]
        else:
            values = _list(value, "input", limits)
            if any(isinstance(v, (int, list, LongInteger)) for v in values):
                raise invalid("input", "text (token-id inputs are not supported)", "token ids")
            items = [TextItem(_text(v, f"input[{i}]", limits), f"input[{i}]") for i, v in enumerate(values)]
    use_activation = body.get("use_activation")
    if use_activation is None:
        use_activation = False
    elif not isinstance(use_activation, bool):
        raise invalid("use_activation", "true or false", type_name(use_activation))
    truncate = body.get("truncate_prompt_tokens")
    if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, int) or truncate == 0
                                 or truncate < -1):
        raise invalid("truncate_prompt_tokens", "a positive integer (or -1: the model's max length)",
                      repr(truncate))
    if truncate == -1:
        truncate = None
    return ClassifyRequest(items, model, use_activation, truncate)


def _template(obj: dict, field: str) -> dict | None:
    """An item's ``tools`` and ``chat_template_kwargs`` checked as in data files (errors name the
    element, e.g. ``items[2].tools[0]``), as ``apply_chat_template`` arguments (TRL's rule)."""
    try:
        return template_kwargs(obj.get("tools"), obj.get("chat_template_kwargs"))
    except DataError as e:
        raise invalid(f"{field}.{e.field}", e.expected or "a valid value", e.got) from None


def parse_score(body: object, limits: Limits) -> list[PairItem]:
    """rewardlab's ``/score``: ``{"items": [{"prompt", "response"} | {"messages"}]}``, each with
    optional ``tools`` and ``chat_template_kwargs``."""
    body = _object(body)
    _unknown_keys(body, ("items",), "")
    values = _list(_required(body, "items"), "items", limits)
    items = []
    for i, value in enumerate(values):
        field = f"items[{i}]"
        obj = _object(value, field)
        if "messages" in obj:
            _unknown_keys(obj, ("messages", *TEMPLATE_COLUMNS), field)
            pair = _conversation(obj["messages"], f"{field}.messages", limits)
            items.append(PairItem(pair.prompt, pair.response, pair.field, _template(obj, field)))
            continue
        _unknown_keys(obj, ("prompt", "response", *TEMPLATE_COLUMNS), field)
        prompt = _required(obj, "prompt", f"{field}.prompt")
        if isinstance(prompt, list):
            prompt = _messages(prompt, f"{field}.prompt", limits)
        else:
            prompt = _text(prompt, f"{field}.prompt", limits)
        response = _text(_required(obj, "response", f"{field}.response"), f"{field}.response", limits)
        items.append(PairItem(prompt, response, field, _template(obj, field)))
    return items
