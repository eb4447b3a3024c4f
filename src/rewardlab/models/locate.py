"""Check a ``--model`` value before anything loads it: one function for every command.

What a model argument may be:

- a directory saved by rewardlab (``OUT/model`` of a training run) or by ``transformers``
  (``config.json``, weights, tokenizer files);
- an alias rewardlab knows offline (``minilm``, ``smollm2-135m``): these name *backbones*, to
  train or embed with, not trained reward models;
- a ``*.gguf`` file (a backbone);
- a Hub name (``org/name``), for online users.

:func:`locate_model` returns what ``from_pretrained`` should load, or raises a :class:`ConfigError`
that says what was given, what was expected and what to do, instead of a transformers traceback.
A Hub name is only tried when it has the form of one. The Hub is asked once, with a short timeout
and no retries: a name it does not know, or an unreachable Hub, is an error at once (offline:
about a second, instead of huggingface_hub's retries); a name in the local Hugging Face cache
loads from the cached snapshot directory when the Hub cannot be reached (``HF_HUB_OFFLINE=1``
skips the request).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rewardlab.errors import ConfigError
from rewardlab.models import backbone

log = logging.getLogger(__name__)

REWARD_MODEL = "reward_model"  # a trained reward model: score, eval, golden --model
BACKBONE = "backbone"  # a model to train or embed with: model.name_or_path, embed/strength --model
KINDS = (REWARD_MODEL, BACKBONE)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model")
HUB_TIMEOUT_S = 10.0

_EXPECTED = {
    REWARD_MODEL: ("a trained reward model: a directory saved by rewardlab (OUT/model of `rewardlab train` "
                   "or `rewardlab demo`) or by transformers, or a Hub name of one (org/name, online)"),
    BACKBONE: ("a backbone: an alias (minilm, smollm2-135m), a model directory saved by transformers, "
               "a .gguf file, or a Hub name (org/name, online)"),
}


def expected(kind: str) -> str:
    """What a model argument of ``kind`` may be, in words (for messages and help)."""
    return _EXPECTED[kind]


def locate_model(value: str | os.PathLike, *, kind: str = REWARD_MODEL, option: str = "--model") -> str:
    """What ``from_pretrained`` should load for ``value``; a ConfigError saying why not otherwise.

    ``kind`` is ``"reward_model"`` (the model must already be a trained reward model) or
    ``"backbone"`` (aliases and GGUF files are resolved, as in training). ``option`` names the
    argument in messages (``--model``, ``model.name_or_path``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    text = str(value)
    label = f"{option} {text!r}"
    if not text.strip():
        raise ConfigError(f"{option}: empty; expected {expected(kind)}")
    if text.lower() in backbone.ALIASES:
        if kind == REWARD_MODEL:
            raise ConfigError(
                f"{label} names a backbone (the base model to train on), not a trained reward model; "
                f"this command wants {expected(kind)}. Train one first, e.g. `rewardlab demo` "
                f"(writes runs/demo/model) or `rewardlab train CONFIG`, and pass its OUT/model")
        return backbone.ALIASES[text.lower()]()
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        if kind == REWARD_MODEL:
            raise ConfigError(f"{label} is a GGUF file, a backbone to train on, not a trained reward model; "
                              f"expected {expected(kind)}")
        if not path.is_file():
            raise ConfigError(f"{label}: no such GGUF file")
        return str(backbone.convert_gguf(path))
    if path.exists():
        return _check_directory(path, label, kind)
    if _looks_like_hub_id(text):
        return _from_hub(text, label, kind)
    raise ConfigError(f"{label}: no such directory; expected {expected(kind)}")


def _check_directory(path: Path, label: str, kind: str) -> str:
    """A local model directory with a config, weights and tokenizer files."""
    if not path.is_dir():
        raise ConfigError(f"{label} is a file, not a model directory; expected {expected(kind)}")
    missing = []
    if (path / "adapter_config.json").is_file():
        return str(path)  # a LoRA adapter (export: adapter): loaded on its recorded base model
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if kind == REWARD_MODEL:  # a backbone directory may take its tokenizer from elsewhere
        if not any((path / f).is_file() for f in WEIGHT_FILES):
            missing.append("weights (model.safetensors or pytorch_model.bin)")
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            missing.append("tokenizer files (tokenizer.json, tokenizer_config.json, ...)")
    if missing:
        hint = ""
        if (path / "model" / "config.json").is_file():
            hint = f"; it looks like a run directory: did you mean {path / 'model'}?"
        elif (path / "ensemble.json").is_file():
            hint = ("; it is an ensemble directory (ensemble.json): rewardlab score, serve, the rubric scorer and "
                    "load_model take ensembles, this command takes one model (e.g. a member, or rewardlab warm's export)")
        elif not any(path.iterdir()):
            hint = " (the directory is empty)"
        raise ConfigError(f"{label} is not a model directory: no {', no '.join(missing)}{hint}; "
                          f"expected {expected(kind)}")
    if kind == REWARD_MODEL:
        _check_reward_config(path / "config.json", label)
    return str(path)


def _check_reward_config(config_path: Path, label: str) -> None:
    """A trained reward model's config names a sequence classifier (rewardlab saves exactly that)."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{label}: cannot read {config_path}: {err}") from err
    archs = config.get("architectures") or []
    if archs and not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(
            f"{label} holds a {', '.join(map(str, archs))}, a base model without a reward head, not a trained "
            f"reward model; expected {expected(REWARD_MODEL)}. To train a reward model on it: "
            f"`rewardlab train CONFIG --set model.name_or_path={config_path.parent}`")


def _looks_like_hub_id(text: str) -> bool:
    """``name`` or ``org/name`` as the Hub spells repository ids (no path syntax around it)."""
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return False
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(text)
    except Exception:  # HFValidationError: not a repository id
        return False
    return True


def _hub_offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().lower() in ("1", "true", "yes", "on")


def _from_hub(repo_id: str, label: str, kind: str) -> str:
    """A Hub name: the local cache first, then one short request to the Hub."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        # In the local cache. Online, the name goes to transformers (which checks for a newer
        # revision); offline, the cached snapshot directory does: given the name, huggingface_hub
        # retries every file request for minutes (measured: 6 min 43 s for one reward model).
        if _hub_offline() or hub_model_exists(repo_id)[0] is None:
            log.info("%s: the Hugging Face Hub cannot be reached; using the cached copy %s", label,
                     Path(cached).parent)
            return str(Path(cached).parent)
        return repo_id
    not_local = f"{label} is not a local directory, not an alias (minilm, smollm2-135m) and not in the Hugging Face cache"
    if _hub_offline():
        raise ConfigError(f"{not_local}, and HF_HUB_OFFLINE is set; expected {expected(kind)}")
    reachable, reason = hub_model_exists(repo_id)
    if reachable is None:
        raise ConfigError(f"{not_local}, and the Hugging Face Hub cannot be reached ({reason}); "
                          f"expected {expected(kind)}")
    if not reachable:
        raise ConfigError(f"{label}: no such model on the Hugging Face Hub ({reason}), and no such local "
                          f"directory; expected {expected(kind)}")
    return repo_id


def hub_model_exists(repo_id: str, timeout: float = HUB_TIMEOUT_S) -> tuple[bool | None, str]:
    """(True, "") when the Hub has ``repo_id`` (or it is gated: it exists), (False, why) when it has
    not, (None, why) when the Hub cannot be reached. One request, no retries."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except GatedRepoError:
        return True, ""
    except RepositoryNotFoundError as err:
        return False, type(err).__name__
    except HfHubHTTPError as err:
        return None, str(err).splitlines()[0] if str(err) else type(err).__name__
    except Exception as err:  # connection refused, DNS failure, timeout, proxy: the network is the problem
        return None, f"{type(err).__name__}: {err}".splitlines()[0]
    return True, ""


def resolve(name_or_path: str, *, option: str = "model") -> str:
    """Map a backbone name to something ``from_pretrained`` loads (converting GGUF files once).

    Checked by :func:`locate_model`: a missing directory, an empty one or an unreachable Hub name is
    a ConfigError naming ``option``, not a transformers traceback.
    """
    return locate_model(name_or_path, kind=BACKBONE, option=option)
