"""WARM (Ramé et al. 2024, "WARM: On the Benefits of Weight Averaged Reward Models"): the
members of an ensemble fine-tuned from one start, averaged weight by weight into one plain reward
model (docs/ensembles.md).

Averaging is meaningful only between models that stay linearly connected, i.e. fine-tuned from the
same initialisation: the same backbone and the same reward-head draw (``train.seed``), differing in
data order (``train.ensemble.vary: order``) or hyperparameters. :func:`check_same_start` refuses
members whose run configs say otherwise (different backbones, seeds or head shapes), and LoRA
adapter directories (average the merged exports instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml

from rewardlab.errors import ConfigError
from rewardlab.models.ensemble import BACKBONE_FIELDS, is_ensemble_dir, member_dirs


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (accumulated in float64, cast back);
    integer and boolean buffers (position ids) must be equal and are kept."""
    if len(states) < 2:
        raise ConfigError(f"WARM averages at least 2 models, got {len(states)}")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            missing = sorted(set(keys) ^ set(s))[:3]
            raise ConfigError(f"WARM: member {i} has other weights than member 0 (e.g. {missing})")
    out = {}
    for k in keys:
        ts = [s[k] for s in states]
        if any(t.shape != ts[0].shape for t in ts):
            raise ConfigError(f"WARM: weight {k} has shapes {[tuple(t.shape) for t in ts]}: not one architecture")
        if ts[0].is_floating_point():
            out[k] = torch.stack([t.double() for t in ts]).mean(0).to(ts[0].dtype)
        else:
            if any(not torch.equal(t, ts[0]) for t in ts):
                raise ConfigError(f"WARM: buffer {k} differs between members")
            out[k] = ts[0].clone()
    return out


def _run_config(model_dir: Path) -> dict | None:
    """The run config beside a trained model (``OUT/config.yaml`` for ``OUT/model``)."""
    path = model_dir.parent / "config.yaml"
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return None


def check_same_start(dirs: list[Path], *, assume_same_start: bool = False) -> None:
    """Refuse members that cannot be averaged: LoRA adapters, other backbones, other starts."""
    for d in dirs:
        if (d / "adapter_config.json").is_file():
            raise ConfigError(f"WARM member {d}: a LoRA adapter directory; average merged models "
                              "(train with lora.export: merged or both, and name the merged model/ directories)")
        if not (d / "config.json").is_file():
            raise ConfigError(f"WARM member {d}: not a model directory (no config.json)")
    first = json.loads((dirs[0] / "config.json").read_text())
    for d in dirs[1:]:
        cfg = json.loads((d / "config.json").read_text())
        for key in BACKBONE_FIELDS:
            if cfg.get(key) != first.get(key):
                raise ConfigError(f"WARM member {d}: config.json {key} is {cfg.get(key)!r}, {dirs[0]} has "
                                  f"{first.get(key)!r}: WARM averages members of one architecture")
    if assume_same_start:
        return
    runs = [_run_config(d) for d in dirs]
    for d, run in zip(dirs, runs):
        if run is None:
            raise ConfigError(f"WARM member {d}: no run config ({d.parent / 'config.yaml'}) to check that the "
                              "members share their initialisation; pass --assume-same-start if you know they do")
    start = [((r.get("model") or {}).get("name_or_path"), (r.get("train") or {}).get("seed"),
              (r.get("model") or {}).get("pooling")) for r in runs]
    for d, s in zip(dirs[1:], start[1:]):
        if s != start[0]:
            raise ConfigError(
                f"WARM member {d}: starts from (model.name_or_path, train.seed, model.pooling) = {s}, {dirs[0]} "
                f"from {start[0]}: weight averaging needs members fine-tuned from the same initialisation "
                "(train the ensemble with train.ensemble.vary: order)")


def warm_members(source: str | os.PathLike | list) -> list[Path]:
    """The member model directories: an ensemble directory's, or a list of model directories."""
    if isinstance(source, (list, tuple)):
        return [Path(d) for d in source]
    if is_ensemble_dir(source):
        return member_dirs(source)
    raise ConfigError(f"{source}: not an ensemble directory (no ensemble.json); give an ensemble directory "
                      "or several model directories")


def warm_export(source, out: str | os.PathLike, *, assume_same_start: bool = False) -> Path:
    """Average the members' weights into ``out``: a plain reward model directory (loads with
    ``AutoModelForSequenceClassification``) whose ``config.json`` records the members under
    ``rewardlab.warm``. The training reward statistics are the members' means (informative only)."""
    from rewardlab.models.reward_model import RewardModel

    dirs = warm_members(source)
    if len(dirs) < 2:
        raise ConfigError(f"WARM averages at least 2 members, got {len(dirs)}")
    check_same_start(dirs, assume_same_start=assume_same_start)
    models = [RewardModel.from_pretrained(d) for d in dirs]
    from rewardlab.models.ensemble import check_members

    check_members(models, dirs)
    avg = average_state_dicts([m.model.state_dict() for m in models])
    target = models[0]
    target.model.load_state_dict(avg)
    s = target.settings
    s.reward_mean = s.reward_std = s.reward_stats_n = None  # the averaged model's own scale is unmeasured
    path = target.save_pretrained(out)
    cfg_path = Path(path) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("rewardlab", {})["warm"] = {"members": [str(d) for d in dirs]}
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    return Path(path)
