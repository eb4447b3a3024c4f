"""CLI command of the reward server: ``rewardlab serve``.

Registered on the app in ``cli/app.py`` like the other command modules. Errors go to stderr as
``error: ...`` with exit status 2 (``rewardlab.cli.common.fail``); MODEL_DIR is checked like every
``--model`` (``rewardlab.models.locate``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from rewardlab.cli.common import fail as _fail
from rewardlab.errors import ConfigError, RewardlabError


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve(
    model_dir: Annotated[Path, typer.Argument(help="A model directory saved by rewardlab (OUT/model), or an "
                                                   "ensemble directory (OUT of train.ensemble: ensemble.json).")],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless told otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port, 1 to 65535; 0 takes a free one (printed at start).", min=0,
                                      max=65535)] = 5000,
    max_batch: Annotated[int, typer.Option(help="Most items per scoring call (micro-batch).", min=1)] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="Longest a request waits for others to join its micro-batch.",
                                               min=0)] = 5.0,
    max_padding: Annotated[float, typer.Option(
        help="Most padding per forward pass (share of its tokens): a micro-batch is cut into passes of "
             "similar lengths; 1 = one padded pass per micro-batch (GPUs).", min=0, max=1)] = 0.2,
    api_key_env: Annotated[Optional[str], typer.Option(
        help="Name of an environment variable holding the API key; requests then need "
             "'Authorization: Bearer KEY' (all but /health).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads for scoring (default: torch's own).", min=1)] = None,
    max_items: Annotated[int, typer.Option(help="Most items in one request.", min=1)] = 256,
    max_chars: Annotated[int, typer.Option(help="Longest text (characters) in a request.", min=1)] = 100_000,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB (> 0).", min=0)] = 8.0,
    model_name: Annotated[Optional[str], typer.Option(help="Name the server reports (default: MODEL_DIR as given).")] = None,
    drain_timeout: Annotated[float, typer.Option(help="On SIGTERM, seconds to let in-flight requests finish (>= 0).",
                                                 min=0)] = 30.0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    aggregation: Annotated[Optional[Literal["mean", "min", "mean_minus_std"]], typer.Option(
        help="Ensemble: mean, min or mean_minus_std (mean - lambda * std) (default: ensemble.json's).")] = None,
    ensemble_lambda: Annotated[Optional[float], typer.Option(
        help="Ensemble: lambda of mean_minus_std, >= 0 (default: ensemble.json's).", min=0)] = None,
) -> None:
    """Serve a reward model over HTTP for RL loops (OpenRLHF, verl, TRL).

    POST /get_reward (OpenRLHF), /classify (vLLM
    classify subset, verl), /score (rewardlab pairs or chat messages); GET /health, /metrics.
    Concurrent requests are merged into length-sorted micro-batches. SIGTERM drains, then exits.
    An ensemble directory is served as one model: its aggregate is the reward, and /score and
    /get_reward add each item's member spread and member rewards."""
    from rewardlab.serve.protocol import Limits

    try:  # the ranges are declared with the options above (Typer checks them before this runs)
        if max_body_mb * 2**20 < 1:
            raise ConfigError(f"--max-body-mb: expected a size > 0, got {max_body_mb}")
        api_key = None
        if api_key_env is not None:
            api_key = os.environ.get(api_key_env, "")
            if not api_key:
                raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
        from rewardlab.models.ensemble import is_ensemble_dir, locate_ensemble
        from rewardlab.models.locate import locate_model

        if is_ensemble_dir(model_dir):  # the manifest and every member, before the port is bound
            locate_ensemble(model_dir, option="MODEL_DIR")
        else:
            if aggregation is not None or ensemble_lambda is not None:
                raise ConfigError(f"--aggregation and --ensemble-lambda apply to ensemble directories (ensemble.json) "
                                  f"only; MODEL_DIR {model_dir} is a single model")
            locate_model(model_dir, option="MODEL_DIR")  # the check of every --model, before the port is bound
        limits = Limits(max_items=max_items, max_chars=max_chars, max_body_bytes=int(max_body_mb * 2**20))
        from rewardlab.serve.server import bind_socket

        sock = bind_socket(host, port)
    except RewardlabError as e:
        _fail(e)

    import torch

    from rewardlab.models.ensemble import load_ensemble
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.serve.app import create_app
    from rewardlab.serve.server import run_server

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        rm = (load_ensemble(model_dir, aggregation=aggregation, lam=ensemble_lambda, option="MODEL_DIR")
              if is_ensemble_dir(model_dir) else load_reward_model(model_dir, option="MODEL_DIR"))
    except RewardlabError as e:
        sock.close()
        _fail(e)
    name = model_name or str(model_dir)
    app = create_app(rm, model_name=name, max_batch=max_batch, max_wait_ms=max_wait_ms, max_padding=max_padding,
                     limits=limits, api_key=api_key)
    bound_host, bound_port = sock.getsockname()[:2]
    _say(f"rewardlab serve: {name} ({rm.settings.render} render, {rm.settings.pooling} pooling, max length "
         f"{rm.settings.max_length}) on http://{bound_host}:{bound_port} (max batch {max_batch}, max wait "
         f"{max_wait_ms:g} ms, {torch.get_num_threads()} torch threads{', API key required' if api_key else ''})")
    sig = run_server(app, sock, access_log=access_log, drain_timeout=drain_timeout)
    if sig is not None:
        _say(f"rewardlab serve: stopped by signal {sig} after finishing the requests in flight")
