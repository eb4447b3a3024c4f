"""Training an ensemble: ``train.ensemble: {members: k, vary: seed | order}`` runs the one loop
(``train/loop.py``) k times, member by member, each into a normal run directory
``OUT/member-<i>`` (model/, metrics.jsonl, summary.json, checkpoints/), and keeps
``OUT/ensemble.json`` (the manifest ``rewardlab.models.ensemble`` loads) up to date after every
member. ``--resume`` skips finished members and continues the interrupted one from its last
checkpoint. :func:`train_model` is the entry point of ``rewardlab train`` and the public API: one
model or an ensemble, as the config says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rewardlab.config import RunConfig
from rewardlab.errors import ConfigError
from rewardlab.models.ensemble import MANIFEST, write_manifest
from rewardlab.train import checkpoint
from rewardlab.train.loop import train as train_one


def member_config(cfg: RunConfig, i: int) -> RunConfig:
    """Member ``i``'s run config: its own output directory, and its seed (``vary: seed``) or data
    order (``vary: order``) as the module docstring says; no ensemble section."""
    ens = cfg.train.ensemble
    tc = cfg.train.model_copy(update={"ensemble": None})
    if ens.vary == "seed":
        data_seed = None if cfg.train.data_seed is None else cfg.train.data_seed + i
        tc = tc.model_copy(update={"seed": cfg.train.seed + i, "data_seed": data_seed})
    else:
        base = cfg.train.data_seed if cfg.train.data_seed is not None else cfg.train.seed
        tc = tc.model_copy(update={"data_seed": base + i})
    return cfg.model_copy(update={"output_dir": str(Path(cfg.output_dir) / f"member-{i}"), "train": tc}, deep=True)


def member_done(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "model" / "config.json").is_file()


def train_ensemble(cfg: RunConfig, *, resume: bool = False, log=print) -> dict:
    """Train every member not finished yet (module docstring); returns the ensemble's summary,
    also written to ``OUT/summary.json`` (each member's validation accuracy, their mean and spread)."""
    ens, out = cfg.train.ensemble, Path(cfg.output_dir)
    main = os.environ.get("RANK", "0") == "0"
    configs = [member_config(cfg, i) for i in range(ens.members)]
    runs = [Path(c.output_dir) for c in configs]
    if not resume:
        started = [str(r) for r in runs if r.exists() and any(r.iterdir())]
        if started or (out / MANIFEST).is_file():
            raise ConfigError(f"{out} already holds ensemble members ({', '.join(started) or MANIFEST}): pass "
                              "--resume to continue, or --overwrite to replace them")
    manifest = {
        "kind": "rewardlab-ensemble", "version": 1, "complete": False,
        "members": [f"member-{i}/model" for i in range(ens.members)],
        "runs": [{"run": f"member-{i}", "seed": c.train.seed, "data_seed": c.train.data_seed,
                  "done": member_done(r)} for i, (c, r) in enumerate(zip(configs, runs))],
        "vary": ens.vary, "aggregation": ens.aggregation, "lambda": ens.lambda_, "normalize": ens.normalize,
        "base_model": cfg.model.name_or_path,
    }
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, manifest)
    summaries = []
    for i, (c, r) in enumerate(zip(configs, runs)):
        if member_done(r):
            log(f"ensemble member {i + 1}/{ens.members}: {r} already trained")
            summaries.append(json.loads((r / "summary.json").read_text()))
            continue
        cont = checkpoint.latest(r / "checkpoints") is not None
        log(f"ensemble member {i + 1}/{ens.members}: {'continuing' if cont else 'training'} {r} "
            f"(seed {c.train.seed}{'' if c.train.data_seed is None else f', data seed {c.train.data_seed}'})")
        summary = train_one(c, resume=cont)
        if summary.get("interrupted"):
            return {**summary, "member": i}
        summaries.append(summary)
        manifest["runs"][i]["done"] = True
        if main:
            write_manifest(out, manifest)
    manifest["complete"] = True
    accs = [s.get("validation", {}).get("accuracy") for s in summaries]
    result = {"ensemble": {k: v for k, v in manifest.items() if k != "runs"}, "members": ens.members,
              "member_validation_accuracy": accs}
    known = [a for a in accs if a is not None]
    if known:
        result["validation_accuracy_mean"] = float(np.mean(known))
        result["validation_accuracy_std"] = float(np.std(known, ddof=1)) if len(known) > 1 else 0.0
    if main:
        write_manifest(out, manifest)
        (out / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def train_model(cfg: RunConfig, *, resume: bool = False) -> dict:
    """Train what ``cfg`` says: an ensemble (``train.ensemble``) or one reward model."""
    if cfg.train.ensemble is not None:
        return train_ensemble(cfg, resume=resume)
    return train_one(cfg, resume=resume)
