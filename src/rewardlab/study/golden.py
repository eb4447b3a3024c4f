"""Golden settings: pools of responses per prompt with a true reward, for the annotation simulator.

A :class:`ResponsePool` holds distinct (prompt, response) items grouped by prompt, each with a
golden reward. Build one from preference data (every distinct response of every pair, grouped by
prompt) and give it a golden reward from

- ``reward_model``: the scores of a reward model saved by rewardlab (``OUT/model``);
- ``embedding_head``: an ensemble head trained with rewardlab on cached embeddings of other
  preference data (cheap on CPU; use a different embedding model in the study than here);
- ``column``: the data's own ``golden_chosen``/``golden_rejected`` columns;
- ``labels``: verifiable correctness, 1 for a response that is only ever chosen, 0 for one that
  is only ever rejected (for data whose labels are objective, e.g. humanevalpack: correct vs
  buggy code); a response on both sides is an error.

The setting documented for this repository (docs/embeddings_and_studies.md): the union of the
responses of ``alpacaeval_modelpairs.jsonl`` and ``alpacaeval_gpt4_judged.jsonl`` (805 prompts,
up to 7 model outputs each) scored by a rewardlab reward model trained on the other visible data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.table import unit_hash
from rewardlab.errors import ConfigError, DataError

GOLDEN_KINDS = ("reward_model", "embedding_head", "column", "labels")


def prompt_text_key(prompt: Any) -> str:
    """Canonical text of a prompt (JSON for message lists), as ``PreferenceTable.prompt_key``."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


@dataclass
class ResponsePool:
    """Distinct (prompt, response) items; ``prompt_id`` numbers prompts 0.. in order of first
    appearance; ``golden`` is the true reward (None until assigned); ``info`` says how the golden
    reward was made (recorded with results)."""

    prompt: list
    response: list[str]
    prompt_id: np.ndarray
    source: list[str]
    golden: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.response)

    @property
    def n_prompts(self) -> int:
        return int(self.prompt_id.max()) + 1 if len(self) else 0

    def responses_per_prompt(self) -> dict[int, int]:
        """``{number of responses: number of prompts with that many}``."""
        counts = np.bincount(self.prompt_id)
        values, freq = np.unique(counts, return_counts=True)
        return {int(v): int(f) for v, f in zip(values, freq)}

    def with_golden(self, golden, info: dict | None = None) -> ResponsePool:
        g = np.asarray(golden, dtype=float)
        if g.shape != (len(self),) or not np.all(np.isfinite(g)):
            raise DataError("golden rewards must be one finite number per item",
                            expected=f"shape ({len(self)},)", got=f"shape {g.shape}")
        return ResponsePool(list(self.prompt), list(self.response), self.prompt_id.copy(),
                            list(self.source), g, {**self.info, **(info or {})})

    def select(self, idx: Sequence[int]) -> ResponsePool:
        """Items at ``idx``; prompts renumbered densely in order of first appearance."""
        idx = np.asarray(idx, dtype=np.int64)
        _, first, inverse = np.unique(self.prompt_id[idx], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        return ResponsePool([self.prompt[i] for i in idx], [self.response[i] for i in idx],
                            rank[inverse.reshape(-1)].astype(np.int64), [self.source[i] for i in idx],
                            None if self.golden is None else self.golden[idx], dict(self.info))

    def test_mask(self, test_fraction: float, salt: str = "rewardlab") -> np.ndarray:
        """Bool per item: its prompt is on the test side of a deterministic split by prompt hash
        (SHA-256 of salt and prompt text, as ``PreferenceTable.split``)."""
        if not 0.0 <= test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
        first = {}
        for i, p in enumerate(self.prompt_id):
            first.setdefault(int(p), i)
        in_test = np.zeros(self.n_prompts, dtype=bool)
        for p, i in first.items():
            in_test[p] = unit_hash(salt, prompt_text_key(self.prompt[i])) < test_fraction
        return in_test[self.prompt_id]

    def item_keys(self) -> list[str]:
        """Embedding-cache keys of the items (see ``rewardlab.embed.item_key``)."""
        from rewardlab.embed.extract import item_key

        return [item_key(p, r) for p, r in zip(self.prompt, self.response)]

    # ------------------------------------------------------------------ storage
    def write(self, path: str | Path) -> Path:
        """Write the pool as Parquet (prompts that are message lists as JSON text); ``info`` in the
        file's metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        is_text = all(isinstance(p, str) for p in self.prompt)
        prompts = self.prompt if is_text else [prompt_text_key(p) for p in self.prompt]
        cols = {"prompt_id": pa.array(self.prompt_id, pa.int64()), "prompt": pa.array(prompts, pa.string()),
                "response": pa.array(self.response, pa.string()), "source": pa.array(self.source, pa.string())}
        if self.golden is not None:
            cols["golden"] = pa.array(self.golden, pa.float64())
        meta = {"rewardlab_pool": json.dumps({"info": self.info, "prompt_json": not is_text})}
        table = pa.table(cols).replace_schema_metadata(meta)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
        return path

    @staticmethod
    def read(path: str | Path) -> ResponsePool:
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"pool file not found: {path}")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"rewardlab_pool")
        meta = json.loads(raw) if raw else {}
        cols = table.to_pydict()
        for name in ("prompt_id", "prompt", "response"):
            if name not in cols:
                raise DataError(f"not a response pool: no column {name!r}", file=str(path), field=name)
        prompts = cols["prompt"]
        if meta.get("prompt_json"):
            prompts = [json.loads(p) if p.startswith("[") else p for p in prompts]
        golden = np.asarray(cols["golden"], dtype=float) if "golden" in cols else None
        source = cols.get("source") or [""] * len(prompts)
        return ResponsePool(prompts, cols["response"], np.asarray(cols["prompt_id"], dtype=np.int64),
                            source, golden, meta.get("info", {}))


# ---------------------------------------------------------------------- building pools
def pool_from_table(table, *, min_responses: int = 2, golden: str | None = None) -> ResponsePool:
    """Every distinct response of every pair of a ``PreferenceTable``, grouped by prompt.

    Prompts with fewer than ``min_responses`` distinct responses are left out (the count is in
    ``info["dropped_prompts"]``). ``golden="column"`` takes the golden reward from the
    ``golden_chosen``/``golden_rejected`` columns; ``golden="labels"`` from verifiable labels
    (1 = only ever chosen, 0 = only ever rejected). The same item given two different golden
    values is a ``DataError``.
    """
    if golden not in (None, "column", "labels"):
        raise ConfigError(f"pool_from_table: golden must be None, 'column' or 'labels', got {golden!r}")
    if golden == "column" and not (table.has("golden_chosen") and table.has("golden_rejected")):
        raise DataError("golden 'column' needs the golden_chosen and golden_rejected columns",
                        field="golden_chosen", expected="a number per pair", got="no such column")
    sources = table["source"] if table.has("source") else [""] * len(table)
    items: dict[tuple[str, str], int] = {}
    prompt_of: dict[str, int] = {}
    prompts, responses, pids, srcs = [], [], [], []
    values: list[float | None] = []
    for i in range(len(table)):
        pkey = table.prompt_key(i)
        pid = prompt_of.setdefault(pkey, len(prompt_of))
        for side in ("chosen", "rejected"):
            response = table[side][i]
            if golden == "column":
                value = table[f"golden_{side}"][i]
                if value is None:
                    raise DataError(field=f"golden_{side}", row=i, expected="a number", got="missing")
            elif golden == "labels":
                value = 1.0 if side == "chosen" else 0.0
            else:
                value = None
            key = (pkey, response)
            j = items.get(key)
            if j is None:
                items[key] = len(responses)
                prompts.append(table["prompt"][i])
                responses.append(response)
                pids.append(pid)
                srcs.append(sources[i] or "")
                values.append(value)
            elif value is not None and values[j] != value:
                what = "both chosen and rejected" if golden == "labels" else "two golden values"
                raise DataError(f"the same response is {what} ({values[j]} vs {value}); "
                                f"golden '{golden}' needs one value per response",
                                file=table.origin[i], field=f"golden_{side}" if golden == "column" else side)
    pid_arr = np.asarray(pids, dtype=np.int64)
    counts = np.bincount(pid_arr, minlength=len(prompt_of))
    keep = np.flatnonzero(counts[pid_arr] >= min_responses)
    info = {"n_items_read": len(responses), "dropped_prompts": int((counts < min_responses).sum()),
            "min_responses": min_responses, "max_responses": int(counts.max()) if len(counts) else 0}
    pool = ResponsePool(prompts, responses, pid_arr, srcs, None, info).select(keep)
    if golden is not None:
        pool = pool.with_golden(np.asarray(values, dtype=float)[keep],
                                {"golden": golden, "golden_description": _DESCRIBE[golden]})
    return pool


_DESCRIBE = {
    "column": "the data's golden_chosen/golden_rejected columns",
    "labels": "verifiable correctness: 1 for responses only ever chosen, 0 for responses only ever rejected",
}


def score_with_reward_model(pool: ResponsePool, model_dir: str | Path, *, batch_size: int = 16,
                            progress: bool = False) -> ResponsePool:
    """Golden = the rewards of a reward model saved by rewardlab (``RewardModel.from_pretrained``)."""
    from rewardlab.models.reward_model import load_reward_model

    rm = load_reward_model(model_dir, option="golden model")
    scores = rm.score(pool.prompt, pool.response, batch_size=batch_size, progress=progress)
    return pool.with_golden(scores, {"golden": "reward_model", "golden_model": str(model_dir),
                                     "golden_description": f"scores of the reward model {model_dir}"})


def score_with_embedding_head(pool: ResponsePool, train_data: str | Sequence[str], *,
                              embedding: dict | None = None, head: dict | None = None,
                              objective: str | dict = "bt", seed: int = 0, cache_dir: str | None = None,
                              log: Callable[[str], None] | None = None) -> ResponsePool:
    """Golden = an ensemble head (``rewardlab.heads``) trained with ``objective`` on cached
    embeddings of the pairs of ``train_data``, scoring the pool's items.

    ``embedding`` is an ``EmbedSpec`` dict (default MiniLM, mean pooling); ``head`` a
    ``HeadConfig`` dict (default an MLP ensemble of 5). Pairs of ``train_data`` whose prompt is a
    pool prompt are left out, so the golden reward is never fitted on the pool's own comparisons.
    """
    from rewardlab.data import load_preferences
    from rewardlab.embed.extract import EmbedSpec, embed_texts
    from rewardlab.heads import HeadConfig, fit_head

    spec = EmbedSpec(**({"model": "minilm", "pooling": "mean"} | (embedding or {})))
    cfg = HeadConfig.model_validate({"kind": "mlp", "members": 5} | (head or {}))
    table = load_preferences(train_data)
    pool_prompts = {prompt_text_key(p) for p in pool.prompt}
    keep = [i for i in range(len(table)) if table.prompt_key(i) not in pool_prompts]
    table = table.select(keep)
    if len(table) == 0:
        raise DataError("no training pairs left after removing the pool's prompts", expected="some pairs")
    n = len(table)
    emb = embed_texts(list(table["prompt"]) * 2, list(table["chosen"]) + list(table["rejected"]), spec,
                      cache_dir=cache_dir, log=log)
    fitted = fit_head(emb.embeddings, np.arange(n), np.arange(n, 2 * n), objective=objective, config=cfg,
                      seed=seed)
    pool_emb = embed_texts(pool.prompt, pool.response, spec, cache_dir=cache_dir, log=log)
    scores = fitted.predict(pool_emb.embeddings)
    return pool.with_golden(scores, {
        "golden": "embedding_head", "golden_embedding": spec.as_dict(), "golden_head": cfg.model_dump(),
        "golden_objective": objective, "golden_train_data": train_data, "golden_train_pairs": n,
        "golden_description": f"{cfg.kind} head ({objective}) on {spec.model} embeddings, "
                              f"trained on {n} pairs of {train_data}"})


def build_pool(data: str | Sequence[str], golden: dict, *, min_responses: int = 2,
               max_prompts: int | None = None, log: Callable[[str], None] | None = None,
               option: str = "min_responses") -> ResponsePool:
    """Load ``data``, pool its responses by prompt and assign the golden reward ``golden``.

    ``golden`` is ``{"kind": "reward_model", "model": DIR}``, ``{"kind": "embedding_head",
    "train_data": SPECS, ...}``, ``{"kind": "column"}`` or ``{"kind": "labels"}``.
    ``max_prompts`` keeps the first prompts only (quick runs). A pool left empty by
    ``min_responses`` is an error naming ``option`` and the most responses any prompt has.
    """
    from rewardlab.data import load_preferences

    golden = dict(golden)
    kind = golden.pop("kind", None)
    if kind not in GOLDEN_KINDS:
        raise ConfigError(f"golden kind must be one of {GOLDEN_KINDS}, got {kind!r}")
    table = load_preferences(data)
    pool = pool_from_table(table, min_responses=min_responses,
                           golden=kind if kind in ("column", "labels") else None)
    if len(pool) == 0:
        most = pool.info.get("max_responses", 0)
        raise ConfigError(f"{option} {min_responses}: no prompt of the data has that many distinct responses (the "
                          f"most any prompt has is {most}), so the pool would be empty")
    if max_prompts is not None:
        pool = pool.select(np.flatnonzero(pool.prompt_id < max_prompts))
    pool.info["data"] = data if isinstance(data, str) else list(data)
    if log:
        log(f"pool: {len(pool)} responses to {pool.n_prompts} prompts "
            f"(responses per prompt: {pool.responses_per_prompt()})")
    if kind == "reward_model":
        if not golden.get("model"):
            raise ConfigError("golden kind 'reward_model' needs 'model' (a directory saved by rewardlab)")
        if not Path(golden["model"]).is_dir():
            raise ConfigError(f"golden reward model not found: {golden['model']} (train it first; "
                              f"see docs/embeddings_and_studies.md, 'The golden setting')")
        if log:
            log(f"scoring {len(pool)} responses with the golden reward model {golden['model']}")
        pool = score_with_reward_model(pool, golden["model"], batch_size=int(golden.get("batch_size", 16)),
                                       progress=bool(golden.get("progress", False)))
    elif kind == "embedding_head":
        if not golden.get("train_data"):
            raise ConfigError("golden kind 'embedding_head' needs 'train_data' (data specs)")
        pool = score_with_embedding_head(
            pool, golden["train_data"], embedding=golden.get("embedding"), head=golden.get("head"),
            objective=golden.get("objective", "bt"), seed=int(golden.get("seed", 0)),
            cache_dir=golden.get("cache_dir"), log=log)
    return pool
