"""Open-loop replay of a trace against an OpenAI-compatible endpoint (asyncio + httpx).

Each request leaves at its scheduled time whatever happened to the earlier ones
(open loop: a slow server does not slow the arrivals down, as it would not in
production). Latency is measured from the scheduled time, so time a request spent
waiting for a free connection counts against the server, not for it (no
coordinated omission). `max_in_flight` only bounds file descriptors; how late
requests left because of it is reported.

Requests stream (`stream: true`, usage in the last chunk), so each record also has
the time its first token arrived: time to first token (TTFT) from the scheduled
time, and time per output token (TPOT) = (end - first token) / (tokens - 1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .prompts import prompt_of, prompt_of_blocks
from .trace import MOONCAKE_BLOCK_TOKENS, TraceRequest

if TYPE_CHECKING:
    import asyncio

    import httpx

FALLBACK_HEADER = "x-autoglm-fallback"


@dataclass(frozen=True)
class ReplaySettings:
    base_url: str  # as for the openai client: chat completions live at base_url + "/chat/completions"
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 300.0
    max_in_flight: int = 512
    ignore_eos: bool = False  # vLLM / SGLang extension: generate exactly max_tokens
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    stream: bool = True  # measure the first token (TTFT, TPOT); False: one JSON answer
    # max_tokens on every request, as clients that set a constant do (None: the trace's output
    # length, which tells the server each request's length in advance: an oracle for its scheduler)
    max_tokens: int | None = None
    # For test engines (testing/fake_engine.py `output_field`): the trace's output length in this
    # body field, which a gateway forwards unread, so the answer has the traced length while
    # max_tokens stays uninformative. A real engine ignores or refuses unknown fields.
    output_length_field: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    index: int
    scheduled_s: float  # when the trace says it arrives (seconds from the start of the replay)
    sent_s: float  # when it actually left
    done_s: float
    status: int | None  # HTTP status, None when no response came
    error: str | None  # None on success: "http 500", "timeout", "connection", ...
    prompt_tokens: int  # as asked (words sent)
    max_tokens: int
    completion_tokens: int | None = None  # from the response's usage
    fallback: bool = False  # the gateway served it with the backup model
    first_token_s: float | None = None  # when the first token arrived (streamed requests)

    @property
    def latency_s(self) -> float:
        return self.done_s - self.scheduled_s

    @property
    def ttft_s(self) -> float | None:
        """Time to first token, from the scheduled arrival (None: not streamed, or no token)."""
        return None if self.first_token_s is None else self.first_token_s - self.scheduled_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (None: fewer than two tokens, or not streamed)."""
        tokens = self.completion_tokens
        if self.first_token_s is None or tokens is None or tokens < 2:
            return None
        return (self.done_s - self.first_token_s) / (tokens - 1)

    @property
    def ok(self) -> bool:
        return self.error is None


def client_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def normalised_base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def request_body(settings: ReplaySettings, index: int, request: TraceRequest) -> tuple[dict, int, int]:
    prompt_tokens = request.prompt_tokens
    if settings.max_prompt_tokens is not None:
        prompt_tokens = min(prompt_tokens, settings.max_prompt_tokens)
    max_tokens = request.generated_tokens if settings.max_tokens is None else settings.max_tokens
    if settings.max_output_tokens is not None:
        max_tokens = min(max_tokens, settings.max_output_tokens)
    if request.prefix_hashes:  # shared prefixes stay shared (prompts.prompt_of_blocks)
        text = prompt_of_blocks(request.prefix_hashes, prompt_tokens, MOONCAKE_BLOCK_TOKENS)
    else:
        text = prompt_of(prompt_tokens, index)
    body: dict = {
        "model": settings.model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max(1, max_tokens),
        "temperature": 0.0,
    }
    if settings.output_length_field:
        body[settings.output_length_field] = request.generated_tokens
    if settings.ignore_eos:
        body["ignore_eos"] = True
    if settings.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, prompt_tokens, max(1, max_tokens)


async def replay(
    trace: Sequence[TraceRequest],
    settings: ReplaySettings,
    *,
    on_done: Callable[[RequestRecord], None] | None = None,
    start: float | None = None,
) -> list[RequestRecord]:
    """Send every request of `trace` at its offset from `start` (a `time.perf_counter()`
    value, default now); returns the records in trace order."""
    import asyncio  # the replay's own; not at import (start-up)

    import httpx

    cap = settings.max_in_flight
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
    async with httpx.AsyncClient(
        base_url=normalised_base(settings.base_url),
        headers=client_headers(settings.api_key),
        timeout=timeout,
        limits=limits,
    ) as client:
        slots = asyncio.Semaphore(settings.max_in_flight)
        start = time.perf_counter() if start is None else start
        tasks: list[asyncio.Task[RequestRecord]] = []
        for index, request in enumerate(trace):
            delay = start + request.offset_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(_one(client, settings, index, request, start, slots, on_done)))
        return list(await asyncio.gather(*tasks))


async def _one(
    client: httpx.AsyncClient,
    settings: ReplaySettings,
    index: int,
    request: TraceRequest,
    start: float,
    slots: asyncio.Semaphore,
    on_done: Callable[[RequestRecord], None] | None,
) -> RequestRecord:
    import httpx

    body, prompt_tokens, max_tokens = request_body(settings, index, request)
    sent = time.perf_counter() - start
    status: int | None = None
    error: str | None = None
    completion_tokens: int | None = None
    first_token: float | None = None
    fallback = False
    try:
        if settings.stream:
            async with client.stream("POST", "chat/completions", json=body) as response:
                status = response.status_code
                fallback = response.headers.get(FALLBACK_HEADER, "").lower() == "backup"
                if status >= 400:
                    error = f"http {status}"
                    await response.aread()
                else:
                    first_token, completion_tokens, error = await _read_stream(response, start)
        else:
            response = await client.post("chat/completions", json=body)
            status = response.status_code
            fallback = response.headers.get(FALLBACK_HEADER, "").lower() == "backup"
            if status >= 400:
                error = f"http {status}"
            else:
                usage = response.json().get("usage") or {}
                completion_tokens = usage.get("completion_tokens")
    except httpx.TimeoutException:
        error = "timeout"
    except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
        error = f"connection ({type(exc).__name__})"
    except (json.JSONDecodeError, AttributeError):
        error = "bad response body"
    finally:
        slots.release()
    record = RequestRecord(
        index=index,
        scheduled_s=request.offset_s,
        sent_s=sent,
        done_s=time.perf_counter() - start,
        status=status,
        error=error,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        completion_tokens=completion_tokens,
        fallback=fallback,
        first_token_s=first_token,
    )
    if on_done is not None:
        on_done(record)
    return record


async def _read_stream(response: httpx.Response, start: float) -> tuple[float | None, int | None, str | None]:
    """Read a chat completion's server-sent events: (first token time from `start`, completion
    tokens (the usage chunk's, else the content chunks counted), error)."""
    first_token: float | None = None
    pieces = 0
    usage_tokens: int | None = None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        if "error" in event:  # the server failed mid-stream
            return first_token, None, "error in stream"
        for choice in event.get("choices") or ():
            if (choice.get("delta") or {}).get("content") or choice.get("text"):
                pieces += 1
                if first_token is None:
                    first_token = time.perf_counter() - start
        usage = event.get("usage")
        if usage:
            usage_tokens = usage.get("completion_tokens")
    return first_token, usage_tokens if usage_tokens is not None else pieces, None
