"""`/v1/models`, `/v1/chat/completions`, `/v1/completions` (with server-sent events when `stream: true`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.routing import Route

from ..auth import KeyRecord
from ..backends import params
from ..backends.base import GenerationRequest, GenerationResult
from ..errors import ApiError, InvalidRequest
from ..prefix import prompt_hashes
from ..scheduler import Priority
from ..service import Job, Runtime, new_request_id
from .schemas import ChatRequest, CompletionRequest, _Generation
from .security import check_model, require

router = APIRouter()

FALLBACK_HEADER = "x-autoglm-fallback"  # "backup": the backup model answered for the default
FALLBACK_FROM_HEADER = "x-autoglm-fallback-from"  # the model that was asked for
PRIORITY_HEADER = "x-autoglm-priority"
DISCONNECT_POLL = 0.25  # seconds between checks that a waiting non-streaming client is still there


def _runtime(request: Request) -> Runtime:
    return request.app.state.gateway.runtime


def priority_of(body: _Generation, request: Request) -> Priority:
    name = body.priority or request.headers.get(PRIORITY_HEADER, "normal")
    try:
        return Priority[name.upper()]
    except KeyError:
        raise InvalidRequest(
            f"priority must be high, normal or low, not {name!r}", param="priority"
        ) from None


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters a token) for the scheduler's cost model."""
    return max(1, len(text) // 4)


def build_request(
    body: _Generation, kind: str, runtime: Runtime, key: KeyRecord, prefix: str, *, raw: dict | None = None
) -> tuple[GenerationRequest, int]:
    """The request for the runtime. With `raw` (the client's body) and an engine-backed model,
    the body goes to the engine as it is (passthrough); an in-process model first checks
    that it can honour every field (`params.check_supported`)."""
    model = body.model or runtime.catalogue.default
    check_model(key, model)
    settings = runtime.catalogue.models.get(model)
    relay = raw is not None and params.passthrough(settings)
    if not relay:
        if raw is not None and settings is not None:
            params.check_supported(raw, settings)
        if body.n not in (None, 1):
            raise InvalidRequest("only n=1 is supported", param="n", code="unsupported_parameter")
    request = GenerationRequest(
        id=new_request_id(prefix),
        model=model,
        kind=kind,
        max_tokens=body.limit(),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stops(),
        seed=body.seed,
        passthrough=raw if relay else None,
    )
    if kind == "chat":
        request.messages = [{"role": m.role, "content": _text(m, relay)} for m in body.messages]
        text = " ".join(m["content"] for m in request.messages)
    else:
        request.prompt = body.prompt_text()
        text = request.prompt
    tokens = estimate_tokens(text)
    if not relay and settings is not None:
        limit = params.max_tokens_for(request.max_tokens, settings, tokens)
        if request.max_tokens is None:
            request.max_tokens_default = limit
    return request, tokens


def _text(message, relay: bool) -> str:
    """A message's text; for an engine (relay) parts the gateway cannot read (images) count as none."""
    try:
        return message.text()
    except InvalidRequest:
        if relay:
            return ""
        raise


def usage(result: GenerationResult) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _headers(job: Job) -> dict[str, str]:
    if not job.fallback_from:
        return {}
    return {FALLBACK_HEADER: "backup", FALLBACK_FROM_HEADER: job.fallback_from}


def chat_body(job: Job, result: GenerationResult) -> dict:
    return {
        "id": job.id,
        "object": "chat.completion",
        "created": int(job.created),
        "model": job.served_model or job.request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": _finish(result),
            }
        ],
        "usage": usage(result),
    }


def completion_body(job: Job, result: GenerationResult) -> dict:
    return {
        "id": job.id,
        "object": "text_completion",
        "created": int(job.created),
        "model": job.served_model or job.request.model,
        "choices": [{"index": 0, "text": result.text, "logprobs": None, "finish_reason": _finish(result)}],
        "usage": usage(result),
    }


def _finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


@router.get("/v1/models")
async def list_models(request: Request, key: KeyRecord = Depends(require("model:read"))):
    runtime = _runtime(request)
    data = []
    for name, settings in runtime.catalogue.models.items():
        if key.allows_model(name):
            owner = "autoglm-simulated" if settings.backend == "simulated" else "autoglm"
            data.append({"id": name, "object": "model", "created": 0, "owned_by": owner})
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request, key: KeyRecord = Depends(require("model:read"))):
    runtime = _runtime(request)
    settings = runtime.catalogue.models.get(model_id)
    if settings is None or not key.allows_model(model_id):
        raise ApiError(
            f"The model `{model_id}` does not exist or you do not have access to it.",
            status=404,
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    owner = "autoglm-simulated" if settings.backend == "simulated" else "autoglm"
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


_may_infer = require("model:infer")  # the key's check, called before the body is read


async def chat_completions(request: Request) -> Response:
    key = await _may_infer(request)
    body, raw = await _parsed(request, ChatRequest)
    return await _serve(body, "chat", request, key, prefix="chatcmpl", raw=raw)


async def completions(request: Request) -> Response:
    key = await _may_infer(request)
    body, raw = await _parsed(request, CompletionRequest)
    return await _serve(body, "completion", request, key, prefix="cmpl", raw=raw)


# The two hot routes are plain Starlette routes: FastAPI's dependency and body resolution
# cost ~0.3 ms a request here, a fifth of the gateway's overhead. Same checks, same order
# (the key first, then the body), same errors: validation failures raise FastAPI's
# RequestValidationError, which the app's handler turns into OpenAI's error shape.
class _NamedRoute(Route):
    """A Starlette route that names itself in the scope (FastAPI's routers name only their own
    routes there; the metrics label requests by it)."""

    def __init__(self, path: str, endpoint, **options) -> None:
        async def named(request: Request) -> Response:
            request.scope["route"] = self
            return await endpoint(request)

        super().__init__(path, named, **options)


router.routes.append(_NamedRoute("/v1/chat/completions", chat_completions, methods=["POST"]))
router.routes.append(_NamedRoute("/v1/completions", completions, methods=["POST"]))


async def _parsed(request: Request, model: type[_Generation]) -> tuple[_Generation, dict]:
    """The body as `model` (validated) and as the client's JSON (for passthrough)."""
    data = await request.body()
    try:
        raw = json.loads(data)
    except ValueError as exc:
        position = getattr(exc, "pos", 0)
        detail = getattr(exc, "msg", str(exc))
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", position),
                    "msg": "JSON decode error",
                    "ctx": {"error": detail},
                }
            ]
        ) from None
    try:
        body = model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    return body, raw


async def _serve(body: _Generation, kind: str, request: Request, key: KeyRecord, *, prefix: str, raw: dict):
    runtime = _runtime(request)
    gen, prompt_tokens = build_request(body, kind, runtime, key, prefix, raw=raw)
    job = runtime.submit(
        gen,
        priority=priority_of(body, request),
        stream=body.stream,
        key_id=key.id,
        prompt_tokens=prompt_tokens,
        prefix_hashes=prompt_hashes(messages=raw.get("messages"))
        if kind == "chat"
        else prompt_hashes(prompt=gen.prompt),
    )
    if body.stream:
        return await _stream(job, kind, runtime, include_usage=body.include_usage())
    try:
        result = await _result_unless_gone(job, request, runtime)
    finally:
        runtime.release(job)
    if result is None:  # the client hung up: nobody reads this
        return JSONResponse(ApiError("client closed request", status=499, code="cancelled").body(), 499)
    if result.raw is not None:  # the engine's answer, as it wrote it
        return Response(result.raw, media_type="application/json", headers=_headers(job))
    make = chat_body if kind == "chat" else completion_body
    return JSONResponse(make(job, result), headers=_headers(job))


async def _result_unless_gone(job: Job, request: Request, runtime: Runtime) -> GenerationResult | None:
    """The job's result; None when the client disconnected first (its generation is cancelled,
    so a node never keeps generating an answer nobody will read)."""
    while True:
        done, _ = await asyncio.wait({job.done}, timeout=DISCONNECT_POLL)
        if done:
            return job.done.result()
        if await request.is_disconnected():
            await runtime.cancel(job)
            return None


async def _stream(job: Job, kind: str, runtime: Runtime, *, include_usage: bool):
    # Wait for the first piece (or the end) before answering, so a request that never
    # reaches a node gets a real HTTP error status instead of an error inside a 200 stream.
    try:
        first = await job.events.get()
    except asyncio.CancelledError:
        runtime.cancel_soon(job)
        raise
    if first is None and job.error is not None:
        runtime.release(job)
        raise job.error
    events = (
        _relay(job, runtime, first)
        if isinstance(first, bytes)
        else _events(job, kind, runtime, first, include_usage)
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_headers(job)},
    )


def _sse(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def _events(
    job: Job, kind: str, runtime: Runtime, first: str | None, include_usage: bool
) -> AsyncIterator[bytes]:
    created = int(job.created)
    model = job.served_model or job.request.model

    def chunk(piece: str | None, finish: str | None = None, *, role: bool = False) -> dict:
        if kind == "chat":
            delta: dict = (
                {"role": "assistant", "content": ""} if role else ({"content": piece} if piece else {})
            )
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {"id": job.id, "object": obj, "created": created, "model": model, "choices": [choice]}

    finished = False
    try:
        if kind == "chat":
            yield _sse(chunk(None, role=True))
        piece = first
        while piece is not None:
            yield _sse(chunk(piece))
            piece = await job.events.get()
        finished = True
        if job.error is not None:
            yield _sse(job.error.body())
            return
        if job.result is None:  # cancelled
            yield _sse(ApiError("the request was cancelled", status=499, code="cancelled").body())
            return
        yield _sse(chunk(None, _finish(job.result)))
        if include_usage:
            yield _sse(
                {
                    "id": job.id,
                    "object": chunk(None)["object"],
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage(job.result),
                }
            )
        yield _sse("[DONE]")
    finally:
        if not finished and not job.finished:  # the client went away mid-stream
            runtime.cancel_soon(job)
        runtime.release(job)


async def _relay(job: Job, runtime: Runtime, first: bytes) -> AsyncIterator[bytes]:
    """Passthrough: the engine's events as it sent them, its `[DONE]` included; the gateway
    adds an event only when the stream broke off or was cancelled."""
    finished = False
    try:
        piece = first
        while piece is not None:
            yield piece
            piece = await job.events.get()
        finished = True
        if job.error is not None:
            yield _sse(job.error.body())
        elif job.result is None:  # cancelled
            yield _sse(ApiError("the request was cancelled", status=499, code="cancelled").body())
    finally:
        if not finished and not job.finished:  # the client went away mid-stream
            runtime.cancel_soon(job)
        runtime.release(job)
