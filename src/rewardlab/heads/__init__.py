"""Reward heads on frozen embeddings: linear and MLP ensembles trained at once (METHODS §3).

An ensemble of k heads is one module whose parameters carry a leading member dimension
(``W: [k, d_in, d_out]``), evaluated with batched matrix products (``torch.baddbmm``), so k
members cost k times the arithmetic of one in a few large kernels rather than k small ones.
Members are independent: each has its own initialisation seed and its own data order, the
ensemble loss is the sum of the members' losses (so each member's gradient is its own), Adam
is elementwise and early stopping is per member (a stopped member's rows of parameters and
Adam state are dropped, so the others continue at the smaller cost). Member j of an ensemble
therefore trains like a single head built with member j's seed: the same arithmetic up to float
rounding, which BLAS does not promise to be the same for a batched and a single matrix product.
Adam magnifies such rounding along flat directions of a loss (BT's rewards are defined up to a
constant), so the equality is tested to ~1e-5 in float64 (``dtype``) and in float32 for losses
without flat directions (classification).

Batches: ``batch_size`` pairs per step (pointwise objectives: twice as many single responses).
A batch at least as large as the training set is a full batch; then each distinct training
item goes through the heads once per step and pairs read their rewards from there, several
times less arithmetic when pairs are drawn from a pool of responses (studies), as with the
paper's batch of 10240 on 10k pairs.

Training (METHODS §3): Adam (lr 1e-3), large batches, up to ``epochs`` epochs with early
stopping on the loss of a validation split of the training pairs (the same split for every
member; ``patience`` epochs without improvement stop a member, and its best epoch is kept).
Objectives come from the shared registry (``rewardlab.objectives``): pairwise objectives get
the rewards (r_c, r_r) and the head's input vectors as features (h_c, h_r) of each member's
pairs; a pointwise objective (``classification``) gets single responses, shuffled, chosen
labelled 1 and rejected 0. Inputs are standardised with the mean and std of the training items
(``standardize``). Aggregation over members: ``mean`` or ``min`` of the members' rewards, each
member centred by its mean reward over (up to 1024 of) the training items (a shift that changes
no member's ordering but makes rewards of BT members, defined up to a constant, comparable).

Modules: ``config`` (HeadConfig, GBDTConfig, HeadMeta, member seeds, the validation split),
``mlp`` (EnsembleMLP, FittedHead), ``trainer`` (linear/MLP training), ``gbdt`` (LightGBM heads),
``fit`` (``fit_head``, which picks the trainer). The package imports nothing from ``train/``; the
MetaRM pieces it shares with the fine-tuning loop are ``rewardlab.objectives.metarm``. The public
names below load lazily, so ``import rewardlab.heads`` costs nothing until one is used.
"""

from __future__ import annotations

import importlib

_PUBLIC = {"HeadConfig": "config", "GBDTConfig": "config", "HeadMeta": "config", "member_seed": "config",
           "split_pairs": "config", "EnsembleMLP": "mlp", "FittedHead": "mlp", "fit_head": "fit",
           "GBDTHead": "gbdt"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"rewardlab.heads.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'rewardlab.heads' has no attribute {name!r}")
