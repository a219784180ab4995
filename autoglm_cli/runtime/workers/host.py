"""`ModelHost`: one loaded model and the one thread that runs it.

The same host runs inside a Dask worker (wrapped by `ModelActor`) and in the
gateway process (engine "inline"). Its methods are coroutines so that, inside a
Dask actor, they run on the worker's event loop and many can be in flight at
once (a long-poll `pull` never blocks a `cancel`); the model itself runs on a
single dedicated thread. A backend that batches (transformers: it has `submit`)
runs every request in one continuous batch on its own loop thread, and the host
advertises how many sequences and KV-cache tokens that batch holds (`status()`:
`max_batch`, `kv_cache_tokens`, `batch`); any other backend runs one request at
a time on the host's thread (`max_batch` 1).

Streaming: `start_stream` launches a generation that appends each piece of text
to a per-request buffer; the caller long-polls `pull(id, wait)`, which returns
as soon as there is new text (everything accumulated since the previous pull,
so fast generation is batched into fewer calls) or when `wait` runs out. A
stream nobody pulls for `ABANDON_AFTER` seconds is cancelled. Streams started
on a `channel` (one per gateway handle) are long-polled together with
`pull_channel(channel, ids, wait)`: one call brings the new text of every
stream in a batch, instead of one call per stream per token.

Errors never escape as exceptions: a failed generation comes back as
`{"ok": False, "error": ApiError.to_dict()}`, so any exception the caller sees
means the node itself failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...redact import redact
from ..backends import make_threaded_backend
from ..backends.base import BackendSettings, GenerationRequest
from ..errors import ApiError

log = logging.getLogger("autoglm.runtime.host")

ABANDON_AFTER = 30.0


@dataclass
class _Stream:
    chunks: list[str] = field(default_factory=list)
    done: bool = False
    outcome: dict | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)
    cancel: threading.Event = field(default_factory=threading.Event)
    last_pull: float = field(default_factory=time.monotonic)
    channel: str | None = None


class ModelHost:
    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.state = "starting"
        self.error: str | None = None
        self._backend = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"autoglm-model-{settings.model}")
        self._streams: dict[str, _Stream] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._load_task: asyncio.Future | None = None
        self._channels: dict[str, asyncio.Event] = {}  # channel -> "one of its streams has news"

    # -- lifecycle -------------------------------------------------------------

    async def load(self) -> dict:
        """Load the model (once; concurrent callers share the load); returns `status()`."""
        if self._load_task is None:
            self._load_task = asyncio.ensure_future(self._load())
        await asyncio.shield(self._load_task)
        return self.status()

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._backend = await loop.run_in_executor(self._executor, self._make_and_load)
            self.state, self.error = "ready", None
            log.info("model %s loaded", self.settings.model)
        except Exception as exc:  # any load failure marks the node failed, with the reason
            self.state, self.error = "failed", redact(f"{type(exc).__name__}: {exc}")
            log.error("model %s failed to load: %s", self.settings.model, self.error)

    def _make_and_load(self):
        backend = make_threaded_backend(self.settings)
        backend.load()
        return backend

    def status(self) -> dict:
        return {
            "model": self.settings.model,
            "backend": self.settings.backend,
            "state": self.state,
            "error": self.error,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "streams": len(self._streams),
            **self.capacity(),
        }

    def capacity(self) -> dict:
        """What the node can run at once: `max_batch` sequences, `kv_cache_tokens` (None: unknown),
        and its batch now (`running`, `waiting`, `max_running`: the largest batch so far)."""
        stats = getattr(self._backend, "batch_stats", None)
        if stats is None:
            return {"max_batch": 1, "kv_cache_tokens": None, "batch": None}
        batch = stats()
        return {"max_batch": batch["max_batch"], "kv_cache_tokens": batch["kv_cache_tokens"], "batch": batch}

    def close(self) -> None:
        for stream in self._streams.values():
            stream.cancel.set()
        for flag in self._cancels.values():
            flag.set()
        if self._backend is not None:
            self._backend.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- requests --------------------------------------------------------------

    def _check_ready(self) -> None:
        if self.state != "ready":
            raise ApiError(
                f"model {self.settings.model} is not loaded ({self.state})",
                status=503,
                code="model_not_ready",
            )

    @property
    def _batching(self) -> bool:
        return hasattr(self._backend, "submit")

    def _batched(self, request: GenerationRequest, emit, should_stop) -> asyncio.Future:
        """Hand `request` to the backend's batch loop; the future settles when it ends."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(result, error) -> None:  # on the event loop
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def on_done(result, error) -> None:  # on the batch loop's thread
            loop.call_soon_threadsafe(settle, result, error)

        self._backend.submit(request, emit, should_stop, on_done)
        return future

    async def generate(self, request: GenerationRequest) -> dict:
        """Run one request to the end; `{"ok": True, "result": {...}}` or `{"ok": False, "error": {...}}`."""
        cancel = threading.Event()
        self._cancels[request.id] = cancel
        try:
            self._check_ready()
            if self._batching:
                result = await self._batched(request, None, cancel.is_set)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._executor, self._backend.generate, request, None, cancel.is_set
                )
            return {"ok": True, "result": result.to_dict()}
        except ApiError as err:
            return {"ok": False, "error": err.to_dict()}
        except asyncio.CancelledError:
            cancel.set()  # nobody waits for it anymore: stop generating
            raise
        except Exception as exc:
            return {"ok": False, "error": _unexpected(exc)}
        finally:
            self._cancels.pop(request.id, None)

    async def start_stream(self, request: GenerationRequest, channel: str | None = None) -> None:
        """Start generating `request` into a buffer that `pull(request.id)` (or, on a channel,
        `pull_channel`) drains."""
        self._reap_abandoned()
        loop = asyncio.get_running_loop()
        stream = _Stream(channel=channel)
        self._streams[request.id] = stream
        news = self._channels.setdefault(channel, asyncio.Event()) if channel is not None else None

        def wake() -> None:  # on the event loop
            stream.event.set()
            if news is not None:
                news.set()

        def emit(piece: str) -> None:  # on the model thread
            stream.chunks.append(piece)
            loop.call_soon_threadsafe(wake)

        def finished(future: asyncio.Future) -> None:
            try:
                result = future.result()
                stream.outcome = {"ok": True, "result": None if result is None else result.to_dict()}
            except ApiError as err:
                stream.outcome = {"ok": False, "error": err.to_dict()}
            except Exception as exc:
                stream.outcome = {"ok": False, "error": _unexpected(exc)}
            stream.done = True
            wake()

        if self._batching and self.state == "ready":
            self._batched(request, emit, stream.cancel.is_set).add_done_callback(finished)
            return

        def run():
            if stream.cancel.is_set():
                return None
            self._check_ready()
            return self._backend.generate(request, emit, stream.cancel.is_set)

        loop.run_in_executor(self._executor, run).add_done_callback(finished)

    async def pull(self, request_id: str, wait: float = 1.0) -> dict:
        """New text since the last pull: `{"chunks": [...], "done": bool, "outcome": {...} | None}`."""
        stream = self._streams.get(request_id)
        if stream is None:
            return {
                "chunks": [],
                "done": True,
                "outcome": {
                    "ok": False,
                    "error": ApiError("unknown stream", code="unknown_stream").to_dict(),
                },
            }
        stream.last_pull = time.monotonic()
        if not stream.chunks and not stream.done:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stream.event.wait(), wait)
        stream.event.clear()
        chunks, stream.chunks = stream.chunks, []
        if stream.done and not stream.chunks:
            del self._streams[request_id]
            return {"chunks": chunks, "done": True, "outcome": stream.outcome}
        return {"chunks": chunks, "done": False, "outcome": None}

    async def pull_channel(self, channel: str, ids: list[str], wait: float = 1.0) -> dict[str, dict]:
        """`pull` for every stream of `channel` at once: `{id: reply}` for those with news (new
        text, or done), and for each of `ids` this host does not know (done, `unknown_stream`)."""
        news = self._channels.setdefault(channel, asyncio.Event())
        mine = {rid: s for rid, s in self._streams.items() if s.channel == channel}
        now = time.monotonic()
        for stream in mine.values():
            stream.last_pull = now
        if not any(s.chunks or s.done for s in mine.values()) and all(i in mine for i in ids):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(news.wait(), wait)
        news.clear()
        replies = {}
        for rid in ids:
            if rid not in self._streams:
                replies[rid] = await self.pull(rid)
        for rid, stream in mine.items():
            if stream.chunks or stream.done:
                replies[rid] = await self.pull(rid, 0)
        if not any(s.channel == channel for s in self._streams.values()):
            self._channels.pop(channel, None)
        return replies

    async def cancel(self, request_id: str) -> bool:
        """Ask a running generation to stop at its next token."""
        flag = self._cancels.get(request_id)
        stream = self._streams.get(request_id)
        if stream is not None:
            flag = stream.cancel
        if flag is None:
            return False
        flag.set()
        return True

    def _reap_abandoned(self) -> None:
        now = time.monotonic()
        for rid, stream in list(self._streams.items()):
            if now - stream.last_pull > ABANDON_AFTER:
                stream.cancel.set()
                if stream.done:
                    del self._streams[rid]


def _unexpected(exc: Exception) -> dict:
    log.exception("generation failed")
    return ApiError(redact(f"generation failed: {type(exc).__name__}: {exc}")).to_dict()
