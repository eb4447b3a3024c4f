"""Training and validation tables from a data config: load, split by prompt hash, subsample, balance
lengths (``data.length_balance``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardlab.config import DataConfig
from rewardlab.data import PreferenceTable, load_preferences
from rewardlab.data.balance import length_balance
from rewardlab.data.splits import check_split_key, group_keys


@dataclass
class Tables:
    train: PreferenceTable
    validation: PreferenceTable | None
    report: dict


def _load(spec, cfg: DataConfig, keep_columns=()) -> PreferenceTable:
    return load_preferences(spec, format=cfg.format, prompt_key=cfg.prompt_key, chosen_key=cfg.chosen_key,
                            rejected_key=cfg.rejected_key, on_error=cfg.on_error, keep_columns=keep_columns)


def _subsample(table: PreferenceTable, n: int | None, seed: int) -> PreferenceTable:
    if n is None or n >= len(table):
        return table
    pick = np.sort(np.random.default_rng(seed).permutation(len(table))[:n])
    return table.select(pick.tolist())


def prepare_tables(cfg: DataConfig, seed: int, keep_columns=()) -> Tables:
    """Load ``cfg.train``; validation from ``cfg.validation`` or a split by the hash of each row's
    group (its prompt, or ``cfg.split_key``: rewardlab.data.splits). ``keep_columns``: further
    columns the run reads (Critic-RM's critiques), required on every row."""
    key = check_split_key(cfg.split_key)
    key_column = key if isinstance(key, str) else (key or {}).get("field")
    if key_column not in (None, "prompt", "source") and key_column not in keep_columns:
        keep_columns = (*keep_columns, key_column)
    table = _load(cfg.train, cfg, keep_columns)
    report = {"train_source": table.report.to_dict() if table.report else None}
    if cfg.validation is not None:
        train, val = table, _load(cfg.validation, cfg, keep_columns)
        report["validation_source"] = val.report.to_dict() if val.report else None
    elif cfg.val_fraction > 0:
        train, val = table.split(cfg.val_fraction, salt=cfg.split_salt, keys=group_keys(table, key))
    else:
        train, val = table, None
    train = _subsample(train, cfg.max_train_pairs, seed)
    balance = None
    if cfg.length_balance is not None:  # after the subsample, so the share is exact in what trains
        train, balance = length_balance(train, cfg.length_balance, seed, by=cfg.length_balance_by)
    if val is not None:
        val = _subsample(val, cfg.max_val_pairs, seed)
    report.update({"n_train": len(train), "n_validation": len(val) if val is not None else 0,
                   "split": "file" if cfg.validation is not None else
                   f"{'prompt' if key is None else 'data.split_key'} hash, val_fraction={cfg.val_fraction}"})
    if balance is not None:
        report["length_balance"] = balance
    return Tables(train, val, report)
