"""Iteration-level (continuous) batching: sequences join and leave a running batch between steps.

`BatchLoop` runs one model on one thread. Requests wait in `submit`'s queue;
between two decode steps the loop admits as many as fit (at most `max_batch`
sequences, at most `max_batch_tokens` KV-cache tokens reserved: prompt plus
the tokens it may generate), has the engine prefill them and merge them into
the running batch, runs one decode step for the whole batch, and retires the
sequences that ended (stop, length, end of text, cancelled). A sequence whose
own work fails (its prompt, its sampling, its stream callback) fails alone; a
failed batched step fails the sequences in that step and the loop carries on.

The engine (`StepEngine`) does the model work; this module has no torch in it.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .base import Emit, GenerationRequest, GenerationResult

log = logging.getLogger("autoglm.runtime.batching")

OnDone = Callable[[GenerationResult | None, BaseException | None], None]


@dataclass(eq=False)
class Sequence:
    """One request inside the loop; the engine keeps its own data in `state`."""

    request: GenerationRequest
    emit: Emit | None
    should_stop: Callable[[], bool]
    on_done: OnDone
    reserved: int = 0  # KV-cache tokens it may need (prompt + max new tokens)
    state: Any = None
    result: GenerationResult | None = None  # set by the engine when it ended
    error: BaseException | None = None  # set when it failed (alone)

    @property
    def ended(self) -> bool:
        return self.result is not None or self.error is not None


class StepEngine(Protocol):
    # False: the engine cannot merge new sequences into a running batch; they are
    # admitted only when the batch is empty (static batches that still shrink).
    mergeable: bool

    def prepare(self, seq: Sequence) -> int:
        """Tokenise and check one request (may raise); returns the KV-cache tokens it may need."""
        ...

    def prefill(self, seqs: list[Sequence]) -> None:
        """Run these prompts, merge them into the running batch, take each one's first token.

        When it raises, the running batch must be as it was (the new sequences fail alone)."""
        ...

    def decode(self) -> None:
        """One token for every sequence in the running batch."""
        ...

    def retire(self, seqs: list[Sequence]) -> None:
        """Drop these (ended) sequences from the running batch."""
        ...

    def reset(self) -> None:
        """Drop the whole running batch (after a failed step)."""
        ...


@dataclass
class BatchStats:
    running: int = 0  # sequences in the batch now
    waiting: int = 0  # submitted, not admitted yet
    reserved_tokens: int = 0  # KV-cache tokens the running batch has reserved
    max_running: int = 0  # the largest batch so far
    steps: int = 0  # decode steps so far
    sequences: int = 0  # sequences finished or failed so far
    cancelled: int = 0  # of which cancelled (by their caller, or a client that went away)


@dataclass
class BatchLoop:
    engine: StepEngine
    max_batch: int = 32
    max_batch_tokens: int | None = None  # None: no token limit
    name: str = "model"
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the caller's side (any thread) ------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"autoglm-batch-{self.name}", daemon=True)
            self._thread.start()

    def submit(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool], on_done: OnDone
    ) -> None:
        """Queue `request`; `on_done(result, error)` is called once, on the loop's thread."""
        seq = Sequence(request, emit, should_stop, on_done)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the batch loop of {self.name} is closed")
            self._waiting.append(seq)
            self.stats.waiting = len(self._waiting)
            self._cond.notify()
        self.start()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the loop's thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._running and not self._closed:
                    self._cond.wait()
                if self._closed:
                    leftover = list(self._waiting) + self._running
                    self._waiting.clear()
                    break
            self._admit()
            if self._running:
                self._step(self.engine.decode, self._running)
                self.stats.steps += 1
        for seq in leftover:
            seq.result = seq.result or GenerationResult("", "cancelled", 0, 0)
            self._finish(seq)

    def _admit(self) -> None:
        if self._running and not self.engine.mergeable:
            return
        admitted: list[Sequence] = []
        reserved = self.stats.reserved_tokens
        while len(self._running) + len(admitted) < self.max_batch:
            with self._cond:
                if not self._waiting:
                    break
                seq = self._waiting.popleft()
            if seq.should_stop():
                seq.result = GenerationResult("", "cancelled", 0, 0)
                self._finish(seq)
                continue
            if not seq.reserved:
                try:
                    seq.reserved = max(1, self.engine.prepare(seq))
                except Exception as exc:  # its prompt or options are wrong: it fails alone
                    seq.error = exc
                    self._finish(seq)
                    continue
            limit = self.max_batch_tokens
            alone = not self._running and not admitted  # a sequence bigger than the budget runs alone
            if limit is not None and reserved + seq.reserved > limit and not alone:
                with self._cond:
                    self._waiting.appendleft(seq)  # waits for room; keeps its place in line
                break
            reserved += seq.reserved
            admitted.append(seq)
        with self._cond:
            self.stats.waiting = len(self._waiting)
        if admitted:
            self._running.extend(admitted)
            self._step(lambda: self.engine.prefill(admitted), list(admitted))

    def _step(self, work: Callable[[], None], seqs: list[Sequence]) -> None:
        self.stats.running = len(self._running)
        self.stats.reserved_tokens = sum(s.reserved for s in self._running)
        self.stats.max_running = max(self.stats.max_running, len(self._running))
        try:
            work()
        except Exception as exc:  # the batched step itself failed: the sequences in it fail
            log.exception("batch step of %s failed", self.name)
            for seq in seqs:
                if not seq.ended:
                    seq.error = exc
            if seqs is self._running:  # a decode step: the engine's batch is in an unknown state
                self.engine.reset()
        ended = [s for s in self._running if s.ended]
        if ended:
            self.engine.retire(ended)
            self._running = [s for s in self._running if not s.ended]
            for seq in ended:
                self._finish(seq)
        self.stats.running = len(self._running)
        self.stats.reserved_tokens = sum(s.reserved for s in self._running)

    def _finish(self, seq: Sequence) -> None:
        self.stats.sequences += 1
        if seq.result is not None and seq.result.finish_reason == "cancelled":
            self.stats.cancelled += 1
        try:
            seq.on_done(seq.result if seq.error is None else None, seq.error)
        except Exception:  # the caller's callback: never let it stop the loop
            log.exception("on_done of %s failed", seq.request.id)
