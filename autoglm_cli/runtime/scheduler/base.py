"""The scheduler interface (DESIGN.md, "The scheduler core") and the types it speaks.

A scheduler is pure policy: it sees tasks and node statistics and decides where
a task goes (`route_task`), what load comes next (`predict_load`) and how many
workers that needs (`adjust_workers`). It never does I/O itself; the runtime
feeds it observations and applies its decisions (e.g. `cluster.scale(n)`).
Time comes from an injectable clock so policies are unit-testable.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

Clock = Callable[[], float]
MONOTONIC: Clock = time.monotonic


class Priority(enum.IntEnum):
    """Lower value is served first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class NodeKind(str, enum.Enum):
    ACTOR = "actor"  # a model actor on a Dask worker
    UPSTREAM = "upstream"  # an OpenAI-compatible endpoint (vLLM, SGLang, hosted API)
    SIMULATED = "simulated"


class NodeState(str, enum.Enum):
    STARTING = "starting"  # placed, model loading
    READY = "ready"
    DRAINING = "draining"  # finishing its work before removal
    FAILED = "failed"  # model failed to load; see `Node.error`
    DEAD = "dead"  # the process is gone


@dataclass
class Task:
    """One inference request as the scheduler sees it."""

    id: str
    model: str
    prompt_tokens: int = 0
    max_tokens: int = 16
    priority: Priority = Priority.NORMAL
    arrived_at: float = 0.0
    attempts: int = 0
    # Hashes of the prompt's leading blocks, each chained over the blocks before it
    # (block i's hash identifies the whole prefix up to block i), so two prompts that
    # share a system prompt or earlier turns share their first hashes. Nothing of the
    # prompt text itself is kept. Empty when unknown.
    prefix_hashes: tuple[int, ...] = ()


@dataclass
class Node:
    """Something that can run tasks for a set of models, with live statistics."""

    id: str
    models: frozenset[str]
    kind: NodeKind = NodeKind.ACTOR
    state: NodeState = NodeState.STARTING
    address: str = ""  # Dask worker address or upstream base URL
    queued: int = 0
    running: int = 0
    service_time_ewma: float = 0.0  # seconds per task
    rtt_ewma: float = 0.0  # seconds of network round trip
    error: str | None = None
    extra: dict = field(default_factory=dict)
    capacity: int = 1  # requests the runtime sends it at once (never more)
    slots: int | None = None  # requests it runs at once (None: `capacity`); the rest wait in its queue
    created_at: float = 0.0
    kv_cache_tokens: int | None = None  # KV-cache tokens the node can hold (None: unknown)
    # What an engine node reports about itself on its own metrics endpoint (vLLM:
    # num_requests_running / num_requests_waiting / kv_cache_usage_perc), None until
    # the first poll; `signals_at` is the clock time of that poll.
    engine_running: int | None = None
    engine_waiting: int | None = None
    kv_cache_usage: float | None = None  # 0..1
    signals_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state is NodeState.READY

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.running) if self.healthy else 0

    def serves(self, model: str) -> bool:
        return model in self.models


class Scheduler(Protocol):
    """The interface every scheduling policy implements.

    The three decisions come from DESIGN.md. The `on_*` methods are how the runtime
    feeds a policy its observations; `BaseScheduler` implements them (node
    bookkeeping, arrival window, service-time EWMA), so a policy usually subclasses
    it and writes only the decisions. The runtime owns the `Node` objects and
    updates `running`/`queued`/`state` itself; it calls `on_node_change` after a
    state change so a policy can react.
    """

    def predict_load(self) -> float:
        """Expected load (tasks per second) in the next control interval."""
        ...

    def adjust_workers(self, target_load: float) -> int | None:
        """Decide the number of workers for `target_load` and return it (None: no change).

        The runtime applies the decision with `cluster.scale(n)`, clamped to
        `workers.min`..`workers.max`.
        """
        ...

    def route_task(self, task: Task) -> Node:
        """The node that should run `task`; raises `NoNodeAvailable` when none can."""
        ...

    def on_arrival(self, task: Task) -> None:
        """A task was accepted (before it is queued)."""
        ...

    def on_first_token(self, task: Task, node: Node) -> None:
        """`task`'s first token came from `node` (its prefill is done; streamed requests only)."""
        ...

    def on_completion(
        self, task: Task, node: Node, service_time: float, ok: bool, *, output_tokens: int | None = None
    ) -> None:
        """`node` is done with `task` after `service_time` seconds. ok=False: no whole answer
        (the node failed, the request was refused, cancelled or abandoned): learn nothing from it.
        `output_tokens`: the tokens it generated (the response's usage), where known."""
        ...

    def on_node_change(self, node: Node) -> None:
        """A node was added or its state changed."""
        ...

    def on_node_removed(self, node: Node) -> None:
        """A node is gone for good (its worker left or was replaced)."""
        ...

    # -- optional: `BaseScheduler` has a default for each ----------------------------

    # Called with each change of the desired node count (a `dynamic.ScaleEvent`): the runtime
    # counts it and logs it. A policy without such events leaves the list alone.
    listeners: list[Callable[[Any], None]]
    # The worker count the policy last decided; the runtime uses it when `adjust_workers`
    # returns None (None: no opinion).
    desired_workers: int | None

    def set_queue_depth(self, depth: int) -> None:
        """Requests waiting in the gateway's queue, at the start of every control tick."""
        ...

    def record_routed(self) -> None:
        """The tasks routed since the last call are on their way: do the bookkeeping of those
        decisions that the next decision needs but the routed requests need not wait for."""
        ...

    def nodes_to_remove(self, count: int) -> list[Node] | None:
        """The nodes to drain to shrink by `count` (None: the cluster's own removal order)."""
        ...

    def task_estimate_error(self) -> float | None:
        """How far its per-request service-time estimates are off (0 exact .. 1 no idea);
        None: the policy makes no estimates."""
        ...


class NoNodeAvailable(RuntimeError):
    """No healthy node serves the task's model (the caller may fall back to the backup model)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no healthy node serves model {model!r}")
        self.model = model


class BaseScheduler:
    """Bookkeeping every policy needs: the nodes, recent arrivals, service times.

    Pure: no I/O, time from `clock`. Subclasses implement `adjust_workers` and
    `route_task`, and may override `predict_load` (here: the arrival rate over the
    last `window` seconds).
    """

    ewma_alpha = 0.2

    def __init__(self, *, clock: Clock = MONOTONIC, window: float = 10.0) -> None:
        self.clock = clock
        self.window = window
        self.nodes: dict[str, Node] = {}  # insertion order = order nodes were added
        self._arrivals: collections.deque[float] = collections.deque()
        self.listeners: list[Callable[[Any], None]] = []  # no scale events here
        self.desired_workers: int | None = None
        self.queue_depth = 0

    # -- observations --------------------------------------------------------

    def on_arrival(self, task: Task) -> None:
        now = self.clock()
        self._arrivals.append(now)
        self._trim(now)

    def on_first_token(self, task: Task, node: Node) -> None:
        pass  # policies that track prefill work (dynamic) override it

    def on_completion(
        self, task: Task, node: Node, service_time: float, ok: bool, *, output_tokens: int | None = None
    ) -> None:
        if not ok:
            return
        if node.service_time_ewma <= 0:
            node.service_time_ewma = service_time
        else:
            node.service_time_ewma += self.ewma_alpha * (service_time - node.service_time_ewma)

    def on_node_change(self, node: Node) -> None:
        self.nodes[node.id] = node

    def on_node_removed(self, node: Node) -> None:
        self.nodes.pop(node.id, None)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth = max(0, depth)

    def record_routed(self) -> None:
        pass  # nothing deferred here (dynamic defers its prefix index update)

    # -- optional decisions: none by default -------------------------------------

    def nodes_to_remove(self, count: int) -> list[Node] | None:
        return None  # the cluster's removal order

    def task_estimate_error(self) -> float | None:
        return None

    # -- helpers for policies ------------------------------------------------

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - self.window:
            self._arrivals.popleft()

    def arrival_rate(self) -> float:
        """Tasks per second over the last `window` seconds."""
        self._trim(self.clock())
        return len(self._arrivals) / self.window

    def candidates(self, model: str) -> list[Node]:
        """Ready nodes serving `model`, in the order they were added."""
        return [n for n in self.nodes.values() if n.healthy and n.serves(model)]

    def predict_load(self) -> float:
        return self.arrival_rate()
