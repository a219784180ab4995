"""How the runtime talks to one node, whatever runs it.

`NodeHandle` is the runtime's view of a node: `load`, `generate`, `stream`,
`cancel`, `close`. Two implementations live here: `HostHandle` (a `ModelHost` in
this process) and `ActorHandle` (a `ModelActor` on a Dask worker); the upstream
handle lives in `backends/openai_upstream.py`. Any exception other than
`ApiError` from a handle means the node failed (`NodeFailure`): the runtime
marks it and retries the request elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..backends.base import GenerationRequest, GenerationResult
from ..errors import ApiError, NodeFailure

OnChunk = Callable[[str], None]

PULL_WAIT = 1.0  # seconds a long-poll waits on the node for new text
PULL_SLACK = 30.0  # extra seconds before a silent pull counts as a dead node


class NodeHandle(Protocol):
    async def load(self) -> dict: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def stream(self, request: GenerationRequest, on_chunk: OnChunk) -> GenerationResult: ...

    async def cancel(self, request_id: str) -> None: ...

    async def close(self) -> None: ...


def unwrap(outcome: dict | None) -> GenerationResult:
    """A host's `{"ok": ..., "result" | "error"}` outcome as a result, or the error raised."""
    if outcome is None:
        raise NodeFailure("the node returned nothing")
    if outcome.get("ok"):
        data = outcome.get("result")
        if data is None:
            return GenerationResult("", "cancelled", 0, 0)
        return GenerationResult(**data)
    error = ApiError.from_dict(outcome["error"])
    if error.code in ("model_not_ready", "unknown_stream"):
        raise NodeFailure(error.message)  # the node lost its state: another node should take it
    raise error


def _in_process(request: GenerationRequest) -> GenerationRequest:
    """The request as an in-process node runs it: without max_tokens, the gateway's default
    for it (up to the context, or the config's cap). One meant for an engine (passthrough body)
    that fell back here: refuse what the node cannot honour (400 `unsupported_parameter`)
    instead of dropping it, and send on the parsed fields only."""
    if request.max_tokens is None and request.max_tokens_default is not None:
        request = dataclasses.replace(request, max_tokens=request.max_tokens_default)
    if request.passthrough is None:
        return request
    from ..backends.params import check_fields

    check_fields(request.passthrough, "the in-process model this request fell back to")
    return dataclasses.replace(request, passthrough=None)


class _RemoteHandle:
    """Shared by the in-process and the actor handle: both speak to a `ModelHost`-shaped target.

    Streams go through one channel per handle: a single long-poll (`pull_channel`) at a time
    brings the new text of all of them and hands each its part, so a batch of N streams costs
    one call per round trip, not N.
    """

    def __init__(self, target: Any, *, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = f"autoglm-{uuid.uuid4().hex[:16]}"
        self._listeners: dict[str, asyncio.Queue] = {}  # from before start_stream: no reply is lost
        self._started: set[str] = set()  # streams the node has: only these are polled by id
        self._puller: asyncio.Future | None = None

    async def _call(self, awaitable: Awaitable, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout or self.timeout)
        except (ApiError, asyncio.CancelledError):
            raise
        except asyncio.TimeoutError:
            raise NodeFailure(f"no answer from the node within {timeout or self.timeout:.0f} s") from None
        except Exception as exc:  # comm errors, a dead worker, a lost actor
            raise NodeFailure(f"{type(exc).__name__}: {exc}") from exc

    async def load(self) -> dict:
        return await self._call(self.target.load(), timeout=None)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        request = _in_process(request)
        return unwrap(await self._call(self.target.generate(request)))

    async def stream(self, request: GenerationRequest, on_chunk: OnChunk) -> GenerationResult:
        request = _in_process(request)
        replies: asyncio.Queue = asyncio.Queue()
        self._listeners[request.id] = replies
        try:
            await self._call(self.target.start_stream(request, self._channel))
            self._started.add(request.id)
            if self._puller is None or self._puller.done():
                self._puller = asyncio.ensure_future(self._pull_channel())
            while True:
                reply = await replies.get()
                if isinstance(reply, BaseException):
                    raise reply
                for piece in reply["chunks"]:
                    on_chunk(piece)
                if reply["done"]:
                    return unwrap(reply["outcome"])
        except asyncio.CancelledError:
            await self.cancel(request.id)
            raise
        finally:
            self._listeners.pop(request.id, None)
            self._started.discard(request.id)

    async def _pull_channel(self) -> None:
        """Long-poll the channel while any stream listens; a failed poll fails them all."""
        while self._listeners:
            try:
                replies = await self._call(
                    self.target.pull_channel(self._channel, sorted(self._started), PULL_WAIT),
                    timeout=PULL_WAIT + PULL_SLACK,
                )
            except (NodeFailure, ApiError) as exc:
                for queue in self._listeners.values():
                    queue.put_nowait(exc)
                return
            except asyncio.CancelledError:
                for queue in self._listeners.values():
                    queue.put_nowait(NodeFailure("the stream poller was cancelled"))
                raise
            for request_id, reply in replies.items():
                queue = self._listeners.get(request_id)
                if queue is not None:
                    queue.put_nowait(reply)

    async def cancel(self, request_id: str) -> None:
        with contextlib.suppress(NodeFailure):  # a dead node is not running it anymore either
            await self._call(self.target.cancel(request_id), timeout=5.0)


class HostHandle(_RemoteHandle):
    """A `ModelHost` in the gateway process (engine "inline")."""

    def __init__(self, host, *, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self.host = host

    async def close(self) -> None:
        self.host.close()


class ActorHandle(_RemoteHandle):
    """A `ModelActor` on a Dask worker. Holds the actor's future: releasing it frees the actor."""

    def __init__(self, actor, future, *, timeout: float) -> None:
        super().__init__(actor, timeout=timeout)
        self.future = future

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # the client may already be closing
            self.future.release()
