"""The one training loop: reward model + objective, ``accelerate`` underneath.

Read it top to bottom: data -> model -> loss -> optimizer -> (resume) -> steps with validation,
logging and checkpoints -> export. The single-process path is the same code as DDP/FSDP/DeepSpeed
under ``accelerate launch``; each process takes its share of every global batch. Methods that
change the run beyond the objective (LoRA, Critic-RM, MetaRM, ...) are plug-ins
(``rewardlab.train.methods``): the loop calls their hooks and names none of them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rewardlab.config import RunConfig, dump_config
from rewardlab.data.lengths import length_diagnostics, length_summary_line, response_lengths
from rewardlab.errors import ConfigError
from rewardlab.models import packing
from rewardlab.models.backbone import enable_checkpointing
from rewardlab.models.pairs import encode_pairs
from rewardlab.models.reward_model import RewardModel, reward_stats
from rewardlab.objectives import ItemInputs, LossInputs, build_loss
from rewardlab.objectives.registry import layout_of
from rewardlab.runinfo import parameter_counts, peak_memory, run_info
from rewardlab.train import batching, checkpoint, items as item_data, methods
from rewardlab.train.batching import micro_batches_per_epoch
from rewardlab.train.data import prepare_tables

log = logging.getLogger(__name__)


class TrainModule(nn.Module):
    """Reward model and loss in one module, so DDP syncs (and checkpoints save) both."""

    def __init__(self, model: RewardModel, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: dict, columns: dict | None = None, reduce=None):
        # Padded or packed (train.packing); extra: what a joint model returns besides rewards and
        # features (Critic-RM's LM loss), handed to its loss.
        r, h, *extra = packing.forward(self.model, batch)
        if getattr(self.loss, "layout", "pairs") == "items":  # single responses with targets [n, K]
            r_, t = item_data.as_columns(r, columns["target"])
            rest = {k: v for k, v in columns.items() if k not in ("target", "group")}
            loss, logs = self.loss(ItemInputs(r_, t, columns.get("group"), rest), *extra)
            return loss, logs, r.detach(), None
        if reduce is not None:  # a method's own objective on the batch's rewards (MetaRM's J)
            return reduce(r)
        b = r.shape[0] // 2
        loss, logs = self.loss(LossInputs(r[:b], r[b:], h[:b], h[b:], columns), *extra)
        return loss, logs, r[:b].detach(), r[b:].detach()


def disable_dropout(module: nn.Module) -> int:
    """Every ``nn.Dropout`` to p = 0 (attention dropout reads its module's p), as TRL's
    ``disable_dropout``; returns how many modules were changed."""
    changed = 0
    for m in module.modules():
        if isinstance(m, nn.Dropout) and m.p:
            m.p, changed = 0.0, changed + 1
    return changed


class _StopFlag:
    """SIGTERM/SIGINT ask for a checkpoint at the next step boundary, then a clean stop."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        # Biases, norms and the loss's own parameters (SwAV prototypes, normalised in use) get no decay.
        (no_decay if p.ndim < 2 or "norm" in name.lower() or name.startswith("loss.") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _write_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def drop_records_after(path: Path, step: int) -> int:
    """Keep only the records of steps <= ``step`` in the metrics file ``path`` (rewritten
    atomically); returns how many were dropped. On resume the steps after the checkpoint are
    trained and logged again, so without this a killed run's log holds them twice."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if rec.get("step", 0) <= step:
            kept.append(line)
    if len(kept) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(x + "\n" for x in kept))
        os.replace(tmp, path)
    return len(lines) - len(kept)


def validate(accelerator, model: RewardModel, pairs, batch_size: int, groups: list | None = None,
             packing_mode: str = "none", lengths: tuple | None = None) -> dict:
    """Accuracy (a tie is wrong), mean margin, reward mean/std; reduced across processes.

    With ``groups`` (a label per pair, e.g. its source), also ``by_group``: {label: {n, correct,
    accuracy}} as ``accuracy_by_group``, so the end of the run need not score the pairs again.
    With ``lengths`` (the chosen and rejected response lengths of each pair, in characters), also
    ``length``: :func:`rewardlab.data.lengths.length_diagnostics` on all pairs (the rewards
    gathered from every process).
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    idx = list(range(rank, len(pairs), world))
    if packing_mode != "none" and idx:  # the training layout: shared prompt for decoders
        rc, rr = packing.score_pairs(model, [pairs.chosen[i] for i in idx], [pairs.rejected[i] for i in idx],
                                     pairs_per_batch=max(batch_size // 2, 1), mode=packing_mode)
        r = np.concatenate([rc, rr])
    else:
        items = [pairs.chosen[i] for i in idx] + [pairs.rejected[i] for i in idx]
        r = model.score_encoded(items, batch_size=batch_size) if items else np.zeros(0)
        rc, rr = r[: len(idx)], r[len(idx):]
    sums = torch.tensor([len(idx), float((rc > rr).sum()), float((rc - rr).sum()), float(r.sum()),
                         float((r ** 2).sum())], dtype=torch.float64)
    n, correct, margin, rsum, rsq = accelerator.reduce(sums.to(accelerator.device), "sum").tolist()
    mean = rsum / max(2 * n, 1)
    out = {"n": int(n), "accuracy": correct / max(n, 1), "mean_margin": margin / max(n, 1),
           "reward_mean": mean, "reward_std": math.sqrt(max(rsq / max(2 * n, 1) - mean ** 2, 0.0))}
    if lengths is not None and n:
        from accelerate.utils import gather_object

        got = gather_object([(i, float(c), float(r_)) for i, c, r_ in zip(idx, rc, rr)])
        order = np.asarray([g[0] for g in got], dtype=np.int64)
        out["length"] = length_diagnostics([g[1] for g in got], [g[2] for g in got],
                                           np.asarray(lengths[0])[order], np.asarray(lengths[1])[order])
    if groups is not None:
        labels = list(dict.fromkeys(groups))  # order of first appearance, the same on every rank
        counts = torch.zeros(len(labels), 2, dtype=torch.float64)
        where = {g: k for k, g in enumerate(labels)}
        for j, i in enumerate(idx):
            counts[where[groups[i]]] += torch.tensor([1.0, float(rc[j] > rr[j])], dtype=torch.float64)
        counts = accelerator.reduce(counts.to(accelerator.device), "sum").tolist()
        out["by_group"] = {g: {"n": int(c[0]), "correct": int(c[1]), "accuracy": c[1] / c[0]}
                           for g, c in zip(labels, counts)}
    return out


def train(cfg: RunConfig, *, resume: bool = False) -> dict:
    """Train a reward model as ``cfg`` says; returns the summary also written to summary.json."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    tc, out = cfg.train, Path(cfg.output_dir)
    if tc.ensemble is not None:  # k runs of this loop, one per member: rewardlab.train.ensemble
        raise ConfigError("train.ensemble: an ensemble trains through rewardlab.train.ensemble.train_model "
                          "(rewardlab train does), one run of this loop per member")
    plugins = methods.active(cfg)  # the config sections that switch on a method (lora, critic, metarm, odin)
    for m in plugins:  # settings that need more than the config (LoRA's rank against the layer widths)
        m.check()
    # The objective's input layout: pairs (chosen/rejected), or items (single responses with
    # targets, rewardlab.train.items: regression, correctness, scaled BT).
    items = layout_of(cfg.objective) == "items"
    if items:
        for m in plugins:
            if "items" not in m.layouts:
                raise ConfigError(f"{m.name}: trains on pairs; objective '{cfg.objective.get('name')}' reads "
                                  f"single responses with targets: remove the '{m.name}' section")
        if cfg.data.length_balance is not None:  # balances chosen/rejected lengths: pairs only
            raise ConfigError("data.length_balance: item objectives read single responses, not pairs; remove it")
        if cfg.data.split_key is not None:
            raise ConfigError("data.split_key: item objectives split by prompt; remove data.split_key")
        if tc.packing not in ("auto", "none"):
            raise ConfigError(f"train.packing {tc.packing!r}: item objectives train on padded batches; "
                              f"use packing: none")
    _reset_single_process_state()
    ddp_kwargs = DistributedDataParallelKwargs(
        find_unused_parameters=cfg.model.pooling in ("mean", "native") or any(m.find_unused_parameters for m in plugins))
    # Without a GPU, accelerate only joins the process group of `accelerate launch` when told cpu=True.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=tc.mixed_precision,
                              log_with=tc.report_to or None, project_dir=str(out), kwargs_handlers=[ddp_kwargs])
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    ckpt_root = out / "checkpoints"
    if not resume and checkpoint.latest(ckpt_root) is not None:
        raise ConfigError(f"{out} already holds checkpoints: pass --resume to continue, or choose another output_dir")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(cfg.model_copy(update={"run": run_info()})))
        if not resume:
            (out / "metrics.jsonl").unlink(missing_ok=True)
    set_seed(tc.seed)

    # ---- data and model
    if items:  # one output per target column (K attributes: num_labels = K, id2label their names)
        tables = item_data.prepare_item_tables(cfg.data, seed=tc.seed)
        extra_hf = {"num_labels": tables.train.num_labels}
    else:
        tables = prepare_tables(cfg.data, seed=tc.seed, keep_columns=[c for m in plugins for c in m.columns()])
        extra_hf = {}
    model = methods.first(m.build_model() for m in plugins)
    if model is None:
        model = RewardModel.from_backbone(
            cfg.model.name_or_path, pooling=cfg.model.pooling, max_length=cfg.model.max_length,
            overlength=cfg.model.overlength, render=cfg.model.render, padding_side=cfg.model.padding_side,
            dtype=torch.bfloat16 if cfg.model.dtype == "bfloat16" else None, **extra_hf,
        )
    if items:
        item_data.set_attribute_names(model, tables.train.names)
    if cfg.model.gradient_checkpointing:
        enable_checkpointing(model.model)
    for m in plugins:  # adapters on the backbone (LoRA), ...
        m.wrap_model(model)
    # auto -> what this model supports (Critic-RM: none); padded under bf16 on CUDA (auto_for_device)
    requested = packing.auto_for_device(tc.packing, accelerator.device.type, tc.mixed_precision)
    if requested != tc.packing:
        log.info("train.packing auto: padded batches under bf16 on CUDA (packed attention measured 10x slower "
                 "there, docs/speed.md); set train.packing: padding_free to pack anyway")
    packing_mode = "none" if items else packing.enable(model, requested)
    if tc.disable_dropout:  # the default, as TRL's: NormBT's ||h_c - h_r|| must not be dropout noise
        disable_dropout(model)

    def encode(table):  # a method's own encoding (Critic-RM: with critiques), else the model's
        if items:  # responses grouped by prompt; len() = prompts
            return item_data.encode_items(model, table)
        pairs = methods.first(m.encode_pairs(model, table) for m in plugins)
        return pairs if pairs is not None else encode_pairs(model, table)

    train_pairs = encode(tables.train)
    val_pairs = encode(tables.validation) if tables.validation is not None else None
    if len(train_pairs) == 0:
        raise ConfigError("no training pairs left after loading and the over-length policy")
    lengths = ((item_data.item_lengths if items else batching.pair_lengths)(train_pairs)
               if tc.group_by_length else None)
    for m in plugins:  # what a method loads besides the pairs (MetaRM: the shifted data's responses)
        m.setup(accelerator, model, tables.report)

    reduce_mean = (lambda t: accelerator.reduce(t, "mean")) if world > 1 else None
    loss_fn = build_loss(cfg.objective, cfg.aux, feature_dim=model.feature_dim, all_reduce_mean=reduce_mean)
    for m in plugins:  # extra loss terms (Critic-RM: λ(t) · L_SFT + (1 − λ(t)) · L_reward)
        loss_fn = m.wrap_loss(loss_fn)
    if items:  # e.g. a standardised regression's mean and std (buffers of the loss, checkpointed)
        target = torch.as_tensor(train_pairs.target)
        loss_fn.fit_targets(target[:, 0] if model.num_labels == 1 else target)
    module = TrainModule(model, loss_fn)

    # ---- optimisation schedule
    global_batch = tc.batch_size * world
    per_epoch = micro_batches_per_epoch(len(train_pairs), global_batch)
    total_micro = math.ceil(per_epoch * tc.epochs)
    total_steps = math.ceil(total_micro / tc.grad_accum)
    if tc.max_steps is not None:  # max_steps wins over epochs (the data order continues across epochs)
        total_steps = tc.max_steps
        total_micro = total_steps * tc.grad_accum
    optimizer = torch.optim.AdamW(_param_groups(module, tc.weight_decay), lr=tc.lr)
    # The scheduler stays unprepared and steps once per optimizer step (accelerate's wrapper would
    # step it once per process); it is checkpointed through register_for_checkpointing.
    scheduler = get_scheduler(tc.scheduler if tc.scheduler != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(tc.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    module, optimizer = accelerator.prepare(module, optimizer)
    progress = checkpoint.Progress()
    accelerator.register_for_checkpointing(scheduler, progress)
    if resume:
        last = checkpoint.latest(ckpt_root)
        if last is not None:
            accelerator.load_state(str(last))
            log.info("resumed from %s (step %d)", last, progress.step)
    if tc.report_to:
        accelerator.init_trackers(out.name, config=cfg.model_dump(mode="json"))
    inner = accelerator.unwrap_model(module)
    metrics_path = out / "metrics.jsonl"
    if resume and main:
        dropped = drop_records_after(metrics_path, progress.step)
        if dropped:
            log.info("metrics.jsonl: dropped %d record(s) logged after the checkpoint (step %d)", dropped, progress.step)

    def log_record(record: dict) -> None:
        if main:
            _write_jsonl(metrics_path, record)
        if tc.report_to:
            values = {f"{record['split']}/{k}": v for k, v in record.items()
                      if isinstance(v, (int, float)) and k != "step"}
            length = record.get("length") or {}  # trackers take numbers: the length diagnostics' estimates
            for name, block, key in (("spearman", "spearman", "rho"), ("acc_chosen_longer", "chosen_longer", "accuracy"),
                                      ("acc_chosen_shorter", "chosen_shorter", "accuracy")):
                if (length.get(block) or {}).get(key) is not None:
                    values[f"{record['split']}/length_{name}"] = length[block][key]
            accelerator.log(values, step=record["step"])

    bar = None
    if main and tc.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=progress.step, desc="train", unit="step", dynamic_ncols=True)

    # Loss sum, correct, pairs since the last train record; checkpointed in `progress` (summed over
    # processes, restored on the main one), so the first record after --resume equals the uninterrupted run's.
    window = torch.tensor(progress.window if main else [0.0, 0.0, 0.0], dtype=torch.float64)
    last_val: dict = {}
    by_source: dict | None = None
    if val_pairs is not None and len(val_pairs) and not items:
        val_sources = ([tables.validation["source"][i] for i in val_pairs.rows] if tables.validation.has("source")
                       else ["all"] * len(val_pairs))
        val_lengths = tuple(response_lengths([tables.validation[side][i] for i in val_pairs.rows])
                            for side in ("chosen", "rejected"))  # characters, as eval counts them
    order_seed = tc.seed if tc.data_seed is None else tc.data_seed  # the data order (an ensemble member's)
    postfix: dict = {}  # the progress line's loss, acc (last train record) and val_acc (last validation)
    interrupted = 0
    module.train()
    with _StopFlag() as stop:
        while progress.step < total_steps:
            t0 = time.perf_counter()
            n_micro = min(tc.grad_accum, total_micro - progress.micro)
            ctx = methods.StepContext(accelerator, module, inner, progress.step, total_steps, tc.log_every, tc.seed)
            for m in plugins:  # Critic-RM: λ(t); MetaRM: θ′ = θ + η∇J(θ) in place, gradients below at θ′
                m.before_step(ctx)
            logs: dict = {}
            for k in range(n_micro):
                idx = batching.micro_batch_pairs(train_pairs, order_seed, progress.micro, global_batch, rank, world,
                                                 tc.group_by_length, lengths)
                batch, cols = (item_data.item_batch(inner.model, train_pairs, idx) if items
                               else batching.make_batch(inner.model, train_pairs, idx, packing_mode))
                tokens = packing.token_counts(batch)
                progress.tokens += tokens[0] * world
                progress.real_tokens += tokens[1] * world
                batch = {key: v.to(accelerator.device) for key, v in batch.items()}
                cols = {key: v.to(accelerator.device) for key, v in cols.items()}
                sync = k == n_micro - 1
                ctx = accelerator.no_sync(module) if not sync and world > 1 else _nullcontext()
                with ctx:
                    loss, logs, rc, rr = module(batch, cols)
                    accelerator.backward(loss / n_micro)
                correct = 0.0 if rr is None else float((rc > rr).sum())
                window += torch.tensor([float(loss.detach()) * len(idx), correct, len(idx)], dtype=torch.float64)
                progress.micro += 1
                progress.pairs_seen += len(idx) * world
            for m in plugins:  # MetaRM: back to θ, keeping the gradient taken at θ′
                m.after_backward(ctx)
            if tc.max_grad_norm is not None:
                accelerator.clip_grad_norm_(module.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            progress.train_seconds += time.perf_counter() - t0

            if progress.step % tc.log_every == 0 or progress.step == total_steps:
                w = accelerator.reduce(window.to(accelerator.device), "sum").tolist()
                rec = {"step": progress.step, "split": "train", "loss": w[0] / max(w[2], 1),
                       "accuracy": w[1] / max(w[2], 1), "lr": scheduler.get_last_lr()[0],
                       "pairs_per_second": progress.pairs_seen / max(progress.train_seconds, 1e-9),
                       **{k: float(v) for k, v in logs.items()}}
                if items:  # no pairs: no pair accuracy (validation has the item metrics)
                    del rec["accuracy"]
                for m in plugins:  # MetaRM: J on the last meta batch, before and after the ascent
                    rec.update(m.logs())
                log_record(rec)
                window.zero_()
                postfix.update(loss=f"{rec['loss']:.4f}", **({"acc": f"{rec['accuracy']:.3f}"} if "accuracy" in rec else {}))
                if bar is not None:
                    bar.set_postfix(postfix)
            if val_pairs is not None and len(val_pairs) and (progress.step % tc.eval_every == 0 or progress.step == total_steps):
                if items:
                    val = item_data.validate_items(accelerator, inner.model, val_pairs, tc.eval_batch_size, tc.seed)
                else:
                    val = validate(accelerator, inner.model, val_pairs, tc.eval_batch_size, groups=val_sources,
                                   packing_mode=packing_mode, lengths=val_lengths)
                    by_source = val.pop("by_group")
                last_val = {"step": progress.step, "split": "validation", **val}
                log_record(last_val)
                if main and "length" in val:
                    log.info("validation at step %d: %s", progress.step, length_summary_line(val["length"]))
                inner.model.train()
                if "accuracy" in last_val:  # validation in the progress line too
                    postfix["val_acc"] = f"{last_val['accuracy']:.3f}"
                if bar is not None:
                    bar.set_postfix(postfix)
            if bar is not None:
                bar.update(1)

            flag = torch.tensor([stop.signum], dtype=torch.float64, device=accelerator.device)
            signum = int(accelerator.reduce(flag, "max").item()) if world > 1 else stop.signum
            if progress.step % tc.save_every == 0 or signum:
                progress.window = (accelerator.reduce(window.to(accelerator.device), "sum") if world > 1
                                   else window).tolist()
                checkpoint.save(accelerator, ckpt_root, progress.step, tc.save_total_limit)
            if signum:
                interrupted = signum
                break
    if bar is not None:
        bar.close()
    if interrupted:
        accelerator.end_training()
        return {"interrupted": True, "signal": interrupted, "step": progress.step,
                "checkpoint": str(checkpoint.latest(ckpt_root))}

    summary_tokens = {"packing": packing_mode, "group_by_length": tc.group_by_length}
    return _finish(accelerator, cfg, plugins, inner.model, tables, train_pairs, val_pairs, progress, last_val, out,
                   by_source, summary_tokens)


def _reset_single_process_state() -> None:
    """Let one process call train() again with other settings (mixed precision, ...).

    accelerate keeps a process-wide AcceleratorState and refuses a second Accelerator with other
    settings. Outside `accelerate launch` nothing else shares it, so it is reset; under a launcher
    (several processes) it is left alone.
    """
    from accelerate.state import AcceleratorState, PartialState

    if PartialState._shared_state and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _finish(accelerator, cfg, plugins, model, tables, train_pairs, val_pairs, progress, last_val, out, by_source,
            layout) -> dict:
    """Reward statistics, export, per-source validation accuracy (from the last validation, which
    ran at the final step), summary.json."""
    tc = cfg.train
    packing.disable(model)  # the exported config names plain sdpa attention
    summary: dict = {
        "steps": progress.step, "pairs_seen": progress.pairs_seen,
        "epochs": round(progress.pairs_seen / max(len(train_pairs), 1), 3),  # pairs seen / distinct pairs
        "train_seconds": round(progress.train_seconds, 2),
        "pairs_per_second": progress.pairs_seen / max(progress.train_seconds, 1e-9),
        "tokens": {"processed": progress.tokens, "real": progress.real_tokens,
                   "padding_fraction": 1.0 - progress.real_tokens / max(progress.tokens, 1),
                   **layout},
        "n_train": len(train_pairs), "n_validation": len(val_pairs) if val_pairs is not None else 0,
        "data": tables.report, "truncation": {"train": dict(train_pairs.truncation),
                                              "dropped_train_pairs": train_pairs.dropped},
        "validation": last_val, "num_processes": accelerator.num_processes,
    }
    if hasattr(train_pairs, "members"):  # item objectives: n_train/pairs_seen count prompts
        summary.update({"objective_layout": "items", "n_train_responses": len(train_pairs.items),
                        "names": list(train_pairs.names)})
        summary["truncation"]["dropped_train_responses"] = summary["truncation"].pop("dropped_train_pairs")
    if accelerator.is_main_process:
        n_stats = min(tc.reward_stats_max_pairs, len(train_pairs))
        if n_stats and model.num_labels == 1:  # (a K-output model has no one reward scale)
            pick = np.random.default_rng(tc.seed).permutation(len(train_pairs))[:n_stats]
            if hasattr(train_pairs, "members"):  # items: the responses of the picked prompts
                items = [train_pairs.items[i] for i in train_pairs.items_of(pick)]
            else:
                items = [train_pairs.chosen[i] for i in pick] + [train_pairs.rejected[i] for i in pick]
            r = model.score_encoded(items, batch_size=tc.eval_batch_size)
            model.settings.reward_mean, model.settings.reward_std = reward_stats(r)  # OpenRLHF's definition
            model.settings.reward_stats_n = int(len(r))
        summary["parameters"] = parameter_counts(model)
        exported = methods.first(m.export(model, out / "model") for m in plugins)  # LoRA: merged and/or adapter
        if exported is None:
            model.save_pretrained(out / "model")
        else:
            summary.update(exported)
        for m in plugins:  # files beside the exported model (ODIN: the length head)
            summary.update(m.after_export(model, out / "model") or {})
        if by_source is not None:
            summary["validation_by_source"] = by_source
        summary["peak_memory"] = peak_memory(accelerator.device)
        summary.update(run_info())
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
