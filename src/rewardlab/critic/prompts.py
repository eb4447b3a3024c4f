"""The critique prompts: one place for the words a critic model reads.

Two layouts use them (METHODS §5; the layout follows CLoud, zankner/CLoud):

- **Generation by an instruction-tuned LLM** (``rewardlab critique``): one user turn built from a
  template holding ``{prompt}`` and ``{response}``; the model answers with a critique that ends
  with ``Score: N`` (1-10).
- **The joint Critic-RM** (training and critique-averaged scoring): the conversation
  ``[user: prompt] [assistant: response] [user: CRITIQUE_ASK] [assistant: critique]``; the language
  model head learns the critique tokens, the reward head reads the last token of the whole.

The wording is a reconstruction (the paper does not publish its prompts); both are configurable.
"""

from __future__ import annotations

from rewardlab.errors import ConfigError
from rewardlab.data.chat import to_messages
from rewardlab.models.inputs import prompt_as_text

DEFAULT_CRITIQUE_TEMPLATE = (
    "Below are a user's request and an AI assistant's response.\n\n"
    "[Request]\n{prompt}\n\n"
    "[Response]\n{response}\n\n"
    "Write a short critique of the response. Is it correct, helpful and harmless? Name its specific "
    "strengths and problems. End with a last line of the form 'Score: N', where N is an integer from "
    "1 (very bad) to 10 (excellent)."
)

CRITIQUE_ASK = (
    "Critique the response above: is it correct, helpful and harmless? Name its specific strengths and "
    "problems. End with a last line of the form 'Score: N', where N is an integer from 1 (very bad) to "
    "10 (excellent)."
)


def check_template(template: str, origin: str = "critique template") -> str:
    """A critique template must hold ``{prompt}`` and ``{response}`` (and no other field)."""
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:  # a stray brace: "Single '{' encountered in format string"
        raise ConfigError(f"{origin}: not a valid template ({e}); write {{{{ and }}}} for literal braces, "
                          "{prompt} and {response} for the fields") from None
    missing = [f for f in ("prompt", "response") if f not in fields]
    if missing:
        raise ConfigError(f"{origin}: the template has no {' and no '.join('{' + f + '}' for f in missing)} "
                          "placeholder; it must contain both {prompt} and {response}")
    extra = sorted(fields - {"prompt", "response"})
    if extra:
        raise ConfigError(f"{origin}: unknown placeholder(s) {', '.join('{' + f + '}' for f in extra)}; "
                          "only {prompt} and {response} are filled (write {{ and }} for literal braces)")
    return template


def critique_request(prompt, response: str, template: str = DEFAULT_CRITIQUE_TEMPLATE) -> list[dict]:
    """Chat messages asking an instruction-tuned LLM for a critique of ``response`` to ``prompt``."""
    return [{"role": "user", "content": template.format(prompt=prompt_as_text(prompt), response=response)}]


def joint_messages(prompt, response: str, critique: str | None = None, ask: str = CRITIQUE_ASK) -> list[dict]:
    """The joint Critic-RM conversation; without ``critique`` it ends at the critique request
    (render it with ``add_generation_prompt=True`` to let the model write the critique)."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
    messages += [{"role": "assistant", "content": response}, {"role": "user", "content": ask}]
    if critique is not None:
        messages.append({"role": "assistant", "content": critique})
    return messages


# Refinement (METHODS §5 step 3; a reconstruction, the paper does not publish its prompts).
RANK_TEMPLATE = (
    "Below are a user's request, an AI assistant's response, and a critique of that response.\n\n"
    "[Request]\n{prompt}\n\n"
    "[Response]\n{response}\n\n"
    "[Critique]\n{critique}\n\n"
    "How good is this critique: is it accurate, specific and useful? End with a last line of the form "
    "'Score: N', where N is an integer from 1 (useless) to 10 (excellent)."
)

SUMM_TEMPLATE = (
    "Below are a user's request, an AI assistant's response, and several critiques of that response.\n\n"
    "[Request]\n{prompt}\n\n"
    "[Response]\n{response}\n\n"
    "{critiques}\n\n"
    "Combine these critiques into one short critique that keeps their accurate points. End with a last "
    "line of the form 'Score: N', where N is an integer from 1 (very bad) to 10 (excellent)."
)


def rank_request(prompt, response: str, critique: str, template: str = RANK_TEMPLATE) -> list[dict]:
    """Chat messages asking the generator, as meta-judge, to score one critique."""
    return [{"role": "user", "content": template.format(prompt=prompt_as_text(prompt), response=response,
                                                        critique=critique)}]


def summ_request(prompt, response: str, critiques: list[str], template: str = SUMM_TEMPLATE) -> list[dict]:
    """Chat messages asking the generator to condense several critiques into one."""
    block = "\n\n".join(f"[Critique {i}]\n{c}" for i, c in enumerate(critiques, 1))
    return [{"role": "user", "content": template.format(prompt=prompt_as_text(prompt), response=response,
                                                        critiques=block)}]

# The score follow-up: small models often ramble past max_new_tokens without a score line. The
# critique is continued as the assistant's own text with SCORE_PREFIX, and the number the model
# writes next is the score (``rewardlab critique --score-followup``; a reconstruction). An extra
# user turn asking for 'Score: N' did not work with SmolLM2-135M (it copied 'N' or repeated itself).
SCORE_PREFIX = "\n\nOverall, I give the response a score of"


def score_followup_request(prompt, response: str, critique: str, template: str = DEFAULT_CRITIQUE_TEMPLATE,
                           prefix: str = SCORE_PREFIX) -> list[dict]:
    """The critique conversation with the critique continued by ``prefix`` (a trailing assistant
    message: generators continue it)."""
    return critique_request(prompt, response, template) + [{"role": "assistant", "content": critique.rstrip() + prefix}]


def prompt_messages(prompt) -> list[dict]:
    """A prompt as chat messages, as RewardModel renders it (an HH dialogue string is parsed into
    turns, any other string is one user message), so both kinds of model read the same conversation."""
    return to_messages(prompt, "")[:-1]
