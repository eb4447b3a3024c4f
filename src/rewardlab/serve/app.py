"""The reward server's FastAPI app: endpoints, authentication, body limits, metrics.

Every scoring request goes the same way: check the key, read the body (bounded), parse it
(``protocol``), encode the items with the model's own scoring path in the encoding thread,
submit them to the micro-batcher, answer. A refused request gets a 4xx with a JSON error naming
the field; an unexpected failure gets a 500 for that request only; no request is ever answered
with part of its rewards. What a request itself makes fail is a 4xx naming the field: a body that
does not decode (bad bytes or syntax, nesting too deep, an integer of thousands of digits: see
``protocol.decode_body``), text no tokenizer takes (a lone surrogate), an item the model's
encoding refuses (422 on that item). A 5xx is the server's own fault.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from scipy.special import expit
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardlab.models.inputs import Encoded, encode, encode_text, generation_marker
from rewardlab.serve.batcher import MicroBatcher, ShuttingDown, length_groups
from rewardlab.serve.metrics import ServerMetrics
from rewardlab.serve.protocol import (
    Limits,
    PairItem,
    RequestError,
    TextItem,
    decode_body,
    parse_classify,
    parse_get_reward,
    parse_score,
)

log = logging.getLogger(__name__)


class ModelScorer:
    """The model's own encoding and scoring path (what ``rewardlab score`` runs).

    Pairs go through ``models.inputs.encode`` with the model's render mode (its recorded chat
    template), max length and over-length policy; full texts through ``encode_text`` (split at
    the template's last assistant-turn marker, so a chat rendering scores as its pair). As in
    ``RewardModel.score``, the ``drop`` policy scores over-length items truncated from the right:
    every item gets a reward.
    """

    def __init__(self, rm, *, batch_size: int = 32, max_padding: float = 0.2):
        self.rm, self.batch_size, self.max_padding = rm, batch_size, max_padding
        s = rm.settings
        self.policy = "truncate_right" if s.overlength == "drop" else s.overlength
        self.marker = generation_marker(rm.tokenizer) if s.render == "chat" else None

    def encode(self, item: TextItem | PairItem, max_length: int | None = None) -> Encoded:
        s = self.rm.settings
        length = s.max_length if max_length is None else min(max_length, s.max_length)
        if isinstance(item, TextItem):
            return encode_text(self.rm.tokenizer, s.render, item.text, length, self.policy, self.marker)
        if item.template and s.render != "chat":  # nowhere to put them: refused, not ignored
            key = "tools" if "tools" in item.template else "chat_template_kwargs"
            raise RequestError(422, "unprocessable_item", f"{item.field}.{key}" if item.field else key,
                               f"this model renders {s.render!r} without a chat template, so tools and "
                               "chat_template_kwargs cannot reach it")
        return encode(self.rm.tokenizer, s.render, item.prompt, item.response, length, self.policy, item.template)

    def encode_all(self, items, max_length: int | None = None) -> list[Encoded]:
        """Every item encoded; an item the encoding refuses (its chat template raises, its text
        does not tokenize) is a 422 naming the item, not a 500: the request's content caused it."""
        out = []
        for item in items:
            try:
                out.append(self.encode(item, max_length))
            except (MemoryError, RequestError):
                raise
            except Exception as e:  # noqa: BLE001 - whatever the tokenizer or template raises on this input
                log.info("refused %s: %s: %s", item.field or "an item", type(e).__name__, e)
                detail = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                raise RequestError(422, "unprocessable_item", item.field or None,
                                   f"cannot be encoded for this model ({detail})") from None
        return out

    @property
    def ensemble(self) -> bool:
        """An ensemble (``models.ensemble.RewardEnsemble``): ``score`` returns its members' rewards."""
        return getattr(self.rm, "is_ensemble", False)

    def score(self, items: list[Encoded]) -> np.ndarray:
        """Rewards of a micro-batch, in forward passes of similar lengths (``length_groups``): ``[n]``;
        a multi-attribute model's ``[n, K]`` attribute scores; for an ensemble, the members'
        (standardised) rewards ``(n, k)``, combined per request by ``split`` with the same functions
        offline scoring uses."""
        k = len(self.rm) if self.ensemble else 0
        labels = 1 if self.ensemble else getattr(self.rm, "num_labels", 1)
        shape = (len(items), k) if k else (len(items) if labels == 1 else (len(items), labels))
        rewards = np.zeros(shape, dtype=np.float64)
        for group in length_groups([len(e.input_ids) for e in items], self.batch_size, self.max_padding):
            chunk = [items[i] for i in group]
            if k:
                rewards[group] = self.rm.score_members_encoded(chunk, batch_size=len(group)).members
            else:
                rewards[group] = self.rm.score_encoded(chunk, batch_size=len(group))
        return rewards

    def split(self, scored: np.ndarray) -> tuple[np.ndarray, dict]:
        """(rewards, extra response fields): an ensemble's aggregate, and its ``spread`` (members'
        std) and ``member_rewards`` per item; a single model's rewards and nothing else."""
        if not self.ensemble:
            return scored, {}
        s = self.rm.combine(scored)
        return s.reward, {"spread": s.spread.tolist(), "member_rewards": s.members.tolist()}


def _error(status: int, kind: str, message: str, field: str | None = None) -> dict:
    return {"error": {"type": kind, "field": field, "message": message, "code": status}}


def create_app(rm, *, model_name: str = "rewardlab", max_batch: int = 32, max_wait_ms: float = 5.0,
               max_padding: float = 0.2, limits: Limits = Limits(), api_key: str | None = None) -> FastAPI:
    """The app serving ``rm`` (a :class:`~rewardlab.models.reward_model.RewardModel` or a
    :class:`~rewardlab.models.ensemble.RewardEnsemble`: its aggregate as the reward, plus ``spread``
    and ``member_rewards`` per item in ``/score`` and ``/get_reward``)."""
    scorer = ModelScorer(rm, batch_size=max_batch, max_padding=max_padding)
    metrics = ServerMetrics()
    batcher = MicroBatcher(scorer.score, max_batch=max_batch, max_wait_s=max_wait_ms / 1000.0,
                           on_batch=metrics.on_batch)
    # One encoding thread: the event loop stays free, and the (Rust) tokenizer is never used by
    # two threads at once.
    encoder: dict[str, ThreadPoolExecutor] = {}
    key = api_key.encode() if api_key else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        encoder["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-encode")
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # drains: requests already submitted are still scored
            encoder.pop("pool").shutdown(wait=True)

    app = FastAPI(title="rewardlab reward server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.metrics, app.state.batcher, app.state.scorer = metrics, batcher, scorer

    def check_auth(request: Request) -> None:
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
            raise RequestError(401, "unauthorized", "Authorization",
                               "expected 'Authorization: Bearer <key>' with the server's key")

    async def read_json(request: Request) -> object:
        limit = limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(413, "body_too_large", "body", f"expected at most {limit} bytes, got {declared}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "body_too_large", "body", f"expected at most {limit} bytes")
            chunks.append(chunk)
        return decode_body(b"".join(chunks))

    async def handle(request: Request, endpoint: str, work: Callable) -> Response:
        start = time.perf_counter()
        metrics.in_flight.inc()
        try:
            check_auth(request)
            body = await read_json(request)
            payload = await work(body)
            response = JSONResponse(payload)
        except RequestError as e:
            metrics.errors.labels(e.kind).inc()
            headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
            response = JSONResponse(e.to_json(), status_code=e.status, headers=headers)
        except ShuttingDown as e:
            metrics.errors.labels("shutting_down").inc()
            response = JSONResponse(_error(503, "shutting_down", str(e)), status_code=503)
        except Exception:  # noqa: BLE001 - one failed request must not take the server down
            log.exception("%s failed", endpoint)
            metrics.errors.labels("internal").inc()
            response = JSONResponse(_error(500, "internal", "internal error while scoring (see the server log)"),
                                    status_code=500)
        finally:
            metrics.in_flight.dec()
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
        return response

    async def score_items(items, endpoint: str, max_length: int | None = None) -> tuple[np.ndarray, list[Encoded], dict]:
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(encoder["pool"], scorer.encode_all, items, max_length)
        truncated = Counter(e.status for e in encoded if e.status != "ok")
        for status, n in truncated.items():
            metrics.truncated.labels(status).inc(n)
        metrics.queued_items.inc(len(encoded))
        try:
            rewards = await batcher.submit(encoded)
        finally:
            metrics.queued_items.dec(len(encoded))
        metrics.items.labels(endpoint).inc(len(encoded))
        rewards, extra = scorer.split(rewards)  # an ensemble's aggregate, spread and member rewards
        return rewards, encoded, extra

    names = rm.attribute_names if getattr(rm, "num_labels", 1) > 1 else None

    async def gated(prompts, scores: np.ndarray) -> list[float]:
        """A multi-attribute model's gated scalar (the prompts' vectors, then the gating)."""
        if rm.gating is None:
            raise RequestError(422, "no_gating", None, f"this model gives {len(names)} attribute scores "
                               f"({', '.join(names)}) and no gating; read them from /score")
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(encoder["pool"], rm.gated, prompts, scores)).tolist()

    @app.post("/get_reward")
    async def get_reward(request: Request) -> Response:
        async def work(body):
            rewards, _, extra = await score_items(parse_get_reward(body, limits), "get_reward")
            if names is not None:  # the gated scalar from the attribute scores and the prompts
                prompts = body.get("prompts") if isinstance(body, dict) else None
                if prompts is None or not all(isinstance(p, str) for p in prompts):
                    raise RequestError(422, "invalid_request", "prompts", "a multi-attribute model gates its "
                                       "attributes by the prompt: send 'prompts' (one string per query)")
                values = await gated(prompts, rewards)
                return {"rewards": values, "scores": values, "extra_logs": {},
                        "attributes": rewards.tolist(), "attribute_names": names}
            values = rewards.tolist()
            return {"rewards": values, "scores": values, "extra_logs": {}, **extra}

        return await handle(request, "get_reward", work)

    @app.post("/classify")
    async def classify(request: Request) -> Response:
        async def work(body):
            req = parse_classify(body, limits)
            rewards, encoded, _ = await score_items(req.items, "classify", req.truncate_prompt_tokens)
            probs = expit(rewards) if req.use_activation else rewards
            tokens = sum(len(e.input_ids) for e in encoded)
            return {
                "id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                "model": model_name,
                "data": ([{"index": i, "label": "reward", "probs": [float(p)], "num_classes": 1}
                          for i, p in enumerate(probs)] if names is None else  # one prob per attribute
                         [{"index": i, "label": names[int(np.argmax(p))], "probs": [float(x) for x in p],
                           "num_classes": len(names)} for i, p in enumerate(probs)]),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            }

        return await handle(request, "classify", work)

    @app.post("/score")
    async def score(request: Request) -> Response:
        async def work(body):
            items = parse_score(body, limits)
            rewards, encoded, extra = await score_items(items, "score")
            truncation = dict(Counter(e.status for e in encoded if e.status != "ok"))
            if names is not None:  # the attribute vector of each item, and the gated scalar with a gating
                out = {"attributes": rewards.tolist(), "attribute_names": names, "model": model_name,
                       "truncated": truncation}
                if rm.gating is not None:
                    out["rewards"] = await gated([item.prompt for item in items], rewards)
                return out
            return {"rewards": rewards.tolist(), "model": model_name, "truncated": truncation, **extra}

        return await handle(request, "score", work)

    @app.get("/health")
    async def health() -> dict:
        s = rm.settings
        return {"status": "ok", "model": model_name, "render": s.render, "pooling": s.pooling,
                "max_length": s.max_length, "overlength": s.overlength, "max_batch": max_batch,
                "max_wait_ms": max_wait_ms, "max_padding": max_padding, "max_items": limits.max_items,
                "max_chars": limits.max_chars, "max_body_bytes": limits.max_body_bytes,
                "queued_items": batcher.queued_items,
                **({"ensemble": rm.describe()} if scorer.ensemble else {})}

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        try:
            check_auth(request)
        except RequestError as e:
            metrics.errors.labels(e.kind).inc()
            metrics.requests.labels("metrics", "401").inc()
            return JSONResponse(e.to_json(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.errors.labels(kind).inc()
        metrics.requests.labels("other", str(exc.status_code)).inc()
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(_error(exc.status_code, kind, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    return app
