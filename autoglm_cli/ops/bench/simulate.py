"""`autoglm bench --simulate`: a capacity planner. Replays a trace through the batching-fleet
simulation (engine_sim.py) with one scheduling policy by name and reports what a user sizes a
fleet by: TTFT, TPOT and end-to-end percentiles, goodput under the SLOs, node-seconds and the
prefix-cache hit rate. Nothing is sent anywhere; an hour of trace takes seconds."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...runtime.scheduler.dynamic import DynamicSettings
from ...runtime.scheduler.registry import POLICIES, make_policy
from .engine_sim import EngineModel, EngineSimResult, EngineSimulation
from .sim import SimClock
from .stats import LatencySummary
from .trace import load_trace, scale, trace_format


@dataclass(frozen=True)
class SimulateOptions:
    trace: Path
    policy: str = "dynamic"
    nodes: int = 4  # a fixed fleet; with autoscale, the starting size
    min_nodes: int | None = None  # both set: autoscaling between them (the dynamic policy's scaler)
    max_nodes: int | None = None
    speedup: float = 1.0
    start_s: float = 0.0
    duration_s: float | None = None
    slo_ttft_s: float = 5.0
    slo_tpot_s: float = 0.1
    max_tokens: int | None = 4096  # what every client asks for (None: absent)
    load_s: float = 60.0  # a new node's model load
    prefix_cache_tokens: int | None = None  # per node (default: the engine model's)
    seed: int = 0


@dataclass(frozen=True)
class SimulateReport:
    trace: str
    trace_format: str
    policy: str
    requests: int
    speedup: float
    nodes: int | None  # fixed fleet size, None when autoscaling
    min_nodes: int | None
    max_nodes: int | None
    ttft: LatencySummary
    tpot: LatencySummary
    e2e: LatencySummary
    slo_ttft_s: float
    slo_tpot_s: float
    goodput: float  # share of requests meeting both SLOs
    node_seconds: float
    max_nodes_used: int
    prefix_hit_rate: float  # prompt tokens served from a prefix cache / all prompt tokens
    simulated_s: float
    wall_s: float


def _check(options: SimulateOptions) -> None:
    if options.policy not in POLICIES:
        raise UsageError(
            f"unknown policy {options.policy!r}",
            remedy=f"Choose one of: {', '.join(POLICIES)}.",
        )
    if options.nodes < 1:
        raise UsageError(f"--nodes must be at least 1, got {options.nodes}")
    if (options.min_nodes is None) != (options.max_nodes is None):
        raise UsageError("give both --min-nodes and --max-nodes to autoscale, or neither")
    if options.min_nodes is not None and not 0 <= options.min_nodes <= options.max_nodes >= 1:
        raise UsageError(
            f"need 0 <= --min-nodes <= --max-nodes, max >= 1 (got {options.min_nodes}..{options.max_nodes})"
        )
    if options.min_nodes is not None and options.policy != "dynamic":
        raise UsageError(
            f"{options.policy} runs a fixed fleet: autoscaling (--min-nodes/--max-nodes) is dynamic's",
            remedy="Use --nodes N with this policy, or --policy dynamic to autoscale.",
        )
    if min(options.slo_ttft_s, options.slo_tpot_s) <= 0 or options.load_s < 0:
        raise UsageError("the SLOs must be positive and the load time not negative")


def simulate(options: SimulateOptions, *, engine: EngineModel | None = None) -> SimulateReport:
    """Run the simulation `options` describe; bad options are a UsageError (exit 2)."""
    _check(options)
    fmt = trace_format(options.trace)
    requests = scale(
        load_trace(options.trace),
        speedup=options.speedup,
        start_s=options.start_s,
        duration_s=options.duration_s,
    )
    if not requests:
        raise UsageError("no request of the trace falls in the window (check --start / --duration)")
    engine = engine or EngineModel()
    if options.prefix_cache_tokens is not None:
        from dataclasses import replace

        engine = replace(engine, prefix_cache_tokens=options.prefix_cache_tokens)
    autoscale = options.min_nodes is not None
    low = options.min_nodes if autoscale else options.nodes
    high = options.max_nodes if autoscale else options.nodes
    start = max(low, min(high, options.nodes)) if autoscale else options.nodes
    clock = SimClock()
    settings = DynamicSettings(
        min_workers=low,
        max_workers=high,
        slots_per_node=engine.max_batch,
        prefix_block_tokens=engine.block_tokens,
        prefix_cache_tokens=engine.prefix_cache_tokens,  # the operator knows the engine's cache size
    )
    policy = make_policy(options.policy, settings, clock, workers=start, rng=random.Random(options.seed))
    began = time.perf_counter()
    result: EngineSimResult = EngineSimulation(
        policy,
        requests,
        clock=clock,
        engine=engine,
        nodes=start,
        autoscale=autoscale,
        min_nodes=low,
        max_nodes=high,
        load_s=options.load_s,
        max_tokens=options.max_tokens,
        name=options.policy,
    ).run()
    return SimulateReport(
        trace=str(options.trace),
        trace_format=fmt,
        policy=options.policy,
        requests=len(result.records),
        speedup=options.speedup,
        nodes=None if autoscale else options.nodes,
        min_nodes=options.min_nodes,
        max_nodes=options.max_nodes,
        ttft=result.ttft(),
        tpot=result.tpot(),
        e2e=result.e2e(),
        slo_ttft_s=options.slo_ttft_s,
        slo_tpot_s=options.slo_tpot_s,
        goodput=result.goodput(options.slo_ttft_s, options.slo_tpot_s),
        node_seconds=result.node_seconds,
        max_nodes_used=result.max_nodes,
        prefix_hit_rate=result.prefix_hit_rate,
        simulated_s=result.duration_s,
        wall_s=time.perf_counter() - began,
    )
