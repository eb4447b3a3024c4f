"""CriticRewardModel: one causal LM that writes critiques and a reward head that reads them.

The wrapped model is the backbone's ``AutoModelForCausalLM`` (base + LM head, tied or not) with
one extra module, ``score`` (``nn.Linear(hidden, 1, bias=False)``, the head of
``LlamaForSequenceClassification`` and its kin), read at the last real token of the joint
conversation ``[user: x] [assistant: y] [user: ask] [assistant: critique]`` rendered with the chat
template. It *is* a :class:`~rewardlab.models.reward_model.RewardModel` (pooling ``last``, render
``chat``), so training, validation and scoring reuse its forward, batching and bookkeeping;
what it adds:

- ``forward(..., labels=...)`` also returns the mean cross-entropy of the labelled (critique)
  tokens, computed on those positions only (no full-vocabulary logits for the whole batch);
- :meth:`encode_joint`: the joint conversation as tokens, critique tokens marked for the LM loss;
- :meth:`save_pretrained`: one directory that plain ``transformers`` loads both as
  ``AutoModelForCausalLM`` (to write critiques) and ``AutoModelForSequenceClassification`` (to score
  the conversation), with no rewardlab import: the weights file holds the base, the LM head (unless
  tied to the embeddings) and ``score.weight``; each class ignores the other's head;
- :meth:`score_pairs` writes ``m`` critiques per response with the generation layer and averages
  the rewards (:mod:`rewardlab.critic.scoring`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rewardlab.config import CriticConfig
from rewardlab.critic.prompts import CRITIQUE_ASK, joint_messages, prompt_messages
from rewardlab.critic.scoring import score_with_critiques
from rewardlab.errors import ConfigError
from rewardlab.models import backbone
from rewardlab.models.locate import resolve
from rewardlab.models.inputs import OVERLENGTH_POLICIES, Encoded, cut_to_length, pad_batch
from rewardlab.models.reward_model import ModelSettings, RewardModel, last_index, write_openrlhf_stats

log = logging.getLogger(__name__)

IGNORE = -100  # label of tokens without an LM loss (as transformers)


@dataclass
class JointEncoded(Encoded):
    """A joint conversation's ids; its last ``critique_len`` tokens are the critique turn
    (critique text and end-of-turn tokens), labelled for the LM loss when ``sft``."""

    critique_len: int = 0
    sft: bool = False


class CriticRewardModel(RewardModel):
    """Reward r(x, y, c) = score(h_last([x, y, ask, c])) on a causal LM that also writes c."""

    # Padded only: training reads LM labels from padded rows and scoring averages over critiques
    # written at scoring time, so the packed / shared-prompt layouts (models/packing.py) do not apply.
    packable = False

    def __init__(self, hf_model, tokenizer, settings: ModelSettings, critic: CriticConfig):
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("Critic-RM needs a backbone with a chat template (an instruction-tuned decoder)")
        settings.pooling, settings.render = "last", "chat"
        super().__init__(hf_model, tokenizer, settings)
        self.critic = critic
        self.source_dir: Path | None = None  # the directory it was loaded from (the critique writer)
        self.generator = None  # set by rewardlab.critic.scoring (or a test) to write critiques
        self.cache_dir: Path | None = None

    @property
    def num_labels(self) -> int:
        # One reward from the ``score`` head; the causal LM's config keeps transformers' default
        # num_labels (2), which says nothing about this head.
        return 1

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_backbone(cls, name_or_path: str, *, critic: CriticConfig | None = None, max_length: int = 512,
                      overlength: str = "truncate_prompt_left", padding_side: str = "right",
                      dtype: torch.dtype | None = None, **hf_kwargs) -> "CriticRewardModel":
        """A causal LM backbone with a fresh reward head (normal(0, initializer_range), no bias)."""
        from transformers import AutoModelForCausalLM

        path = resolve(name_or_path)
        tokenizer = backbone.load_tokenizer(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **hf_kwargs)
        backbone.ensure_distinct_pad(lm, tokenizer)
        _attach_score(lm)
        settings = ModelSettings(pooling="last", max_length=max_length, overlength=overlength, render="chat",
                                 padding_side=padding_side, base_model=name_or_path)
        return cls(lm, tokenizer, settings, critic or CriticConfig())

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, dtype: torch.dtype | None = None) -> "CriticRewardModel":
        """Reload a directory written by :meth:`save_pretrained` (LM, LM head and reward head)."""
        from transformers import AutoModelForCausalLM

        directory = Path(directory)
        tokenizer = backbone.load_tokenizer(str(directory))
        lm = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype)
        stored = dict(getattr(lm.config, "rewardlab", None) or {})
        if "critic" not in stored:
            raise ConfigError(f"{directory}: not a Critic-RM model (config.json has no rewardlab.critic)")
        critic = CriticConfig.model_validate(stored.pop("critic"))
        _attach_score(lm)
        with torch.no_grad():
            lm.score.weight.copy_(_read_tensor(directory, "score.weight").to(lm.score.weight.dtype))
        known = {k: v for k, v in stored.items() if k in ModelSettings.__dataclass_fields__}
        model = cls(lm, tokenizer, ModelSettings(**known), critic)
        model.source_dir = directory
        model.eval()
        return model

    def save_pretrained(self, directory: str | Path) -> Path:
        """One directory for both plain classes: ``AutoModelForCausalLM`` writes critiques,
        ``AutoModelForSequenceClassification`` scores the joint conversation (``score.weight``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.settings.chat_template = self.tokenizer.chat_template
        cfg = self.model.config
        cfg.rewardlab = {**asdict(self.settings), "critic": self.critic.model_dump(mode="json")}
        write_openrlhf_stats(cfg, self.settings)
        cfg.id2label, cfg.label2id = {0: "reward"}, {"reward": 0}  # num_labels = 1 for the classifier
        self.model.save_pretrained(directory, safe_serialization=True)
        # save_pretrained writes its own class only; the sequence classifier of the same model type
        # reads this directory too (`score.weight` is in the weights file).
        _set_architectures(directory, type(self.model).__name__)
        self.tokenizer.padding_side = self.settings.padding_side
        self.tokenizer.save_pretrained(directory)
        # The added pad token is never a critique token: plain `generate` suppresses it.
        gen_path = directory / "generation_config.json"
        gen = json.loads(gen_path.read_text()) if gen_path.is_file() else {}
        gen.update({"pad_token_id": self.pad_id, "suppress_tokens": [self.pad_id]})
        gen_path.write_text(json.dumps(gen, indent=2) + "\n")
        (directory / "rewardlab.json").write_text(json.dumps(cfg.rewardlab, indent=2) + "\n")
        return directory

    # ---------------------------------------------------------------- forward
    def forward(self, input_ids, attention_mask, labels=None, token_type_ids=None):
        """Rewards [N] and pooled features [N, d]; with ``labels`` also the mean LM loss over the
        labelled tokens (a zero that still touches the LM head when no token is labelled)."""
        base = getattr(self.model, self.model.base_model_prefix)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        h = hidden[torch.arange(len(input_ids), device=hidden.device), last_index(attention_mask)]
        r = self.model.score(h).squeeze(-1)
        if labels is None:
            return r, h
        return r, h, critique_lm_loss(hidden, labels, self.model.get_output_embeddings())

    # ---------------------------------------------------------------- tokens
    def render_joint(self, prompt, response: str, critique: str) -> tuple[str, str]:
        """(everything up to the critique turn's content, the critique turn) as chat-template text."""
        messages = joint_messages(prompt_messages(prompt), response, critique, ask=self.critic.ask or CRITIQUE_ASK)
        prefix = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = self.tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prefix):
            raise ConfigError("the chat template does not render the conversation up to the critique as a "
                              "prefix of the whole; Critic-RM cannot locate the critique tokens")
        return prefix, full[len(prefix):]

    def encode_joint(self, prompt, response: str, critique: str, *, sft: bool = False,
                     overlength: str | None = None) -> JointEncoded:
        """Token ids of the joint conversation under the max length and over-length policy
        (``truncate_prompt_left`` cuts the conversation before the critique from the left)."""
        policy = overlength or self.settings.overlength
        if policy not in OVERLENGTH_POLICIES:
            raise ConfigError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {policy!r}")
        prefix, turn = self.render_joint(prompt, response, critique)
        p_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        c_ids = self.tokenizer(turn, add_special_tokens=False)["input_ids"]
        ids = p_ids + c_ids
        keep, status = cut_to_length(ids, [0] * len(p_ids) + [1] * len(c_ids), self.settings.max_length, policy)
        n_crit = sum(1 for i in keep if i >= len(p_ids))
        return JointEncoded([ids[i] for i in keep], None, status, critique_len=n_crit, sft=sft)

    def encode(self, prompt, response, template=None) -> Encoded:
        raise ConfigError("a Critic-RM scores (prompt, response, critique): use encode_joint, or score() "
                          "which writes the critiques")

    def collate(self, items: list[Encoded], padding_side: str | None = None) -> dict[str, torch.Tensor]:
        """Pad a batch; in training mode also ``labels`` (the critique tokens of ``sft`` items, -100
        elsewhere). Scoring runs in eval mode and reads rewards only."""
        side = padding_side or self.settings.padding_side
        batch = pad_batch(items, self.pad_id, side)
        if self.training:
            batch["labels"] = critique_labels(batch["input_ids"], items, side)
        return batch

    # ---------------------------------------------------------------- scoring with critiques
    def score(self, prompts, responses, *, batch_size: int = 16, return_features: bool = False,
              padding_side: str | None = None, progress: bool = False, templates=None):
        """Rewards averaged over ``critic.critiques`` critiques written by the model (see
        :func:`rewardlab.critic.scoring.score_with_critiques`); the critiques are kept in
        ``self.last_critiques``. Critique prompts do not carry ``tools``/``chat_template_kwargs``:
        items that have them are counted in a warning."""
        n = sum(1 for t in templates or () if t)
        if n:
            log.warning("%d item(s) carry tools/chat_template_kwargs; a Critic-RM's critique and scoring "
                        "prompts do not use them", n)
        out = score_with_critiques(self, prompts, responses, batch_size=batch_size,
                                   padding_side=padding_side, progress=progress)
        self.last_critiques = out.critiques
        return (out.rewards, out.features) if return_features else out.rewards

    def score_pairs(self, table, *, batch_size: int = 16, return_features: bool = False,
                    progress: bool = False) -> dict[str, np.ndarray]:
        result = super().score_pairs(table, batch_size=batch_size, return_features=return_features, progress=progress)
        n = len(table)
        result["critiques_chosen"], result["critiques_rejected"] = self.last_critiques[:n], self.last_critiques[n:]
        return result

    def critique_settings(self) -> dict:
        """How critiques are written at scoring time (recorded in eval provenance)."""
        c = self.critic
        return {"m": c.critiques, "seed": c.seed, "temperature": c.temperature, "top_p": c.top_p,
                "max_new_tokens": c.max_new_tokens, "writer": str(self.source_dir) if self.source_dir else None,
                "ask_sha256": _sha(c.ask or CRITIQUE_ASK)}


# -------------------------------------------------------------------- pure pieces
def critique_labels(input_ids: torch.Tensor, items: list[JointEncoded], padding_side: str) -> torch.Tensor:
    """Labels for a padded batch: each ``sft`` item's last ``critique_len`` real tokens, -100 elsewhere."""
    labels = torch.full_like(input_ids, IGNORE)
    width = input_ids.shape[1]
    for i, e in enumerate(items):
        k = getattr(e, "critique_len", 0)
        if not getattr(e, "sft", False) or k == 0:
            continue
        end = len(e.input_ids) if padding_side == "right" else width
        labels[i, end - k:end] = input_ids[i, end - k:end]
    return labels


def critique_lm_loss(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions (logits only where a label is)."""
    target = labels[:, 1:]
    sel = target != IGNORE
    if not bool(sel.any()):  # keep the LM head in the graph (DDP expects every parameter used)
        return lm_head(hidden[:1, :1]).sum() * 0.0
    logits = lm_head(hidden[:, :-1][sel])
    return F.cross_entropy(logits.float(), target[sel])


def _attach_score(lm) -> None:
    hidden = lm.config.get_text_config().hidden_size
    p = next(lm.parameters())
    lm.score = nn.Linear(hidden, 1, bias=False).to(device=p.device, dtype=p.dtype)
    std = getattr(lm.config.get_text_config(), "initializer_range", 0.02)
    nn.init.normal_(lm.score.weight, mean=0.0, std=std)


def _set_architectures(directory: Path, causal: str) -> None:
    """config.architectures lists the causal LM first (generation servers read the first) and the
    sequence classifier of the same family second."""
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    seq = causal.replace("ForCausalLM", "ForSequenceClassification")
    cfg["architectures"] = [causal] + ([seq] if seq != causal else [])
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _read_tensor(directory: Path, name: str) -> torch.Tensor:
    """One tensor from a (possibly sharded) safetensors checkpoint."""
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shard = json.loads(index.read_text())["weight_map"].get(name)
        files = [directory / shard] if shard else []
    else:
        files = [directory / "model.safetensors"]
    for f in files:
        if f.is_file():
            with safe_open(str(f), framework="pt") as st:
                if name in st.keys():
                    return st.get_tensor(name)
    raise ConfigError(f"{directory}: the weights hold no {name!r} (not saved by a Critic-RM)")


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()
