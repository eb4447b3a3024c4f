"""The objective registry: inputs, the composite ``Loss`` module and ``build_loss``.

An objective is a small ``torch.nn.Module`` registered under a name, either as a *main* loss
(exactly one per run) or as an *auxiliary* (any number, each added with a weight). Its keyword-only
``__init__`` parameters are its configuration: their names and type hints are what ``build_loss``
validates a config dict against, so a misspelt or mistyped value fails at build time with a
``ConfigError`` that lists the valid choices.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from rewardlab.errors import ConfigError, DataError

Kind = Literal["main", "aux"]

# Build-time context that build_loss passes to objectives whose __init__ asks for it; these are
# not user parameters and never appear in a config dict.
_CONTEXT = ("feature_dim", "all_reduce_mean")


@dataclass
class LossInputs:
    """What the training loop hands to a loss for one batch of B pairs.

    ``r_chosen``/``r_rejected`` are the rewards ``[B]``; ``h_chosen``/``h_rejected`` the pooled
    representations ``[B, d]`` the reward head reads (only needed when ``Loss.needs_features``);
    ``columns`` optional per-pair float columns (``margin``, ``weight``, ``strength_mean``,
    ``strength_std``, ``flip``), each ``[B]``.
    """

    r_chosen: Tensor
    r_rejected: Tensor
    h_chosen: Tensor | None = None
    h_rejected: Tensor | None = None
    columns: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class ItemInputs:
    """What a trainer hands to an *item-layout* objective (regression, correctness, scaled BT)
    for one batch of N single responses.

    ``r`` are the rewards ``[N]`` or, for a model with K outputs, ``[N, K]``; ``target`` has the
    same shape (NaN = unlabelled: masked, no gradient); ``group`` ``[N]`` (int) numbers the
    prompt of each response (objectives that pair responses pair them within a group only);
    ``columns`` optional per-response float columns (``weight``), each ``[N]``.
    """

    r: Tensor
    target: Tensor
    group: Tensor | None = None
    columns: dict[str, Tensor] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class of a registered objective.

    ``forward`` returns the component's scalar loss and extra values to log (tensors, keyed
    without prefix; ``Loss`` prefixes them with the component's label and converts to floats).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[Kind] = "main"
    needs_features: ClassVar[bool] = False
    pointwise: ClassVar[bool] = False
    # "pairs": forward reads LossInputs (chosen/rejected); "items": ItemInputs (single responses
    # with targets, see rewardlab.data.pointwise). A trainer asks ``Loss.layout`` which to build.
    layout: ClassVar[Literal["pairs", "items"]] = "pairs"
    # Auxiliaries only: the weight used when the config gives none (an instance may override it).
    default_weight: float = 1.0

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def fit_targets(self, target: Tensor) -> None:
        """Item-layout objectives: see the training targets once before training (e.g. the
        mean and standard deviation of a standardised regression). Default: nothing."""


_REGISTRY: dict[str, type[Objective]] = {}


def register(name: str, *, kind: Kind) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: register an ``Objective`` subclass under ``name`` as a main or aux loss.

    The class's configuration is its keyword-only ``__init__`` parameters, each with a type hint
    (float, int, bool, str, a ``Literal`` or ``X | None``) and a default; an ``__init__`` may
    also ask for ``feature_dim`` or ``all_reduce_mean``, which ``build_loss`` passes in.
    """
    if kind not in ("main", "aux"):
        raise ValueError(f"kind must be 'main' or 'aux', got {kind!r}")

    def decorator(cls: type[Objective]) -> type[Objective]:
        if not (isinstance(cls, type) and issubclass(cls, Objective)):
            raise TypeError(f"@register({name!r}) needs an Objective subclass, got {cls!r}")
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered")
        cls.name, cls.kind = name, kind
        _REGISTRY[name] = cls
        return cls

    return decorator


def available() -> dict[str, list[str]]:
    """Registered objective names by kind: ``{"main": [...], "aux": [...]}`` (sorted)."""
    out: dict[str, list[str]] = {"main": [], "aux": []}
    for name, cls in sorted(_REGISTRY.items()):
        out[cls.kind].append(name)
    return out


def layout_of(objective: Mapping[str, Any] | str) -> str | None:
    """The input layout (``"pairs"`` or ``"items"``) of a main objective config, or None when
    the name is not registered (``build_loss`` then names the valid ones)."""
    name = objective if isinstance(objective, str) else (objective or {}).get("name")
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    return None if cls is None else cls.layout


def check(condition: bool, who: str, message: str) -> None:
    """Raise ``ConfigError("who: message")`` unless ``condition`` holds (for range checks)."""
    if not condition:
        raise ConfigError(f"{who}: {message}")


def get_column(inputs: LossInputs, name: str, *, required_by: str | None = None) -> Tensor | None:
    """The per-pair column ``name`` (shape ``[B]``), or None when absent.

    With ``required_by`` (the objective's description), a missing column raises ``DataError``.
    """
    col = inputs.columns.get(name)
    if col is None:
        if required_by is not None:
            raise DataError(
                f"{required_by} reads this per-pair column; add it to the data "
                f"(or to LossInputs.columns) or change the objective's configuration",
                field=name,
                expected="a float column",
                got="no such column",
            )
        return None
    if col.shape != inputs.r_chosen.shape:
        raise DataError(
            f"column '{name}' must hold one value per pair",
            field=name,
            expected=f"shape {tuple(inputs.r_chosen.shape)}",
            got=f"shape {tuple(col.shape)}",
        )
    return col


def get_features(inputs: LossInputs, who: str) -> tuple[Tensor, Tensor]:
    """``(h_chosen, h_rejected)``, checked to be present and of matching ``[B, d]`` shapes."""
    h_c, h_r = inputs.h_chosen, inputs.h_rejected
    if h_c is None or h_r is None:
        raise ValueError(f"{who} needs LossInputs.h_chosen and h_rejected (Loss.needs_features)")
    if h_c.ndim != 2 or h_c.shape != h_r.shape:
        raise ValueError(
            f"{who}: h_chosen and h_rejected must both be [B, d], "
            f"got {tuple(h_c.shape)} and {tuple(h_r.shape)}"
        )
    return h_c, h_r


class Loss(nn.Module):
    """A main objective plus weighted auxiliaries: ``total = main + Σ weight_i · aux_i``.

    ``forward`` returns the total and a log dict with ``loss/<label>`` for every component,
    ``loss/total`` and component extras as ``<label>/<key>`` (e.g. ``normbt/mu``). A component's
    label is its name, or ``name_2``, ``name_3``… when the same name is used again.
    Objective state (NormBT's EMA, SwAV's prototypes) lives in this module's ``state_dict`` and
    ``parameters``: move it to the device, put its parameters in the optimizer, and switch it
    to ``eval()`` for validation like a model.
    """

    def __init__(self, main: Objective, aux: list[tuple[Objective, float]]) -> None:
        super().__init__()
        self.main = main
        self.aux = nn.ModuleList(obj for obj, _ in aux)
        self.aux_weights = [w for _, w in aux]
        seen: dict[str, int] = {}
        self.labels: list[str] = []
        for name in [main.name] + [obj.name for obj, _ in aux]:
            seen[name] = seen.get(name, 0) + 1
            self.labels.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        self.needs_features = any(o.needs_features for o in [main, *self.aux])
        self.pointwise = main.pointwise
        self.layout = main.layout
        for obj, _ in aux:
            if obj.layout != main.layout:
                raise ConfigError(f"aux '{obj.name}' reads {obj.layout} but the main objective "
                                  f"'{main.name}' reads {main.layout}; combine objectives of one layout")

    def fit_targets(self, target: Tensor) -> None:
        """Hand the training targets to every component (item layout; see Objective)."""
        for obj in [self.main, *self.aux]:
            obj.fit_targets(torch.as_tensor(target))

    def forward(self, inputs: LossInputs | ItemInputs) -> tuple[Tensor, dict[str, float]]:
        if self.layout == "items":
            if not isinstance(inputs, ItemInputs):
                raise TypeError(f"objective '{self.main.name}' reads ItemInputs, got {type(inputs).__name__}")
            inputs = _prepare_items(inputs)
        else:
            inputs = _prepare(inputs, paired=not self.pointwise)
        total, extras = self.main(inputs)
        logged: dict[str, Tensor] = {f"loss/{self.labels[0]}": total}
        logged.update({f"{self.labels[0]}/{k}": v for k, v in extras.items()})
        for label, obj, weight in zip(self.labels[1:], self.aux, self.aux_weights):
            value, extras = obj(inputs)
            total = total + weight * value
            logged[f"loss/{label}"] = value
            logged.update({f"{label}/{k}": v for k, v in extras.items()})
        logged["loss/total"] = total
        # One transfer for all logged values; an extra logged on another device (a user objective's
        # torch.tensor(n) on the CPU while training on CUDA) is moved, not an error.
        values = torch.stack([v.detach().float().reshape(()).to(total.device) for v in logged.values()]).tolist()
        return total, dict(zip(logged, values))

    def extra_repr(self) -> str:
        return f"labels={self.labels}, aux_weights={self.aux_weights}"


def _prepare(inputs: LossInputs, *, paired: bool) -> LossInputs:
    """Check shapes, upcast half precision to float32, put columns on the rewards' device."""
    r_c, r_r = _upcast(inputs.r_chosen), _upcast(inputs.r_rejected)
    if r_c.ndim != 1 or r_r.ndim != 1:
        raise ValueError(
            f"r_chosen and r_rejected must be 1-D [B], "
            f"got {tuple(r_c.shape)} and {tuple(r_r.shape)}"
        )
    if paired and r_c.shape != r_r.shape:
        raise ValueError(f"r_chosen and r_rejected differ in length: {len(r_c)} vs {len(r_r)}")
    h_c = None if inputs.h_chosen is None else _upcast(inputs.h_chosen)
    h_r = None if inputs.h_rejected is None else _upcast(inputs.h_rejected)
    columns = {k: torch.as_tensor(v).to(device=r_c.device, dtype=r_c.dtype)
               for k, v in inputs.columns.items()}
    return replace(inputs, r_chosen=r_c, r_rejected=r_r, h_chosen=h_c, h_rejected=h_r,
                   columns=columns)


def _prepare_items(inputs: ItemInputs) -> ItemInputs:
    """Check that r and target agree in shape ([N] or [N, K]) and group is [N]; upcast."""
    r = _upcast(inputs.r)
    target = torch.as_tensor(inputs.target).to(device=r.device, dtype=r.dtype)
    if r.ndim not in (1, 2) or target.shape != r.shape:
        raise ValueError(f"ItemInputs: r must be [N] or [N, K] and target of the same shape, "
                         f"got {tuple(r.shape)} and {tuple(target.shape)}")
    group = None if inputs.group is None else torch.as_tensor(inputs.group).to(r.device)
    if group is not None and group.shape != r.shape[:1]:
        raise ValueError(f"ItemInputs: group must be [N] = {tuple(r.shape[:1])}, got {tuple(group.shape)}")
    columns = {k: torch.as_tensor(v).to(device=r.device, dtype=r.dtype)
               for k, v in inputs.columns.items()}
    return ItemInputs(r, target, group, columns)


def _upcast(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def build_loss(
    objective: Mapping[str, Any] | str,
    aux: list[Mapping[str, Any]] | None = None,
    *,
    feature_dim: int | None = None,
    all_reduce_mean: Callable[[Tensor], Tensor] | None = None,
) -> Loss:
    """Build the ``Loss`` for a main objective config and optional auxiliary configs.

    ``objective`` is ``{"name": ..., **params}`` (a bare name means all defaults); each ``aux``
    entry is ``{"name": ..., "weight": w, **params}`` (``weight`` defaults per auxiliary).
    ``feature_dim`` is the size of h (needed by objectives with learnable parameters on h, e.g.
    SwAV); ``all_reduce_mean`` averages a tensor across data-parallel ranks (NormBT's batch mean).
    Raises ``ConfigError`` for unknown names, unknown parameters and invalid values.
    """
    context = {"feature_dim": feature_dim, "all_reduce_mean": all_reduce_mean}
    main = _build_one(objective, "main", context)
    if aux is not None and not isinstance(aux, (list, tuple)):
        raise ConfigError(f"aux must be a list of objective configs, got {type(aux).__name__}")
    parts = []
    for cfg in aux or []:
        cfg = dict(_as_config(cfg, "aux"))
        weight = cfg.pop("weight", None)
        obj = _build_one(cfg, "aux", context)
        if weight is None:
            weight = obj.default_weight
        who = f"aux '{obj.name}'"
        weight = _coerce(who, "weight", weight, float)
        check(weight >= 0, who, f"weight must be >= 0, got {weight}")
        parts.append((obj, weight))
    return Loss(main, parts)


def _as_config(cfg: Mapping[str, Any] | str, kind: Kind) -> Mapping[str, Any]:
    if isinstance(cfg, str):
        return {"name": cfg}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a {kind} objective config must be a mapping with 'name', got {cfg!r}")
    return cfg


def _build_one(cfg: Mapping[str, Any] | str, kind: Kind, context: dict[str, Any]) -> Objective:
    params = dict(_as_config(cfg, kind))
    if "name" not in params:
        raise ConfigError(f"{kind} objective config {params!r} has no 'name'; "
                          f"valid names: {', '.join(available()[kind])}")
    cls = _lookup(params.pop("name"), kind)
    who = f"objective '{cls.name}'" if kind == "main" else f"aux '{cls.name}'"
    valid = _user_params(cls)
    hints = typing.get_type_hints(cls.__init__)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        aux_only = "weight" in unknown and kind == "main"
        extra = " ('weight' is only for aux entries)" if aux_only else ""
        raise ConfigError(f"{who}: unknown parameter(s) {', '.join(map(repr, unknown))}{extra}; "
                          f"valid parameters: {', '.join(valid) or '(none)'}")
    kwargs = {k: _coerce(who, k, v, hints[k]) for k, v in params.items()}
    needed = inspect.signature(cls).parameters
    kwargs.update({k: v for k, v in context.items() if k in needed})
    return cls(**kwargs)


def _lookup(name: Any, kind: Kind) -> type[Objective]:
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        names = available()
        raise ConfigError(f"unknown objective {name!r}; "
                          f"valid main objectives: {', '.join(names['main'])}; "
                          f"valid auxiliaries: {', '.join(names['aux'])}")
    if cls.kind != kind:
        where = "under 'aux' with a weight" if cls.kind == "aux" else "as the main 'objective'"
        kinds = {"main": "a main objective", "aux": "an auxiliary"}
        raise ConfigError(f"'{name}' is {kinds[cls.kind]}, not {kinds[kind]}; use it {where}; "
                          f"valid: {', '.join(available()[kind])}")
    return cls


def _user_params(cls: type[Objective]) -> dict[str, inspect.Parameter]:
    """The keyword-only ``__init__`` parameters of ``cls``, less the build context."""
    params = inspect.signature(cls).parameters.items()
    return {k: p for k, p in params if p.kind is p.KEYWORD_ONLY and k not in _CONTEXT}


def _coerce(who: str, key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a type hint (float, int, bool, str, Literal, ``X | None``).

    Ints are accepted for floats, and so are numeric strings (PyYAML reads ``1e-6`` as a string);
    floats must be finite.
    """
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if is_union else (hint,)
    for opt in options:
        if opt is type(None) and value is None:
            return None
        if typing.get_origin(opt) is Literal and value in typing.get_args(opt):
            return value
        if opt is bool and isinstance(value, bool):
            return value
        if opt is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if opt is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            number = _to_float(value)
            if number is not None and math.isfinite(number):
                return number
        if opt is str and isinstance(value, str):
            return value
    raise ConfigError(f"{who}: parameter '{key}' must be {_describe(options)}, got {value!r}")


def _to_float(value: int | float | str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _describe(options: tuple[Any, ...]) -> str:
    words = []
    for opt in options:
        if opt is type(None):
            words.append("null")
        elif typing.get_origin(opt) is Literal:
            words.append("one of " + ", ".join(map(repr, typing.get_args(opt))))
        else:
            words.append("a finite float" if opt is float else f"a {opt.__name__}")
    return " or ".join(words)
