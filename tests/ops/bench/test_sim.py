"""The policy simulation: exact on tiny hand-checked cases, and the policies' effects visible."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from autoglm_cli.ops.bench.sim import FixedPool, ServiceModel, SimClock, Simulation
from autoglm_cli.ops.bench.trace import TraceRequest, poisson_trace, step_trace
from autoglm_cli.runtime.scheduler.base import Priority
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler, DynamicSettings

ONE_SECOND = ServiceModel(base_s=1.0, per_prompt_token_s=0.0, per_generated_token_s=0.0)


def test_round_robin_latencies_by_hand():
    trace = [TraceRequest(0.0, 1, 1)] * 3
    result = Simulation(FixedPool(2), trace, service=ONE_SECOND, rtt_s=0.0, autoscale=False).run()
    # node 0: tasks 0 and 2 (1 s and 2 s), node 1: task 1 (1 s)
    assert sorted(result.latencies_s) == [1.0, 1.0, 2.0]
    assert result.completed == 3
    assert result.worker_seconds == pytest.approx(2 * 2.0)


def test_rtt_is_paid_once_each_way():
    result = Simulation(
        FixedPool(1), [TraceRequest(0.0, 1, 1)], service=ONE_SECOND, rtt_s=0.1, autoscale=False
    ).run()
    assert result.latencies_s == (pytest.approx(1.1),)


def test_the_dynamic_pool_grows_for_a_step_and_is_charged_for_it():
    clock = SimClock()
    policy = DynamicScheduler(
        DynamicSettings(min_workers=1, max_workers=10), clock=clock, rng=random.Random(0)
    )
    trace = step_trace(1.0, 4.0, before_s=60.0, after_s=60.0, generated_tokens=32, prompt_tokens=64)
    result = Simulation(policy, trace, clock=clock, startup_s=2.0).run()
    assert result.completed == len(trace)
    assert result.max_nodes >= 3
    ups = [e for e in result.scale_events if e.direction == "up" and e.at >= 60.0]
    assert ups and ups[0].at - 60.0 <= 5.0
    # Worker-seconds are the integral of the node timeline.
    timeline = list(result.timeline) + [(result.duration_s, result.timeline[-1][1])]
    integral = sum(n * (t1 - t0) for (t0, n), (t1, _) in pairwise(timeline))
    assert result.worker_seconds == pytest.approx(integral)


def test_priorities_let_high_tasks_pass_a_backlog():
    clock = SimClock()
    settings = DynamicSettings(min_workers=2, max_workers=2, priorities=True, max_outstanding_per_slot=1)
    policy = DynamicScheduler(settings, clock=clock, rng=random.Random(0))
    trace = poisson_trace(3.0, 120.0, prompt_tokens=0, generated_tokens=40, seed=5)  # ~0.8 s each: overloaded
    priorities = [Priority.HIGH if i % 4 == 0 else Priority.LOW for i in range(len(trace))]
    sim = Simulation(policy, trace, clock=clock, priorities=True, priority_of=priorities, autoscale=False)
    sim.run()
    high = [sim.latency_of(str(i)) for i, p in enumerate(priorities) if p is Priority.HIGH]
    low = [sim.latency_of(str(i)) for i, p in enumerate(priorities) if p is Priority.LOW]
    assert sum(high) / len(high) < 0.5 * sum(low) / len(low)


def test_least_expected_completion_beats_round_robin_on_heavy_tails():
    rng = random.Random(2)
    lengths = [int(rng.paretovariate(1.5) * 10) for _ in range(2000)]
    trace = poisson_trace(4.0, 300.0, prompt_tokens=0, generated_tokens=lengths, seed=2)
    rr = Simulation(FixedPool(4), trace, autoscale=False).run()
    clock = SimClock()
    lect = DynamicScheduler(DynamicSettings(min_workers=4, max_workers=4), clock=clock, rng=random.Random(0))
    ours = Simulation(lect, trace, clock=clock, autoscale=False, initial_workers=4).run()
    assert ours.latency.mean_s < rr.latency.mean_s
    assert ours.latency.p99_s < rr.latency.p99_s


def test_per_request_estimates_help_only_when_max_tokens_tells_the_length():
    rng = random.Random(2)
    lengths = [int(rng.paretovariate(1.5) * 10) for _ in range(2000)]
    trace = poisson_trace(5.5, 300.0, prompt_tokens=0, generated_tokens=lengths, seed=2)

    def run(policy, clock=None, max_tokens=None):
        pool = {"autoscale": False, "initial_workers": 4}
        return Simulation(policy, trace, clock=clock, max_tokens=max_tokens, **pool).run()

    # The bound changes what a policy sees, not the work: round robin ignores it.
    rr = run(FixedPool(4))
    assert run(FixedPool(4), max_tokens=4096).latency == rr.latency

    def lect(max_tokens):
        clock = SimClock()
        settings = DynamicSettings(min_workers=4, max_workers=4, max_outstanding_per_slot=None)
        policy = DynamicScheduler(settings, clock=clock, rng=random.Random(0))
        return run(policy, clock, max_tokens), policy

    informed, informed_policy = lect(None)
    blind, blind_policy = lect(4096)
    assert informed_policy.task_cost.relative_error < 0.05  # max_tokens is each output's length
    assert blind_policy.task_cost.relative_error > 0.4  # every request says 4096
    assert informed.latency.p99_s < blind.latency.p99_s < rr.latency.p99_s
