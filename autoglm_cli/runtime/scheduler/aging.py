"""The gateway's queue: priorities high / normal / low with aging, so low never starves.

A waiting task's effective rank is `priority - waited / aging_s`: a low task (2)
that has waited `2 x aging_s` ranks with a fresh high one (0), and beyond that
ahead of it. Within one priority the queue is FIFO, so only the three heads need
comparing and push / pop stay O(1). A low task therefore waits at most about
`2 x aging_s` plus the work already ranked ahead of it, whatever the high traffic.

With priorities off (`scheduler: dynamic`) every task is queued as normal: FIFO.
Cancellation (`DELETE /v1/tasks/{id}`) removes by key in O(1) (lazily).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .base import MONOTONIC, Clock, Priority

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    enqueued_at: float
    seq: int
    key: Any
    item: T
    priority: Priority
    alive: bool = field(default=True)


class AgingPriorityQueue(Generic[T]):
    def __init__(self, *, aging_s: float = 10.0, priorities: bool = True, clock: Clock = MONOTONIC) -> None:
        if aging_s <= 0:
            raise ValueError("aging_s must be positive")
        self.aging_s = aging_s
        self.priorities = priorities
        self._clock = clock
        self._lanes: dict[Priority, deque[_Entry[T]]] = {p: deque() for p in Priority}
        self._by_key: dict[Any, _Entry[T]] = {}
        self._depth = dict.fromkeys(Priority, 0)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(self._depth.values())

    def depth(self) -> dict[Priority, int]:
        """Waiting tasks per priority (the `/metrics` gauge)."""
        return dict(self._depth)

    def push(self, item: T, priority: Priority = Priority.NORMAL, *, key: Any = None) -> None:
        if not self.priorities:
            priority = Priority.NORMAL
        if key is not None and key in self._by_key:
            raise KeyError(f"{key!r} is already queued")
        entry = _Entry(self._clock(), next(self._seq), key, item, priority)
        self._lanes[priority].append(entry)
        self._depth[priority] += 1
        if key is not None:
            self._by_key[key] = entry

    def remove(self, key: Any) -> bool:
        """Take the task with `key` out (a cancel); False when it is not waiting."""
        entry = self._by_key.pop(key, None)
        if entry is None:
            return False
        entry.alive = False
        self._depth[entry.priority] -= 1
        return True

    def peek(self) -> T:
        return self._head()[1].item

    def pop(self) -> T:
        lane, entry = self._head()
        self._lanes[lane].popleft()
        self._depth[lane] -= 1
        if entry.key is not None:
            self._by_key.pop(entry.key, None)
        return entry.item

    def waited_s(self, key: Any) -> float | None:
        entry = self._by_key.get(key)
        return None if entry is None else self._clock() - entry.enqueued_at

    def _head(self) -> tuple[Priority, _Entry[T]]:
        now = self._clock()
        best: tuple[float, float, int] | None = None
        chosen: tuple[Priority, _Entry[T]] | None = None
        for lane, entries in self._lanes.items():
            while entries and not entries[0].alive:
                entries.popleft()
            if not entries:
                continue
            head = entries[0]
            rank = int(head.priority) - (now - head.enqueued_at) / self.aging_s
            # Ties go to the task that arrived first.
            candidate = (rank, head.enqueued_at, head.seq)
            if best is None or candidate < best:
                best, chosen = candidate, (lane, head)
        if chosen is None:
            raise IndexError("pop from an empty queue")
        return chosen
