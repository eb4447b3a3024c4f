"""Padding-free packing and the prompt encoded once: the same rewards from fewer tokens.

A padded micro-batch of B pairs is 2B rows as long as the longest item; on HH pairs about half of
those tokens are padding. Here a micro-batch becomes **one flat sequence** (batch dimension 1):

- ``padding_free``: the 2B items one after another; position ids restart at 0 for each item and
  attention stays inside each item, so every item sees exactly what it sees alone;
- ``shared_prompt`` (decoders only): each pair is ``[prefix | chosen suffix | rejected suffix]``
  where the prefix is the longest common prefix of the two token sequences (the rendered prompt,
  plus any identical first response tokens). The rejected suffix attends to the prefix and to
  itself, never to the chosen suffix, and its position ids continue from the prefix's end. Under
  causal attention a token's state depends only on the tokens before it, so the prefix's keys and
  values are the same for both sides and are computed once. A bidirectional encoder cannot do
  this: its prompt tokens attend to the response, so the prompt's states differ between chosen
  and rejected and must be computed twice.

Attention confined to segments is a registered ``transformers`` attention function
(``rewardlab_varlen``): each segment (and, for a rejected suffix, the shared prefix's keys and
values) goes through ``scaled_dot_product_attention`` on its own. That is what a varlen kernel
does; on CPU it was measured faster than one SDPA call with a block-diagonal mask over the whole
flat sequence, whose cost grows with the square of the packed length (docs/speed.md). Without
segment metadata (padded batches: validation, scoring) the function is plain ``sdpa``, with the
usual masks, so a model switched to it scores padded batches as before.

The reward is read where the padded path reads it: ``last`` pooling at each item's last token,
``cls`` at its first, ``mean`` over its tokens. Layouts are built by the pure functions
:func:`pack_items` and :func:`pack_shared_prompt`; :func:`forward` runs a reward model on either a
padded or a packed batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rewardlab.errors import ConfigError
from rewardlab.models.inputs import Encoded

ATTENTION = "rewardlab_varlen"
PACKING_MODES = ("auto", "none", "padding_free", "shared_prompt")
SEGMENTS_KWARG = "rewardlab_segments"


# ---------------------------------------------------------------- layouts (pure)
def pack_items(items: list[Encoded]) -> dict[str, torch.Tensor]:
    """Items one after another in one row; a segment per item.

    Returns ``input_ids``, ``position_ids`` (and ``token_type_ids``) of shape [1, T]; ``segments``
    [S, 4] = (query start, query end, prefix start, prefix end) with an empty prefix; ``first``
    and ``last``: each item's first and last token position in the row.
    """
    ids, pos, types, segs, first, last = [], [], [], [], [], []
    has_types = bool(items) and items[0].token_type_ids is not None
    t = 0
    for e in items:
        n = len(e.input_ids)
        if n == 0:
            raise ValueError("cannot pack an empty item")
        ids.extend(e.input_ids)
        pos.extend(range(n))
        if has_types:
            types.extend(e.token_type_ids)
        segs.append((t, t + n, t, t))
        first.append(t)
        last.append(t + n - 1)
        t += n
    return _as_batch(ids, pos, types if has_types else None, segs, first, last)


def shared_prefix_length(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists, leaving each at least one token of its own."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return max(n, 0)


def pack_shared_prompt(chosen: list[Encoded], rejected: list[Encoded]) -> dict[str, torch.Tensor]:
    """Each pair as ``[prefix | chosen suffix | rejected suffix]`` in one row (decoders).

    Item order in ``first``/``last`` is all chosen items, then all rejected ones (as the padded
    path's 2B rows). A pair gives two segments: prefix + chosen suffix (causal), then the rejected
    suffix whose keys are the prefix and itself. Also returns ``shared`` [B]: each pair's prefix
    length (the tokens computed once).
    """
    if len(chosen) != len(rejected):
        raise ValueError("chosen and rejected differ in length")
    ids, pos, segs, shared = [], [], [], []
    last_c, last_r = [], []
    t = 0
    for c, r in zip(chosen, rejected):
        if not c.input_ids or not r.input_ids:
            raise ValueError("cannot pack an empty item")
        p = shared_prefix_length(c.input_ids, r.input_ids)
        nc, nr = len(c.input_ids) - p, len(r.input_ids) - p
        ids.extend(c.input_ids)
        ids.extend(r.input_ids[p:])
        pos.extend(range(p + nc))
        pos.extend(range(p, p + nr))
        segs.append((t, t + p + nc, t, t))
        segs.append((t + p + nc, t + p + nc + nr, t, t + p))
        last_c.append(t + p + nc - 1)
        last_r.append(t + p + nc + nr - 1)
        shared.append(p)
        t += p + nc + nr
    out = _as_batch(ids, pos, None, segs, [], last_c + last_r)
    out["shared"] = torch.tensor(shared, dtype=torch.long)
    return out


def _as_batch(ids, pos, types, segs, first, last) -> dict[str, torch.Tensor]:
    out = {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([pos], dtype=torch.long),
        "segments": torch.tensor(segs, dtype=torch.long).reshape(-1, 4),
        "last": torch.tensor(last, dtype=torch.long),
    }
    if first:
        out["first"] = torch.tensor(first, dtype=torch.long)
    if types is not None:
        out["token_type_ids"] = torch.tensor([types], dtype=torch.long)
    return out


def is_packed(batch: dict) -> bool:
    return "segments" in batch


def token_counts(batch: dict) -> tuple[int, int]:
    """(tokens processed, real tokens) of a padded or packed batch."""
    if is_packed(batch):
        n = int(batch["input_ids"].numel())
        return n, n
    return int(batch["input_ids"].numel()), int(batch["attention_mask"].sum())


# ---------------------------------------------------------------- attention
def _prefix_causal_mask(n_prefix: int, n: int, causal: bool, device) -> torch.Tensor:
    """[n, n_prefix + n] boolean mask: every prefix key visible, the segment's own keys causal."""
    own = torch.ones(n, n, dtype=torch.bool, device=device)
    if causal:
        own = own.tril()
    return torch.cat([torch.ones(n, n_prefix, dtype=torch.bool, device=device), own], dim=1)


def varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     is_causal=None, **kwargs):
    """Attention confined to segments (``rewardlab_segments``), else transformers' ``sdpa``.

    query [1, H, T, D], key/value [1, H_kv, T, D]; returns [1, T, H, D] as attention functions do.
    """
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    segments = kwargs.pop(SEGMENTS_KWARG, None)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("packed attention expects one flat row")
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    n_rep = getattr(module, "num_key_value_groups", 1)
    if n_rep > 1:
        key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    outs = []
    for qs, qe, ps, pe in segments:
        q = query[:, :, qs:qe]
        if pe > ps:  # a rejected suffix: keys are the shared prefix and the suffix itself
            k = torch.cat([key[:, :, ps:pe], key[:, :, qs:qe]], dim=2)
            v = torch.cat([value[:, :, ps:pe], value[:, :, qs:qe]], dim=2)
            mask = _prefix_causal_mask(pe - ps, qe - qs, causal, query.device)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
        else:
            o = F.scaled_dot_product_attention(q, key[:, :, qs:qe], value[:, :, qs:qe], dropout_p=dropout,
                                               scale=scaling, is_causal=bool(causal) and qe - qs > 1)
        outs.append(o)
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _mask_or_none(*args, attention_mask=None, **kwargs):
    """Mask creation for ``rewardlab_varlen``: sdpa's masks for padded batches, none for packed ones
    (packed calls pass no attention mask; the segments confine attention)."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> None:
    """Register ``rewardlab_varlen`` with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION, varlen_attention)
    AttentionMaskInterface.register(ATTENTION, _mask_or_none)


def supported(reward_model, mode: str) -> str | None:
    """Why ``mode`` cannot run on this model (None when it can)."""
    if not getattr(reward_model, "packable", True):
        return (f"{type(reward_model).__name__} runs padded (its forward reads more than the items' tokens: "
                "Critic-RM's LM labels, critiques written at scoring time)")
    pooling = reward_model.settings.pooling
    if pooling == "native":
        return "packing needs pooling last, cls or mean (native runs the model's own padded forward)"
    if mode == "shared_prompt" and pooling != "last":
        return ("packing 'shared_prompt' needs a decoder with 'last' pooling: an encoder's prompt tokens attend "
                "to the response, so chosen and rejected cannot share them")
    model = reward_model.model
    current = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if current not in ("sdpa", ATTENTION) or not hasattr(model, "set_attn_implementation"):
        return f"packing runs on transformers' sdpa attention path; this model uses {current!r}"
    return None


def resolve_mode(reward_model, mode: str) -> str:
    """``auto``: ``shared_prompt`` for decoders ('last' pooling), ``padding_free`` for encoders,
    ``none`` where neither runs (native pooling, another attention path); other modes as given."""
    if mode not in PACKING_MODES:
        raise ConfigError(f"packing must be one of {PACKING_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    for candidate in ("shared_prompt", "padding_free"):
        if supported(reward_model, candidate) is None:
            return candidate
    return "none"


def auto_for_device(mode: str, device_type: str, mixed_precision: str) -> str:
    """``auto`` under bf16 autocast on CUDA is ``none``; any other case is ``mode`` as given.

    Measured on an H200 (docs/speed.md, 2026-12-04; MiniLM, HH pairs, 8 steps): bf16 with
    ``padding_free`` trained at 4.8 pairs/s, bf16 padded at 47, float32 ``padding_free`` at 97. The
    profile put the time in :func:`varlen_attention`'s per-segment SDPA calls (about 3 ms each
    forward in bf16), where the fused bf16 kernels pay a per-shape cost on every distinct segment
    length. Until a varlen kernel path is measured on a GPU, ``auto`` does not pick packing there;
    an explicit ``padding_free``/``shared_prompt`` still runs it."""
    if mode == "auto" and device_type == "cuda" and mixed_precision == "bf16":
        return "none"
    return mode


def enable(reward_model, mode: str) -> str:
    """Resolve ``mode``, check that it fits the model, switch its attention to ``rewardlab_varlen``;
    returns the mode in effect."""
    mode = resolve_mode(reward_model, mode)
    if mode == "none":
        return mode
    problem = supported(reward_model, mode)
    if problem is not None:
        raise ConfigError(f"train.packing {mode!r}: {problem}")
    register()
    reward_model.model.set_attn_implementation(ATTENTION)
    return mode


def disable(reward_model) -> None:
    """Back to plain ``sdpa`` (before export: the saved model must not need rewardlab to load)."""
    if reward_model.model.config._attn_implementation == ATTENTION:
        reward_model.model.set_attn_implementation("sdpa")


# ---------------------------------------------------------------- forward
def forward(reward_model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards [N] and pooled features [N, d] of a padded batch (the model's own forward) or a
    packed one (same values; items in the order the layout lists them)."""
    if not is_packed(batch):
        return reward_model(**batch)
    rm = reward_model
    model = rm.model
    if model.config._attn_implementation != ATTENTION:
        raise ConfigError("a packed batch needs packing.enable(model) first")
    base = getattr(model, model.base_model_prefix)
    kwargs = {SEGMENTS_KWARG: batch["segments"].tolist()}
    if "token_type_ids" in batch:
        kwargs["token_type_ids"] = batch["token_type_ids"]
    out = base(input_ids=batch["input_ids"], position_ids=batch["position_ids"], **kwargs)
    hidden = out.last_hidden_state[0]
    pooling = rm.settings.pooling
    # The heads below mirror RewardModel.forward's (score on the last token; pooler + classifier).
    if pooling == "last":
        h = hidden[batch["last"]]
        return model.score(h).squeeze(-1), h
    if pooling == "cls":
        h = base.pooler(hidden[batch["first"]].unsqueeze(1))
    else:  # mean over each item's tokens
        first, last = batch["first"], batch["last"]
        item = torch.repeat_interleave(torch.arange(len(first), device=hidden.device), last - first + 1)
        h = hidden.new_zeros(len(first), hidden.shape[-1]).index_add(0, item, hidden)
        h = h / (last - first + 1).unsqueeze(-1).to(hidden.dtype)
    dropout = getattr(model, "dropout", None)
    z = dropout(h) if dropout is not None else h
    return model.classifier(z).squeeze(-1), h


@torch.no_grad()
def score_pairs(reward_model, chosen: list[Encoded], rejected: list[Encoded], *, pairs_per_batch: int = 8,
                mode: str = "shared_prompt"):
    """Rewards of (chosen, rejected) pairs through packed batches, pairs sorted by length: float64
    numpy arrays (chosen, rejected). ``mode`` as :func:`enable` resolved it (not ``none``)."""
    import numpy as np

    rm = reward_model
    was_training = rm.training
    rm.eval()
    n = len(chosen)
    rc, rr = np.zeros(n), np.zeros(n)
    device = next(rm.parameters()).device
    order = sorted(range(n), key=lambda i: len(chosen[i].input_ids) + len(rejected[i].input_ids))
    for start in range(0, n, pairs_per_batch):
        idx = order[start:start + pairs_per_batch]
        c, r = [chosen[i] for i in idx], [rejected[i] for i in idx]
        batch = pack_shared_prompt(c, r) if mode == "shared_prompt" else pack_items(c + r)
        rewards, _ = forward(rm, {k: v.to(device) for k, v in batch.items()})
        rewards = rewards.float().cpu().numpy()
        rc[idx], rr[idx] = rewards[:len(idx)], rewards[len(idx):]
    rm.train(was_training)
    return rc, rr


def score_table_pairs(reward_model, table, *, batch_size: int = 16, return_features: bool = False,
                      progress: bool = False) -> dict:
    """``RewardModel.score_pairs`` with each pair's prompt encoded once (decoders): the same
    dict, the same over-length handling (``drop`` scores truncated from the right; counts in
    ``last_truncation``). The model's attention is restored afterwards."""
    import numpy as np
    from collections import Counter

    from rewardlab.models.inputs import encode

    rm, s = reward_model, reward_model.settings
    policy = "truncate_right" if s.overlength == "drop" else s.overlength
    templates = table.template_kwargs()  # a row's tools / chat_template_kwargs: the same on both sides
    rm.note_unused_templates(templates)
    chosen, rejected = ([encode(rm.tokenizer, s.render, p, y, s.max_length, policy, t)
                         for p, y, t in zip(table["prompt"], table[side], templates)] for side in ("chosen", "rejected"))
    rm.last_truncation = Counter(e.status for e in chosen + rejected)
    n = len(chosen)
    out = {"reward_chosen": np.zeros(n), "reward_rejected": np.zeros(n)}
    if return_features:
        out["features_chosen"] = np.zeros((n, rm.feature_dim), dtype=np.float32)
        out["features_rejected"] = np.zeros((n, rm.feature_dim), dtype=np.float32)
    before = rm.model.config._attn_implementation
    was_training = rm.training
    enable(rm, "shared_prompt")
    rm.eval()
    device = next(rm.parameters()).device
    per = max(batch_size // 2, 1)
    order = sorted(range(n), key=lambda i: len(chosen[i].input_ids) + len(rejected[i].input_ids))
    starts = range(0, n, per)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="scoring", unit="batch")
    try:
        with torch.no_grad():
            for start in starts:
                idx = order[start:start + per]
                batch = pack_shared_prompt([chosen[i] for i in idx], [rejected[i] for i in idx])
                r, h = forward(rm, {k: v.to(device) for k, v in batch.items()})
                r, k = r.float().cpu().numpy(), len(idx)
                out["reward_chosen"][idx], out["reward_rejected"][idx] = r[:k], r[k:]
                if return_features:
                    h = h.float().cpu().numpy()
                    out["features_chosen"][idx], out["features_rejected"][idx] = h[:k], h[k:]
    finally:
        rm.model.set_attn_implementation(before)
        rm.train(was_training)
    return out
