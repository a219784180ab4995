"""`DynamicScheduler`: forecast the load, size the worker pool, route each task to the
node that will finish it first.

Pure policy, like every scheduler here (see base.py). The runtime (or the policy
simulation, ops/bench/sim.py) owns the `Node` objects and their `queued` /
`running` counts, and tells the policy what happens: `on_node_change` /
`on_node_removed`, `on_arrival`, optionally `on_start`, `on_completion`, and the
gateway queue's depth (`set_queue_depth`). It calls `predict_load` and
`adjust_workers` (or `tick()`, both) on its control interval and applies the
returned pool size. Time comes from the injected clock. The three decisions:

- `predict_load()`: the arrival rate of the next interval from a forecaster fed
  with closed intervals (forecast.py; EWMA by default, chosen by measurement).
- `adjust_workers(load)`: nodes = load x mean service time / target utilisation,
  bounded by min..max. Up at once when the forecast would overload the pool, and
  at once *with the backlog* when tasks queue up (the panic path: a forecast cannot
  see a burst coming, a queue can). Down after a whole stable window without a
  scale-up (hysteresis: no down-then-up flip inside one window), or after a short
  release window when demand collapsed (a burst is over).
- `route_task(task)`: least expected completion time over ready nodes that serve
  the model: the node's network RTT + the work ahead of the task (each task queued
  or running there at its own estimate from task_cost.py, less what a running one
  has done) + the task's own estimate, the work scaled by the node's learned speed; with
  many nodes, the better of two random candidates (power of two choices). While the
  estimates are poor (or not learned yet) a running task counts at least its age:
  with heavy-tailed service times a task 30 s in is likely a long one.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .affinity import OutputLengthModel, PrefillBacklog, blocks_for
from .base import MONOTONIC, Clock, Node, NodeState, NoNodeAvailable, Task
from .engine_load import effective_load, has_signals, kv_pressure
from .forecast import ArrivalCounter, Forecaster, make_forecaster
from .prefix_index import PrefixIndex
from .task_cost import TaskCostModel

KV_NEARLY_FULL = 0.95  # an engine this full preempts or queues: prefer another at equal load

ROUTINGS = ("auto", "least-time", "cache-aware", "random-baseline", "round-robin-baseline")
_SPEED_SAMPLE_CAP = math.log(4.0)  # one completion moves a node's speed by at most this (log)


@dataclass(frozen=True)
class DynamicSettings:
    min_workers: int = 1
    max_workers: int = 4
    slots_per_node: int = 1  # tasks a node runs at once
    target_utilisation: float = 0.8  # size the pool for this busy share...
    scale_up_utilisation: float = 1.5  # ...but grow it on the forecast alone only past this one
    forecaster: str = "ewma"
    forecaster_params: dict = field(default_factory=lambda: {"alpha": 0.3})
    forecast_interval_s: float = 1.0
    panic_window_s: float = 3.0  # recent-rate window of the panic path (Knative: 6 s)...
    panic_min_arrivals: int = 10  # ...widened until it holds this many arrivals (at most rate_memory_s)
    rate_memory_s: float = 30.0
    drain_s: float = 10.0  # in panic, size the pool to clear the backlog within this
    panic_backlog_per_node: float = 1.0  # panic when this many tasks wait per node
    stable_window_s: float = 60.0  # scale down only on a whole window's evidence (Knative: 60 s)
    release_window_s: float = 3.0  # a collapse in demand this long releases capacity early
    release_fraction: float = 0.5  # what counts as a collapse: recommendations at most this share
    service_time_prior_s: float = 1.0  # before the first completion is seen
    node_alpha: float = 0.2  # EWMA weight of a node's speed and RTT
    task_cost: bool = True  # estimate each task's service time from its token counts (task_cost.py)
    task_cost_memory: float = 500.0  # completions the estimate mostly rests on
    mean_alpha: float = 0.01  # EWMA weight of the pool's mean service time (capacity planning)
    power_of_two_above: int = 8  # more ready candidates than this: sample two
    max_outstanding_per_slot: int | None = 1  # dispatch limit per node slot (late binding); None: unbounded
    priorities: bool = False  # `scheduler: priority-based`: the gateway queue honours priorities
    # "auto": "cache-aware" on batching nodes (slots > 1), "least-time" on one-at-a-time nodes;
    # the two "-baseline" routings exist only as old benchmark anchors (see baselines.py).
    routing: str = "auto"
    # cache-aware routing (affinity.py): the router's record of each node's prefix cache holds
    # this many tokens per node (None: the node's reported `kv_cache_tokens`, else 1M), in blocks
    # of `prefix_block_tokens`. A node's score, in prompt tokens: its prefill backlog + the new
    # prompt's tokens not cached there x (`prefill_weight` + `stall_weight` x requests there: a
    # prefill also stalls every sequence decoding on that node) + `running_weight_tokens` per
    # request there (its decode slows the batch the new one joins) + `waiting_weight_tokens`
    # per request the engine reports waiting + `kv_overflow_weight` per token its KV would exceed
    # the node's `kv_cache_tokens` by (the requests sent there, at prompt + learned output
    # length, as the router counts them). Weights measured on the Mooncake and Azure traces
    # (docs/benchmarks.md, "Scheduler on batching nodes").
    # A model load this long (seconds) means a burst is over before a node started for it can
    # serve: with load_time_s > 0 the pool keeps, as a floor, the capacity for the busiest
    # `peak_window_s` of arrivals seen in the last `peak_memory_s` (0: no floor, react only).
    load_time_s: float = 0.0
    peak_window_s: float = 10.0
    peak_memory_s: float = 600.0
    prefix_cache_tokens: int | None = None
    prefix_block_tokens: int = 512
    prefix_index_stride: int = 1  # record every n-th block only (affinity.py): less work, less precise
    running_weight_tokens: float = 1000.0
    waiting_weight_tokens: float = 0.0
    prefill_weight: float = 3.0
    stall_weight: float = 0.1
    kv_overflow_weight: float = 0.3

    def __post_init__(self) -> None:
        if self.min_workers < 0 or self.max_workers < max(1, self.min_workers):
            raise ValueError(
                f"workers must satisfy 0 <= min <= max, max >= 1 (got {self.min_workers}..{self.max_workers})"
            )
        if not 0.0 < self.target_utilisation <= 1.0:
            raise ValueError(f"target utilisation must be in (0, 1], got {self.target_utilisation}")
        if self.scale_up_utilisation < self.target_utilisation:
            raise ValueError("scale_up_utilisation must be at least target_utilisation")
        if min(self.stable_window_s, self.release_window_s, self.drain_s) <= 0:
            raise ValueError("the stable window, release window and drain time must be positive")
        if self.slots_per_node < 1:
            raise ValueError("slots_per_node must be at least 1")
        if self.routing not in ROUTINGS:
            raise ValueError(f"unknown routing {self.routing!r} (choose from {', '.join(ROUTINGS)})")


@dataclass(frozen=True)
class ScaleEvent:
    """One change of the desired pool size, with what it was based on (one log line each)."""

    at: float
    previous: int
    desired: int
    reason: str  # up: "panic" or "forecast"; down: "stable-window" or "release"
    predicted_load: float  # requests/s the forecaster expects
    recent_rate: float  # requests/s over the panic window
    backlog: int  # tasks waiting (gateway queue + node queues)
    service_time_s: float  # the pool's mean service time used
    actual_workers: int  # nodes starting or ready when decided

    @property
    def direction(self) -> str:
        return "up" if self.desired > self.previous else "down"

    def log_fields(self) -> dict:
        return {
            "event": "scale",
            "direction": self.direction,
            "from": self.previous,
            "to": self.desired,
            "reason": self.reason,
            "predicted_load": round(self.predicted_load, 3),
            "recent_rate": round(self.recent_rate, 3),
            "backlog": self.backlog,
            "service_time_s": round(self.service_time_s, 4),
            "actual_workers": self.actual_workers,
        }


class DynamicScheduler:
    """The dynamic policy; see the module docstring."""

    def __init__(
        self,
        settings: DynamicSettings | None = None,
        *,
        clock: Clock = MONOTONIC,
        rng: random.Random | None = None,
        forecaster: Forecaster | None = None,
    ) -> None:
        self.settings = s = settings or DynamicSettings()
        self._clock = clock
        self._rng = rng or random.Random()
        self._forecaster = forecaster or make_forecaster(s.forecaster, **s.forecaster_params)
        window = max(s.panic_window_s, s.forecast_interval_s, s.rate_memory_s)
        self._arrivals = ArrivalCounter(s.forecast_interval_s, window_s=window, clock=clock)
        self.nodes: dict[str, Node] = {}
        self.mean_service_s = s.service_time_prior_s
        self._seen_service = False
        self._mean_log_speed = 0.0  # the nodes' mean log(actual / expected): speeds are relative to it
        self.task_cost = TaskCostModel(memory=s.task_cost_memory)
        self.gateway_queue = 0
        # Observable state (the runtime exports these as metrics).
        self.predicted_load = 0.0
        self.recent_rate = 0.0
        self.backlog = 0
        self.desired_workers = s.min_workers
        self.panic = False
        self.scale_events = {"up": 0, "down": 0}
        self.events: deque[ScaleEvent] = deque(maxlen=256)
        self.listeners: list[Callable[[ScaleEvent], None]] = []
        self._history: deque[tuple[float, int, int]] = deque()  # (time, raw, forecast-only) recommendations
        self._last_up = -math.inf
        self._changes = 0
        self._recent_need = 0.0
        self._rr_last = -math.inf  # round-robin-baseline: the creation time of the last node chosen
        self.prefix_index = PrefixIndex(s.prefix_index_stride)
        # (node, prefix hashes, capacity in blocks) routed but not yet in the prefix index:
        # `record_routed` adds them once the request is on its way (see there).
        self._unrecorded: list[tuple[str, tuple[int, ...], int, float]] = []  # node, hashes, capacity, weight
        self._kv_tokens: dict[str, int] = {}  # node -> KV tokens its requests will hold (estimated)
        self._kv_of: dict[str, tuple[str, int]] = {}  # task -> (node, its estimate)
        self._rates: deque[float] = deque(maxlen=max(1, int(s.peak_memory_s / s.forecast_interval_s)))
        self.prefill_backlog = PrefillBacklog()
        self.output_lengths = OutputLengthModel()

    @classmethod
    def from_config(cls, config, *, clock: Clock = MONOTONIC, **overrides) -> DynamicScheduler:
        """The policy for a loaded `Config`: `workers.min..max`, node concurrency, `autoscale`,
        priorities on for `scheduler: priority-based`. Bad values are a `ConfigError`."""
        from ...errors import ConfigError
        from ..prefix import BLOCK_TOKENS

        workers, auto = config.workers, config.autoscale
        params = {} if auto.forecaster == "last-value" else {"alpha": auto.forecast_alpha}
        fixed = workers.count  # a fixed pool: the policy routes but never resizes
        try:
            settings = DynamicSettings(
                min_workers=workers.min if fixed is None else fixed,
                max_workers=workers.max if fixed is None else max(1, fixed),
                # A worker node runs one request at a time (one model thread; `workers.concurrency`
                # is how many it accepts); each node's own `slots` overrides this.
                slots_per_node=1,
                routing=workers.routing,
                target_utilisation=auto.target_utilisation,
                scale_up_utilisation=auto.scale_up_utilisation,
                stable_window_s=float(auto.stable_window),
                release_window_s=float(auto.release_window),
                drain_s=float(auto.drain_time),
                forecaster=auto.forecaster,
                forecaster_params=params,
                priorities=config.scheduler == "priority-based",
                prefix_block_tokens=BLOCK_TOKENS,  # the gateway's prompt blocks (runtime/prefix.py)
                **overrides,
            )
            make_forecaster(settings.forecaster, **settings.forecaster_params)
        except ValueError as exc:
            raise ConfigError(str(exc), file=config.source, field="autoscale / workers") from None
        return cls(settings, clock=clock)

    # --- the node registry (the runtime owns the nodes and tells the policy) -------

    def on_node_change(self, node: Node) -> None:
        """`node` was added or its state changed."""
        self.nodes[node.id] = node

    def on_node_removed(self, node: Node) -> None:
        self.remove_node(node.id)

    def add_node(self, node: Node) -> Node:
        self.on_node_change(node)
        return node

    def remove_node(self, node_id: str) -> Node | None:
        self.record_routed()  # before the node's record goes, not after (it would come back)
        node = self.nodes.pop(node_id, None)
        self.prefix_index.remove_node(node_id)
        self.prefill_backlog.remove_node(node_id)
        self._kv_tokens.pop(node_id, None)
        self._update_mean_speed()
        return node

    @property
    def actual_workers(self) -> int:
        """Nodes that are, or will shortly be, serving (starting or ready)."""
        return sum(1 for n in self.nodes.values() if n.state in (NodeState.STARTING, NodeState.READY))

    def nodes_to_remove(self, count: int) -> list[Node]:
        """Which nodes to drain to shrink by `count`: starting ones first, then the least busy."""
        active = [n for n in self.nodes.values() if n.state in (NodeState.STARTING, NodeState.READY)]
        active.sort(key=lambda n: (n.state is NodeState.READY, n.queued + n.running, n.id))
        return active[: max(0, count)]

    # --- observations -------------------------------------------------------------

    def on_arrival(self, task: Task | None = None, *, count: int = 1) -> None:
        """A task was accepted (before it is queued)."""
        self._arrivals.add(count)

    def set_queue_depth(self, depth: int) -> None:
        """Tasks waiting in the gateway's queue (not yet routed)."""
        self.gateway_queue = max(0, depth)

    def on_start(self, task: Task, node: Node) -> None:
        """`task` started running on `node` (optional: without it, a task's age counts from
        its dispatch, or, on a node that queues, from the end of the task it waited behind)."""
        times = _inflight(node).get(task.id)
        if times is not None:
            times[1] = self._clock()

    def on_first_token(self, task: Task, node: Node) -> None:
        """`task`'s first token came from `node` (optional: without it, a task's prefill counts
        as pending until it ends)."""
        self.prefill_backlog.done(task.id)

    def on_completion(
        self,
        task: Task,
        node: Node,
        service_time: float,
        ok: bool,
        *,
        rtt: float | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """`node` is done with `task` after `service_time` seconds. ok=False: no whole answer
        (the node failed, the request was refused, cancelled or abandoned): learn nothing from it.
        `output_tokens`: how many tokens it generated (the response's usage), where known."""
        self.prefill_backlog.done(task.id)
        held = self._kv_of.pop(task.id, None)
        if held is not None and held[0] in self._kv_tokens:
            self._kv_tokens[held[0]] -= held[1]
        if ok and output_tokens is not None and output_tokens > 0:
            self.output_lengths.observe(task.prompt_tokens, output_tokens)
        inflight = _inflight(node)
        order = list(inflight)
        if inflight.pop(task.id, None) is not None:
            # A node that queues what it cannot run yet serves its queue in order: when a running
            # task ends, the oldest waiting one starts now. Without this, when the runtime cannot
            # see starts, a task's age would count its wait in the node's queue too.
            slots = self._slots(node)
            if order.index(task.id) < slots < len(order):
                times = inflight.get(order[slots])
                if times is not None and times[1] is None:
                    times[1] = self._clock()
        if ok and service_time >= 0:
            self._learn_service(task, node, service_time)
        if rtt is not None and rtt >= 0:
            a = self.settings.node_alpha
            node.rtt_ewma = rtt if node.rtt_ewma == 0.0 else node.rtt_ewma + a * (rtt - node.rtt_ewma)

    def _learn_service(self, task: Task, node: Node, service_s: float) -> None:
        s = self.settings
        # A node's speed is how much longer than expected its tasks take, tracked in log space
        # (a geometric mean) relative to the other nodes': one long task of a heavy-tailed mix
        # must not make a node look slow, and a node that got the long tasks is not slow either.
        expected = self.task_cost.estimate(task) if s.task_cost else None
        if expected is None and self._seen_service:
            expected = self.mean_service_s
        speed = self._speed(node)  # what the estimate for this node was, before this sample
        if expected is not None:
            # Capped: one completion far off its estimate (a stop at end of text, a stall) is
            # evidence about that request more than about the node.
            sample = math.log(max(service_s, 1e-6) / expected)
            sample = max(-_SPEED_SAMPLE_CAP, min(_SPEED_SAMPLE_CAP, sample))
            node.extra["speed_samples"] = n = node.extra.get("speed_samples", 0) + 1
            node.extra["log_speed"] = _average(node.extra.get("log_speed"), sample, s.node_alpha, n)
            self._update_mean_speed()
        if s.task_cost:
            self.task_cost.observe(task, service_s, speed=speed)
        # Capacity planning needs the arithmetic mean: the pool must absorb the long tasks too.
        if not self._seen_service:
            self.mean_service_s, self._seen_service = service_s, True
        else:
            self.mean_service_s += s.mean_alpha * (service_s - self.mean_service_s)
        node.service_time_ewma = self.node_service_s(node)

    # --- the Scheduler protocol ---------------------------------------------------------

    def predict_load(self) -> float:
        for rate in self._arrivals.close():
            self._forecaster.update(rate)
            self._rates.append(rate)
        self.predicted_load = self._forecaster.forecast(1)
        return self.predicted_load

    def adjust_workers(self, target_load: float) -> int:
        """Decide the pool size for `target_load` (tasks/s); returns it (also `desired_workers`)."""
        s = self.settings
        now = self._clock()
        service = max(self.mean_service_s, 1e-6)
        per_node = s.target_utilisation * s.slots_per_node
        current = self.desired_workers

        self.recent_rate = self._arrivals.rate(s.panic_window_s, min_events=s.panic_min_arrivals)
        self._recent_need = self.recent_rate * service / per_node
        self.backlog = self.gateway_queue + sum(
            max(0, n.queued + n.running - self._slots(n)) for n in self.nodes.values() if n.healthy
        )
        forecast_need = math.ceil(target_load * service / per_node - 1e-9)
        if s.load_time_s > 0:  # the recent peak as a floor: a node started for it comes too late
            forecast_need = max(forecast_need, math.ceil(self._recent_peak() * service / per_node - 1e-9))
        wanted, reason = forecast_need, "forecast"
        # A deadband against noise: the forecast alone grows the pool only when it would
        # load the current pool past `scale_up_utilisation` (then to the target size);
        # scale-ups are immediate and scale-downs slow, so acting on every noisy
        # uptick would ratchet the pool up.
        pool_slots = max(1, current) * s.slots_per_node
        if forecast_need > current and target_load * service / pool_slots <= s.scale_up_utilisation:
            wanted = current
        # The panic path: when tasks queue up (at least `panic_backlog_per_node` waiting
        # per node), size the pool from the last seconds' arrivals plus draining the
        # backlog, without waiting for the forecast: a forecast cannot see a burst
        # coming, a queue can. Without a queue the recent rate alone is too noisy to act on.
        self.panic = self.backlog >= max(1, s.panic_backlog_per_node * max(1, self.actual_workers))
        if self.panic:
            drain_need = self.backlog * service / s.drain_s
            panic_need = math.ceil((self.recent_rate * service + drain_need) / per_node - 1e-9)
            if panic_need > wanted:
                wanted, reason = panic_need, "panic"
        raw = self._bounded(wanted)
        self._history.append((now, raw, self._bounded(forecast_need)))
        while self._history and self._history[0][0] <= now - s.stable_window_s:
            self._history.popleft()

        if raw > current:
            self._last_up = now
            self._change(now, current, raw, reason)
        elif raw < current:
            down = self._scale_down_target(now, current, raw)
            if down is not None:
                self._change(now, current, *down)
        return self.desired_workers

    def _recent_peak(self) -> float:
        """The highest mean arrival rate over `peak_window_s` in the rates kept."""
        width = max(1, int(self.settings.peak_window_s / self.settings.forecast_interval_s))
        rates = list(self._rates)
        if len(rates) < width:
            return sum(rates) / width
        total = sum(rates[:width])
        best = total
        for i in range(width, len(rates)):
            total += rates[i] - rates[i - width]
            best = max(best, total)
        return best / width

    def _bounded(self, workers: int) -> int:
        return min(self.settings.max_workers, max(self.settings.min_workers, workers))

    def _scale_down_target(self, now: float, current: int, raw: int) -> tuple[int, str] | None:
        """Where to scale down to and why, if the evidence allows; None to hold.

        A trim needs a whole stable window since the last scale-up, and goes to the
        highest forecast-based recommendation of that window (never below what is
        asked now): the forecast is the smooth estimate, so steady noise cannot flip
        the pool down and up. A collapse (every recommendation of the short release
        window at most `release_fraction` of the pool: a burst is over) may give the
        capacity back after that short window: holding a burst-sized pool for a
        minute after every burst costs more worker-seconds than it saves latency.
        """
        s = self.settings
        allowed: list[tuple[int, str]] = []
        since_up = now - self._last_up
        if since_up >= s.stable_window_s:
            allowed.append((max(raw, max(f for _, _, f in self._history)), "stable-window"))
        if since_up >= s.release_window_s:
            recent_max = max(r for t, r, _ in self._history if t > now - s.release_window_s)
            # The recent rate (over at least `panic_min_arrivals` arrivals) must agree: at low
            # rates a one-second forecast dips on noise alone, and a release on noise is a flap.
            recent_need = self._bounded(math.ceil(self._recent_need - 1e-9))
            if max(recent_max, recent_need) <= current * s.release_fraction:
                allowed.append((max(recent_max, recent_need), "release"))
        best = min(allowed, default=(current, ""))
        return best if best[0] < current else None

    def route_task(self, task: Task) -> Node:
        """The ready node expected to finish `task` first (the caller then counts it there).

        Only nodes the runtime may send more to (`free_slots`) are candidates.
        """
        routing = self.settings.routing
        if routing == "cache-aware" or routing == "auto":
            best = self._route_cache_aware(task, auto=routing == "auto")
            if best is not None:
                # Batching nodes run everything at once: the least-time bookkeeping is not needed.
                _inflight(best)[task.id] = [self._clock(), None, self.mean_service_s]
                return best
        # healthy, serves the model, has a free slot (inline: this runs on every request)
        ready, model = NodeState.READY, task.model
        candidates = [
            n
            for n in self.nodes.values()
            if n.state is ready and model in n.models and n.running < n.capacity
        ]
        if not candidates:
            raise NoNodeAvailable(task.model)
        if routing == "random-baseline":
            best = self._rng.choice(candidates)
        elif routing == "round-robin-baseline":
            ordered = sorted(candidates, key=lambda n: n.created_at)
            after = [n for n in ordered if n.created_at > self._rr_last]
            best = (after or ordered)[0]
            self._rr_last = best.created_at
        else:
            with_room = [n for n in candidates if self._has_room(n)]
            pool = with_room or candidates
            if len(pool) > self.settings.power_of_two_above:
                pool = self._rng.sample(pool, 2)
            best = min(pool, key=self._route_key(pool, task))
        _inflight(best)[task.id] = [self._clock(), None, self._task_seconds(task)]
        return best

    def _route_cache_aware(self, task: Task, *, auto: bool) -> Node | None:
        """The node where `task`'s first token comes soonest, in prefill tokens: the prefill
        backlog it joins there plus its own prompt tokens not in that node's prefix cache (as
        far as the router's record knows), plus a charge per request running there. A cached
        prefix pulls a conversation back to its node until the queue there costs more than
        prefilling elsewhere: affinity bounded by load, on one scale. Nodes under the dispatch
        limit first. None when `auto` and the nodes do not batch (then least-time routes).

        One pass over the nodes (it runs on every request). The blocks the task will populate
        on the chosen node join the prefix index in `record_routed`, not here."""
        s = self.settings
        if self._unrecorded:
            self.record_routed()  # every earlier decision counts in this one
        hashes = task.prefix_hashes
        matched = self.prefix_index.match(hashes) if hashes else None
        prompt = max(0, task.prompt_tokens)
        per_block = prompt / len(hashes) if hashes else 0.0
        backlog = self.prefill_backlog.tokens.get
        depth = matched.get if matched else None
        kv = self._kv_tokens.get
        need = prompt + int(self.output_lengths.predict(prompt))  # KV it will hold at its end
        prefill_w, stall_w, running_w = s.prefill_weight, s.stall_weight, s.running_weight_tokens
        waiting_w, kv_w = s.waiting_weight_tokens, s.kv_overflow_weight
        limit, default_slots = s.max_outstanding_per_slot, s.slots_per_node
        ready, model = NodeState.READY, task.model
        now = self._clock()
        best = full = None
        best_score = full_score = math.inf
        best_uncached = full_uncached = prompt
        for node in self.nodes.values():
            running, capacity = node.running, node.capacity
            if node.state is not ready or running >= capacity or model not in node.models:
                continue
            if auto:
                if (node.slots or capacity or default_slots) <= 1:
                    return None
                auto = False  # the first candidate decides, as for least-time
            node_id = node.id
            uncached = prompt - per_block * depth(node_id, 0) if depth else prompt
            # The gateway's own in-flight count, or an engine's report when it says more
            # (other clients share the engine).
            load = running + node.queued if node.signals_at is None else effective_load(node, now)
            score = backlog(node_id, 0) + uncached * (prefill_w + stall_w * load) + running_w * load
            if node.engine_waiting:
                score += waiting_w * node.engine_waiting
            kv_capacity = node.kv_cache_tokens
            if kv_capacity:
                # Past the KV cache the engine makes it wait for sequences to finish.
                over = kv(node_id, 0) + need - kv_capacity
                if over > 0:
                    score += kv_w * over
            if limit is None or load < limit * (node.slots or capacity or default_slots):
                if score < best_score:
                    best, best_score, best_uncached = node, score, uncached
            elif score < full_score:
                full, full_score, full_uncached = node, score, uncached
        if best is None:
            best, best_uncached = full, full_uncached
        if best is None:
            raise NoNodeAvailable(task.model)
        self.prefill_backlog.add(task.id, best.id, int(best_uncached))
        self._kv_tokens[best.id] = kv(best.id, 0) + need
        self._kv_of[task.id] = (best.id, need)
        if hashes:
            size = s.prefix_cache_tokens or best.kv_cache_tokens or 1_000_000
            # A prompt longer than its hashes reach (the gateway hashes at most MAX_BLOCKS) fills
            # the engine's cache with all its tokens: its blocks weigh what they stand for.
            weight = max(1.0, per_block / s.prefix_block_tokens)
            self._unrecorded.append((best.id, hashes, blocks_for(size, s.prefix_block_tokens), weight))
        return best

    def record_routed(self) -> None:
        """Add the prompt blocks of the tasks routed since the last call to the prefix index
        (they will be in the chosen node's cache). The gateway calls it once the requests are
        on their way, so that a request does not wait for the bookkeeping of its own decision;
        it is the same work on the same thread (benchmarks/bench_scheduler_batching.py times
        it beside the decision). `route_task` calls it first when it was not, so a decision
        always sees every earlier one, as if it had been recorded at once."""
        pending, self._unrecorded = self._unrecorded, []
        insert = self.prefix_index.insert
        for node_id, hashes, capacity_blocks, weight in pending:
            insert(node_id, hashes, capacity_blocks, block_weight=weight)

    # --- helpers ----------------------------------------------------------------------------

    def _route_key(self, pool: list[Node], task: Task):
        """How route_task orders candidates: least expected completion time; for engine nodes that
        all report their own load (vLLM, SGLang: they batch by themselves), their reported load
        (plus what was sent since the report) first, a nearly full KV cache next."""
        now = self._clock()
        if all(has_signals(n, now) for n in pool):
            return lambda n: (
                effective_load(n, now),
                kv_pressure(n, now) >= KV_NEARLY_FULL,
                self.expected_completion_s(n, task),
                self._rng.random(),
            )
        return lambda n: (self.expected_completion_s(n, task), self._rng.random())

    def tick(self) -> ScaleEvent | None:
        """One control interval: forecast, then size the pool. Returns the change, if any."""
        before = self._changes
        self.adjust_workers(self.predict_load())
        return self.events[-1] if self._changes > before else None

    def can_dispatch(self, model: str) -> bool:
        """Whether a ready node serving `model` has room under the dispatch limit.

        The gateway keeps tasks in its (priority) queue while this is false, so the
        priorities decide the order instead of the nodes' FIFO queues.
        """
        return any(n.healthy and n.serves(model) and self._has_room(n) for n in self.nodes.values())

    def _update_mean_speed(self) -> None:
        logs = [n.extra["log_speed"] for n in self.nodes.values() if "log_speed" in n.extra]
        self._mean_log_speed = sum(logs) / len(logs) if logs else 0.0

    def _speed(self, node: Node) -> float:
        """How much longer than the average node `node` takes for the same task (1.0: average,
        and a node not measured yet). Relative to the nodes' mean, so what all nodes share (the
        estimates' bias, their switch from the pool's mean to per-task estimates) cancels."""
        log_node = node.extra.get("log_speed")
        return 1.0 if log_node is None else math.exp(log_node - self._mean_log_speed)

    def _task_seconds(self, task: Task) -> float:
        """`task`'s expected service time on an average node: its estimate, else the pool's mean."""
        estimate = self.task_cost.estimate(task) if self.settings.task_cost else None
        return self.mean_service_s if estimate is None else estimate

    def task_estimate_error(self) -> float:
        """The `autoglm_scheduler_task_estimate_error` gauge: 1 until it has estimates."""
        return self._estimate_doubt()

    def _estimate_doubt(self) -> float:
        """How far off task estimates are (0: exact .. 1: no better than not knowing)."""
        if not self.settings.task_cost or not self.task_cost.ready:
            return 1.0
        return self.task_cost.relative_error

    def node_service_s(self, node: Node) -> float:
        """The mean service time on `node`: the pool's mean, scaled by the node's relative speed."""
        return self.mean_service_s * self._speed(node)

    def expected_completion_s(self, node: Node, task: Task | None = None) -> float:
        """When `task` (None: a task of average size) sent to `node` now would be done: RTT +
        the wait for a slot + its own service.

        The wait counts each task the policy sent there at its estimate. A running task needs
        its estimate less its age; one past its estimate was underestimated, and is expected to
        need about as much again as it overran; and while estimates are poor (`doubt` near 1)
        it needs at least its age: with heavy-tailed service times the expected remaining time
        grows with the time spent (a task 30 s in is likely a long one).
        """
        slots = self._slots(node)
        speed = self._speed(node)
        own = (self.mean_service_s if task is None else self._task_seconds(task)) * speed
        outstanding = node.queued + node.running
        if outstanding < slots:
            return node.rtt_ewma + own
        now, doubt = self._clock(), self._estimate_doubt()
        # The oldest tasks the policy sent there (first in, in order) are the ones running; a
        # task's age counts from its start where known, else from its dispatch.
        known = list(_inflight(node).values())[:outstanding]
        work = 0.0
        for index, (sent, started, estimate) in enumerate(known):
            seconds = estimate * speed
            if index < slots:
                age = now - (started if started is not None else sent)
                work += max(seconds - age, age - seconds, doubt * age)
            else:
                work += seconds
        work += self.node_service_s(node) * (outstanding - len(known))  # not sent by this policy
        return node.rtt_ewma + work / slots + own

    def _slots(self, node: Node) -> int:
        return node.slots or node.capacity or self.settings.slots_per_node

    def _has_room(self, node: Node) -> bool:
        limit = self.settings.max_outstanding_per_slot
        return limit is None or node.queued + node.running < limit * self._slots(node)

    def _change(self, now: float, previous: int, desired: int, reason: str) -> None:
        self.desired_workers = desired
        event = ScaleEvent(
            at=now,
            previous=previous,
            desired=desired,
            reason=reason,
            predicted_load=self.predicted_load,
            recent_rate=self.recent_rate,
            backlog=self.backlog,
            service_time_s=self.mean_service_s,
            actual_workers=self.actual_workers,
        )
        self.scale_events[event.direction] += 1
        self._changes += 1
        self.events.append(event)
        for listener in self.listeners:
            listener(event)


def _average(mean: float | None, sample: float, alpha: float, n: int) -> float:
    """The EWMA after the `n`th sample, starting as a plain mean (weight max(alpha, 1/n)): the
    first samples, taken while the estimates were still rough, must not linger as a start value."""
    if mean is None:
        return sample
    return mean + max(alpha, 1.0 / n) * (sample - mean)


def _inflight(node: Node) -> dict[str, list]:
    """The node's in-flight tasks: task id -> [dispatched at, started at or None, estimate s]."""
    return node.extra.setdefault("inflight", {})
