"""The gateway's queue: priorities high / normal / low, optionally with aging, or FIFO.

Pure data structure (no asyncio, no I/O); the runtime wakes its dispatcher itself.
`ordered()` is the one place that decides the order `pop` considers tasks in:

- strict priorities (`aging_s=None`, the static scheduler): high, then normal,
  then low; FIFO within a priority;
- with aging (`scheduler: priority-based`): a waiting task's rank is
  `priority - waited / aging_s` (waited since `task.arrived_at`), so a low task
  (2) that has waited `2 x aging_s` ranks with a fresh high one (0) and then ahead
  of it: low never starves. Within a priority the lane stays FIFO, so a merge of
  the three lanes by rank gives the order;
- without priorities (`priorities=False`, `scheduler: dynamic`): one FIFO lane; the
  priority a client asks for is accepted but every task is queued as normal.

`make_queue` in this package picks the variant from config.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator

from .base import MONOTONIC, Clock, Priority, Task


class QueueFull(RuntimeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request queue is full ({limit} waiting)")
        self.limit = limit


class PriorityQueue:
    """Tasks waiting for a node. `pop` returns the first task, in `ordered()` order, that is eligible."""

    def __init__(
        self,
        *,
        max_size: int | None = None,
        clock: Clock = MONOTONIC,
        aging_s: float | None = None,
        priorities: bool = True,
    ) -> None:
        if aging_s is not None and aging_s <= 0:
            raise ValueError("aging_s must be positive")
        self.max_size = max_size
        self.clock = clock
        self.aging_s = aging_s
        self.priorities = priorities
        self._lanes: dict[Priority, OrderedDict[str, Task]] = {p: OrderedDict() for p in Priority}
        self._lane_of: dict[str, Priority] = {}

    def push(self, task: Task, *, front: bool = False) -> None:
        """Queue `task`; `front=True` puts it first in its lane (a retry keeps its place)."""
        if task.id in self._lane_of:
            raise ValueError(f"task {task.id} is already queued")
        if not front and self.max_size is not None and len(self) >= self.max_size:
            raise QueueFull(self.max_size)
        priority = task.priority if self.priorities else Priority.NORMAL
        lane = self._lanes[priority]
        lane[task.id] = task
        if front:
            lane.move_to_end(task.id, last=False)
        self._lane_of[task.id] = priority

    def ordered(self) -> Iterator[Task]:
        """The order `pop` considers tasks in (see the module docstring)."""
        if self.aging_s is None or not self.priorities:
            for priority in Priority:
                yield from self._lanes[priority].values()
            return
        now, aging = self.clock(), self.aging_s
        lanes = [
            [(int(p) - (now - t.arrived_at) / aging, int(p), t) for t in self._lanes[p].values()]
            for p in Priority
        ]
        # Ties go to the higher priority; each lane keeps its own (FIFO) order.
        for _, _, task in heapq.merge(*lanes, key=lambda item: (item[0], item[1])):
            yield task

    def pop(self, eligible: Callable[[Task], bool] | None = None) -> Task | None:
        """Remove and return the first task that is eligible (any, by default); None when none is."""
        for task in self.ordered():
            if eligible is None or eligible(task):
                self.remove(task.id)
                return task
        return None

    def peek(self) -> Task | None:
        return next(self.ordered(), None)

    def remove(self, task_id: str) -> Task | None:
        priority = self._lane_of.pop(task_id, None)
        if priority is None:
            return None
        return self._lanes[priority].pop(task_id)

    def depth(self) -> dict[Priority, int]:
        """Waiting tasks per priority lane (the `/metrics` gauge)."""
        return {p: len(lane) for p, lane in self._lanes.items()}

    def waited_s(self, task_id: str) -> float | None:
        priority = self._lane_of.get(task_id)
        if priority is None:
            return None
        return self.clock() - self._lanes[priority][task_id].arrived_at

    def __len__(self) -> int:
        return len(self._lane_of)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._lane_of
