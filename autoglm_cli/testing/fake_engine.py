"""A fake inference engine: a real HTTP server that speaks like vLLM, for tests and benchmarks.

- the OpenAI API: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`,
  `POST /v1/completions`, streamed (server-sent events, vLLM's chunk shapes) and not;
  tool calls (when `tools` are given and `tool_choice` is not "none", it calls the named
  or the first tool, its arguments streamed in pieces), `logprobs` / `top_logprobs`,
  `response_format` (a JSON object as the content), `n`;
- `GET /health` (200 once started) and `GET /metrics` with vLLM's metric names
  (`vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`,
  prefix-cache counters), or SGLang's with `flavour="sglang"`;
- a batch capacity (`batch`): at most that many requests run at once, the rest wait;
- a prefix cache: an LRU of prompt blocks (`runtime.prefix` hashes); prefill costs
  `prefill_s` per block not in the cache, so a prefix hit answers sooner.

It records every request body it received (`requests`) and every response body it sent
(`responses`, bytes exactly as written), which makes it the "recording upstream" of the
fidelity tests. Run it on its own: `python -m autoglm_cli.testing.fake_engine --port 8001`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
import time
from dataclasses import dataclass, field

from ..runtime.prefix import prompt_hashes
from .servers import answer_lifespan, read_body

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


@dataclass
class EngineOptions:
    model: str = "fake-model"
    batch: int = 8  # requests running at once; the rest wait
    token_s: float = 0.0  # seconds per generated token (per request; batching is free)
    prefill_s: float = 0.0  # seconds per prompt block not in the prefix cache
    cache_blocks: int = 4096  # prefix-cache capacity in blocks (LRU)
    max_model_len: int = 4096
    output_tokens: int = 8  # tokens generated when max_tokens is not given
    flavour: str = "vllm"  # metric names: "vllm" | "sglang"
    record: bool = True  # keep request and response bodies (off for long benchmarks)


@dataclass
class Recorded:
    path: str
    body: dict
    raw: bytes


@dataclass
class _State:
    running: int = 0
    waiting: int = 0
    served: int = 0
    cache_queries: int = 0
    cache_hits: int = 0
    cache: collections.OrderedDict = field(default_factory=collections.OrderedDict)


class FakeEngine:
    """The ASGI app. `requests` and `responses` are appended in arrival / completion order."""

    def __init__(self, options: EngineOptions | None = None, **kwargs) -> None:
        self.options = options or EngineOptions(**kwargs)
        self.state = _State()
        self.requests: list[Recorded] = []
        self.responses: list[bytes] = []
        self._ids = itertools.count(1)
        self._slots: asyncio.Semaphore | None = None
        self._lock = threading.Lock()

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        raw = await read_body(receive)
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/health":
            await _send(send, 200, b"", "text/plain")
        elif method == "GET" and path == "/metrics":
            await _send(send, 200, self.metrics_text().encode(), "text/plain; version=0.0.4")
        elif method == "GET" and path == "/v1/models":
            await _json(send, 200, {"object": "list", "data": [self._model_card()]})
        elif method == "GET" and path.startswith("/v1/models/"):
            if path[len("/v1/models/") :] == self.options.model:
                await _json(send, 200, self._model_card())
            else:
                await _json(send, 404, _error(f"The model `{path[11:]}` does not exist.", 404))
        elif method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            await self._generate(path, raw, send)
        else:
            await _json(send, 404, _error(f"no route {method} {path}", 404))

    def _model_card(self) -> dict:
        return {
            "id": self.options.model,
            "object": "model",
            "created": 0,
            "owned_by": "fake-engine",
            "max_model_len": self.options.max_model_len,
        }

    # -- generation --------------------------------------------------------------------

    async def _generate(self, path: str, raw: bytes, send) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            await _json(send, 400, _error("the body is not JSON", 400))
            return
        if self.options.record:
            self.requests.append(Recorded(path, body, raw))
        chat = path.endswith("/chat/completions")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or self.options.output_tokens
        if max_tokens > self.options.max_model_len:
            message = (
                f"This model's maximum context length is {self.options.max_model_len} tokens. "
                f"However, you requested {max_tokens} tokens in the completion."
            )
            await _json(send, 400, _error(message, 400))
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.options.batch)
        self.state.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.state.waiting -= 1
        self.state.running += 1
        try:
            hashes = (
                prompt_hashes(messages=body.get("messages"))
                if chat
                else prompt_hashes(prompt=str(body.get("prompt", "")))
            )
            missed = self._prefix_lookup(hashes)
            if self.options.prefill_s and missed:
                await asyncio.sleep(self.options.prefill_s * missed)
            prompt_tokens = max(1, len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4)
            answer = _Answer(self, body, chat, int(max_tokens), prompt_tokens)
            if body.get("stream"):
                await self._stream(answer, send)
            else:
                await asyncio.sleep(self.options.token_s * answer.tokens)
                payload = json.dumps(answer.whole()).encode()
                if self.options.record:
                    self.responses.append(payload)
                await _send(send, 200, payload, "application/json")
            self.state.served += 1
        finally:
            self.state.running -= 1
            self._slots.release()

    def _prefix_lookup(self, hashes: tuple[int, ...]) -> int:
        """Count the leading blocks in the cache, insert all (LRU); return the missed blocks."""
        cache = self.state.cache
        hit = 0
        for h in hashes:
            if h not in cache:
                break
            hit += 1
        self.state.cache_queries += len(hashes)
        self.state.cache_hits += hit
        for h in hashes:
            cache[h] = True
            cache.move_to_end(h)
        while len(cache) > self.options.cache_blocks:
            cache.popitem(last=False)
        return len(hashes) - hit

    async def _stream(self, answer: _Answer, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        sent = bytearray()
        for event in answer.events():
            if event is None:  # one token's worth of time
                if self.options.token_s:
                    await asyncio.sleep(self.options.token_s)
                continue
            data = b"data: " + (event if isinstance(event, bytes) else json.dumps(event).encode()) + b"\n\n"
            sent += data
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.options.record:
            self.responses.append(bytes(sent))

    # -- metrics -------------------------------------------------------------------------

    def kv_usage(self) -> float:
        return len(self.state.cache) / max(1, self.options.cache_blocks)

    def metrics_text(self) -> str:
        s, model = self.state, self.options.model
        label = f'{{model_name="{model}"}}'
        if self.options.flavour == "sglang":
            rows = [
                ("sglang:num_running_reqs", "gauge", s.running),
                ("sglang:num_queue_reqs", "gauge", s.waiting),
                ("sglang:token_usage", "gauge", self.kv_usage()),
                ("sglang:cache_hit_rate", "gauge", s.cache_hits / max(1, s.cache_queries)),
            ]
        else:
            rows = [
                ("vllm:num_requests_running", "gauge", s.running),
                ("vllm:num_requests_waiting", "gauge", s.waiting),
                ("vllm:kv_cache_usage_perc", "gauge", self.kv_usage()),
                ("vllm:prefix_cache_queries_total", "counter", s.cache_queries),
                ("vllm:prefix_cache_hits_total", "counter", s.cache_hits),
            ]
        lines = []
        for name, kind, value in rows:
            lines += [f"# HELP {name} fake engine", f"# TYPE {name} {kind}", f"{name}{label} {float(value)}"]
        return "\n".join(lines) + "\n"


class _Answer:
    """What the engine says to one request, whole or as stream events."""

    def __init__(self, engine: FakeEngine, body: dict, chat: bool, max_tokens: int, prompt_tokens: int):
        self.body, self.chat = body, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-fake{next(engine._ids)}"
        self.model = body.get("model") or engine.options.model
        self.created = int(time.time())
        self.n = int(body.get("n") or 1)
        self.tool = self._tool()
        self.tokens = min(max_tokens, engine.options.output_tokens) if not self.tool else 3
        self.prompt_tokens = prompt_tokens
        self.finish = (
            "tool_calls"
            if self.tool
            else ("length" if max_tokens <= engine.options.output_tokens else "stop")
        )
        self.pieces = self._pieces()

    def _tool(self) -> str | None:
        tools = self.body.get("tools") if self.chat else None
        choice = self.body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            return choice.get("function", {}).get("name")
        return tools[0].get("function", {}).get("name")

    def _pieces(self) -> list[str]:
        if self.tool:
            return ['{"city"', ': "Par', 'is"}']
        fmt = (self.body.get("response_format") or {}).get("type")
        if fmt in ("json_object", "json_schema"):
            return ['{"answer"', ": ", '"fox"}'][: max(1, self.tokens)]
        return [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(self.tokens)]

    def _logprobs(self, piece: str) -> dict | None:
        if not self.body.get("logprobs"):
            return None
        top = int(self.body.get("top_logprobs") or 0)
        entry = {
            "token": piece,
            "logprob": -0.25,
            "bytes": list(piece.encode()),
            "top_logprobs": [
                {"token": piece, "logprob": -0.25, "bytes": list(piece.encode())},
                *(
                    {"token": f"alt{k}", "logprob": -1.5 - k, "bytes": list(f"alt{k}".encode())}
                    for k in range(top - 1)
                ),
            ],
        }
        return entry if self.chat else None

    def usage(self) -> dict:
        completion = len(self.pieces) * self.n
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def whole(self) -> dict:
        text = "".join(self.pieces)
        choices = []
        for index in range(self.n):
            if self.chat:
                message: dict = {"role": "assistant", "content": None if self.tool else text}
                if self.tool:
                    message["tool_calls"] = [
                        {
                            "id": f"call_{self.id}_{index}",
                            "type": "function",
                            "function": {"name": self.tool, "arguments": text},
                        }
                    ]
                logprobs = (
                    {"content": [self._logprobs(p) for p in self.pieces]}
                    if self.body.get("logprobs")
                    else None
                )
                choices.append(
                    {"index": index, "message": message, "logprobs": logprobs, "finish_reason": self.finish}
                )
            else:
                choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": self.finish})
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
        }

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> dict:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def events(self):
        """Stream events as dicts (or raw bytes), with None between tokens (time passes)."""
        for index in range(self.n):
            if self.chat:
                yield self._chunk(
                    [
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
        for i, piece in enumerate(self.pieces):
            yield None
            for index in range(self.n):
                if not self.chat:
                    yield self._chunk(
                        [{"index": index, "text": piece, "logprobs": None, "finish_reason": None}]
                    )
                    continue
                if self.tool:
                    call: dict = {"index": 0, "function": {"arguments": piece}}
                    if i == 0:
                        call = {
                            "index": 0,
                            "id": f"call_{self.id}_{index}",
                            "type": "function",
                            "function": {"name": self.tool, "arguments": piece},
                        }
                    delta: dict = {"tool_calls": [call]}
                else:
                    delta = {"content": piece}
                logprobs = {"content": [self._logprobs(piece)]} if self.body.get("logprobs") else None
                yield self._chunk(
                    [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}]
                )
        for index in range(self.n):
            final = (
                {"index": index, "delta": {}, "logprobs": None, "finish_reason": self.finish}
                if self.chat
                else {"index": index, "text": "", "logprobs": None, "finish_reason": self.finish}
            )
            yield self._chunk([final])
        if (self.body.get("stream_options") or {}).get("include_usage"):
            yield self._chunk([], self.usage())
        yield b"[DONE]"


def _error(message: str, status: int) -> dict:
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}


async def _json(send, status: int, data: dict) -> None:
    await _send(send, status, json.dumps(data).encode(), "application/json")


async def _send(send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    """`python -m autoglm_cli.testing.fake_engine --port N`: serve until interrupted."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="fake_engine", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--token-ms", type=float, default=0.0)
    parser.add_argument("--prefill-ms", type=float, default=0.0, help="per prompt block not cached")
    parser.add_argument("--cache-blocks", type=int, default=4096)
    parser.add_argument("--output-tokens", type=int, default=8)
    parser.add_argument("--flavour", choices=("vllm", "sglang"), default="vllm")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--die-after", type=float, default=None, help="exit with status 1 after N seconds")
    args = parser.parse_args(argv)
    engine = FakeEngine(
        model=args.model,
        batch=args.batch,
        token_s=args.token_ms / 1000,
        prefill_s=args.prefill_ms / 1000,
        cache_blocks=args.cache_blocks,
        output_tokens=args.output_tokens,
        flavour=args.flavour,
        record=not args.no_record,
    )
    if args.die_after is not None:  # a stand-in for an engine that crashes (supervision tests)
        import os

        threading.Timer(args.die_after, lambda: os._exit(1)).start()
    print(f"fake engine {args.model} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(engine, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
