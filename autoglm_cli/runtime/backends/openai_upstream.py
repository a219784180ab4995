"""The `openai` backend: an OpenAI-compatible upstream (vLLM, SGLang, a hosted API).

Runs in the gateway process with one HTTP/1.1 connection pool per endpoint
(`http1.py`: asyncio protocols and httptools' parser; httpx/httpcore were the largest
CPU cost of a proxied request): `connection_pool.max_connections` /
`max_idle_connections` / `idle_timeout` size the pool, `read_timeout` bounds
each read. Proxy variables (`HTTPS_PROXY`) are not read: upstreams are reached
directly. Connection failures, 429 and 502-504 are retried with exponential backoff
and jitter (the config's `retry` section: base 1 s, 3 tries; `Retry-After` is
honoured, and one longer than `retry.max_delay` ends the retries at once;
`autoglm_cli.retry`); a stream is retried only before its first chunk.
When the retries run out, connection failures become `NodeFailure` (the runtime
tries another endpoint), a 429 becomes a 503 with `Retry-After`, and every other
status the upstream answered (4xx, 5xx; 500 is not retried) goes back to the
client with the upstream's status and message. An endpoint is taken out only by
its breaker in the fleet: failures in a row across requests (`Fleet.upstream_failed`).

Passthrough: a request that carries the client's body (`GenerationRequest.passthrough`,
set by the gateway) goes to the engine unchanged but for `model` (the upstream's name:
the `model` option) and the gateway's own `priority` label; the engine's answer comes
back unchanged: the JSON body as bytes (`GenerationResult.raw`), or each server-sent
event, bytes as received, handed to `on_chunk`. The gateway still reads both for
usage, time to first token and finish reason. An engine's 4xx body reaches the client
as the engine wrote it (`UpstreamRefusal`).

Options (`models.NAME.options`): `model` (the upstream's name for it; default:
NAME), `api_key_env` (an environment variable holding the upstream's key),
`endpoints` (several base URLs: one node each; default: `source`), `metrics_url`
(the engine's Prometheus endpoint; default: the base URL without `/v1`, plus
`/metrics`; "" turns polling off: `runtime/engines/signals.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable

from ...redact import redact, redact_url
from ...retry import RetryAttempt, RetryPolicy, call_with_retry_async, parse_retry_after
from ..errors import ApiError, NodeFailure, ServiceUnavailable
from .base import BackendSettings, GenerationRequest, GenerationResult, option

# 500 is not retried: an upstream's internal error is most often the request's own (the same
# request fails again); 502-504 say the upstream is briefly unavailable, 429 that it is full.
RETRY_STATUSES = {429, 502, 503, 504}


class _RetryableStatus(Exception):
    def __init__(self, status: int, body: str, retry_after: float | None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status, self.body, self.retry_after = status, body, retry_after


class UpstreamRefusal(ApiError):
    """The engine refused the request (4xx): its own error body goes to the client as it is."""

    def __init__(self, status: int, data: dict, message: str) -> None:
        super().__init__(
            f"upstream: {message}", status=status, type="invalid_request_error", code="upstream_error"
        )
        self.data = data

    def body(self) -> dict:
        return self.data


class _Pool:
    """The little of an HTTP client the backend needs, on an `http1.Http1Pool` to the endpoint."""

    def __init__(self, base_url: str, headers: dict[str, str], settings: BackendSettings) -> None:
        from .http1 import Http1Pool

        self.headers = [
            (b"User-Agent", b"autoglm"),
            (b"Accept", b"application/json"),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        self.read_timeout = settings.read_timeout
        self.pool = Http1Pool(
            base_url,
            max_connections=settings.max_connections,
            max_idle=settings.max_idle_connections,
            idle_timeout=settings.idle_timeout,
            connect_timeout=min(10.0, settings.read_timeout),
        )

    def _args(self, body: dict | None, read: float | None) -> dict:
        headers = self.headers
        content = b""
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers = [*headers, (b"Content-Type", b"application/json")]
        timeout = self.read_timeout if read is None else read
        return {"headers": headers, "content": content, "read_timeout": timeout, "pool_timeout": timeout}

    async def request(self, method: str, path: str, body: dict | None, *, read: float | None = None):
        return await self.pool.request(method, path, **self._args(body, read))

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str, body: dict | None, *, raw: bool = False):
        async with self.pool.stream(method, path, **self._args(body, None)) as r:
            chunks = r.aiter_bytes()
            yield r.status, r.headers, (chunks if raw else _lines(chunks))

    async def close(self) -> None:
        await self.pool.aclose()


async def _lines(chunks):
    """Text lines of a byte stream (server-sent events are line based)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")


_EVENT_END = re.compile(rb"\r?\n\r?\n")


async def _sse_events(chunks):
    """Whole server-sent events of a byte stream, each with its blank line, bytes as received."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while (end := _EVENT_END.search(buffer)) is not None:
            yield buffer[: end.end()]
            buffer = buffer[end.end() :]
    if buffer:
        yield buffer


def endpoints_of(settings: BackendSettings) -> list[str]:
    listed = option(settings.options, "endpoints", None, list, settings.model)
    return [str(u).rstrip("/") for u in (listed or [settings.source])]


class UpstreamHandle:
    """One upstream endpoint as a node (see `workers/handles.NodeHandle`)."""

    def __init__(
        self,
        settings: BackendSettings,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        sleep=None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.upstream_model = option(settings.options, "model", settings.model, str, settings.model)
        self.policy = policy or RetryPolicy(
            tries=settings.retry_tries, base=settings.retry_base, max_delay=settings.retry_max_delay
        )
        self._sleep = sleep
        self._on_retry = on_retry
        headers = {}
        key_env = option(settings.options, "api_key_env", None, str, settings.model)
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        self.http = _Pool(self.base_url, headers, settings)
        from ..engines.signals import metrics_url_of

        option(settings.options, "metrics_url", None, str, settings.model)  # type-checked here
        self.metrics_url = metrics_url_of(self.base_url, settings.options)  # engine signals (None: off)

    @property
    def label(self) -> str:
        return redact_url(self.base_url)

    # -- NodeHandle ------------------------------------------------------------

    async def load(self) -> dict:
        """Probe `GET /models`: ready when the upstream answers."""
        from .http1 import TransportError

        try:
            status, _, _ = await self.http.request(
                "GET", "/models", None, read=min(10.0, self.settings.read_timeout)
            )
        except TransportError as exc:
            return self._status("failed", f"{self.label}: {type(exc).__name__}: {exc or 'no answer'}")
        if status >= 500:
            return self._status("failed", f"{self.label}/models answered {status}")
        return self._status("ready", None)

    def _status(self, state: str, error: str | None) -> dict:
        return {
            "model": self.settings.model,
            "backend": "openai",
            "state": state,
            "error": redact(error) if error else None,
            "upstream": self.label,
        }

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if request.passthrough is not None:
            path, body = self._passthrough_body(request)
        else:
            path, body = self._body(request, stream=False)
        passthrough = request.passthrough is not None

        async def attempt():
            status, headers, content = await self.http.request("POST", path, body)
            self._raise_for_status(
                status, headers, content.decode("utf-8", "replace"), passthrough=passthrough
            )
            return content

        content = await self._with_retries(attempt)
        data = json.loads(content)
        choice = (data.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") if request.kind == "chat" else choice.get("text")
        usage = data.get("usage") or {}
        return GenerationResult(
            text=text or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            raw=content if passthrough else None,
        )

    async def stream(self, request: GenerationRequest, on_chunk) -> GenerationResult:
        if request.passthrough is not None:
            return await self._relay(request, on_chunk)
        path, body = self._body(request, stream=True)
        state = {"text": "", "finish": "stop", "usage": {}, "pieces": 0, "started": False}

        async def attempt():
            async with self.http.stream("POST", path, body) as (status, headers, lines):
                if status >= 400:
                    text = "".join([line async for line in lines])
                    self._raise_for_status(status, headers, text)
                async for line in lines:
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = json.loads(payload)
                    if "error" in event:
                        raise ApiError(
                            str(event["error"].get("message", "upstream error")),
                            status=502,
                            code="upstream_error",
                        )
                    self._take_event(request, event, state, on_chunk)

        await self._stream_with_retries(attempt, state)
        return _streamed_result(state)

    async def cancel(self, request_id: str) -> None:
        return None  # closing the stream (the caller's task is cancelled) stops the upstream

    async def close(self) -> None:
        await self.http.close()

    async def _relay(self, request: GenerationRequest, on_chunk) -> GenerationResult:
        """Passthrough streaming: every event goes to `on_chunk` as the engine sent it (bytes);
        the gateway only reads them (usage, finish reason, first token)."""
        path, body = self._passthrough_body(request)
        state = {"text": "", "finish": "stop", "usage": {}, "pieces": 0, "started": False, "first": None}
        sent = time.perf_counter()

        async def attempt():
            async with self.http.stream("POST", path, body, raw=True) as (status, headers, chunks):
                if status >= 400:
                    content = b"".join([chunk async for chunk in chunks])
                    self._raise_for_status(
                        status, headers, content.decode("utf-8", "replace"), passthrough=True
                    )
                async for event in _sse_events(chunks):
                    state["started"] = True
                    on_chunk(event)
                    if _read_event(request, event, state):
                        break
                    if state["first"] is None and state["pieces"]:
                        state["first"] = time.perf_counter() - sent

        await self._stream_with_retries(attempt, state)
        return _streamed_result(state)

    async def _stream_with_retries(self, attempt, state: dict) -> None:
        """`attempt` with the retry policy, but only until something reached the client: a
        stream that broke off after that is an error, never replayed."""

        async def attempt_until_first_event():
            try:
                await attempt()
            except Exception:
                if state["started"]:
                    raise ApiError(
                        "the upstream stream broke off", status=502, code="upstream_error"
                    ) from None
                raise

        await self._with_retries(attempt_until_first_event)

    # -- helpers -----------------------------------------------------------------

    def _passthrough_body(self, request: GenerationRequest) -> tuple[str, dict]:
        body = dict(request.passthrough or {})
        body["model"] = self.upstream_model
        if isinstance(body.get("priority"), str):  # the gateway's label (vLLM's own `priority` is an int)
            del body["priority"]
        return ("/chat/completions" if request.kind == "chat" else "/completions"), body

    def _body(self, request: GenerationRequest, *, stream: bool) -> tuple[str, dict]:
        body: dict = {"model": self.upstream_model, "stream": stream}
        if request.kind == "chat":
            path = "/chat/completions"
            body["messages"] = request.messages
        else:
            path = "/completions"
            body["prompt"] = request.prompt
        for name in ("max_tokens", "temperature", "top_p", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.stop:
            body["stop"] = request.stop
        if stream:
            body["stream_options"] = {"include_usage": True}
        return path, body

    def _take_event(self, request, event: dict, state: dict, on_chunk) -> None:
        if event.get("usage"):
            state["usage"] = event["usage"]
        for choice in event.get("choices") or []:
            if request.kind == "chat":
                piece = (choice.get("delta") or {}).get("content")
            else:
                piece = choice.get("text")
            if piece:
                state["started"] = True
                state["text"] += piece
                state["pieces"] += 1
                on_chunk(piece)
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]

    def _raise_for_status(self, status: int, headers, text: str, *, passthrough: bool = False) -> None:
        if status < 400:
            return
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status in RETRY_STATUSES:
            raise _RetryableStatus(status, text, retry_after)
        message = _error_message(text) or f"upstream answered {status}"
        if passthrough and status < 500:
            with contextlib.suppress(ValueError):
                data = json.loads(text)
                if isinstance(data, dict):
                    raise UpstreamRefusal(status, data, message)
        raise ApiError(
            f"upstream: {message}",
            status=status,
            type="invalid_request_error" if status < 500 else "server_error",
            code="upstream_error",
        )

    async def _with_retries(self, attempt):
        from .http1 import ReadTimedOut, TransportError

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, ReadTimedOut):
                return False  # the upstream is working on it, slowly: another try doubles the wait
            if isinstance(exc, _RetryableStatus) and (exc.retry_after or 0) > self.policy.max_delay:
                return False  # it asks for a longer wait than a waiting client should get: say so instead
            return isinstance(exc, (_RetryableStatus, TransportError))

        def on_retry(attempt_: RetryAttempt) -> None:
            if self._on_retry is not None:
                self._on_retry(f"upstream {type(attempt_.error).__name__}")

        try:
            return await call_with_retry_async(
                attempt, policy=self.policy, retry_if=retryable, on_retry=on_retry, sleep=self._sleep
            )
        except ReadTimedOut:
            raise ApiError(
                f"the upstream sent nothing for {self.settings.read_timeout:.0f} s (read_timeout)",
                status=504,
                code="upstream_timeout",
            ) from None
        except TransportError as exc:
            raise NodeFailure(f"{self.label}: {type(exc).__name__}: {exc or 'connection failed'}") from None
        except _RetryableStatus as exc:
            if exc.status == 429:
                wait = exc.retry_after if exc.retry_after is not None else self.policy.base
                raise ServiceUnavailable(
                    "the upstream is rate limiting; try again later",
                    code="upstream_rate_limited",
                    headers={"Retry-After": str(max(1, round(wait)))},
                ) from None
            # The upstream answered: its status and message go back to the client. Whether the
            # endpoint is sick is for its breaker to say (failures in a row across requests).
            raise upstream_error(exc.status, exc.body) from None


def upstream_error(status: int, text: str) -> ApiError:
    """The upstream's own error answer, with its status and message, for the client."""
    message = _error_message(text) or f"upstream answered {status}"
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return ApiError(f"upstream: {message}", status=status, type=kind, code="upstream_error")


def _read_event(request: GenerationRequest, event: bytes, state: dict) -> bool:
    """Take usage, text and finish reason from one relayed event; True at `[DONE]`."""
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return True
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if data.get("usage"):
            state["usage"] = data["usage"]
        for choice in data.get("choices") or []:
            delta = (choice.get("delta") or {}) if request.kind == "chat" else {}
            piece = delta.get("content") if request.kind == "chat" else choice.get("text")
            if piece:
                state["text"] += piece
            if piece or delta.get("tool_calls"):
                state["pieces"] += 1
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]
    return False


def _error_message(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200] or None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message"))
    if isinstance(data, dict) and isinstance(data.get("message"), str):  # vLLM's error shape
        return data["message"]
    return text[:200]


def _streamed_result(state: dict) -> GenerationResult:
    """What a stream's events said: its text, finish reason, usage and first-token time."""
    usage = state["usage"]
    return GenerationResult(
        text=state["text"],
        finish_reason=state["finish"],
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or state["pieces"]),
        first_token_s=state.get("first"),
    )
