"""The gateway's priority queue: high, normal, low; FIFO within a priority.

Pure data structure (no asyncio, no I/O); the runtime wakes its dispatcher itself.
Replace or extend it for aging: `ordered()` is the one place that decides the
order `pop` considers tasks in, so an aging queue overrides just that (e.g. sort
by `priority - waited / aging_interval`). `make_queue` in this package picks the
class from config.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from .base import MONOTONIC, Clock, Priority, Task


class QueueFull(RuntimeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request queue is full ({limit} waiting)")
        self.limit = limit


class PriorityQueue:
    """Tasks waiting for a node. `pop` returns the first task, in `ordered()` order, that is eligible."""

    def __init__(self, *, max_size: int | None = None, clock: Clock = MONOTONIC) -> None:
        self.max_size = max_size
        self.clock = clock
        self._lanes: dict[Priority, OrderedDict[str, Task]] = {p: OrderedDict() for p in Priority}
        self._lane_of: dict[str, Priority] = {}

    def push(self, task: Task, *, front: bool = False) -> None:
        """Queue `task`; `front=True` puts it first in its priority (a retry keeps its place)."""
        if task.id in self._lane_of:
            raise ValueError(f"task {task.id} is already queued")
        if not front and self.max_size is not None and len(self) >= self.max_size:
            raise QueueFull(self.max_size)
        lane = self._lanes[task.priority]
        lane[task.id] = task
        if front:
            lane.move_to_end(task.id, last=False)
        self._lane_of[task.id] = task.priority

    def ordered(self) -> Iterator[Task]:
        """The order `pop` considers tasks in: higher priority first, then arrival."""
        for priority in Priority:
            yield from self._lanes[priority].values()

    def pop(self, eligible: Callable[[Task], bool] | None = None) -> Task | None:
        """Remove and return the first task that is eligible (any, by default); None when none is."""
        for task in self.ordered():
            if eligible is None or eligible(task):
                self.remove(task.id)
                return task
        return None

    def remove(self, task_id: str) -> Task | None:
        priority = self._lane_of.pop(task_id, None)
        if priority is None:
            return None
        return self._lanes[priority].pop(task_id)

    def depth(self) -> dict[Priority, int]:
        return {p: len(lane) for p, lane in self._lanes.items()}

    def __len__(self) -> int:
        return len(self._lane_of)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._lane_of
