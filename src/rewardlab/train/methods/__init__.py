"""Training methods as plug-ins of the one loop (``train/loop.py``).

A method is switched on by its config section (``lora:``, ``critic:``, ``metarm:``, ``odin:``) and changes the
run only through the hooks of :class:`Method`; the loop calls the hooks of every active method and
names none of them. A new method (a two-head or multi-attribute model, another meta step) adds a
module here and one line to :data:`SECTIONS`, not a branch in the loop; a method that needs the loop
to know its name is a sign that the protocol is missing a hook.

The hooks, in the order the loop calls them (each has a default that does nothing):

0. ``check()``: checks of the method's settings that need more than the config (a backbone's layer
   widths), run before anything is read or written.
1. ``columns()``: data columns to keep beyond prompt/chosen/rejected.
2. ``build_model()``: a model of the method's own instead of ``RewardModel.from_backbone``.
3. ``wrap_model(model)``: change the model in place (adapters).
4. ``encode_pairs(model, table)``: the method's own encoding of the pairs.
5. ``setup(accelerator, model, report)``: load what it needs; add counts to the data report.
6. ``wrap_loss(loss)``: extra loss terms around the objective's loss.
7. ``before_step(ctx)`` / ``after_backward(ctx)``: around each optimizer step's micro-batches.
8. ``logs()``: entries for the next train record.
9. ``export(model, directory)``: write ``OUT/model`` itself (returns summary entries), or ``None``.
10. ``after_export(model, directory)``: write files beside the exported model, whoever wrote it
    (ODIN's length head); returns summary entries, or ``None``.

``layouts`` names the objective layouts a method works with (default ``("pairs",)``); with an
item objective (single responses with targets) the loop refuses the others, naming the section.
``find_unused_parameters`` tells DDP that some forward does not reach every parameter.
"""

from __future__ import annotations

from rewardlab.errors import ConfigError
from rewardlab.train.methods.base import Method, StepContext
from rewardlab.train.methods.critic import CriticRM
from rewardlab.train.methods.lora import LoRA
from rewardlab.train.methods.metarm import MetaRM
from rewardlab.train.methods.odin import Odin

__all__ = ["Method", "StepContext", "SECTIONS", "active", "first"]

# Config section -> the method it switches on, in the order their hooks run.
SECTIONS = {"lora": LoRA, "critic": CriticRM, "metarm": MetaRM, "odin": Odin}


def active(cfg) -> list[Method]:
    """The methods a run config switches on; at most one may build the model or encode the pairs."""
    methods = [make(cfg) for section, make in SECTIONS.items() if getattr(cfg, section, None) is not None]
    for hook in ("build_model", "encode_pairs"):
        owners = [m.name for m in methods if getattr(type(m), hook) is not getattr(Method, hook)]
        if len(owners) > 1:
            raise ConfigError(f"{' and '.join(owners)} cannot be combined (each has its own {hook.replace('_', ' ')})")
    return methods


def first(values):
    """The first value that is not None (a method's model, encoding or export), or None."""
    return next((v for v in values if v is not None), None)
