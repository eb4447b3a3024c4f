"""Scorers: (prompts, completions) -> one raw score (or None) per item, for one criterion.

``scorer: {type: rule, ...}`` with exactly one check (``negate: true`` turns a check's 1/0 into 0/1):

- ``regex: PATTERN`` (``flags: [IGNORECASE, DOTALL, MULTILINE]``, ``match: search | full``,
  default search): 1 if the completion matches;
- ``contains: TEXT`` or ``[TEXT, ...]`` (``mode: any | all``, default all;
  ``case_sensitive``, default true);
- ``length: {min: N, max: N, unit: chars | words}`` (either bound optional, inclusive);
- ``json: true``: 1 if the completion (stripped, without a surrounding ```` ```json ```` fence)
  parses as JSON;
- ``function: "package.module:function"``: called as ``function(prompt=..., completion=...)``,
  returns a number in the criterion's ``range`` (a bool counts as 1/0), or None when it cannot
  score the item;
- named text checks (``NAME: true``), for rules-only rubrics whose criteria pull against each
  other (FIDELITY seed 002; ``configs/rubrics/tradeoff.yaml``), each a pure function below:
  ``no_preamble`` (the answer does not open with a filler such as "Sure," or "As an AI"),
  ``gives_reason`` (a causal connective: because, since, due to, so that, therefore, ...),
  ``number_or_entity`` (a digit, a spelled-out number, or a capitalised word that does not
  start a sentence, as a named-entity stand-in without a tagger), ``ends_cleanly`` (the last
  sentence is finished: ends in . ! or ? (optionally a closing quote or bracket), brackets
  and quotes balanced, no dangling connective before the stop).

The built-in checks give 1/0, so their range is [0, 1].

``scorer: {type: reward_model, path: DIR, map: ..., batch_size: 16}``: a reward model directory
saved by rewardlab or any plain HF 1-label sequence classifier (loaded with
``RewardModel.from_pretrained``, which reads rewardlab's rendering settings when present). Its
unbounded score s is mapped to [0, 1] by ``map``:

- ``{kind: sigmoid, center: c, scale: t}`` (the default, c = 0, t = 1): 1 / (1 + exp(−(s − c) / t)),
  the Bradley–Terry probability of beating a response scored c;
- ``{kind: minmax, low: a, high: b}``: (s − a) / (b − a); a score outside [a, b] is out of range
  (the rubric's invalid-score policy applies; it is never clipped).

``scorer: {type: judge, question: TEXT, answer: yes_no | scale_10, ...}``: an LLM asked through
the generation layer (:mod:`rewardlab.generate`; fields ``backend`` (default transformers),
``model`` (default smollm2-135m), ``cache_dir``, ``max_new_tokens`` (8), ``template`` (with
``{question}``, ``{prompt}``, ``{completion}``)); greedy decoding. ``yes_no``: an answer starting
with yes/no scores 1/0; ``scale_10``: the first integer 1..10 in the answer maps to (n − 1) / 9.
An answer that does not parse scores None and is counted in ``unparsed`` (reported by the
scoring summary and logged by RubricReward).
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.errors import ConfigError, DataError

SCORER_TYPES = ("rule", "reward_model", "judge")
NAMED_CHECKS = ("no_preamble", "gives_reason", "number_or_entity", "ends_cleanly")
RULE_CHECKS = ("regex", "contains", "length", "json", "function", *NAMED_CHECKS)
_FLAGS = {"IGNORECASE": re.IGNORECASE, "DOTALL": re.DOTALL, "MULTILINE": re.MULTILINE}
JUDGE_TEMPLATE = (
    "You are grading a response against one criterion.\n\nCriterion: {question}\n\n"
    "Prompt:\n{prompt}\n\nResponse:\n{completion}\n\n{instruction}"
)
_INSTRUCTIONS = {
    "yes_no": "Does the response meet the criterion? Answer with one word: yes or no.",
    "scale_10": "How well does the response meet the criterion, from 1 (not at all) to 10 (fully)? "
                "Answer with one number.",
}


def _bad(source: str, where: str, expected: str, got: Any = None, message: str = "") -> DataError:
    return DataError(message, file=source, field=where, expected=expected, got=None if got is None else repr(got))


def _positive_int(spec: dict, key: str, default: int, source: str, where: str) -> int:
    """``spec[key]`` as an integer >= 1 (a batch size, a token budget), else an error naming it."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(source, f"{where}.{key}", "an integer >= 1", value)
    return value


def _fields(spec: dict, allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(spec) - allowed - {"type"})
    if unknown:
        raise _bad(source, f"{where}.{unknown[0]}", "one of " + ", ".join(sorted(allowed)), message="unknown field")


def text_of(value: Any) -> str:
    """A completion or prompt as text: strings as is, chat messages as the last message's content
    (TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise DataError(expected="a string or a list of chat messages", got=type(value).__name__)


class Scorer:
    """Base class: ``score(prompts, completions)`` -> list of raw scores or None."""

    fixed_range: tuple[float, float] | None = None  # built-in scores live here

    def __init__(self) -> None:
        self.unparsed = 0  # judge answers that did not parse (cumulative)

    def score(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float | None]:
        raise NotImplementedError


# ----------------------------------------------------------------------------- rule
def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"```[A-Za-z0-9_-]*\s*\n(.*?)\n?```", text.strip(), flags=re.DOTALL)
    return m.group(1) if m else text.strip()


def is_json(text: str) -> bool:
    """Whether the text (without a surrounding code fence) is one JSON document."""
    try:
        json.loads(_strip_fence(text))
    except ValueError:
        return False
    return True


PREAMBLE = re.compile(
    r"^\W*(sure|certainly|of course|absolutely|great question|good question|okay|ok|well|hello|hi|"
    r"i'?d be (happy|glad) to|i can help|as an ai|as a language model|here'?s|here is|here are|"
    r"thanks? (you )?for (asking|the question))\b", re.IGNORECASE)
REASON = re.compile(r"\b(because|since|due to|owing to|so that|therefore|thus|hence|as a result|"
                    r"which means|the reason)\b", re.IGNORECASE)
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty "
                "fifty sixty seventy eighty ninety hundred thousand million billion first second third").split()
_NUMBER = re.compile(r"\d|\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_DANGLING = {"and", "or", "but", "the", "a", "an", "of", "to", "with", "because", "so", "which", "that", "for"}


def has_preamble(text: str) -> bool:
    """Whether the text opens with a filler before the answer ("Sure!", "As an AI, ...")."""
    return bool(PREAMBLE.match(text))


def gives_reason(text: str) -> bool:
    """Whether the text states a reason (a causal connective such as because, since, therefore)."""
    return bool(REASON.search(text))


def has_number_or_entity(text: str) -> bool:
    """A digit, a spelled-out number, or a capitalised word that does not start a sentence (a
    named-entity stand-in: "Paris", "the Nile"; the pronoun "I" does not count)."""
    if _NUMBER.search(text):
        return True
    start = True  # the next word starts a sentence
    for m in re.finditer(r"[A-Za-z][A-Za-z'’-]*|[.!?:]", text):
        tok = m.group(0)
        if tok in ".!?:":
            start = True
            continue
        if not start and tok[0].isupper() and tok not in ("I", "I'm", "I've", "I'd", "I'll"):
            return True
        start = False
    return False


def ends_cleanly(text: str) -> bool:
    """Whether the last sentence is finished: the stripped text ends in . ! or ? (a closing quote
    or bracket may follow), brackets and double quotes are balanced, and the word before the
    stop is not a dangling connective ("and.", "the.")."""
    t = text.strip()
    if not re.search(r"[.!?][\"'”’)\]]*$", t) or t.endswith("..."):
        return False
    if t.count("(") != t.count(")") or t.count("[") != t.count("]") or t.count('"') % 2:
        return False
    words = _WORD.findall(t)
    return bool(words) and words[-1].lower() not in _DANGLING


_NAMED = {"no_preamble": lambda t: not has_preamble(t), "gives_reason": gives_reason,
          "number_or_entity": has_number_or_entity, "ends_cleanly": ends_cleanly}


def length_ok(text: str, low: float | None, high: float | None, unit: str) -> bool:
    """Whether the length in chars or whitespace-separated words lies in [low, high]."""
    n = len(text) if unit == "chars" else len(text.split())
    return (low is None or n >= low) and (high is None or n <= high)


def load_callable(target: str, source: str = "<rubric>", where: str = "function"):
    """``package.module:function`` -> the function (errors name the rubric field)."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise _bad(source, where, "'package.module:function'", target)
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise _bad(source, where, "an importable module", module_name, str(err)) from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise _bad(source, where, f"a callable named {attr!r} in {module_name}", target)
    return fn


class RuleScorer(Scorer):
    """The built-in checks and named callables (see the module docstring)."""

    def __init__(self, spec: dict, source: str = "<rubric>", where: str = "scorer") -> None:
        super().__init__()
        allowed = set(RULE_CHECKS) | {"flags", "match", "mode", "case_sensitive", "negate"}
        _fields(spec, allowed, source, where)
        checks = [k for k in RULE_CHECKS if k in spec]
        if len(checks) != 1:
            raise _bad(source, where, "exactly one check of " + ", ".join(RULE_CHECKS), checks or None)
        self.check = checks[0]
        self.negate = bool(spec.get("negate", False))
        value = spec[self.check]
        self.fn = None
        if self.check == "regex":
            flags = spec.get("flags", [])
            if not isinstance(flags, list) or any(f not in _FLAGS for f in flags):
                raise _bad(source, f"{where}.flags", "a list of " + ", ".join(_FLAGS), flags)
            match = spec.get("match", "search")
            if match not in ("search", "full"):
                raise _bad(source, f"{where}.match", "search or full", match)
            try:
                self.pattern = re.compile(value, sum(_FLAGS[f] for f in flags))
            except (re.error, TypeError) as err:
                raise _bad(source, f"{where}.regex", "a valid regular expression", value, str(err)) from err
            self.full = match == "full"
        elif self.check == "contains":
            needles = [value] if isinstance(value, str) else value
            if not isinstance(needles, list) or not needles or not all(isinstance(n, str) and n for n in needles):
                raise _bad(source, f"{where}.contains", "a non-empty string or list of strings", value)
            mode = spec.get("mode", "all")
            if mode not in ("any", "all"):
                raise _bad(source, f"{where}.mode", "any or all", mode)
            self.case = bool(spec.get("case_sensitive", True))
            self.needles = needles if self.case else [n.lower() for n in needles]
            self.any = mode == "any"
        elif self.check == "length":
            if not isinstance(value, dict) or not ({"min", "max"} & set(value)) or set(value) - {"min", "max", "unit"}:
                raise _bad(source, f"{where}.length", "{min: N, max: N, unit: chars | words}", value)
            bounds = {}
            for k in ("min", "max"):
                v = value.get(k)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                    raise _bad(source, f"{where}.length.{k}", "a number >= 0", v)
                bounds[k] = v
            self.bounds = (bounds["min"], bounds["max"])
            self.unit = value.get("unit", "chars")
            if self.unit not in ("chars", "words"):
                raise _bad(source, f"{where}.length.unit", "chars or words", self.unit)
        elif self.check in ("json", *NAMED_CHECKS):
            if value is not True:
                raise _bad(source, f"{where}.{self.check}", "true", value)
        else:
            self.fn = load_callable(value, source, f"{where}.function")
        if self.fn is None:
            self.fixed_range = (0.0, 1.0)
        elif self.negate:
            raise _bad(source, f"{where}.negate", "no negate with function (negate inside the function)", True)

    def _check(self, text: str) -> bool:
        if self.check == "regex":
            return bool(self.pattern.fullmatch(text) if self.full else self.pattern.search(text))
        if self.check == "contains":
            hay = text if self.case else text.lower()
            hits = (n in hay for n in self.needles)
            return any(hits) if self.any else all(hits)
        if self.check == "length":
            return length_ok(text, *self.bounds, self.unit)
        if self.check in _NAMED:
            return _NAMED[self.check](text)
        return is_json(text)

    def score(self, prompts, completions):
        if self.fn is not None:
            out = []
            for p, c in zip(prompts, completions):
                v = self.fn(prompt=p, completion=text_of(c))
                out.append(float(v) if isinstance(v, bool) else v)
            return out
        return [float(self._check(text_of(c)) != self.negate) for c in completions]


# ----------------------------------------------------------------------------- reward model
def map_score(s: float, spec: dict) -> float:
    """A reward model's score mapped to [0, 1] (minmax may leave it: the caller checks)."""
    if spec["kind"] == "sigmoid":
        z = (s - spec.get("center", 0.0)) / spec.get("scale", 1.0)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return (s - spec["low"]) / (spec["high"] - spec["low"])


class RewardModelScorer(Scorer):
    """A saved reward model's score mapped to [0, 1]; the model is loaded on first use."""

    fixed_range = (0.0, 1.0)

    def __init__(self, spec: dict, source: str = "<rubric>", where: str = "scorer") -> None:
        super().__init__()
        _fields(spec, {"path", "map", "batch_size"}, source, where)
        path = spec.get("path")
        if not isinstance(path, str):
            raise _bad(source, f"{where}.path", "a reward model directory", path, "missing field" if path is None else "")
        resolved = Path(path)
        if not resolved.is_absolute() and not resolved.exists():  # relative to the rubric file
            resolved = Path(source).parent / path
        if not ((resolved / "config.json").is_file() or (resolved / "ensemble.json").is_file()):
            raise _bad(source, f"{where}.path", "a directory with config.json (a saved reward model) or "
                       "ensemble.json (an ensemble)", path)
        self.path = resolved
        m = spec.get("map", {"kind": "sigmoid"})
        if not isinstance(m, dict) or m.get("kind") not in ("sigmoid", "minmax"):
            raise _bad(source, f"{where}.map", "{kind: sigmoid, center, scale} or {kind: minmax, low, high}", m)
        keys = {"sigmoid": {"kind", "center", "scale"}, "minmax": {"kind", "low", "high"}}[m["kind"]]
        if set(m) - keys:
            raise _bad(source, f"{where}.map.{sorted(set(m) - keys)[0]}", "one of " + ", ".join(sorted(keys)),
                       message="unknown field")
        for k in keys - {"kind"}:
            if k in m and (isinstance(m[k], bool) or not isinstance(m[k], (int, float))):
                raise _bad(source, f"{where}.map.{k}", "a number", m[k])
        if m["kind"] == "sigmoid" and m.get("scale", 1.0) <= 0:
            raise _bad(source, f"{where}.map.scale", "a scale > 0", m.get("scale"))
        if m["kind"] == "minmax" and not ("low" in m and "high" in m and m["low"] < m["high"]):
            raise _bad(source, f"{where}.map", "low < high", m)
        self.map = dict(m)
        self.batch_size = _positive_int(spec, "batch_size", 16, source, where)
        self.model = None
        self.last_spread = None  # an ensemble's member spread per item of the last call (RubricReward logs it)

    def score(self, prompts, completions):
        if self.model is None:
            from rewardlab.models.ensemble import is_ensemble_dir, load_ensemble
            from rewardlab.models.reward_model import RewardModel

            self.model = load_ensemble(self.path) if is_ensemble_dir(self.path) else RewardModel.from_pretrained(self.path)
        texts = [text_of(c) for c in completions]
        if getattr(self.model, "is_ensemble", False):
            s = self.model.score_members(list(prompts), texts, batch_size=self.batch_size)
            raw, self.last_spread = s.reward, s.spread
        else:
            raw = self.model.score(list(prompts), texts, batch_size=self.batch_size)
        return [map_score(float(s), self.map) for s in raw]


# ----------------------------------------------------------------------------- judge
def parse_judge_answer(text: str, answer: str) -> float | None:
    """A judge's answer as a score in [0, 1], or None when it does not parse."""
    if answer == "yes_no":
        m = re.match(r"\W*(yes|no)\b", text, flags=re.IGNORECASE)
        return None if m is None else float(m.group(1).lower() == "yes")
    m = re.search(r"(?<![\d.])(\d+)(?![\d.])", text)
    if m is None or not 1 <= int(m.group(1)) <= 10:
        return None
    return (int(m.group(1)) - 1) / 9


class JudgeScorer(Scorer):
    """An LLM judge through :mod:`rewardlab.generate` (see the module docstring)."""

    fixed_range = (0.0, 1.0)

    def __init__(self, spec: dict, source: str = "<rubric>", where: str = "scorer", generator=None) -> None:
        super().__init__()
        _fields(spec, {"question", "answer", "backend", "model", "cache_dir", "max_new_tokens", "template"},
                source, where)
        if not isinstance(spec.get("question"), str) or not spec["question"].strip():
            raise _bad(source, f"{where}.question", "the criterion as a question (a string)", spec.get("question"))
        self.question = spec["question"]
        self.answer = spec.get("answer", "yes_no")
        if self.answer not in _INSTRUCTIONS:
            raise _bad(source, f"{where}.answer", "yes_no or scale_10", self.answer)
        self.template = spec.get("template", JUDGE_TEMPLATE)
        try:
            self.template.format(question="", prompt="", completion="", instruction="")
        except (KeyError, IndexError, AttributeError) as err:
            raise _bad(source, f"{where}.template", "placeholders among {question} {prompt} {completion} "
                       "{instruction}", self.template) from err
        self.max_new_tokens = _positive_int(spec, "max_new_tokens", 8, source, where)
        self.backend = spec.get("backend", "transformers")
        self.model_name = spec.get("model", "smollm2-135m")
        self.cache_dir = spec.get("cache_dir")
        self.generator = generator

    def _generator(self):
        if self.generator is None:
            try:
                from rewardlab.generate import make_generator
            except ImportError as err:
                raise ConfigError("judge scorers need rewardlab.generate (the generation layer)") from err
            self.generator = make_generator(self.backend, self.model_name, cache_dir=self.cache_dir)
        return self.generator

    def requests(self, prompts, completions) -> list:
        from rewardlab.generate import GenerationRequest

        out = []
        for p, c in zip(prompts, completions):
            content = self.template.format(question=self.question, prompt=text_of(p), completion=text_of(c),
                                           instruction=_INSTRUCTIONS[self.answer])
            out.append(GenerationRequest(messages=[{"role": "user", "content": content}]))
        return out

    def score(self, prompts, completions):
        texts = self._generator().generate(self.requests(prompts, completions), n=1,
                                           max_new_tokens=self.max_new_tokens, temperature=0.0)
        scores = [parse_judge_answer(t[0], self.answer) for t in texts]
        self.unparsed += sum(s is None for s in scores)
        return scores


def build_scorer(spec: Any, *, source: str = "<rubric>", where: str = "scorer", generator=None) -> Scorer:
    """A scorer from its rubric spec (errors name the rubric file and field)."""
    if not isinstance(spec, dict):
        raise _bad(source, where, "a mapping {type: rule | reward_model | judge, ...}", type(spec).__name__)
    kind = spec.get("type")
    if kind not in SCORER_TYPES:
        raise _bad(source, f"{where}.type", "one of " + ", ".join(SCORER_TYPES), kind,
                   "missing field" if kind is None else "unknown scorer")
    if kind == "rule":
        return RuleScorer(spec, source, where)
    if kind == "reward_model":
        return RewardModelScorer(spec, source, where)
    return JudgeScorer(spec, source, where, generator=generator)
