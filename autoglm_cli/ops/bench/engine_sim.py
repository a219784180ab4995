"""A discrete-event simulation of a fleet of batching LLM engines, for `autoglm bench --simulate`
and the scheduler benchmarks: what decides LLM latency, in a second or so per simulated hour.

Each node behaves like a continuous-batching engine (vLLM, SGLang, the runtime's own
batching backend):

- a request that reaches a node waits until the batch has room: at most `max_batch`
  sequences, and the KV cache (`kv_cache_tokens`) holds each admitted request's prompt
  plus its output (reserved at admission: the simulation's simplification of an engine
  that pre-empts when it runs out);
- admitted requests are prefilled together, prefill first (decoding pauses meanwhile):
  `prefill_base_s + prefill_per_token_s x` the prompt tokens *not* in the node's prefix
  cache. The prefix cache is an LRU of `block_tokens` blocks (`prefix_cache_tokens` in
  all); a prompt's leading blocks found there are free; its blocks enter it at prefill;
- the first token comes at the end of the prefill; then every decode step yields one
  token per running sequence and takes `step_base_s + step_per_seq_s x batch +
  step_per_kv_token_s x` the KV tokens of the batch (attention reads them all);
- a new node serves `load_s` after it is asked for (the model load).

Between two events a node's batch does not change, so the simulation keeps one
"tokens decoded per sequence" counter per node and one event for its next finishing
sequence: each request costs a few heap operations, not one per token.

The router only sees what a real one can: its own counts of requests sent and not
finished (`node.running`), and the engine's own report (`engine_running`,
`engine_waiting`, `kv_cache_usage`), refreshed every `poll_s` as a metrics scrape
would. Output lengths come from the trace and are known to nobody before the end; the
clients' `max_tokens` is a constant (4096 by default) or absent.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...runtime.engines.signals import EngineSignals
from ...runtime.engines.signals import apply as apply_signals
from ...runtime.scheduler.base import Node, NodeKind, NodeState, NoNodeAvailable, Task
from ...runtime.scheduler.queue import PriorityQueue
from .stats import LatencySummary
from .trace import MOONCAKE_BLOCK_TOKENS, TraceRequest


@dataclass(frozen=True)
class EngineModel:
    """One simulated node's costs. Defaults: an 8B model on one H100-class GPU under vLLM
    (see docs/benchmarks.md, "Scheduler on batching nodes", for where the figures come from)."""

    step_base_s: float = 0.008  # one decode step, batch of one
    step_per_seq_s: float = 0.00015  # ...plus this per sequence in the batch
    step_per_kv_token_s: float = 4e-8  # ...plus this per KV token of the batch (attention reads)
    prefill_base_s: float = 0.010
    prefill_per_token_s: float = 1e-4  # 10k prompt tokens/s
    max_batch: int = 64
    kv_cache_tokens: int = 400_000
    prefix_cache_tokens: int = 400_000  # the LRU prefix cache's size
    block_tokens: int = MOONCAKE_BLOCK_TOKENS
    max_prefill_tokens: int = 16_384  # tokens one prefill batch takes (at least one request)

    def __post_init__(self) -> None:
        if min(self.max_batch, self.kv_cache_tokens, self.block_tokens, self.max_prefill_tokens) < 1:
            raise ValueError("max_batch, kv_cache_tokens, block_tokens and max_prefill_tokens must be >= 1")
        if min(self.step_base_s, self.prefill_per_token_s) <= 0 or self.prefix_cache_tokens < 0:
            raise ValueError("step and prefill costs must be positive, the prefix cache not negative")

    def step_s(self, batch: int, kv_tokens: int) -> float:
        return self.step_base_s + self.step_per_seq_s * batch + self.step_per_kv_token_s * kv_tokens


@dataclass(frozen=True)
class RequestRecord:
    arrived_s: float
    ttft_s: float
    e2e_s: float
    tpot_s: float | None  # None for a one-token answer
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    node: str = ""


@dataclass(frozen=True)
class EngineSimResult:
    name: str
    records: tuple[RequestRecord, ...] = field(repr=False)
    node_seconds: float
    duration_s: float
    max_nodes: int
    prompt_tokens: int
    cached_tokens: int
    timeline: tuple[tuple[float, int], ...] = field(default=(), repr=False)

    @property
    def prefix_hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def ttft(self) -> LatencySummary:
        return LatencySummary.of([r.ttft_s for r in self.records])

    def tpot(self) -> LatencySummary:
        return LatencySummary.of([r.tpot_s for r in self.records if r.tpot_s is not None])

    def e2e(self) -> LatencySummary:
        return LatencySummary.of([r.e2e_s for r in self.records])

    def goodput(self, slo_ttft_s: float, slo_tpot_s: float) -> float:
        """The share of requests that met both SLOs (a one-token answer has no TPOT to miss)."""
        if not self.records:
            return 0.0
        good = sum(
            1 for r in self.records if r.ttft_s <= slo_ttft_s and (r.tpot_s is None or r.tpot_s <= slo_tpot_s)
        )
        return good / len(self.records)


class _Seq:
    __slots__ = ("task", "output", "dispatched", "first_at", "kv", "cached", "hashes")

    def __init__(self, task: Task, output: int, dispatched: float, hashes: tuple[int, ...]) -> None:
        self.task = task
        self.output = output
        self.dispatched = dispatched
        self.first_at = 0.0
        self.kv = task.prompt_tokens + output
        self.cached = 0
        self.hashes = hashes


class _EngineNode:
    def __init__(self, node: Node, started_at: float, cache_blocks: int) -> None:
        self.node = node
        self.started_at = started_at
        self.gone_at: float | None = None
        self.waiting: deque[_Seq] = deque()
        self.prefilling: list[_Seq] = []
        self.running: list[tuple[float, int, _Seq]] = []  # heap of (finish counter, seq no, seq)
        self.decoded = 0.0  # tokens decoded per running sequence so far (the shared counter)
        self.decoded_at = 0.0
        self.step_s = 0.0
        self.kv_used = 0
        self.kv_running = 0  # KV tokens of the running batch (prompt + output, reserved)
        self.version = 0
        self.inbound = 0
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.cache_blocks = cache_blocks

    @property
    def idle(self) -> bool:
        return not (self.waiting or self.prefilling or self.running or self.inbound)


def _accepts(method: Callable, keyword: str) -> bool:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class EngineSimulation:
    """One run of one policy over one trace on batching nodes; `run()` returns the result.

    `policy` is any scheduler from registry.make_policy (the runtime's objects). With
    `autoscale`, the pool follows `scaler()` (default: the policy's own `tick()` /
    `desired_workers`) between `min_nodes` and `max_nodes`; without, it is `nodes` fixed.
    """

    def __init__(
        self,
        policy,
        trace: Sequence[TraceRequest],
        *,
        clock,
        engine: EngineModel | None = None,
        nodes: int = 4,
        autoscale: bool = False,
        min_nodes: int = 1,
        max_nodes: int = 8,
        scaler: Callable[[], int] | None = None,
        load_s: float = 60.0,
        rtt_s: float = 0.002,
        poll_s: float = 0.5,
        tick_s: float = 1.0,
        max_tokens: int | None = 4096,
        model: str = "sim",
        name: str = "",
    ) -> None:
        self.policy = policy
        self.trace = trace
        self.clock = clock
        self.clock.now = 0.0
        self.engine = engine or EngineModel()
        self.initial = nodes
        self.autoscale = autoscale
        self.min_nodes, self.max_nodes = min_nodes, max_nodes
        self.scaler = scaler
        self.load_s = load_s
        self.rtt_s = rtt_s
        self.poll_s = poll_s
        self.tick_s = tick_s
        self.max_tokens = max_tokens
        self.model = model
        self.name = name or getattr(policy, "name", type(policy).__name__)
        self.queue = PriorityQueue(priorities=False, clock=clock)
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._nodes: dict[str, _EngineNode] = {}
        self._node_ids = itertools.count()
        self._records: list[RequestRecord] = []
        self._outputs: dict[str, int] = {}
        self._timeline: list[tuple[float, int]] = []
        self._outstanding = 0
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self._live = 0
        self._can_dispatch = getattr(policy, "can_dispatch", None)
        self._set_depth = getattr(policy, "set_queue_depth", None)
        self._on_first_token = getattr(policy, "on_first_token", None)
        self._completion_output = _accepts(policy.on_completion, "output_tokens")
        self._completion_rtt = _accepts(policy.on_completion, "rtt")
        self._handlers = (
            self._on_arrival,
            self._on_reach,
            self._on_prefilled,
            self._on_decoded,
            self._on_ready,
            self._on_poll,
            self._on_tick,
        )

    # event kinds, indexes into _handlers
    ARRIVAL, REACH, PREFILLED, DECODED, READY, POLL, TICK = range(7)

    @property
    def now(self) -> float:
        return self.clock.now

    def _at(self, time: float, kind: int, payload: object = None) -> None:
        heapq.heappush(self._events, (time, next(self._seq), kind, payload))

    def run(self) -> EngineSimResult:
        for _ in range(self.initial):
            self._add_node(ready_at=0.0)
        for index, request in enumerate(self.trace):
            task = Task(
                id=str(index),
                model=self.model,
                prompt_tokens=request.prompt_tokens,
                max_tokens=self.max_tokens if self.max_tokens is not None else 0,
                arrived_at=request.offset_s,
                prefix_hashes=request.prefix_hashes,
            )
            output = request.generated_tokens
            if self.max_tokens is not None:
                output = min(output, self.max_tokens)
            self._at(request.offset_s, self.ARRIVAL, (task, max(1, output)))
        self._outstanding = len(self.trace)
        self._at(0.0, self.POLL)
        if self.autoscale:
            self._at(self.tick_s, self.TICK)
        events, handlers, clock = self._events, self._handlers, self.clock
        while events and self._outstanding > 0:
            clock.now, _, kind, payload = heapq.heappop(events)
            handlers[kind](payload)
        return self._result()

    # --- the gateway ----------------------------------------------------------------

    def _on_arrival(self, payload: tuple[Task, int]) -> None:
        task, output = payload
        self._outputs[task.id] = output  # the truth, for the node only: no policy sees it
        self.policy.on_arrival(task)
        self.queue.push(task)
        self._dispatch()

    def _dispatch(self) -> None:
        queue = self.queue
        while len(queue):
            head = queue.peek()
            if head is None or (self._can_dispatch is not None and not self._can_dispatch(head.model)):
                break
            try:
                node = self.policy.route_task(head)
            except NoNodeAvailable:
                break
            queue.pop()
            node.running += 1  # the runtime's bookkeeping, as in service.py
            sim = self._nodes[node.id]
            sim.inbound += 1
            seq = _Seq(head, self._outputs.pop(head.id), self.now, head.prefix_hashes)
            self._at(self.now + self.rtt_s / 2, self.REACH, (sim, seq))
        self.policy.record_routed()  # as the gateway does once the requests are on their way
        if self._set_depth is not None:
            self._set_depth(len(queue))

    # --- a node -------------------------------------------------------------------------

    def _on_reach(self, payload: tuple[_EngineNode, _Seq]) -> None:
        sim, seq = payload
        sim.inbound -= 1
        sim.waiting.append(seq)
        if not sim.prefilling:
            self._admit(sim)

    def _advance(self, sim: _EngineNode) -> None:
        if sim.running and not sim.prefilling and sim.step_s > 0:
            sim.decoded += (self.now - sim.decoded_at) / sim.step_s
        sim.decoded_at = self.now

    def _admit(self, sim: _EngineNode) -> None:
        """Start a prefill of what fits (batch slots, KV cache, prefill budget), if anything."""
        engine = self.engine
        batch: list[_Seq] = []
        tokens = 0
        slots = engine.max_batch - len(sim.running)
        kv_free = engine.kv_cache_tokens - sim.kv_used
        while sim.waiting and len(batch) < slots:
            seq = sim.waiting[0]
            empty = not sim.running and not batch
            if seq.kv > kv_free and not empty:
                break
            cached = self._cached(sim, seq)
            new = seq.task.prompt_tokens - cached
            if batch and tokens + new > engine.max_prefill_tokens:
                break
            sim.waiting.popleft()
            seq.cached = cached
            batch.append(seq)
            tokens += new
            kv_free -= seq.kv
            sim.kv_used += seq.kv
        if not batch:
            return
        self._advance(sim)  # decoding pauses for the prefill
        sim.version += 1  # the pending decode event is void
        sim.prefilling = batch
        self._at(
            self.now + engine.prefill_base_s + engine.prefill_per_token_s * tokens,
            self.PREFILLED,
            sim,
        )

    def _cached(self, sim: _EngineNode, seq: _Seq) -> int:
        """Tokens of `seq`'s prompt in the node's prefix cache: its leading blocks found there."""
        cache = sim.cache
        hit = 0
        for h in seq.hashes:
            if h not in cache:
                break
            hit += 1
        return min(seq.task.prompt_tokens, hit * self.engine.block_tokens)

    def _on_prefilled(self, sim: _EngineNode) -> None:
        now = self.now
        sim.decoded_at = now
        cache, limit = sim.cache, sim.cache_blocks
        for seq in sim.prefilling:
            seq.first_at = now
            self._prompt_tokens += seq.task.prompt_tokens
            self._cached_tokens += seq.cached
            if limit:
                # Last block first: the LRU evicts a prompt from its tail, as engines do.
                for h in reversed(seq.hashes):
                    cache[h] = None
                    cache.move_to_end(h)
                while len(cache) > limit:
                    cache.popitem(last=False)
            if self._on_first_token is not None:
                self._on_first_token(seq.task, sim.node)
            if seq.output <= 1:
                self._finish(sim, seq)
            else:
                sim.kv_running += seq.kv
                heapq.heappush(sim.running, (sim.decoded + seq.output - 1, next(self._seq), seq))
        sim.prefilling = []
        self._admit(sim)
        if not sim.prefilling:
            self._schedule_decode(sim)
        self._dispatch()

    def _schedule_decode(self, sim: _EngineNode) -> None:
        sim.version += 1
        if not sim.running:
            sim.step_s = 0.0
            self._maybe_retire(sim)
            return
        sim.step_s = self.engine.step_s(len(sim.running), sim.kv_running)
        remaining = max(0.0, sim.running[0][0] - sim.decoded)
        self._at(self.now + remaining * sim.step_s, self.DECODED, (sim, sim.version))

    def _on_decoded(self, payload: tuple[_EngineNode, int]) -> None:
        sim, version = payload
        if version != sim.version:
            return
        self._advance(sim)
        running = sim.running
        while running and running[0][0] <= sim.decoded + 1e-6:
            _, _, seq = heapq.heappop(running)
            sim.kv_running -= seq.kv
            self._finish(sim, seq)
        self._admit(sim)
        if not sim.prefilling:
            self._schedule_decode(sim)
        self._dispatch()

    def _finish(self, sim: _EngineNode, seq: _Seq) -> None:
        now = self.now
        sim.kv_used -= seq.kv
        node, task = sim.node, seq.task
        node.running -= 1
        done = now + self.rtt_s / 2
        first = seq.first_at + self.rtt_s / 2
        tpot = (done - first) / (seq.output - 1) if seq.output > 1 else None
        self._records.append(
            RequestRecord(
                task.arrived_at,
                first - task.arrived_at,
                done - task.arrived_at,
                tpot,
                task.prompt_tokens,
                seq.output,
                seq.cached,
                node.id,
            )
        )
        kwargs: dict = {}
        if self._completion_rtt:
            kwargs["rtt"] = self.rtt_s
        if self._completion_output:
            kwargs["output_tokens"] = seq.output
        self.policy.on_completion(task, node, done - seq.dispatched, True, **kwargs)
        self._outstanding -= 1

    # --- signals and the control loop -------------------------------------------------------

    def _on_poll(self, _: object) -> None:
        now, kv = self.now, self.engine.kv_cache_tokens
        for sim in self._nodes.values():
            if sim.gone_at is not None or sim.node.state is not NodeState.READY:
                continue
            report = EngineSignals(len(sim.running) + len(sim.prefilling), len(sim.waiting), sim.kv_used / kv)
            apply_signals(sim.node, report, now)  # as the runtime's poller does
        self._at(now + self.poll_s, self.POLL)

    def _on_tick(self, _: object) -> None:
        if self._set_depth is not None:
            self._set_depth(len(self.queue))
        if self.scaler is not None:
            desired = self.scaler()
        else:
            tick = getattr(self.policy, "tick", None)
            if tick is not None:
                tick()
            else:
                self.policy.adjust_workers(self.policy.predict_load())
            desired = getattr(self.policy, "desired_workers", self.initial)
        self._apply(max(self.min_nodes, min(self.max_nodes, desired)))
        self._at(self.now + self.tick_s, self.TICK)

    def _on_ready(self, sim: _EngineNode) -> None:
        if sim.gone_at is None and sim.node.state is NodeState.STARTING:
            sim.node.state = NodeState.READY
            self.policy.on_node_change(sim.node)
            self._dispatch()

    # --- the fleet -------------------------------------------------------------------------

    def in_flight(self) -> int:
        """Requests in the system: waiting at the gateway or sent to a node and not finished."""
        return len(self.queue) + sum(s.node.running for s in self._nodes.values() if s.gone_at is None)

    def ready_nodes(self) -> int:
        return sum(1 for s in self._nodes.values() if s.gone_at is None and s.node.state is NodeState.READY)

    def _active(self) -> list[_EngineNode]:
        return [
            s
            for s in self._nodes.values()
            if s.gone_at is None and s.node.state in (NodeState.STARTING, NodeState.READY)
        ]

    def _apply(self, desired: int) -> None:
        active = self._active()
        if desired > len(active):
            missing = desired - len(active)
            for sim in self._nodes.values():  # taking back a draining node is free
                if missing and sim.gone_at is None and sim.node.state is NodeState.DRAINING:
                    sim.node.state = NodeState.READY
                    self.policy.on_node_change(sim.node)
                    missing -= 1
            for _ in range(missing):
                self._add_node(ready_at=self.now + self.load_s)
            self._dispatch()
        elif desired < len(active):
            remove = getattr(self.policy, "nodes_to_remove", None)
            if remove is not None:
                chosen = remove(len(active) - desired)
            else:
                order = sorted(active, key=lambda s: (s.node.state is NodeState.READY, s.node.running))
                chosen = [s.node for s in order[: len(active) - desired]]
            for node in chosen:
                sim = self._nodes[node.id]
                if node.state is NodeState.STARTING or sim.idle:
                    self._retire(sim)
                else:
                    node.state = NodeState.DRAINING
                    self.policy.on_node_change(node)

    def _maybe_retire(self, sim: _EngineNode) -> None:
        if sim.node.state is NodeState.DRAINING and sim.idle:
            self._retire(sim)

    def _add_node(self, *, ready_at: float) -> None:
        engine = self.engine
        node = Node(
            id=f"node-{next(self._node_ids)}",
            models=frozenset({self.model}),
            kind=NodeKind.SIMULATED,
            state=NodeState.READY if ready_at <= self.now else NodeState.STARTING,
            capacity=1 << 30,  # no runtime dispatch limit: the engine queues what it cannot batch
            slots=engine.max_batch,
            created_at=self.now,
            kv_cache_tokens=engine.kv_cache_tokens,
        )
        sim = _EngineNode(node, self.now, engine.prefix_cache_tokens // engine.block_tokens)
        self._nodes[node.id] = sim
        self.policy.on_node_change(node)
        if node.state is NodeState.STARTING:
            self._at(ready_at, self.READY, sim)
        self._live += 1
        self._timeline.append((self.now, self._live))

    def _retire(self, sim: _EngineNode) -> None:
        sim.gone_at = self.now
        sim.node.state = NodeState.DEAD
        self.policy.on_node_removed(sim.node)
        self._live -= 1
        self._timeline.append((self.now, self._live))

    def _result(self) -> EngineSimResult:
        end = self.now
        node_seconds = sum(
            (s.gone_at if s.gone_at is not None else end) - s.started_at for s in self._nodes.values()
        )
        return EngineSimResult(
            name=self.name,
            records=tuple(self._records),
            node_seconds=node_seconds,
            duration_s=end,
            max_nodes=max((c for _, c in self._timeline), default=0),
            prompt_tokens=self._prompt_tokens,
            cached_tokens=self._cached_tokens,
            timeline=tuple(self._timeline),
        )


def load_for(trace: Sequence[TraceRequest], engine: EngineModel, nodes: int) -> float:
    """A rough offered load of `trace` on `nodes` (1.0: busy all the time), from prefill work
    without any cache hit and decode at a batch of 16: to pick a speed-up, not a measurement."""
    if not trace:
        return 0.0
    span = max(trace[-1].offset_s, 1e-9)
    prefill = sum(engine.prefill_base_s + engine.prefill_per_token_s * r.prompt_tokens for r in trace)
    decode = sum(r.generated_tokens for r in trace) * engine.step_s(16, 16 * 4000) / 16
    return (prefill + decode) / (span * nodes) if math.isfinite(span) else 0.0
