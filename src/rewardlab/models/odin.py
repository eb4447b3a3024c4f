"""ODIN's two heads on a RewardModel (docs/robust.md): which layer is the quality head, the length
head beside it, response lengths in tokens, and the length head's file beside an exported model.

The quality head is the model's own reward head (``score`` for decoders, ``classifier`` for
encoders), so the exported model scores with it alone in plain transformers. The length head is an
``nn.Linear(d, 1)`` on the same pooled representation h; it is saved as
``odin_length_head.safetensors`` (``weight`` [1, d], ``bias`` [1]) beside the model and read back
with :func:`load_length_head`; :func:`length_rewards` scores with it (:func:`length_head_rewards` on
features already computed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardlab.errors import ConfigError

LENGTH_HEAD_FILE = "odin_length_head.safetensors"
ODIN_INFO_FILE = "odin.json"
ATTRIBUTE = "odin_length_head"  # the length head's name on a RewardModel (checkpoints hold it there)


def quality_head(model) -> nn.Linear:
    """The ``nn.Linear`` that turns h into the model's reward (a peft ``modules_to_save`` copy when
    LoRA trains it). ODIN needs the reward to be one linear map of h: a pooling or model where it is
    not (``native``: the model's own head, possibly several layers) is refused, naming the field."""
    pooling = model.settings.pooling
    hf = model.model
    if pooling == "native":
        raise ConfigError("odin: model.pooling 'native' reads the model's own head, which need not be one linear "
                          "map of h; ODIN needs two linear heads on h: use model.pooling last (decoders), cls or mean")
    head = hf.score if pooling == "last" else getattr(hf, "classifier", None)
    head = _active(head)
    if not isinstance(head, nn.Linear) or head.out_features != 1:
        raise ConfigError(f"odin: model.name_or_path {model.settings.base_model!r}: its reward head is "
                          f"{type(head).__name__}, not a linear layer with one output, so it cannot carry a "
                          "second head beside it")
    return head


def _active(head):
    """The module a peft ``ModulesToSaveWrapper`` runs (its trained copy), or ``head`` itself."""
    copies = getattr(head, "modules_to_save", None)
    if copies is None:
        return head
    if getattr(head, "disable_adapters", False):
        return head.original_module
    return copies[head.active_adapters[0]]


def add_length_head(model) -> nn.Linear:
    """Put a fresh length head on ``model`` (as the model's own head is initialised: N(0, σ) with the
    config's ``initializer_range``, zero bias), of the quality head's dtype and device."""
    q = quality_head(model)
    std = float(getattr(model.model.config.get_text_config(), "initializer_range", 0.02))
    head = nn.Linear(q.in_features, 1, dtype=q.weight.dtype, device=q.weight.device)
    with torch.no_grad():
        head.weight.normal_(0.0, std)
        head.bias.zero_()
    setattr(model, ATTRIBUTE, head)  # a registered submodule: checkpoints, DDP and .to() see it
    return head


def response_text(response: Any) -> str:
    """A response as text: a string, or the contents of a list of messages."""
    if isinstance(response, str):
        return response
    return "".join(str(m.get("content", "")) for m in response if isinstance(m, dict))


def response_token_lengths(tokenizer, responses) -> np.ndarray:
    """Each response's length in the model's tokens (no special tokens, before any truncation)."""
    texts = [response_text(r) for r in responses]
    if not texts:
        return np.zeros(0, dtype=np.float64)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.asarray([len(x) for x in ids], dtype=np.float64)


def save_length_head(head: nn.Linear, directory: str | Path, info: dict) -> dict:
    """Write the length head (and ``odin.json``, what it is) beside an exported model."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"weight": head.weight.detach().float().cpu().contiguous(),
               "bias": head.bias.detach().float().cpu().contiguous()}, str(directory / LENGTH_HEAD_FILE))
    meta = {"length_head": LENGTH_HEAD_FILE, "reads": "h, the pooled representation the reward head reads "
            "(rewardlab RewardModel features)", "length_unit": "response tokens", **info}
    (directory / ODIN_INFO_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_length_head(directory: str | Path) -> nn.Linear:
    """The length head saved beside a model by an ODIN run, as an ``nn.Linear(d, 1)``."""
    from safetensors.torch import load_file

    path = Path(directory) / LENGTH_HEAD_FILE
    if not path.is_file():
        raise ConfigError(f"{directory}: no {LENGTH_HEAD_FILE} (not an ODIN run's model)")
    state = load_file(str(path))
    head = nn.Linear(state["weight"].shape[1], 1)
    head.load_state_dict(state)
    return head.eval()


@torch.no_grad()
def length_head_rewards(head: nn.Linear, features) -> np.ndarray:
    """r_L from features already computed (``score(..., return_features=True)``'s second output)."""
    return head(torch.as_tensor(np.asarray(features), dtype=head.weight.dtype)).squeeze(-1).double().numpy()


def length_rewards(model, head: nn.Linear, prompts, responses, *, batch_size: int = 16) -> np.ndarray:
    """r_L of each (prompt, response): the length head on the features the model's reward reads."""
    _, feats = model.score(prompts, responses, batch_size=batch_size, return_features=True)
    return length_head_rewards(head, feats)
