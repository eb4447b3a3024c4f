"""The gating of a multi-attribute export in plain torch: the tensors' export form
(``fold_gating``), the gated scalar (``gated_reward``) and reading them back (``load_gating``).
See ``rewardlab.models.attributes`` for the export and docs/attributes.md for the lines a user
without rewardlab runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from rewardlab.errors import ConfigError

GATING_FILE = "gating.safetensors"
GATING_JSON = "gating.json"


def fold_gating(tensors: Mapping[str, Tensor], temperature: float = 1.0) -> dict[str, Tensor]:
    """The tensors of a fitted gating (``FittedGating.tensors()``) in export form: linear layers
    ``layer.{i}.*`` with (h − mean)/std folded into layer 0 and 1/temperature into the last."""
    weights = sorted((k for k in tensors if k.startswith("net.") and k.endswith(".weight")),
                     key=lambda k: int(k.split(".")[1]))
    if not weights:
        raise ConfigError("gating tensors hold no layer (net.N.weight)")
    mean, std = tensors["prompt_mean"].double(), tensors["prompt_std"].double()
    out: dict[str, Tensor] = {}
    for i, key in enumerate(weights):
        w = tensors[key].double()
        b = tensors[key.replace(".weight", ".bias")].double()
        if i == 0:  # W (h − μ)/σ + b = (W/σ) h + (b − W μ/σ)
            b = b - w @ (mean / std)
            w = w / std
        if i == len(weights) - 1:
            w, b = w / temperature, b / temperature
        out[f"layer.{i}.weight"], out[f"layer.{i}.bias"] = w.float(), b.float()
    for key in ("mask", "decorrelation", "scale"):
        out[key] = tensors[key].float().reshape(-1)
    return {k: v.contiguous() for k, v in out.items()}


def gated_reward(scores: Tensor, h_prompt: Tensor, gating: Mapping[str, Tensor], verbosity_index: int = 0) -> Tensor:
    """The scalar reward ``[N]`` from attribute scores ``[N, K]`` and prompt vectors ``[N, d]``
    with export-form gating tensors (:func:`fold_gating`); see the module doc."""
    n_layers = sum(1 for k in gating if k.startswith("layer.") and k.endswith(".weight"))
    x = h_prompt.float()
    for i in range(n_layers):
        x = x @ gating[f"layer.{i}.weight"].T + gating[f"layer.{i}.bias"]
        x = x.relu() if i < n_layers - 1 else x
    w = torch.softmax(x.masked_fill(gating["mask"] == 0, float("-inf")), dim=-1)
    v = int(verbosity_index)
    adjusted = scores.float() - scores.float()[:, v:v + 1] * gating["decorrelation"]
    return gating["scale"] * (w * adjusted).sum(-1)


def load_gating(directory: str | Path) -> tuple[dict[str, Tensor], int] | None:
    """(export-form gating tensors, verbosity index) of an export, or None without gating."""
    directory = Path(directory)
    if not (directory / GATING_FILE).is_file():
        return None
    from safetensors.torch import load_file

    meta = json.loads((directory / GATING_JSON).read_text()) if (directory / GATING_JSON).is_file() else {}
    return load_file(str(directory / GATING_FILE)), int(meta.get("verbosity_index", 0))
