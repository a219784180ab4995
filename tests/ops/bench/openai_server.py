"""A small but real OpenAI-compatible server (FastAPI on uvicorn, 127.0.0.1) for `autoglm bench`.

It answers chat completions after a simulated service time (a + c x max_tokens) with
at most `slots` requests served at once (streamed, `stream: true`: the first token
after `a`, then one token every `c`), records what it was sent, can fail every
Nth request, mark responses as served by the backup model, require a key, and
export an autoglm-style node gauge on /metrics.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request  # module level: the handlers' annotations must resolve
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse


@dataclass
class StubState:
    model: str = "stub-model"
    api_key: str | None = None
    base_s: float = 0.005
    per_token_s: float = 0.0005
    slots: int = 4
    fail_every: int | None = None  # every Nth chat request answers 500
    fallback_every: int | None = None  # every Nth carries x-autoglm-fallback: backup
    metrics: bool = True
    received: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_app(state: StubState):
    app = FastAPI()
    gate = asyncio.Semaphore(state.slots)

    def authorised(request: Request) -> bool:
        return state.api_key is None or request.headers.get("authorization") == f"Bearer {state.api_key}"

    def refused() -> JSONResponse:
        error = {"message": "invalid api key", "type": "invalid_request_error", "code": "invalid_api_key"}
        return JSONResponse({"error": error}, status_code=401)

    @app.get("/v1/models")
    async def models(request: Request):
        if not authorised(request):
            return refused()
        return {"object": "list", "data": [{"id": state.model, "object": "model", "owned_by": "tests"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if not authorised(request):
            return refused()
        body = await request.json()
        with state.lock:
            state.received.append(body)
            n = len(state.received)
        if state.fail_every and n % state.fail_every == 0:
            error = {"message": "injected failure", "type": "server_error", "code": None}
            return JSONResponse({"error": error}, status_code=500)
        max_tokens = int(body.get("max_tokens") or 16)
        prompt = body["messages"][-1]["content"]
        headers = (
            {"x-autoglm-fallback": "backup"} if state.fallback_every and n % state.fallback_every == 0 else {}
        )
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": max_tokens,
            "total_tokens": len(prompt.split()) + max_tokens,
        }
        if body.get("stream"):
            return StreamingResponse(
                stream_tokens(n, body, max_tokens, usage), media_type="text/event-stream", headers=headers
            )
        async with gate:
            await asyncio.sleep(state.base_s + state.per_token_s * max_tokens)
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok " * max_tokens},
                        "finish_reason": "length",
                    }
                ],
                "usage": usage,
            },
            headers=headers,
        )

    async def stream_tokens(n: int, body: dict, max_tokens: int, usage: dict):
        def event(data) -> str:
            return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"

        def chunk(delta: dict, finish: str | None = None) -> dict:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion.chunk",
                "model": body.get("model"),
                "choices": [choice],
            }

        async with gate:
            yield event(chunk({"role": "assistant", "content": ""}))
            await asyncio.sleep(state.base_s)
            for i in range(max_tokens):
                if i:
                    await asyncio.sleep(state.per_token_s)
                yield event(chunk({"content": "ok "}))
        yield event(chunk({}, "length"))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield event(
                {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        yield event("[DONE]")

    if state.metrics:

        @app.get("/metrics")
        async def metrics():
            lines = [
                "# HELP autoglm_scheduler_actual_nodes Nodes starting or ready.",
                "# TYPE autoglm_scheduler_actual_nodes gauge",
                f"autoglm_scheduler_actual_nodes {state.slots}",
                "# HELP autoglm_scheduler_desired_nodes Nodes the scheduler wants.",
                "# TYPE autoglm_scheduler_desired_nodes gauge",
                f"autoglm_scheduler_desired_nodes {state.slots}",
                "# HELP autoglm_scheduler_scale_events_total Scale decisions.",
                "# TYPE autoglm_scheduler_scale_events_total counter",
                'autoglm_scheduler_scale_events_total{direction="up",reason="panic"} 0.0',
                'autoglm_scheduler_scale_events_total{direction="down",reason="release"} 0.0',
            ]
            return PlainTextResponse("\n".join(lines) + "\n")

    return app


@contextmanager
def serve(state: StubState):
    """Run the server on a free port of 127.0.0.1; yields its base URL (ending in /v1)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_app(state), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stub OpenAI server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
