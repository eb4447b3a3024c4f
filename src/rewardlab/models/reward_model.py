"""RewardModel: a Hugging Face sequence classifier with one output, read the rewardlab way.

The wrapped model *is* an ``AutoModelForSequenceClassification`` (num_labels = 1), so
``save_pretrained`` writes a directory that plain ``transformers`` loads and scores the same. What
rewardlab adds:

- pooling from the attention mask, correct with left and right padding: ``last`` (decoders: the
  last real token, with position ids from the mask), ``cls`` (encoders: the model's own pooler, as
  ``BertForSequenceClassification`` does), ``mean`` (masked mean; not reproducible by plain
  transformers, so such exports are flagged), ``native`` (the model's own forward; features are the
  last hidden state at the first or last real token);
- the pooled representation ``h`` the head reads, for objectives (NormBT, contrastive terms) and
  diagnostics;
- tokenization settings (render mode, max length, over-length policy) stored in the config.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rewardlab.errors import ConfigError
from rewardlab.models import backbone, lora, packing
from rewardlab.models.inputs import Encoded, encode, pad_batch, unused_templates
from rewardlab.models.locate import REWARD_MODEL, expected, locate_model, resolve

log = logging.getLogger(__name__)

POOLINGS = ("auto", "last", "cls", "mean", "native")


@dataclass
class ModelSettings:
    """What, besides weights, decides a reward: saved in ``config.json`` under ``rewardlab``."""

    pooling: str = "auto"
    max_length: int = 512
    overlength: str = "truncate_prompt_left"
    render: str = "auto"  # auto | chat | pair | concat
    padding_side: str = "right"
    base_model: str = ""
    reward_mean: float | None = None  # also written as top-level config.json `mean` (OpenRLHF)
    reward_std: float | None = None  # also written as top-level config.json `std` (OpenRLHF)
    reward_stats_n: int | None = None
    hf_compatible: bool = True
    chat_template: str | None = None  # the template used when render == "chat" (also saved with the tokenizer)
    # A multi-attribute model (models/attributes.py): {"names": [...], "gating": file or None,
    # "verbosity": name or None}; its K outputs are the attribute scores.
    attributes: dict | None = None


def reward_stats(rewards) -> tuple[float, float]:
    """(mean, std) of rewards as OpenRLHF's reward trainer computes the ``mean``/``std`` it writes to
    ``config.json``: the mean, and the sample standard deviation (``torch.std``: n − 1) clamped to
    at least 1e-8, so ``(r − mean) / std`` never divides by zero."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or r.size < 2:
        raise ValueError(f"reward_stats: expected at least two rewards, got shape {r.shape}")
    return float(r.mean()), max(float(r.std(ddof=1)), 1e-8)


def write_openrlhf_stats(config, settings: "ModelSettings") -> None:
    """Copy the reward statistics to the top-level ``mean`` and ``std`` of a model config: OpenRLHF
    (``get_llm_for_sequence_regression(..., normalize_reward=True)``) reads them from ``config.json``
    and returns ``(r − mean) / std`` at inference (OpenRLHF #693). Absent stats write nothing."""
    if settings.reward_mean is not None and settings.reward_std is not None:
        config.mean, config.std = float(settings.reward_mean), float(settings.reward_std)


def _is_decoder_style(model) -> bool:
    # Decoder sequence classifiers (Llama, Qwen, Mistral, GPT-2, ...) put a ``score`` Linear on
    # every position and pick the last token; encoders put a ``classifier`` on a pooled vector.
    head = getattr(model, "score", None)
    return isinstance(getattr(head, "original_module", head), nn.Linear)  # peft (LoRA) wraps the head


class RewardModel(nn.Module):
    """Scalar reward r(x, y) = head(pool(backbone(x, y)))."""

    packable = True  # the packed / shared-prompt layouts of models/packing.py may run it (subclasses opt out)

    def __init__(self, hf_model, tokenizer, settings: ModelSettings):
        super().__init__()
        self.model = hf_model
        self.tokenizer = tokenizer
        self.settings = settings
        decoder = _is_decoder_style(hf_model)
        if settings.pooling == "auto":
            settings.pooling = "last" if decoder else ("cls" if self._has_pooler() else "native")
        if settings.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {settings.pooling!r}")
        if settings.pooling == "last" and not decoder:
            raise ConfigError("pooling 'last' needs a decoder-style model (a `score` head); use cls or mean")
        if settings.pooling == "cls" and not self._has_pooler():
            raise ConfigError("pooling 'cls' needs a BERT-style pooler; use mean or native")
        if settings.render == "auto":
            if getattr(tokenizer, "chat_template", None):
                settings.render = "chat"
            else:
                settings.render = "concat" if decoder else "pair"
        settings.hf_compatible = settings.pooling != "mean"
        if tokenizer.pad_token_id is None:
            raise ConfigError("the tokenizer has no pad token (use RewardModel.from_backbone)")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        *,
        pooling: str = "auto",
        max_length: int = 512,
        overlength: str = "truncate_prompt_left",
        render: str = "auto",
        padding_side: str = "right",
        dtype: torch.dtype | None = None,
        **hf_kwargs,
    ) -> "RewardModel":
        """A fresh reward model (new head) on a backbone: alias, directory, GGUF file or Hub name."""
        path = resolve(name_or_path)
        tokenizer = backbone.load_tokenizer(path)
        model = backbone.load_sequence_classifier(path, dtype=dtype, **hf_kwargs)
        if _is_decoder_style(model):
            backbone.ensure_distinct_pad(model, tokenizer)
        elif tokenizer.pad_token_id is None:
            raise ConfigError(f"{name_or_path}: encoder tokenizer without a pad token")
        model.config.pad_token_id = tokenizer.pad_token_id
        settings = ModelSettings(
            pooling=pooling, max_length=max_length, overlength=overlength, render=render,
            padding_side=padding_side, base_model=name_or_path,
        )
        return cls(model, tokenizer, settings)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, dtype: torch.dtype | None = None) -> "RewardModel":
        """Reload a model saved by :meth:`save_pretrained` (or any 1-label sequence classifier)."""
        if (Path(directory) / "adapter_config.json").is_file():  # a LoRA adapter export
            return load_adapter(directory, dtype=dtype)
        directory = str(directory)
        tokenizer = backbone.load_tokenizer(directory)
        stored = _stored_settings(directory)
        names = (stored.get("attributes") or {}).get("names") or []
        model = backbone.load_sequence_classifier(directory, dtype=dtype, num_labels=max(len(names), 1))
        if "critic" in stored:  # its rewards need critiques: scoring without them would be silently wrong
            raise ConfigError(f"{directory}: a Critic-RM model (it writes critiques before it scores); "
                              "load it with rewardlab.critic.load.load_model")
        known = {k: v for k, v in stored.items() if k in ModelSettings.__dataclass_fields__}
        settings = ModelSettings(**known) if known else ModelSettings(base_model=directory)
        model.eval()
        rm = cls(model, tokenizer, settings)
        if settings.attributes and settings.attributes.get("gating"):
            from rewardlab.models.gating import load_gating

            rm.gating = load_gating(directory)
        return rm

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a directory plain ``AutoModelForSequenceClassification.from_pretrained`` loads."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if not self.settings.hf_compatible:
            log.warning("pooling=%s: plain transformers will not reproduce these rewards "
                        "(config.rewardlab.hf_compatible=false); reload with rewardlab", self.settings.pooling)
        if self.settings.render == "chat":
            self.settings.chat_template = self.tokenizer.chat_template
        self.model.config.rewardlab = asdict(self.settings)
        write_openrlhf_stats(self.model.config, self.settings)
        names = self.attribute_names or ["reward"]
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {name: i for i, name in enumerate(names)}
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.padding_side = self.settings.padding_side
        self.tokenizer.save_pretrained(directory)
        (directory / "rewardlab.json").write_text(json.dumps(asdict(self.settings), indent=2) + "\n")
        return directory

    # ---------------------------------------------------------------- attributes
    gating = None  # (export-form gating tensors, verbosity index) of a multi-attribute export

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def attribute_names(self) -> list[str] | None:
        """The names of a multi-attribute model's outputs (None for a one-reward model)."""
        return list(self.settings.attributes["names"]) if self.settings.attributes else None

    @torch.no_grad()
    def prompt_features(self, prompts, *, batch_size: int = 16) -> np.ndarray:
        """The pooled vector of each prompt alone (the pair (prompt, "")): the gating's input."""
        s = self.settings
        policy = "truncate_right" if s.overlength == "drop" else s.overlength
        items = [encode(self.tokenizer, s.render, p, "", s.max_length, policy) for p in prompts]
        return self.score_encoded(items, batch_size=batch_size, return_features=True)[1]

    def gated(self, prompts, scores, *, batch_size: int = 16, features: np.ndarray | None = None) -> np.ndarray:
        """The gated scalar reward of a multi-attribute export from its attribute ``scores [N, K]``.
        ``features``: the prompts' :meth:`prompt_features`, when the caller has them already."""
        if self.gating is None:
            raise ConfigError("this model has no gating (gating.safetensors): it gives attribute scores only")
        from rewardlab.models.gating import gated_reward

        if features is None:
            features = self.prompt_features(prompts, batch_size=batch_size)
        h = torch.from_numpy(np.asarray(features))
        tensors, v = self.gating
        return gated_reward(torch.as_tensor(np.asarray(scores)), h, tensors, v).double().numpy()

    # ---------------------------------------------------------------- forward
    def _has_pooler(self) -> bool:
        base = getattr(self.model, self.model.base_model_prefix, None)
        return getattr(base, "pooler", None) is not None and hasattr(self.model, "classifier")

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards [N] and the pooled features [N, d] that the head reads."""
        pooling = self.settings.pooling
        if pooling == "native":
            return self._native(input_ids, attention_mask, token_type_ids)
        base = getattr(self.model, self.model.base_model_prefix)
        # Position ids from the mask make left padding score like right padding (and equal the
        # default 0..n-1 of plain transformers for right padding).
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if pooling == "last":
            out = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
            h = out.last_hidden_state[torch.arange(len(input_ids)), last_index(attention_mask)]
            return self.model.score(h).squeeze(-1), h
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        if pooling == "cls":
            # The model's own pooler (as BertForSequenceClassification) on the first *real* token:
            # under left padding position 0 is padding.
            first = out.last_hidden_state[torch.arange(len(input_ids)), first_index(attention_mask)]
            h = base.pooler(first.unsqueeze(1))
        else:  # mean
            m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            h = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1.0)
        dropout = getattr(self.model, "dropout", None)
        z = dropout(h) if dropout is not None else h
        return self.model.classifier(z).squeeze(-1), h

    def _native(self, input_ids, attention_mask, token_type_ids):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
        last = out.hidden_states[-1]
        idx = last_index(attention_mask) if _is_decoder_style(self.model) else first_index(attention_mask)
        return out.logits.squeeze(-1), last[torch.arange(len(input_ids)), idx]

    # ---------------------------------------------------------------- tokens
    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def encode(self, prompt, response, template: dict | None = None) -> Encoded:
        """One item's tokens (``template``: a row's ``tools``/``chat_template_kwargs`` for the chat
        template, as :meth:`rewardlab.data.PreferenceTable.template_kwargs` gives them)."""
        s = self.settings
        return encode(self.tokenizer, s.render, prompt, response, s.max_length, s.overlength, template)

    def note_unused_templates(self, templates) -> int:
        """Log (and return) how many items carry tools/chat_template_kwargs that this model's render
        mode cannot use (it has no chat template): nothing is dropped without a word."""
        n = unused_templates(self.settings.render, templates)
        if n:
            log.warning("%d item(s) carry tools/chat_template_kwargs, but this model renders %r (no chat "
                        "template): they are not used", n, self.settings.render)
        return n

    def collate(self, items: list[Encoded], padding_side: str | None = None) -> dict[str, torch.Tensor]:
        return pad_batch(items, self.pad_id, padding_side or self.settings.padding_side)

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, prompts, responses, *, batch_size: int = 16, return_features: bool = False,
              padding_side: str | None = None, progress: bool = False, templates=None):
        """Rewards for (prompt, response) items, as a float64 numpy array (and features).

        Items are batched by length (less padding) and returned in input order. Items the
        ``drop`` policy would drop are scored truncated from the right instead: evaluation must
        score every item; the counts are in ``self.last_truncation``. ``templates``: per item, the
        chat template's further arguments (``tools``, ``chat_template_kwargs``) or None.
        """
        s = self.settings
        policy = "truncate_right" if s.overlength == "drop" else s.overlength
        templates = list(templates) if templates is not None else [None] * len(prompts)
        self.note_unused_templates(templates)
        items = [encode(self.tokenizer, s.render, p, r, s.max_length, policy, t)
                 for p, r, t in zip(prompts, responses, templates)]
        self.last_truncation = Counter(e.status for e in items)
        return self.score_encoded(items, batch_size=batch_size, return_features=return_features,
                                  padding_side=padding_side, progress=progress)

    @torch.no_grad()
    def score_encoded(self, items: list[Encoded], *, batch_size: int = 16, return_features: bool = False,
                      padding_side: str | None = None, progress: bool = False):
        was_training = self.training
        self.eval()
        order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
        k = self.num_labels
        rewards = np.zeros(len(items) if k == 1 else (len(items), k), dtype=np.float64)
        feats = np.zeros((len(items), self.feature_dim), dtype=np.float32) if return_features else None
        device = next(self.parameters()).device
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="scoring", unit="batch")
        for start in starts:
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in self.collate([items[i] for i in idx], padding_side).items()}
            r, h = self(**batch)
            rewards[idx] = r.float().cpu().numpy()
            if feats is not None:
                feats[idx] = h.float().cpu().numpy()
        self.train(was_training)
        return (rewards, feats) if return_features else rewards

    def score_pairs(self, table, *, batch_size: int = 16, return_features: bool = False,
                    progress: bool = False) -> dict[str, np.ndarray]:
        """Score the chosen and rejected responses of a PreferenceTable in one pass."""
        if packing.resolve_mode(self, "auto") == "shared_prompt":  # decoders: each prompt once (docs/speed.md)
            return packing.score_table_pairs(self, table, batch_size=batch_size, return_features=return_features,
                                             progress=progress)
        n = len(table)
        prompts = list(table["prompt"]) * 2
        responses = list(table["chosen"]) + list(table["rejected"])
        out = self.score(prompts, responses, batch_size=batch_size, return_features=return_features,
                         progress=progress, templates=table.template_kwargs() * 2)
        rewards, feats = out if return_features else (out, None)
        result = {"reward_chosen": rewards[:n], "reward_rejected": rewards[n:]}
        if feats is not None:
            result["features_chosen"], result["features_rejected"] = feats[:n], feats[n:]
        return result


def _stored_settings(directory: str) -> dict:
    """The ``rewardlab`` settings in a model directory's config.json ({} when none)."""
    path = Path(directory) / "config.json"
    try:
        return dict(json.loads(path.read_text()).get("rewardlab") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def last_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the last real token of each row, whatever the padding side."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(-1)


def first_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the first real token of each row, whatever the padding side."""
    return attention_mask.long().argmax(-1)


def load_reward_model(value: str | os.PathLike, *, option: str = "--model", dtype=None):
    """A :class:`RewardModel` from a checked model argument; loading failures become ConfigError."""
    target = locate_model(value, kind=REWARD_MODEL, option=option)
    try:
        return RewardModel.from_pretrained(target, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{option} {str(value)!r}: cannot load a reward model from it ({first}); "
                          f"expected {expected(REWARD_MODEL)}") from err


def load_adapter(directory: str | Path, *, base: str | None = None, dtype: torch.dtype | None = None):
    """A :class:`RewardModel` from an adapter directory: the base it names (or ``base``), prepared
    by :func:`rewardlab.models.lora.prepare_base`, with the adapter and its trained head loaded by peft (not merged)."""
    from peft import PeftConfig, PeftModel

    directory = Path(directory)
    info_path = directory / "rewardlab.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    base_path = base or PeftConfig.from_pretrained(str(directory)).base_model_name_or_path
    if not base and not Path(base_path or "").is_dir() and info.get("base_model"):
        base_path = info["base_model"]  # the path recorded at training is gone: the name it was given (alias, Hub)
    if not base_path:
        raise ConfigError(f"{directory}: adapter_config.json names no base model; pass base=")
    tokenizer = backbone.load_tokenizer(str(directory))
    hf = lora.prepare_base(backbone.load_sequence_classifier(resolve(base_path), dtype=dtype), tokenizer)
    PeftModel.from_pretrained(hf, str(directory))  # injects the adapters into hf in place
    known = {k: v for k, v in info.items() if k in ModelSettings.__dataclass_fields__}
    settings = ModelSettings(**known) if known else ModelSettings(base_model=str(base_path))
    hf.eval()
    return RewardModel(hf, tokenizer, settings)
