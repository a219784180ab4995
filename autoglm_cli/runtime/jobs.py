"""A request's life in the runtime: accepted, queued, running, then succeeded, failed or cancelled."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..words import Word
from .backends.base import GenerationRequest, GenerationResult
from .errors import ApiError, Cancelled
from .scheduler import Task

request_log = logging.getLogger("autoglm.requests")  # logs.REQUESTS_LOGGER


class JobStatus(Word):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass
class Job:
    """One accepted request, from `submit` until its result is read."""

    task: Task
    request: GenerationRequest
    stream: bool
    key_id: str | None = None
    status: JobStatus = JobStatus.QUEUED
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
        return self.status in FINISHED

    def push(self, piece: str | bytes) -> None:
        if isinstance(piece, str):
            self.sent_text += piece
            self.sent_pieces += 1
        else:  # an engine's own event, relayed as it is (passthrough): no resuming it elsewhere
            self.relayed = True
        self.events.put_nowait(piece)

    def _finish(self, status: JobStatus) -> None:
        self.status = status
        self.finished_at = self.clock()
        self.events.put_nowait(None)
        if request_log.isEnabledFor(logging.INFO):
            fields = self.log_fields()
            request_log.info(
                "request %s %s model=%s node=%s",
                self.id,
                status,
                fields["model"],
                fields["node"],
                extra={"fields": fields},
            )

    def log_fields(self) -> dict:
        """What the request line says: ids, the model and node, the outcome, timings in
        seconds (from arrival) and tokens. The key's id, never the key."""
        arrived = self.task.arrived_at

        def since_arrival(at: float | None) -> float | None:
            return None if at is None else round(at - arrived, 4)

        result, error = self.result, self.error
        return {
            "request_id": self.id,
            "key_id": self.key_id,
            "model": self.served_model or self.request.model,
            "requested_model": self.request.model,
            "fallback_from": self.fallback_from,
            "node": (result.node if result is not None else None) or self.node_id,
            "status": self.status,
            "error_code": (error.code or error.type) if error is not None else None,
            "http_status": error.status if error is not None else 200 if result is not None else None,
            "stream": self.stream,
            "attempts": self.task.attempts,
            "queue_wait_s": since_arrival(self.dispatched_at),
            "ttft_s": since_arrival(self.first_token_at),
            "duration_s": since_arrival(self.finished_at),
            "prompt_tokens": result.prompt_tokens if result is not None else self.task.prompt_tokens,
            "completion_tokens": result.completion_tokens if result is not None else None,
            "finish_reason": result.finish_reason if result is not None else None,
        }

    # The first outcome wins: a job cancelled while its node answers stays cancelled.

    def succeed(self, result: GenerationResult) -> None:
        if self.finished:
            return
        self.result = result
        self._finish(JobStatus.SUCCEEDED)
        self.done.set_result(result)

    def fail(self, error: ApiError) -> None:
        if self.finished:
            return
        self.error = error
        self._finish(JobStatus.FAILED)
        self.done.set_exception(error)
        self.done.exception()  # nobody may await it (a stream, a task): no "never retrieved" noise

    def cancelled(self) -> None:
        if self.finished:
            return
        self._finish(JobStatus.CANCELLED)
        self.done.set_exception(Cancelled(self.id))
        self.done.exception()


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
