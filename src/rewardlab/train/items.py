"""Item-layout training (regression, correctness, scaled BT on single responses with targets):
the data, batches, inputs and validation metrics the one loop uses when the objective reads
``ItemInputs`` (``Loss.layout == "items"``); the loop itself names no objective.

- Data: :func:`rewardlab.data.pointwise.read_pointwise` (``data.pointwise_layout``,
  ``data.attributes``); validation from ``data.validation`` or a split by the SHA-256 hash of the
  prompt (as pairs), so no prompt is on both sides.
- Batches: a micro-batch is ``train.batch_size`` *prompts* per process with all their responses
  (scaled BT pairs responses within a prompt; a one-response prompt is one item), drawn by
  :func:`rewardlab.train.batching.micro_batch_indices` over the prompts: a pure function of
  (seed, position), so resume is exact.
- Model: ``num_labels`` = the table's K target columns; with K > 1 (or named attributes) the
  names go to ``settings.attributes``, so the export's ``id2label`` are the attribute names.
- Validation: :func:`item_metrics` per target column (MSE, Pearson; AUROC and accuracy at logit 0
  for 0/1 targets), each with a 95 % interval.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from rewardlab.config import DataConfig
from rewardlab.data.pointwise import PointwiseTable, read_pointwise
from rewardlab.data.table import unit_hash
from rewardlab.errors import ConfigError
from rewardlab.models.inputs import Encoded


@dataclass
class ItemTables:
    train: PointwiseTable
    validation: PointwiseTable | None
    report: dict


@dataclass
class EncodedItems:
    """Encoded responses with targets ``[N, K]`` (NaN = unlabelled), grouped by prompt.

    ``len()`` is the number of groups (what a micro-batch draws); ``items_of(idx)`` the
    responses of groups ``idx``."""

    items: list[Encoded]
    target: np.ndarray
    group: np.ndarray  # group id per item, 0..G-1
    members: list[np.ndarray]  # item indices of each group
    names: tuple[str, ...]
    truncation: Counter
    dropped: int

    def __len__(self) -> int:
        return len(self.members)

    def items_of(self, idx) -> np.ndarray:
        return np.concatenate([self.members[g] for g in idx]) if len(idx) else np.zeros(0, dtype=np.int64)


def _read(spec, cfg: DataConfig, num_labels: int | None = None) -> PointwiseTable:
    return read_pointwise(spec, layout=cfg.pointwise_layout, attributes=cfg.attributes, num_labels=num_labels,
                          on_error=cfg.on_error)


def _subsample(table: PointwiseTable, n: int | None, seed: int) -> PointwiseTable:
    """At most ``n`` prompts (all of their responses), drawn with ``seed``."""
    groups = np.unique(table.group)
    if n is None or n >= len(groups):
        return table
    keep = set(np.random.default_rng(seed).permutation(groups)[:n].tolist())
    return table.select([i for i, g in enumerate(table.group) if g in keep])


def prepare_item_tables(cfg: DataConfig, seed: int, salt: str | None = None) -> ItemTables:
    """Train and validation pointwise tables (``max_train_pairs``/``max_val_pairs`` count prompts)."""
    if cfg.split_key is not None:
        raise ConfigError("data.split_key: item objectives split by prompt; remove data.split_key")
    table = _read(cfg.train, cfg)
    report = {"train_source": table.report.to_dict(), "layout": table.layout, "names": list(table.names)}
    if cfg.validation is not None:
        train, val = table, _read(cfg.validation, cfg, num_labels=table.num_labels)
        if val.names != table.names:
            raise ConfigError(f"data.validation: its target columns {list(val.names)} differ from the "
                              f"training file's {list(table.names)}")
        report["validation_source"] = val.report.to_dict()
    elif cfg.val_fraction > 0:
        from rewardlab.data.pointwise import _prompt_key

        in_val = [unit_hash(salt or cfg.split_salt, _prompt_key(p)) < cfg.val_fraction for p in table.prompt]
        train = table.select([i for i, v in enumerate(in_val) if not v])
        val = table.select([i for i, v in enumerate(in_val) if v])
        val = val if len(val) else None
    else:
        train, val = table, None
    train = _subsample(train, cfg.max_train_pairs, seed)
    if val is not None:
        val = _subsample(val, cfg.max_val_pairs, seed)
    report.update({"n_train": len(train), "n_validation": len(val) if val is not None else 0,
                   "split": "file" if cfg.validation is not None else f"prompt hash, val_fraction={cfg.val_fraction}"})
    return ItemTables(train, val, report)


def set_attribute_names(model, names) -> None:
    """Name a K-output model's outputs (the export's ``id2label``), as models/attributes.py does."""
    if len(names) > 1:
        model.settings.attributes = {"names": list(names), "gating": None, "verbosity": None}


def encode_items(model, table: PointwiseTable) -> EncodedItems:
    """Encode every response with the model's settings; the ``drop`` policy's dropped ones are counted."""
    items, keep, counts = [], [], Counter()
    for i, (p, r) in enumerate(zip(table.prompt, table.response)):
        e = model.encode(p, r)
        counts[e.status] += 1
        if e.status != "dropped":
            items.append(e)
            keep.append(i)
    keep_arr = np.asarray(keep, dtype=np.int64)
    raw = table.group[keep_arr] if len(keep_arr) else np.zeros(0, dtype=np.int64)
    _, group = np.unique(raw, return_inverse=True)
    members = [np.flatnonzero(group == g) for g in range(int(group.max()) + 1 if len(group) else 0)]
    return EncodedItems(items, table.target[keep_arr].astype(np.float32), group.astype(np.int64), members,
                        tuple(table.names), counts, len(table) - len(keep))


def item_batch(model, items: EncodedItems, idx) -> tuple[dict, dict]:
    """The padded inputs of groups ``idx`` and their columns: ``target`` [n, K] and ``group`` [n]."""
    rows = items.items_of(idx)
    batch = model.collate([items.items[i] for i in rows])
    return batch, {"target": torch.as_tensor(items.target[rows]), "group": torch.as_tensor(items.group[rows])}


def item_lengths(items: EncodedItems) -> np.ndarray:
    """The longest response of each group (what decides its padded width)."""
    return np.asarray([max(len(items.items[i].input_ids) for i in m) for m in items.members], dtype=np.int64)


def as_columns(r: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-output model's rewards are [n]: its targets [n, 1] become [n] too."""
    return r, (target[:, 0] if r.ndim == 1 and target.ndim == 2 else target)


# ----------------------------------------------------------------------------- metrics
def item_metrics(scores: np.ndarray, target: np.ndarray, names, seed: int = 0) -> dict:
    """Validation metrics per target column on the labelled entries: ``mse`` and ``pearson``;
    for 0/1 targets also ``auroc`` (scikit-learn) and ``accuracy`` (logit > 0 ⇔ 1, Wilson
    interval); MSE with a 95 % percentile bootstrap interval over responses (scipy).
    Returns ``{"n", "mse", "by_attribute": {name: {...}}}`` (top-level ``mse``/``auroc`` are the
    means over columns)."""
    # (train/ may not import eval/: the intervals come from the libraries eval.stats wraps)
    from scipy.stats import bootstrap
    from sklearn.metrics import roc_auc_score
    from statsmodels.stats.proportion import proportion_confint

    s2 = scores.reshape(len(scores), -1).astype(np.float64)
    t2 = target.reshape(len(target), -1).astype(np.float64)
    by: dict = {}
    for k, name in enumerate(names):
        ok = ~np.isnan(t2[:, k])
        s, t = s2[ok, k], t2[ok, k]
        m: dict = {"n": int(ok.sum())}
        if len(t):
            m["mse"] = float(np.mean((s - t) ** 2))
            if len(t) > 1:  # percentile bootstrap over responses, 2000 resamples
                ci = bootstrap(((s - t) ** 2,), np.mean, n_resamples=2000, method="percentile",
                               random_state=np.random.default_rng(seed)).confidence_interval
                m["mse_interval"] = [float(ci.low), float(ci.high)]
            if len(t) > 1 and np.std(s) > 0 and np.std(t) > 0:
                m["pearson"] = float(np.corrcoef(s, t)[0, 1])
            if np.all((t == 0) | (t == 1)):
                correct = int(((s > 0) == (t == 1)).sum())
                m["accuracy"] = correct / len(t)
                m["accuracy_interval"] = [float(x) for x in proportion_confint(correct, len(t), 0.05, "wilson")]
                if 0 < t.sum() < len(t):
                    m["auroc"] = float(roc_auc_score(t, s))
        by[name] = m
    out: dict = {"n": int(len(scores)), "by_attribute": by}
    for key in ("mse", "auroc", "accuracy"):
        vals = [m[key] for m in by.values() if key in m]
        if vals:
            out[key] = float(np.mean(vals))
    return out


def validate_items(accelerator, model, items: EncodedItems, batch_size: int, seed: int = 0) -> dict:
    """:func:`item_metrics` of the model's scores on ``items`` (each process scores its share;
    the scores are gathered, every response counted once)."""
    from accelerate.utils import gather_object

    rank, world = accelerator.process_index, accelerator.num_processes
    idx = list(range(rank, len(items.items), world))
    r = model.score_encoded([items.items[i] for i in idx], batch_size=batch_size) if idx else np.zeros(0)
    got = gather_object([(i, np.asarray(v, dtype=np.float64).reshape(-1).tolist()) for i, v in zip(idx, r)])
    got.sort(key=lambda g: g[0])
    scores = np.asarray([g[1] for g in got], dtype=np.float64)
    return item_metrics(scores, items.target[[g[0] for g in got]], items.names, seed=seed)
