"""The legacy policy: a fixed number of workers, round robin over the ready nodes."""

from __future__ import annotations

from .base import MONOTONIC, BaseScheduler, Clock, Node, NoNodeAvailable, Task


class StaticScheduler(BaseScheduler):
    """Fixed pool of `workers`; tasks go round robin over the ready nodes of their model.

    A node with no free slot is skipped while another one has room, so round robin
    never queues a task behind a busy node when an idle one exists.
    """

    name = "static"

    def __init__(self, workers: int, *, clock: Clock = MONOTONIC) -> None:
        super().__init__(clock=clock)
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.workers = workers
        self._cursor: dict[str, int] = {}  # per model: index of the node to try next

    def adjust_workers(self, target_load: float) -> int:
        return self.workers  # static: the load does not change the pool

    def route_task(self, task: Task) -> Node:
        nodes = self.candidates(task.model)
        if not nodes:
            raise NoNodeAvailable(task.model)
        start = self._cursor.get(task.model, 0) % len(nodes)
        order = nodes[start:] + nodes[:start]
        chosen = next((n for n in order if n.free_slots > 0), order[0])
        self._cursor[task.model] = nodes.index(chosen) + 1
        return chosen
