"""Multi-attribute reward models as plain Hugging Face sequence classifiers (issue 24).

An export is an ``AutoModelForSequenceClassification`` with ``num_labels = K`` whose
``id2label`` are the attribute names: its logits *are* the attribute scores. Stage 1 on frozen
embeddings (``rewardlab.heads.attributes``: a ridge per attribute on the pooled vector) becomes
the classifier layer itself, so plain transformers reproduces the scores exactly where the
embedding's pooling is the classifier's own input (encoders with a pooler and ``cls`` pooling;
decoders with ``last`` pooling).

The stage-2 gating is saved beside it as ``gating.safetensors`` (``layer.{i}.weight``/``bias``:
the gating MLP with the prompt standardisation folded into the first layer and the softmax
temperature into the last; ``mask``, ``decorrelation``, ``scale``) and ``gating.json``
(``verbosity_index``, names). :func:`gated_reward` is the whole computation in plain torch, the
same lines docs/attributes.md gives for users without rewardlab:

    x = h_prompt
    for i in range(L): x = x @ W_i.T + b_i; x = relu(x) if i < L - 1 else x
    w = softmax(x masked to -inf where mask == 0)
    reward = scale * sum_k w_k * (scores_k - decorrelation_k * scores_v)

``h_prompt`` is the pooled vector of the prompt alone: rewardlab encodes the pair (prompt, ""),
which for a BERT tokenizer is ``[CLS] prompt [SEP]``, what ``tokenizer(prompt)`` gives (a batch
call ``tokenizer(prompts, [""] * n)`` adds a second ``[SEP]``: do not use it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rewardlab.errors import ConfigError
from rewardlab.models.gating import GATING_FILE, GATING_JSON, fold_gating
from rewardlab.models.reward_model import RewardModel


def export_attribute_model(
    backbone: str,
    names: Sequence[str] | None,
    coef: np.ndarray,
    intercept: np.ndarray,
    directory: str | Path,
    *,
    gating: Mapping[str, Tensor] | None = None,
    temperature: float = 1.0,
    verbosity: str | None = None,
    pooling: str = "auto",
    max_length: int = 512,
    render: str = "auto",
) -> Path:
    """Write a K-label sequence classifier whose logits are ``h @ coef.T + intercept`` (the
    stage-1 scores on the backbone's pooled vector h), with the gating beside it when given.
    ``names=None`` writes a plain one-reward model (``coef [1, d]``: a linear head on frozen
    embeddings, e.g. :meth:`rewardlab.heads.mlp.FittedHead.linear_map`)."""
    plain = names is None
    names = ("reward",) if plain else tuple(names)
    if plain and gating is not None:
        raise ConfigError("a gating mixes named attributes: give their names")
    coef, intercept = np.asarray(coef, dtype=np.float32), np.asarray(intercept, dtype=np.float32)
    k = len(names)
    if len(set(names)) != k or coef.ndim != 2 or coef.shape[0] != k or intercept.shape != (k,):
        raise ConfigError(f"{k} distinct names, coef [K, d] and intercept [K] must agree, got "
                          f"{coef.shape} and {intercept.shape}")
    rm = RewardModel.from_backbone(backbone, pooling=pooling, max_length=max_length, render=render,
                                   num_labels=k)
    head = getattr(rm.model, "classifier", None) if rm.settings.pooling != "last" else getattr(rm.model, "score", None)
    if rm.settings.pooling not in ("cls", "last") or not isinstance(head, torch.nn.Linear):
        raise ConfigError(f"{backbone}: exports need cls pooling on an encoder with a linear classifier "
                          f"or last-token pooling on a decoder (got pooling {rm.settings.pooling!r})")
    if coef.shape[1] != head.in_features:
        raise ConfigError(f"coef has {coef.shape[1]} columns but {backbone}'s pooled vector has {head.in_features}")
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(coef))
        if head.bias is None:
            if np.any(intercept != 0):
                raise ConfigError(f"{backbone}'s score layer has no bias; the intercepts cannot be exported")
        else:
            head.bias.copy_(torch.from_numpy(intercept))
    if not plain:
        rm.settings.attributes = {"names": list(names), "gating": GATING_FILE if gating is not None else None,
                                  "verbosity": verbosity}
    out = rm.save_pretrained(directory)
    if gating is not None:
        from safetensors.torch import save_file

        folded = fold_gating(gating, temperature)
        if folded["mask"].numel() != k:
            raise ConfigError(f"the gating mixes {folded['mask'].numel()} attributes, the model has {k}")
        save_file(folded, str(out / GATING_FILE))
        v = names.index(verbosity) if verbosity is not None else 0
        (out / GATING_JSON).write_text(json.dumps({"names": list(names), "verbosity": verbosity,
                                                   "verbosity_index": v}, indent=2) + "\n")
    return out
