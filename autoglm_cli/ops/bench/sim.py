"""A policy-only discrete-event simulation of the runtime, for fast iteration on the scheduler.

It replays a trace through the same policy objects the runtime uses (the gateway's
aging queue, a scheduler's `route_task` / `tick`) with simulated nodes: a node runs
`slots` tasks at once, each for `ServiceModel.seconds(task)`, behind a network RTT;
a new node is ready `startup_s` after it is asked for; a node asked to go drains
first. Minutes of trace simulate in well under a second, so policies can be
compared on whole traces. It is not the benchmark of record: those run
`autoglm bench` against `autoglm serve` (benchmarks/bench_scheduler_*.py).

The anchors are here too: `FixedPool` with round-robin routing (the legacy
StaticScheduler's policy) or random routing, on a fixed number of nodes.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...runtime.scheduler.base import Node, NodeKind, NodeState, NoNodeAvailable, Task
from ...runtime.scheduler.dynamic import ScaleEvent
from ...runtime.scheduler.queue import PriorityQueue
from .stats import LatencySummary
from .trace import TraceRequest


@dataclass(frozen=True)
class ServiceModel:
    """Service time = base + per prompt token + per generated token (the simulated backend's model)."""

    base_s: float = 0.05
    per_prompt_token_s: float = 0.0001
    per_generated_token_s: float = 0.02

    def seconds(self, prompt_tokens: int, generated_tokens: int) -> float:
        return (
            self.base_s
            + self.per_prompt_token_s * prompt_tokens
            + self.per_generated_token_s * generated_tokens
        )

    def mean_seconds(self, trace: Sequence[TraceRequest]) -> float:
        return sum(self.seconds(r.prompt_tokens, r.generated_tokens) for r in trace) / max(1, len(trace))


class SimClock:
    """The simulation's time; hand the same one to the policy (`DynamicScheduler(clock=...)`)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimPolicy(Protocol):
    """What the simulation needs from a policy: the runtime's protocol (DynamicScheduler has it,
    FixedPool below too), plus `nodes_to_remove` and `tick` for autoscaling."""

    nodes: dict[str, Node]
    desired_workers: int

    def on_node_change(self, node: Node) -> None: ...
    def on_node_removed(self, node: Node) -> None: ...
    def nodes_to_remove(self, count: int) -> list[Node]: ...
    def on_arrival(self, task: Task | None = None, *, count: int = 1) -> None: ...
    def set_queue_depth(self, depth: int) -> None: ...
    def can_dispatch(self, model: str) -> bool: ...
    def route_task(self, task: Task) -> Node: ...
    def record_routed(self) -> None: ...
    def on_start(self, task: Task, node: Node) -> None: ...
    def on_completion(
        self, task: Task, node: Node, service_time: float, ok: bool, *, rtt: float | None = None
    ) -> None: ...
    def tick(self) -> ScaleEvent | None: ...


class FixedPool:
    """The anchors: a fixed pool, every task dispatched at once, round-robin or random routing."""

    def __init__(
        self, workers: int, routing: str = "round-robin", *, rng: random.Random | None = None
    ) -> None:
        if routing not in ("round-robin", "random"):
            raise ValueError(f"unknown routing {routing!r}")
        self.routing = routing
        self.desired_workers = workers
        self.nodes: dict[str, Node] = {}
        self._rng = rng or random.Random(0)
        self._next = 0

    def on_node_change(self, node: Node) -> None:
        self.nodes[node.id] = node

    def on_node_removed(self, node: Node) -> None:
        self.nodes.pop(node.id, None)

    def nodes_to_remove(self, count: int) -> list[Node]:
        return []

    def on_arrival(self, task: Task | None = None, *, count: int = 1) -> None:
        pass

    def set_queue_depth(self, depth: int) -> None:
        pass

    def can_dispatch(self, model: str) -> bool:
        return any(n.healthy and n.serves(model) for n in self.nodes.values())

    def route_task(self, task: Task) -> Node:
        ready = [n for n in self.nodes.values() if n.healthy and n.serves(task.model)]
        if not ready:
            raise NoNodeAvailable(task.model)
        if self.routing == "random":
            return self._rng.choice(ready)
        node = ready[self._next % len(ready)]
        self._next += 1
        return node

    def record_routed(self) -> None:
        pass

    def on_start(self, task: Task, node: Node) -> None:
        pass

    def on_completion(
        self, task: Task, node: Node, service_time: float, ok: bool, *, rtt: float | None = None
    ) -> None:
        pass

    def tick(self) -> ScaleEvent | None:
        return None


@dataclass(frozen=True)
class SimResult:
    name: str
    latency: LatencySummary
    completed: int
    worker_seconds: float  # integral of live nodes (starting, ready, draining) over the run
    duration_s: float  # first arrival to last completion
    mean_nodes: float
    max_nodes: int
    scale_events: tuple[ScaleEvent, ...] = ()
    timeline: tuple[tuple[float, int], ...] = ()  # (time, live nodes) at every change
    latencies_s: tuple[float, ...] = field(default=(), repr=False)


@dataclass
class _SimNode:
    node: Node
    started_at: float
    waiting: deque = field(default_factory=deque)
    busy: int = 0
    inbound: int = 0  # dispatched, still on the wire
    gone_at: float | None = None


class Simulation:
    """One run of one policy over one trace; `run()` returns the result."""

    def __init__(
        self,
        policy: SimPolicy,
        trace: Sequence[TraceRequest],
        *,
        clock: SimClock | None = None,
        name: str = "",
        service: ServiceModel | None = None,
        initial_workers: int | None = None,
        slots_per_node: int = 1,
        startup_s: float = 3.0,
        rtt_s: float = 0.002,
        tick_s: float = 1.0,
        aging_s: float = 10.0,
        priorities: bool = False,
        autoscale: bool = True,
        model: str = "sim",
        priority_of: Sequence[int] | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.policy = policy
        # The `max_tokens` clients send: None, each request's own output length (a perfect
        # predictor, like a trace replay); a number, that bound on every request while outputs
        # stop at the trace's length (end of text), so it predicts nothing.
        self.max_tokens = max_tokens
        self._generated: dict[str, int] = {}
        self.trace = trace
        self.name = name
        self.service = service or ServiceModel()
        self.slots = slots_per_node
        self.startup_s = startup_s
        self.rtt_s = rtt_s
        self.tick_s = tick_s
        self.autoscale = autoscale
        self.model = model
        self.priority_of = priority_of
        self.clock = clock or SimClock()
        self.clock.now = 0.0
        self.queue = PriorityQueue(aging_s=aging_s, priorities=priorities, clock=self.clock)
        self._events: list[tuple[float, int, str, object]] = []
        self._seq = itertools.count()
        self._nodes: dict[str, _SimNode] = {}
        self._node_ids = itertools.count()
        self._latencies: list[float] = []
        self._latency_by_task: dict[str, float] = {}
        self._timeline: list[tuple[float, int]] = []
        self._scale_events: list[ScaleEvent] = []
        self._outstanding = 0
        self._initial = policy.desired_workers if initial_workers is None else initial_workers

    @property
    def now(self) -> float:
        return self.clock.now

    # --- the event loop -----------------------------------------------------------------

    def _at(self, time: float, kind: str, payload: object = None) -> None:
        heapq.heappush(self._events, (time, next(self._seq), kind, payload))

    def run(self) -> SimResult:
        for _ in range(self._initial):
            self._add_node(ready_at=0.0)
        for index, request in enumerate(self.trace):
            priority = self.priority_of[index] if self.priority_of is not None else 1
            task = Task(
                id=str(index),
                model=self.model,
                prompt_tokens=request.prompt_tokens,
                max_tokens=request.generated_tokens if self.max_tokens is None else self.max_tokens,
                priority=priority,  # type: ignore[arg-type]
                arrived_at=request.offset_s,
            )
            # The output stops at its own length or at the bound, whichever comes first.
            self._generated[task.id] = min(request.generated_tokens, task.max_tokens)
            self._at(request.offset_s, "arrival", task)
        self._outstanding = len(self.trace)
        if self.autoscale:
            self._at(self.tick_s, "tick")
        while self._events:
            self.clock.now, _, kind, payload = heapq.heappop(self._events)
            getattr(self, f"_on_{kind}")(payload)
            if self._outstanding == 0 and kind != "tick":
                break
        return self._result()

    def _on_arrival(self, task: Task) -> None:
        self.policy.on_arrival(task)
        self.queue.push(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while len(self.queue):
            head = self.queue.peek()
            if head is None or not self.policy.can_dispatch(head.model):
                break
            task = self.queue.pop()
            node = self.policy.route_task(task)
            node.queued += 1  # the runtime's bookkeeping, not the policy's
            sim_node = self._nodes[node.id]
            sim_node.inbound += 1
            self._at(self.now + self.rtt_s / 2, "reach", (sim_node, task))
        self.policy.record_routed()  # as the gateway does once the requests are on their way
        self.policy.set_queue_depth(len(self.queue))

    def _on_reach(self, payload: tuple[_SimNode, Task]) -> None:
        sim_node, task = payload
        sim_node.inbound -= 1
        if sim_node.busy < self.slots:
            self._start(sim_node, task)
        else:
            sim_node.waiting.append(task)

    def _start(self, sim_node: _SimNode, task: Task) -> None:
        sim_node.busy += 1
        sim_node.node.queued -= 1
        sim_node.node.running += 1
        self.policy.on_start(task, sim_node.node)
        seconds = self.service.seconds(task.prompt_tokens, self._generated[task.id])
        self._at(self.now + seconds, "finish", (sim_node, task, seconds))

    def _on_finish(self, payload: tuple[_SimNode, Task, float]) -> None:
        sim_node, task, seconds = payload
        sim_node.busy -= 1
        sim_node.node.running -= 1
        self.policy.on_completion(task, sim_node.node, seconds, True, rtt=self.rtt_s)
        latency = self.now + self.rtt_s / 2 - task.arrived_at
        self._latencies.append(latency)
        self._latency_by_task[task.id] = latency
        self._outstanding -= 1
        if sim_node.waiting:
            self._start(sim_node, sim_node.waiting.popleft())
        elif sim_node.node.state is NodeState.DRAINING and sim_node.busy == 0 and sim_node.inbound == 0:
            self._retire(sim_node)
        self._dispatch()

    def _on_tick(self, _: object) -> None:
        self.policy.set_queue_depth(len(self.queue))
        event = self.policy.tick()
        if event is not None:
            self._scale_events.append(event)
        self._apply(self.policy.desired_workers)
        if self._outstanding > 0:
            self._at(self.now + self.tick_s, "tick")

    def _on_ready(self, sim_node: _SimNode) -> None:
        if sim_node.gone_at is None and sim_node.node.state is NodeState.STARTING:
            sim_node.node.state = NodeState.READY
            self.policy.on_node_change(sim_node.node)
            self._dispatch()

    # --- the cluster ----------------------------------------------------------------------

    def _live(self) -> list[_SimNode]:
        return [n for n in self._nodes.values() if n.gone_at is None]

    def _apply(self, desired: int) -> None:
        active = [n for n in self._live() if n.node.state in (NodeState.STARTING, NodeState.READY)]
        if desired > len(active):
            missing = desired - len(active)
            # Taking back a draining node is free; a new one takes startup_s.
            for sim_node in self._live():
                if missing and sim_node.node.state is NodeState.DRAINING:
                    sim_node.node.state = NodeState.READY
                    self.policy.on_node_change(sim_node.node)
                    missing -= 1
            for _ in range(missing):
                self._add_node(ready_at=self.now + self.startup_s)
            self._dispatch()
        elif desired < len(active):
            for node in self.policy.nodes_to_remove(len(active) - desired):
                sim_node = self._nodes[node.id]
                if node.state is NodeState.STARTING or (sim_node.busy == 0 and sim_node.inbound == 0):
                    self._retire(sim_node)
                else:
                    node.state = NodeState.DRAINING
                    self.policy.on_node_change(node)

    def _add_node(self, *, ready_at: float) -> None:
        node = Node(
            id=f"node-{next(self._node_ids)}",
            models=frozenset({self.model}),
            kind=NodeKind.SIMULATED,
            state=NodeState.READY if ready_at <= self.now else NodeState.STARTING,
            capacity=1 << 30,  # no runtime dispatch limit here: the policy's `can_dispatch` decides
            slots=self.slots,
            created_at=self.now,
        )
        sim_node = _SimNode(node, started_at=self.now)
        self._nodes[node.id] = sim_node
        self.policy.on_node_change(node)
        if node.state is NodeState.STARTING:
            self._at(ready_at, "ready", sim_node)
        self._timeline.append((self.now, len(self._live())))

    def _retire(self, sim_node: _SimNode) -> None:
        sim_node.gone_at = self.now
        sim_node.node.state = NodeState.DEAD
        self.policy.on_node_removed(sim_node.node)
        self._timeline.append((self.now, len(self._live())))

    def _result(self) -> SimResult:
        end = self.now
        worker_seconds = sum(
            (n.gone_at if n.gone_at is not None else end) - n.started_at for n in self._nodes.values()
        )
        counts = [c for _, c in self._timeline] or [0]
        return SimResult(
            name=self.name,
            latency=LatencySummary.of(self._latencies),
            completed=len(self._latencies),
            worker_seconds=worker_seconds,
            duration_s=end,
            mean_nodes=worker_seconds / end if end > 0 else 0.0,
            max_nodes=max(counts),
            scale_events=tuple(self._scale_events),
            timeline=tuple(self._timeline),
            latencies_s=tuple(self._latencies),
        )

    def latency_of(self, task_id: str) -> float | None:
        return self._latency_by_task.get(task_id)
