"""Run a study: prepare the pool and embeddings once, then every cell on a local process pool or
on Ray, appending each result as it finishes so an interrupted study resumes where it stopped.

Study directory (``output_dir``)::

    study.yaml         the resolved configuration
    pool.parquet       the golden pool (items, prompt ids, golden reward)
    embeddings/*.npy   one matrix per embedding model, a row per pool item
    results.jsonl      one line per finished cell (the resume record)
    errors.jsonl       cells that failed (retried by the next run)
    results.parquet, results.csv, plots/*.png   written at the end of every run

A cell: simulate ``quantity`` annotated pairs on the pool's training prompts (``pairing``,
``selection``, ``beta``, ``seed``), train the head with the objective on the embeddings of the
pairs, score the test prompts' items, and compare with the golden reward: Best-of-N gain for
each N, per-prompt Spearman, pairwise accuracy over same-prompt pairs (``eval.metrics``).

The same cell function serves both backends. Local: ``ProcessPoolExecutor`` (spawn) whose
workers each load the pool and embedding matrices once (a per-process cache). Ray: the arrays
are put in the object store once and every task reads them from there (no shared filesystem
needed on a cluster); ``address=None`` starts a local Ray instance.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rewardlab.errors import ConfigError
from rewardlab.study.grid import GRID_KEYS, StudyConfig, cells, objective_label, parse_study_config

Log = Callable[[str], None]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]


# ---------------------------------------------------------------------- preparation
def prepare(cfg: StudyConfig, *, log: Log = print, progress: bool = False) -> dict[str, Any]:
    """Build (or reuse) the pool and the embedding matrices; return what workers need."""
    from rewardlab.study.golden import ResponsePool, build_pool
    from rewardlab.data.simulate import golden_scale
    from rewardlab.embed.extract import EmbedSpec, embed_texts

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    pool_key = _hash(cfg.pool.model_dump())
    pool_file = out / "pool.parquet"
    pool = ResponsePool.read(pool_file) if pool_file.is_file() else None
    if pool is None or pool.info.get("pool_key") != pool_key:
        if cfg.pool.path is not None:
            pool = ResponsePool.read(cfg.pool.path)
            if cfg.pool.max_prompts is not None:
                pool = pool.select(np.flatnonzero(pool.prompt_id < cfg.pool.max_prompts))
        else:
            golden = {**cfg.pool.golden.model_dump(exclude_none=True), "progress": progress}
            pool = build_pool(cfg.pool.data, golden,
                              min_responses=cfg.pool.min_responses, max_prompts=cfg.pool.max_prompts, log=log,
                              option="pool.min_responses")
        pool.info["pool_key"] = pool_key
        pool.write(pool_file)
    if pool.golden is None:
        raise ConfigError(f"the pool {cfg.pool.path or pool_file} has no golden rewards")
    is_test = pool.test_mask(cfg.pool.test_fraction, cfg.pool.split_salt)
    n_test_prompts = len(np.unique(pool.prompt_id[is_test]))
    if n_test_prompts == 0 or n_test_prompts == pool.n_prompts:
        raise ConfigError(f"the split gives {n_test_prompts} of {pool.n_prompts} prompts to test; "
                          f"change pool.test_fraction")
    scale_setting = cfg.simulation.scale
    scale = scale_setting if scale_setting == "per_prompt" else golden_scale(pool.golden, scale_setting)
    arrays_file = out / "pool_arrays.npz"
    np.savez(arrays_file, golden=pool.golden, prompt_id=pool.prompt_id, is_test=is_test)
    emb_files: dict[str, str] = {}
    for name in cfg.grid.embedding:
        e = cfg.embedding(name)
        target = out / "embeddings" / f"{_slug(name)}-{_hash([e.spec(), e.path, pool_key])}.npy"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if e.path is not None:
                matrix = np.load(e.path)
            else:
                res = embed_texts(pool.prompt, pool.response, EmbedSpec(**e.spec()), cache_dir=cfg.cache_dir,
                                  batch_size=e.batch_size, progress=progress, log=log)
                matrix = res.embeddings
            if matrix.ndim != 2 or len(matrix) != len(pool):
                raise ConfigError(f"embeddings {name!r}: expected {len(pool)} rows (one per pool item), "
                                  f"got shape {matrix.shape}")
            tmp = target.with_name(target.name + ".tmp.npy")
            np.save(tmp, np.ascontiguousarray(matrix, dtype=np.float32))
            tmp.replace(target)
        emb_files[name] = str(target)
    scale_text = "per prompt" if isinstance(scale, str) else f"{scale:.4g}"
    log(f"pool: {len(pool)} items, {pool.n_prompts} prompts ({n_test_prompts} test), golden scale s = {scale_text}; "
        f"{pool.info.get('golden_description', pool.info.get('golden', ''))}")
    return {"config": cfg.model_dump(mode="json"), "arrays": str(arrays_file), "embeddings": emb_files,
            "scale": scale, "output_dir": str(out)}


# ---------------------------------------------------------------------- one cell
def evaluate_cell(cell: dict[str, Any], cfg: StudyConfig, arrays: dict[str, np.ndarray], X: np.ndarray,
                  scale: float | str, threads: int | None = None) -> dict[str, Any]:
    """Simulate, train and evaluate one cell; returns its results row."""
    from rewardlab.data.simulate import simulate_pairs
    from rewardlab.eval.metrics import accuracy_from_counts, best_of_n_gain, golden_pair_counts, per_prompt_spearman
    from rewardlab.eval.overopt import best_of_n_curve
    from rewardlab.heads import fit_head

    t0 = time.perf_counter()
    golden, prompt_id, is_test = arrays["golden"], arrays["prompt_id"], arrays["is_test"].astype(bool)
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    beta = cell["beta"]
    sim = simulate_pairs(golden[train_idx], prompt_id[train_idx], n=cell["quantity"], pairing=cell["pairing"],
                         selection=cell["selection"], beta=None if beta < 0 else beta, scale=scale,
                         seed=cell["seed"], max_per_item=cfg.simulation.max_per_item,
                         each_prompt_once=cfg.simulation.each_prompt_once)
    head_cfg = cfg.head_config(cell["head"])
    if head_cfg.kind == "gbdt" and threads and not head_cfg.gbdt.num_threads:
        head_cfg = head_cfg.model_copy(update={"gbdt": head_cfg.gbdt.model_copy(update={"num_threads": threads})})
    fitted = fit_head(X, train_idx[sim.chosen], train_idx[sim.rejected], objective=cell["objective"],
                      config=head_cfg, seed=cell["seed"])
    pred = fitted.predict(X[test_idx])
    g, pid = golden[test_idx], prompt_id[test_idx]
    counts = golden_pair_counts(pred, g, pid)
    ns = cfg.eval.best_of_n
    bon = best_of_n_gain(pred, g, pid, ns, n_perm=cfg.eval.n_perm, seed=cell["seed"])
    oracle = best_of_n_gain(g, g, pid, ns, n_perm=cfg.eval.n_perm, seed=cell["seed"])
    info = fitted.info
    epochs = info.get("epochs") or info.get("best_iteration") or []
    val = [v for v in info.get("best_val_loss", []) if v is not None]
    row: dict[str, Any] = {
        "cell_id": cell["cell_id"],
        **{k: objective_label(cell[k]) if k == "objective" else cell[k] for k in GRID_KEYS},
        "objective_config": json.dumps(cell["objective"], sort_keys=True),
        "noiseless": beta < 0,
        "members": info.get("members"),
        "label_error_rate": sim.label_error_rate,
        "max_comparisons_per_item": sim.summary()["max_comparisons_per_item"],
        "expected_error_rate": float(1 - sim.p_correct.mean()),
        "n_train_pairs": info.get("n_train_pairs"),
        "n_val_pairs": info.get("n_val_pairs"),
        "n_test_items": int(len(test_idx)),
        "n_test_prompts": int(len(np.unique(pid))),
        "pairwise_accuracy": accuracy_from_counts(counts, cfg.eval.ties),
        "pairwise_accuracy_half": accuracy_from_counts(counts, "half"),
        "pairwise_tied_fraction": counts["tied"] / counts["pairs"],
        "spearman": per_prompt_spearman(pred, g, pid),
    }
    for n in ns:
        row[f"bon_{n}"] = bon[n]
        row[f"bon_oracle_{n}"] = oracle[n]
    # Over-optimisation (Gao et al. 2023): golden (in golden std units) and proxy (in its std units)
    # gain of the best-of-N pick as N grows past the pool, and the N where the golden gain peaks.
    curve = best_of_n_curve(pred, g, pid, cfg.eval.overopt_n, golden_scale=scale)
    for n, gg, pg in zip(curve.ns, curve.golden_gain, curve.proxy_gain):
        row[f"overopt_golden_{n}"], row[f"overopt_proxy_{n}"] = gg, pg
    row["overopt_peak_n"], row["overopt_peak_gain"] = curve.peak_n, curve.peak_gain
    row["overopt_saturation_n"] = curve.saturation_n
    row.update({
        "epochs_mean": float(np.mean(epochs)) if len(epochs) else None,
        "val_loss_mean": float(np.mean(val)) if val else None,
        "train_seconds": info.get("train_seconds"),
        "cell_seconds": time.perf_counter() - t0,
        "threads": threads,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    })
    return row


# ---------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _worker_init(threads: int | None) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _set_threads(threads)


def _cached(key: str, make: Callable[[], Any]) -> Any:
    if key not in _WORKER:
        _WORKER[key] = make()
    return _WORKER[key]


def _local_task(cell: dict[str, Any], ctx: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """Worker side of the local backend: config and arrays are loaded once per process."""
    _set_threads(threads)
    cfg = _cached("cfg:" + _hash(ctx["config"]), lambda: parse_study_config(ctx["config"]))
    arrays = _cached("arrays:" + ctx["arrays"], lambda: dict(np.load(ctx["arrays"])))
    path = ctx["embeddings"][cell["embedding"]]
    X = _cached("emb:" + path, lambda: np.load(path))
    return evaluate_cell(cell, cfg, arrays, X, ctx["scale"], threads)


def _ray_task(cell: dict[str, Any], config: dict[str, Any], scale: float, threads: int | None,
              arrays: dict[str, np.ndarray], X: np.ndarray) -> dict[str, Any]:
    """Worker side of the Ray backend: arrays arrive from the object store."""
    _set_threads(threads)
    cfg = _cached("cfg:" + _hash(config), lambda: parse_study_config(config))
    return evaluate_cell(cell, cfg, arrays, X, scale, threads)


# ---------------------------------------------------------------------- results store
def read_results(output_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``results.jsonl`` (a torn last line from an interruption is ignored); the last row
    of a cell wins."""
    path = Path(output_dir) / "results.jsonl"
    rows: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "cell_id" in row:
                rows[row["cell_id"]] = row
    return list(rows.values())


class _Store:
    def __init__(self, out: Path) -> None:
        self.results = out / "results.jsonl"
        self.errors = out / "errors.jsonl"
        for path in (self.results, self.errors):  # end a line torn by a kill before appending
            if path.is_file() and path.stat().st_size:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
                if torn:
                    with path.open("a", encoding="utf-8") as f:
                        f.write("\n")

    @staticmethod
    def _append(path: Path, row: dict) -> None:
        line = json.dumps(row, default=_json_default) + "\n"
        with path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def add(self, row: dict) -> None:
        self._append(self.results, row)

    def fail(self, cell: dict, err: BaseException | str) -> None:
        text = err if isinstance(err, str) else "".join(traceback.format_exception(err))
        self._append(self.errors, {"cell_id": cell["cell_id"], "cell": cell, "error": text, "time": time.time()})


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_tables(rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """``results.parquet`` and ``results.csv``: one row per cell, columns in first-seen order."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    table = pa.table({n: pa.array([r.get(n) for r in rows]) for n in names}) if rows else pa.table({})
    pq.write_table(table, out / "results.parquet")
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in rows:
            w.writerow(["" if r.get(n) is None else r.get(n) for n in names])
    return {"parquet": out / "results.parquet", "csv": out / "results.csv"}


# ---------------------------------------------------------------------- driver
def run_study(
    cfg: StudyConfig,
    *,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    resume: bool = True,
    max_cells: int | None = None,
    plots: bool = True,
    progress: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Run the cells of ``cfg`` not finished yet; returns a summary (counts, seconds, files).

    ``resume=False`` starts over (the old ``results.jsonl`` is kept as ``results.jsonl.old``).
    ``max_cells`` runs at most that many pending cells (quick checks, or a study in slices).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    t0 = time.perf_counter()
    out = Path(cfg.output_dir)
    ctx = prepare(cfg, log=log, progress=progress)
    grid = cells(cfg)
    if not resume and (out / "results.jsonl").is_file():
        (out / "results.jsonl").replace(out / "results.jsonl.old")
    done = {r["cell_id"] for r in read_results(out)}
    pending = [c for c in grid if c["cell_id"] not in done]
    n_skipped = len(grid) - len(pending)
    if max_cells is not None:
        pending = pending[:max_cells]
    threads = cfg.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    log(f"study {cfg.name}: {len(grid)} cells, {n_skipped} already done, running {len(pending)} "
        f"on {backend} with {workers} worker(s) x {threads} thread(s)")
    store = _Store(out)
    counter = {"ok": 0, "failed": 0}
    t_run = time.perf_counter()

    def on_done(cell: dict, row: dict | None, err: BaseException | str | None) -> None:
        if err is not None:
            counter["failed"] += 1
            store.fail(cell, err)
            first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            log(f"  cell {cell['cell_id']} failed: {first}")
            return
        counter["ok"] += 1
        store.add(row)
        k = counter["ok"] + counter["failed"]
        rate = (time.perf_counter() - t_run) / k
        log(f"  [{k}/{len(pending)}] {_describe(cell)}: acc {row['pairwise_accuracy']:.3f}, "
            f"spearman {row['spearman']:.3f} ({row['cell_seconds']:.1f} s; ~{rate * (len(pending) - k):.0f} s left)")

    if pending:
        if backend == "local":
            _run_local(pending, ctx, workers, threads, on_done)
        else:
            _run_ray(pending, ctx, workers, threads, ray_address, on_done)
    rows_by_id = {r["cell_id"]: r for r in read_results(out)}
    rows = [rows_by_id[c["cell_id"]] for c in grid if c["cell_id"] in rows_by_id]
    files = write_tables(rows, out)
    if plots and rows:
        from rewardlab.study.plots import make_plots

        files.update(make_plots(rows, out / "plots", cfg.eval.best_of_n))
    summary = {"cells": len(grid), "skipped": n_skipped, "ran": counter["ok"], "failed": counter["failed"],
               "finished": len(rows), "remaining": len(grid) - len(rows), "seconds": time.perf_counter() - t0,
               "files": {k: str(v) for k, v in files.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _describe(cell: dict) -> str:
    beta = "noiseless" if cell["beta"] < 0 else f"beta={cell['beta']:g}"
    return (f"{cell['embedding']}/{objective_label(cell['objective'])}/{cell['head']} {beta} "
            f"n={cell['quantity']} {cell['pairing']}/{cell['selection']} seed={cell['seed']}")


def _run_local(pending: list[dict], ctx: dict, workers: int, threads: int,
               on_done: Callable[[dict, dict | None, Any], None]) -> None:
    if workers == 1:
        _worker_init(threads)
        for cell in pending:
            try:
                row = _local_task(cell, ctx, threads)
            except Exception as e:  # noqa: BLE001 - recorded and retried by the next run
                on_done(cell, None, e)
            else:
                on_done(cell, row, None)
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_local_task, cell, ctx, threads): cell for cell in pending}
        try:
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in finished:
                    err = fut.exception()
                    on_done(futures[fut], None if err else fut.result(), err)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(pending: list[dict], ctx: dict, workers: int, threads: int, address: str | None,
             on_done: Callable[[dict, dict | None, Any], None]) -> None:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("the ray backend needs Ray: pip install 'rewardlab[ray]'") from e
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        arrays_ref = ray.put(dict(np.load(ctx["arrays"])))
        emb_refs = {name: ray.put(np.load(path)) for name, path in ctx["embeddings"].items()}
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        futures = {task.remote(cell, ctx["config"], ctx["scale"], threads, arrays_ref, emb_refs[cell["embedding"]]): cell
                   for cell in pending}
        remaining = list(futures)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            for ref in ready:
                try:
                    row = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - recorded and retried by the next run
                    on_done(futures[ref], None, e)
                else:
                    on_done(futures[ref], row, None)
    finally:
        if started:
            ray.shutdown()
