"""Reward ensembles: k reward models scored as one (docs/ensembles.md).

An ensemble directory holds ``ensemble.json`` (written by ``rewardlab train`` with a
``train.ensemble`` section, or by hand) naming its members' model directories. Every member gets
the same encoded items (one tokenizer, one render mode, one max length: checked at loading, an
error names the member and the field that differs), so an ensemble encodes once and runs k
forwards. What it returns per item:

- the members' rewards, each standardised with its own training statistics when ``normalize``
  (``(r - reward_mean) / reward_std``, recorded by training: a BT reward is fixed only up to a
  shift, so raw members disagree by a constant that would swamp the spread);
- the aggregate: :func:`aggregate` (``mean``, ``min`` or ``mean_minus_std``: mean − λ · std);
- the spread: :func:`member_spread` (the members' standard deviation, ddof = 1).

``RewardEnsemble.score``/``score_encoded``/``score_pairs`` return the aggregate where a
:class:`~rewardlab.models.reward_model.RewardModel` returns its reward, so eval, the rubric
scorers and the server take an ensemble wherever they take a model; ``score_members`` and
``score_members_encoded`` give the members' rewards, the aggregate and the spread.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.errors import ConfigError

MANIFEST = "ensemble.json"
AGGREGATIONS = ("mean", "min", "mean_minus_std")
# What must agree between members for one encoding to serve all (ModelSettings fields).
SHARED_SETTINGS = ("render", "max_length", "overlength", "padding_side", "chat_template")
# What names a backbone in config.json.
BACKBONE_FIELDS = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "vocab_size")


# ----------------------------------------------------------------------------- pure aggregation
def member_spread(rewards: np.ndarray) -> np.ndarray:
    """Per-item standard deviation of the members' rewards ``(n, k)`` (ddof = 1: the members are a
    sample of the models training could have produced); k >= 2."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ConfigError(f"member rewards must be (items, members >= 2), got shape {r.shape}")
    return r.std(axis=1, ddof=1)


def check_aggregation(how: str, lam: float, *, fields: tuple[str, str] = ("aggregation", "lambda")) -> None:
    """``how`` one of AGGREGATIONS, ``lam`` finite and >= 0; errors name ``fields`` (where they came from)."""
    if how not in AGGREGATIONS:
        raise ConfigError(f"{fields[0]}: expected one of {', '.join(AGGREGATIONS)}, got {how!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not np.isfinite(lam) or lam < 0:
        raise ConfigError(f"{fields[1]}: expected a finite number >= 0 (mean - lambda * std penalises "
                          f"disagreement), got {lam!r}")


def aggregate(rewards: np.ndarray, how: str = "mean", lam: float = 1.0) -> np.ndarray:
    """One reward per item from the members' rewards ``(n, k)``: ``mean``, ``min`` (the most
    pessimistic member) or ``mean_minus_std`` (mean − λ · :func:`member_spread`; λ >= 0)."""
    check_aggregation(how, lam)
    r = np.asarray(rewards, dtype=np.float64)
    if how == "mean":
        return r.mean(axis=1)
    if how == "min":
        return r.min(axis=1)
    return r.mean(axis=1) - lam * member_spread(r)


def standardise(rewards: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Each member's column ``(r - mean) / std`` with its training statistics."""
    return (np.asarray(rewards, dtype=np.float64) - np.asarray(means)[None, :]) / np.asarray(stds)[None, :]


# ----------------------------------------------------------------------------- manifest
def is_ensemble_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(directory: str | os.PathLike) -> dict:
    """``ensemble.json``: ``members`` (model directories, relative to it or absolute), and the
    defaults ``aggregation``, ``lambda``, ``normalize``; errors name the file and field."""
    path = Path(directory) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the ensemble manifest ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    members = data.get("members")
    if not isinstance(members, list) or not all(isinstance(m, (str, dict)) for m in members):
        raise ConfigError(f"{path}: members: expected a list of member model directories, got {members!r}")
    if data.get("complete") is False:
        done = sum(bool(r.get("done")) for r in data.get("runs", []) if isinstance(r, dict))
        raise ConfigError(f"{path}: the ensemble is not finished ({done} of {len(members)} members trained): "
                          "continue it with rewardlab train CONFIG --resume")
    if len(members) < 2:
        raise ConfigError(f"{path}: members: an ensemble needs at least 2 members, got {len(members)}")
    check_aggregation(data.get("aggregation", "mean"), data.get("lambda", 1.0),
                      fields=(f"{path}: aggregation", f"{path}: lambda"))
    if not isinstance(data.get("normalize", True), bool):
        raise ConfigError(f"{path}: normalize: expected true or false, got {data['normalize']!r}")
    return data


def member_dirs(directory: str | os.PathLike, manifest: dict | None = None) -> list[Path]:
    """The members' model directories named by the manifest (resolved against its directory)."""
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    out = []
    for m in manifest["members"]:
        p = Path(m["model"] if isinstance(m, dict) else m)
        out.append(p if p.is_absolute() else directory / p)
    return out


def locate_ensemble(directory: str | os.PathLike, *, option: str = "--model") -> list[Path]:
    """The check of an ensemble argument before any work: its manifest, and each member checked
    like a ``--model`` (errors name the member directory); returns the member directories."""
    from rewardlab.models.locate import REWARD_MODEL, locate_model

    dirs = member_dirs(directory)
    for d in dirs:
        locate_model(d, kind=REWARD_MODEL, option=f"{option} {directory}: member")
    return dirs


def write_manifest(directory: str | os.PathLike, info: dict) -> Path:
    path = Path(directory) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- member checks
def _config(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def check_members(models: list, dirs: list[Path]) -> None:
    """Members must share a backbone and a tokenizer (one encoding serves all): an error names the
    member directory and the field that differs from the first member's."""
    if len(models) < 2:
        raise ConfigError(f"an ensemble needs at least 2 members, got {len(models)}")
    first_cfg, first = _config(dirs[0]), models[0]
    first_vocab = first.tokenizer.get_vocab()
    for d, m in zip(dirs[1:], models[1:]):
        cfg = _config(d)
        for key in BACKBONE_FIELDS:
            if cfg.get(key) != first_cfg.get(key):
                raise ConfigError(f"ensemble member {d}: config.json {key} is {cfg.get(key)!r}, the first member "
                                  f"({dirs[0]}) has {first_cfg.get(key)!r}: members must share one backbone")
        for key in SHARED_SETTINGS:
            a, b = getattr(m.settings, key), getattr(first.settings, key)
            if a != b:
                raise ConfigError(f"ensemble member {d}: rewardlab.{key} is {a!r}, the first member ({dirs[0]}) "
                                  f"has {b!r}: members must encode items the same way")
        if m.tokenizer.get_vocab() != first_vocab or m.pad_id != first.pad_id:
            raise ConfigError(f"ensemble member {d}: its tokenizer differs from the first member's ({dirs[0]}): "
                              "members must share one tokenizer")


@dataclass
class EnsembleScores:
    """Per item: ``reward`` (the aggregate), ``spread`` (members' std) and ``members`` ``(n, k)``."""

    reward: np.ndarray
    spread: np.ndarray
    members: np.ndarray


class RewardEnsemble:
    """k reward models scored as one (module docstring)."""

    is_ensemble = True

    def __init__(self, members: list, dirs: list[Path] | None = None, *, aggregation: str = "mean",
                 lam: float = 1.0, normalize: bool = True, directory: Path | None = None):
        dirs = [Path(d) for d in (dirs or [f"member-{i}" for i in range(len(members))])]
        check_members(members, dirs)
        check_aggregation(aggregation, lam)
        self.members, self.dirs, self.directory = members, dirs, directory
        self.aggregation, self.lam, self.normalize = aggregation, float(lam), normalize
        if normalize:
            for d, m in zip(dirs, members):
                s = m.settings
                if s.reward_mean is None or not s.reward_std:
                    raise ConfigError(f"ensemble member {d}: no training reward statistics (rewardlab.reward_mean/"
                                      "reward_std) to standardise it with: set normalize: false in ensemble.json")
        self.means = np.array([m.settings.reward_mean or 0.0 for m in members], dtype=np.float64)
        self.stds = np.array([m.settings.reward_std or 1.0 for m in members], dtype=np.float64)
        self.last_truncation: Counter = Counter()

    # what the encoding, the server and the reports read (shared by every member: checked)
    @property
    def settings(self):
        return self.members[0].settings

    @property
    def tokenizer(self):
        return self.members[0].tokenizer

    @property
    def pad_id(self) -> int:
        return self.members[0].pad_id

    def __len__(self) -> int:
        return len(self.members)

    def encode(self, prompt, response):
        return self.members[0].encode(prompt, response)

    def to(self, device):
        for m in self.members:
            m.to(device)
        return self

    def eval(self):
        for m in self.members:
            m.eval()
        return self

    def parameters(self):
        return self.members[0].parameters()

    def describe(self) -> dict:
        return {"members": [str(d) for d in self.dirs], "aggregation": self.aggregation, "lambda": self.lam,
                "normalize": self.normalize}

    # ---------------------------------------------------------------- scoring
    def _columns(self, per_member: list[np.ndarray]) -> np.ndarray:
        r = np.stack(per_member, axis=1)
        return standardise(r, self.means, self.stds) if self.normalize else r

    def combine(self, members: np.ndarray) -> EnsembleScores:
        """The aggregate and the spread of ``(n, k)`` (already standardised) member rewards."""
        return EnsembleScores(aggregate(members, self.aggregation, self.lam), member_spread(members), members)

    def score_members_encoded(self, items, *, batch_size: int = 16, progress: bool = False) -> EnsembleScores:
        cols = [m.score_encoded(items, batch_size=batch_size, progress=progress) for m in self.members]
        return self.combine(self._columns(cols))

    def score_members(self, prompts, responses, *, batch_size: int = 16, progress: bool = False) -> EnsembleScores:
        s = self.settings
        policy = "truncate_right" if s.overlength == "drop" else s.overlength
        from rewardlab.models.inputs import encode

        items = [encode(self.tokenizer, s.render, p, r, s.max_length, policy) for p, r in zip(prompts, responses)]
        self.last_truncation = Counter(e.status for e in items)
        return self.score_members_encoded(items, batch_size=batch_size, progress=progress)

    def score_encoded(self, items, *, batch_size: int = 16, return_features: bool = False, padding_side=None,
                      progress: bool = False):
        if return_features:
            raise ConfigError("an ensemble has no single feature vector per item (score a member for features)")
        return self.score_members_encoded(items, batch_size=batch_size, progress=progress).reward

    def score(self, prompts, responses, *, batch_size: int = 16, return_features: bool = False,
              padding_side=None, progress: bool = False):
        """The aggregate reward per item (as ``RewardModel.score``); ``score_members`` for the spread."""
        if return_features:
            raise ConfigError("an ensemble has no single feature vector per item (score a member for features)")
        return self.score_members(prompts, responses, batch_size=batch_size, progress=progress).reward

    def score_pairs(self, table, *, batch_size: int = 16, return_features: bool = False,
                    progress: bool = False) -> dict[str, np.ndarray]:
        """Chosen and rejected of a PreferenceTable: the aggregates (``reward_*``), the spreads
        (``spread_*``) and the members' rewards (``members_*``, ``(n, k)``)."""
        n = len(table)
        s = self.score_members(list(table["prompt"]) * 2, list(table["chosen"]) + list(table["rejected"]),
                               batch_size=batch_size, progress=progress)
        return {"reward_chosen": s.reward[:n], "reward_rejected": s.reward[n:],
                "spread_chosen": s.spread[:n], "spread_rejected": s.spread[n:],
                "members_chosen": s.members[:n], "members_rejected": s.members[n:]}


def load_ensemble(directory: str | os.PathLike, *, aggregation: str | None = None, lam: float | None = None,
                  normalize: bool | None = None, option: str = "--model", dtype=None) -> RewardEnsemble:
    """An ensemble directory (``ensemble.json``); ``aggregation``, ``lam`` and ``normalize``
    override the manifest's defaults. Each member is checked like any ``--model``."""
    from rewardlab.models.reward_model import load_reward_model

    directory = Path(directory)
    manifest = read_manifest(directory)
    dirs = member_dirs(directory, manifest)
    models = [load_reward_model(d, option=f"{option} {directory}: member", dtype=dtype) for d in dirs]
    how = aggregation if aggregation is not None else manifest.get("aggregation", "mean")
    lam = lam if lam is not None else manifest.get("lambda", 1.0)
    check_aggregation(how, lam)
    norm = manifest.get("normalize", True) if normalize is None else normalize
    return RewardEnsemble(models, dirs, aggregation=how, lam=lam, normalize=norm, directory=directory)
