"""The three scheduler goals of issue #7 as scenarios, shared by the simulation benchmark
(bench_scheduler_sim.py) and the end-to-end one (bench_scheduler_e2e.py).

1. bursty: the Azure code trace, compressed so its mean load is 0.7 of a static pool
   of STATIC_WORKERS nodes; dynamic (1..DYNAMIC_MAX) against static round robin.
2. step: Poisson arrivals whose rate steps up 4x; when is the scale-up decided, and
   does the pool flip down and up in the steady minute that follows?
3. routing: 4 fixed nodes at 0.9 load, service times heavy-tailed (the output
   lengths of the code trace); least expected completion time against random and
   round-robin routing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from autoglm_cli.ops.bench.sim import ServiceModel
from autoglm_cli.ops.bench.trace import TraceRequest, load_trace, poisson_trace, scale, span_s, step_trace

ROOT = Path(__file__).resolve().parent
CODE_TRACE = ROOT / "traces" / "AzureLLMInferenceTrace_code.csv"
CONV_TRACE = ROOT / "traces" / "AzureLLMInferenceTrace_conv.csv"

# The simulated backend's cost model: a + b x prompt tokens + c x generated tokens.
SERVICE = ServiceModel(base_s=0.05, per_prompt_token_s=0.0001, per_generated_token_s=0.02)
STATIC_WORKERS = 4
DYNAMIC_MAX = 8
BURSTY_LOAD = 0.7


@dataclass(frozen=True)
class Scenario:
    name: str
    trace: list[TraceRequest]
    speedup: float = 1.0
    note: str = ""


def bursty(
    *,
    service: ServiceModel = SERVICE,
    workers: int = STATIC_WORKERS,
    load: float = BURSTY_LOAD,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> Scenario:
    """The code trace compressed so that mean arrival rate x mean service time = load x workers.

    `start_s` (trace time) and `duration_s` (replay time) cut a window for short runs;
    the speed-up is computed on the whole trace either way, so the window keeps the
    trace's own burstiness.
    """
    full = load_trace(CODE_TRACE)
    rate = len(full) / span_s(full)
    speedup = load * workers / (rate * service.mean_seconds(full))
    trace = scale(full, speedup=speedup, start_s=start_s, duration_s=duration_s)
    return Scenario(
        "bursty", trace, speedup, f"code trace x{speedup:.2f}, mean load {load} of {workers} nodes"
    )


def smooth(
    *,
    service: ServiceModel = SERVICE,
    workers: int = STATIC_WORKERS,
    load: float = BURSTY_LOAD,
    duration_s: float | None = 8000.0,
) -> Scenario:
    """The conversation trace (smooth, long outputs) at the same mean load: not a goal, a check
    that the dynamic policy does not buy its burst behaviour with waste on steady traffic."""
    full = load_trace(CONV_TRACE)
    rate = len(full) / span_s(full)
    speedup = load * workers / (rate * service.mean_seconds(full))
    trace = scale(full, speedup=speedup, duration_s=duration_s)
    return Scenario(
        "smooth", trace, speedup, f"conv trace x{speedup:.2f}, mean load {load} of {workers} nodes"
    )


def step(
    *,
    service: ServiceModel = SERVICE,
    base_slots: float = 2.0,
    factor: float = 4.0,
    before_s: float = 60.0,
    after_s: float = 90.0,
    seed: int = 7,
    prompt_tokens: int = 256,
    generated_tokens: int = 32,
) -> Scenario:
    """Poisson arrivals keeping `base_slots` nodes busy, then `factor` times as many."""
    seconds = service.seconds(prompt_tokens, generated_tokens)
    rate = base_slots / seconds
    trace = step_trace(
        rate,
        factor,
        before_s=before_s,
        after_s=after_s,
        seed=seed,
        prompt_tokens=prompt_tokens,
        generated_tokens=generated_tokens,
    )
    return Scenario("step", trace, 1.0, f"{rate:.2f} -> {rate * factor:.2f} req/s at t={before_s:.0f}s")


def routing(
    *,
    service: ServiceModel = SERVICE,
    nodes: int = 4,
    load: float = 0.9,
    duration_s: float = 600.0,
    seed: int = 11,
    prompt_tokens: int = 64,
) -> Scenario:
    """Poisson arrivals at `load` of `nodes`, output lengths drawn from the code trace (heavy tail)."""
    lengths = [r.generated_tokens for r in load_trace(CODE_TRACE)]
    mean_s = sum(service.seconds(prompt_tokens, g) for g in lengths) / len(lengths)
    rate = load * nodes / mean_s
    trace = poisson_trace(rate, duration_s, prompt_tokens=prompt_tokens, generated_tokens=lengths, seed=seed)
    return Scenario("routing", trace, 1.0, f"{rate:.2f} req/s on {nodes} nodes, mean service {mean_s:.2f}s")


def flips_after(events, at: float, window_s: float = 60.0) -> tuple[float | None, int, int]:
    """(seconds from `at` to the first scale-up, scale-downs and later scale-ups within the window)."""
    first_up = next((e.at for e in events if e.at >= at and e.desired > e.previous), None)
    if first_up is None:
        return None, 0, 0
    # Ups in the first seconds are one decision being refined as the evidence comes in.
    settle = first_up + 5.0
    inside = [e for e in events if first_up < e.at <= first_up + window_s]
    downs = sum(1 for e in inside if e.desired < e.previous)
    late_ups = sum(1 for e in inside if e.desired > e.previous and e.at > settle)
    return first_up - at, downs, late_ups


def seeded(seed: int = 1) -> random.Random:
    return random.Random(seed)
