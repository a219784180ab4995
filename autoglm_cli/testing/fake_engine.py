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
  `prefill_s` per block not in the cache, so a prefix hit answers sooner;
- continuous batching (on when `step_s` > 0; off by default, then every request sleeps on
  its own): one engine loop per server admits waiting requests while the batch has room
  (`batch` sequences, `kv_tokens` of prompt + output), prefills them together first
  (`prefill_base_s` + `prefill_s` per uncached block; decoding pauses meanwhile, as in
  vLLM's default scheduler), then decodes: each step gives every running sequence one token
  and takes `step_s + step_per_seq_s x batch + step_per_kv_token_s x` the batch's KV tokens,
  so routing more to one engine slows everything there. Tokens are streamed
  `stream_interval` at a time (vLLM's `--stream-interval`). The same cost model as the
  simulation's engine (`ops/bench/engine_sim.py`), in real time. With `output_field`, a
  request's output length comes from that body field (benchmarks put the trace's length
  there, which the gateway forwards unread, so no scheduler sees it) instead of `max_tokens`.

It records every request body it received (`requests`) and every response body it sent
(`responses`, bytes exactly as written), which makes it the "recording upstream" of the
fidelity tests. Run it on its own: `python -m autoglm_cli.testing.fake_engine --port 8001`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field

from ..runtime.prefix import BLOCK_CHARS, MAX_BLOCKS, block_hashes, prompt_hashes, render_messages
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
    # Continuous batching (module docstring); off while step_s is 0.
    step_s: float = 0.0  # one decode step at a batch of one
    step_per_seq_s: float = 0.0  # ...plus this per running sequence
    step_per_kv_token_s: float = 0.0  # ...plus this per KV token (prompt + output) of the batch
    prefill_base_s: float = 0.0  # per prefill batch, plus prefill_s per uncached block
    kv_tokens: int = 0  # KV capacity in tokens (prompt bytes / 4 + output); 0: unbounded
    max_prefill_blocks: int = 0  # uncached blocks one prefill batch takes (0: no limit; >= 1 request)
    stream_interval: int = 1  # tokens per streamed event
    hash_blocks: int = MAX_BLOCKS  # leading prompt blocks the prefix cache can hold per prompt
    output_field: str | None = None  # body field with the output length (else max_tokens decides)
    bytes_per_token: float = 4.0  # how the batching engine counts a prompt's tokens

    @property
    def batching(self) -> bool:
        return self.step_s > 0


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


class _Seq:
    """One request inside the batching engine: its cost, and the tokens released to its handler."""

    __slots__ = ("answer", "total", "kv", "hashes", "blocks", "uncached", "done", "released", "event", "gone")

    def __init__(self, answer: _Answer, kv: int, hashes: tuple[int, ...], blocks: int) -> None:
        self.answer = answer
        self.total = max(1, len(answer.pieces))  # tokens it generates
        self.kv = kv
        self.hashes = hashes
        self.blocks = blocks  # the prompt's blocks, whole or not (prefill cost when none is cached)
        self.uncached = blocks
        self.done = 0.0  # tokens decoded (fractional between releases)
        self.released = 0  # tokens its handler may send
        self.event = asyncio.Event()
        self.gone = False  # the client went away: the engine drops it

    def release(self, tokens: int) -> None:
        self.released = tokens
        self.event.set()


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
        # continuous batching
        self._waiting: collections.deque[_Seq] = collections.deque()
        self._prefilling: list[_Seq] = []
        self._running: list[_Seq] = []
        self._kv_used = 0
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None

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
        if self.options.batching:
            await self._generate_batched(body, chat, int(max_tokens), send)
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

    # -- continuous batching -------------------------------------------------------------

    async def _generate_batched(self, body: dict, chat: bool, max_tokens: int, send) -> None:
        o = self.options
        text = render_messages(body.get("messages") or []) if chat else str(body.get("prompt", ""))
        data = text.encode("utf-8", "surrogatepass")
        prompt_tokens = max(1, round(len(data) / o.bytes_per_token))
        output = body.get(o.output_field) if o.output_field else None
        answer = _Answer(self, body, chat, max_tokens, prompt_tokens, output=output)
        blocks = max(1, -(-len(data) // BLOCK_CHARS))
        hashes = block_hashes(data, max_blocks=o.hash_blocks)
        seq = _Seq(answer, prompt_tokens + answer.tokens, hashes, blocks)
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._engine_loop())
        self._waiting.append(seq)
        self._wake.set()
        try:
            if body.get("stream"):
                await self._stream_batched(seq, send)
            else:
                while seq.released < seq.total:
                    seq.event.clear()
                    await seq.event.wait()
                payload = json.dumps(answer.whole()).encode()
                if o.record:
                    self.responses.append(payload)
                await _send(send, 200, payload, "application/json")
            self.state.served += 1
        finally:
            if seq.released < seq.total:  # cancelled or failed before its end
                seq.gone = True
                self._wake.set()

    async def _stream_batched(self, seq: _Seq, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        sent = bytearray()
        pending = bytearray()
        used = 0
        for event in seq.answer.events():
            if event is None:  # the next token: wait until the engine has made it
                if used >= seq.released:
                    # Nothing goes out before the first token (vLLM sends the role chunk with it),
                    # so a gateway times the first token after the prefill, as with a real engine.
                    if pending and used > 0:
                        await send({"type": "http.response.body", "body": bytes(pending), "more_body": True})
                        sent += pending
                        pending.clear()
                    while used >= seq.released:
                        seq.event.clear()
                        await seq.event.wait()
                used += 1
                continue
            data = event if isinstance(event, bytes) else json.dumps(event).encode()
            pending += b"data: " + data + b"\n\n"
        sent += pending
        await send({"type": "http.response.body", "body": bytes(pending), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.options.record:
            self.responses.append(bytes(sent))

    def _step_s(self) -> float:
        o = self.options
        kv = sum(s.kv for s in self._running)
        return o.step_s + o.step_per_seq_s * len(self._running) + o.step_per_kv_token_s * kv

    def _admit(self) -> list[_Seq]:
        """Waiting requests that fit the batch (slots, KV, prefill budget), in arrival order."""
        o = self.options
        batch: list[_Seq] = []
        blocks = 0
        while self._waiting and len(self._running) + len(batch) < o.batch:
            seq = self._waiting[0]
            if seq.gone:
                self._waiting.popleft()
                continue
            empty = not self._running and not batch
            if o.kv_tokens and self._kv_used + seq.kv > o.kv_tokens and not empty:
                break
            hit = self._cached_blocks(seq.hashes)
            uncached = seq.blocks - hit
            if batch and o.max_prefill_blocks and blocks + uncached > o.max_prefill_blocks:
                break
            self._waiting.popleft()
            self.state.cache_queries += seq.blocks
            self.state.cache_hits += hit
            seq.uncached = uncached
            blocks += uncached
            self._kv_used += seq.kv
            batch.append(seq)
        return batch

    def _cached_blocks(self, hashes: tuple[int, ...]) -> int:
        hit = 0
        for h in hashes:
            if h not in self.state.cache:
                break
            hit += 1
        return hit

    def _cache_insert(self, hashes: tuple[int, ...]) -> None:
        cache = self.state.cache
        for h in reversed(hashes):  # the first block most recent: an LRU evicts a prompt from its tail
            cache[h] = True
            cache.move_to_end(h)
        while len(cache) > self.options.cache_blocks:
            cache.popitem(last=False)

    def _finish(self, seq: _Seq) -> None:
        self._kv_used -= seq.kv
        seq.release(seq.total)

    async def _engine_loop(self) -> None:
        """Prefill what fits (decoding pauses), else decode until the next release or arrival."""
        o, loop, wake = self.options, asyncio.get_running_loop(), self._wake
        assert wake is not None
        while True:
            gone = [s for s in self._running if s.gone]
            for seq in gone:
                self._running.remove(seq)
                self._kv_used -= seq.kv
            batch = self._admit()
            if batch:
                self._prefilling = batch
                await asyncio.sleep(o.prefill_base_s + o.prefill_s * sum(s.uncached for s in batch))
                self._prefilling = []
                for seq in batch:
                    self._cache_insert(seq.hashes)
                    seq.done = 1.0
                    if seq.gone or seq.total <= 1:
                        self._finish(seq)
                    else:
                        seq.release(1)
                        self._running.append(seq)
                continue
            if not self._running:
                wake.clear()
                if not self._waiting:
                    await wake.wait()
                continue
            step = self._step_s()
            interval = max(1, o.stream_interval)
            # tokens until the next sequence has something to release (an interval's worth, or its end)
            ahead = min(min(s.released + interval, s.total) - s.done for s in self._running)
            wake.clear()
            began = time.monotonic()
            timer = loop.call_later(max(0.0, ahead * step), wake.set)
            await wake.wait()
            timer.cancel()
            gained = (time.monotonic() - began) / step
            still = []
            for seq in self._running:
                seq.done = min(seq.total, seq.done + gained)
                tokens = int(seq.done + 1e-6)
                if tokens >= seq.total:
                    self._finish(seq)
                    continue
                if tokens >= seq.released + interval:
                    seq.release(tokens)
                still.append(seq)
            self._running = still

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
        if self.options.batching and self.options.kv_tokens:
            return self._kv_used / self.options.kv_tokens
        return len(self.state.cache) / max(1, self.options.cache_blocks)

    def metrics_text(self) -> str:
        s, model = self.state, self.options.model
        if self.options.batching:
            s.running = len(self._running) + len(self._prefilling)
            s.waiting = len(self._waiting)
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
        if self.options.flavour == "vllm" and self.options.batching and self.options.kv_tokens:
            # vLLM's info gauge: the KV cache's size (its prefix cache's too) in its labels
            blocks = self.options.kv_tokens // 16
            info = f'block_size="16",enable_prefix_caching="True",num_gpu_blocks="{blocks}"'
            lines += [
                "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                "# TYPE vllm:cache_config_info gauge",
                f"vllm:cache_config_info{{{info}}} 1.0",
            ]
        return "\n".join(lines) + "\n"


class _Answer:
    """What the engine says to one request, whole or as stream events."""

    def __init__(
        self,
        engine: FakeEngine,
        body: dict,
        chat: bool,
        max_tokens: int,
        prompt_tokens: int,
        output: object = None,
    ):
        self.body, self.chat = body, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-fake{next(engine._ids)}"
        self.model = body.get("model") or engine.options.model
        self.created = int(time.time())
        self.n = int(body.get("n") or 1)
        self.tool = self._tool()
        wanted = engine.options.output_tokens
        if output is not None:  # the length this request's answer has (EngineOptions.output_field)
            with contextlib.suppress(TypeError, ValueError):
                wanted = max(1, int(output))
        self.tokens = min(max_tokens, wanted) if not self.tool else 3
        self.prompt_tokens = prompt_tokens
        self.finish = "tool_calls" if self.tool else ("length" if max_tokens <= wanted else "stop")
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
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--no-record", action="store_true")
    batching = parser.add_argument_group("continuous batching (on with --step-ms > 0)")
    batching.add_argument("--step-ms", type=float, default=0.0, help="decode step at a batch of one")
    batching.add_argument("--step-per-seq-ms", type=float, default=0.0)
    batching.add_argument("--step-per-kv-token-us", type=float, default=0.0)
    batching.add_argument("--prefill-base-ms", type=float, default=0.0)
    batching.add_argument("--kv-tokens", type=int, default=0)
    batching.add_argument("--max-prefill-blocks", type=int, default=0)
    batching.add_argument("--stream-interval", type=int, default=1)
    batching.add_argument("--hash-blocks", type=int, default=MAX_BLOCKS)
    batching.add_argument("--bytes-per-token", type=float, default=4.0)
    batching.add_argument("--output-field", default=None, help="body field with each request's output length")
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
        max_model_len=args.max_model_len,
        step_s=args.step_ms / 1000,
        step_per_seq_s=args.step_per_seq_ms / 1000,
        step_per_kv_token_s=args.step_per_kv_token_us / 1e6,
        prefill_base_s=args.prefill_base_ms / 1000,
        kv_tokens=args.kv_tokens,
        max_prefill_blocks=args.max_prefill_blocks,
        stream_interval=args.stream_interval,
        hash_blocks=args.hash_blocks,
        output_field=args.output_field,
        bytes_per_token=args.bytes_per_token,
    )
    if args.die_after is not None:  # a stand-in for an engine that crashes (supervision tests)
        import os

        threading.Timer(args.die_after, lambda: os._exit(1)).start()
    print(f"fake engine {args.model} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(engine, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
