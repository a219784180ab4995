"""A request's life in the runtime: accepted, queued, running, then succeeded, failed or cancelled."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .backends.base import GenerationRequest, GenerationResult
from .errors import ApiError, Cancelled
from .scheduler import Task


@dataclass
class Job:
    """One accepted request, from `submit` until its result is read."""

    task: Task
    request: GenerationRequest
    stream: bool
    key_id: str | None = None
    status: str = "queued"  # queued | running | succeeded | failed | cancelled
    created: float = field(default_factory=time.time)
    deadline: float = 0.0  # monotonic: fail it if still queued then
    served_model: str | None = None
    fallback_from: str | None = None
    forced_model: str | None = None  # the backup, after the default failed this request on every node
    node_id: str | None = None
    result: GenerationResult | None = None
    error: ApiError | None = None
    finished_at: float | None = None  # `clock` time
    keep: bool = False  # a /v1/tasks job: stays readable for `gateway.task_ttl`
    sent_text: str = ""  # streamed to the client so far (a retry resumes after it)
    sent_pieces: int = 0
    relayed: bool = False  # an engine's raw events reached the client (a retry would repeat them)
    dispatched_at: float | None = None  # the runtime's clock: first sent to a node
    first_token_at: float | None = None  # the runtime's clock: first piece streamed
    cancel_requested: bool = False
    rescued: bool = False  # its node was marked dead: the runner was cancelled to retry it elsewhere
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # stream: str pieces, then None
    runner: asyncio.Task | None = None
    clock: Callable[[], float] = time.monotonic  # the runtime's clock (the queue sweep compares with it)

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def push(self, piece: str | bytes) -> None:
        if isinstance(piece, str):
            self.sent_text += piece
            self.sent_pieces += 1
        else:  # an engine's own event, relayed as it is (passthrough): no resuming it elsewhere
            self.relayed = True
        self.events.put_nowait(piece)

    def _finish(self, status: str) -> None:
        self.status = status
        self.finished_at = self.clock()
        self.events.put_nowait(None)

    # The first outcome wins: a job cancelled while its node answers stays cancelled.

    def succeed(self, result: GenerationResult) -> None:
        if self.finished:
            return
        self.result = result
        self._finish("succeeded")
        self.done.set_result(result)

    def fail(self, error: ApiError) -> None:
        if self.finished:
            return
        self.error = error
        self._finish("failed")
        self.done.set_exception(error)
        self.done.exception()  # nobody may await it (a stream, a task): no "never retrieved" noise

    def cancelled(self) -> None:
        if self.finished:
            return
        self._finish("cancelled")
        self.done.set_exception(Cancelled(self.id))
        self.done.exception()


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
