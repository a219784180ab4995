"""The scheduler's three goals in the policy-only simulation (seconds to run, whole traces).

    .venv/bin/python benchmarks/bench_scheduler_sim.py [--json]

Side by side in one run: dynamic vs static on the bursty code trace (goal 1), the
scale-up delay and flips after a 4x step (goal 2), least-expected-completion routing
vs random and round robin on 4 fixed nodes (goal 3). The simulation runs the real
policy objects against simulated nodes; the benchmark of record is
bench_scheduler_e2e.py (real processes, HTTP, Dask).
"""

from __future__ import annotations

import json
import sys

import scheduler_scenarios as sc

from autoglm_cli.ops.bench.sim import FixedPool, SimClock, Simulation
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler, DynamicSettings

STARTUP_S = 3.0  # a new node's time to ready (a Dask worker process plus the model)


def dynamic(clock: SimClock, **overrides) -> DynamicScheduler:
    settings = DynamicSettings(**{"min_workers": 1, "max_workers": sc.DYNAMIC_MAX, **overrides})
    return DynamicScheduler(settings, clock=clock, rng=sc.seeded())


def goal_bursty() -> dict:
    scenario = sc.bursty()
    static = Simulation(FixedPool(sc.STATIC_WORKERS), scenario.trace, autoscale=False).run()
    clock = SimClock()
    dyn = Simulation(dynamic(clock), scenario.trace, clock=clock, startup_s=STARTUP_S).run()
    return {
        "scenario": scenario.note,
        "static_p99_s": static.latency.p99_s,
        "dynamic_p99_s": dyn.latency.p99_s,
        "p99_ratio": dyn.latency.p99_s / static.latency.p99_s,
        "static_mean_s": static.latency.mean_s,
        "dynamic_mean_s": dyn.latency.mean_s,
        "static_worker_seconds": static.worker_seconds,
        "dynamic_worker_seconds": dyn.worker_seconds,
        "worker_seconds_ratio": dyn.worker_seconds / static.worker_seconds,
        "dynamic_max_nodes": dyn.max_nodes,
        "scale_events": len(dyn.scale_events),
        "ok": dyn.latency.p99_s <= 0.5 * static.latency.p99_s and dyn.worker_seconds <= static.worker_seconds,
    }


def goal_step() -> dict:
    scenario = sc.step()
    clock = SimClock()
    policy = dynamic(clock, max_workers=16)
    result = Simulation(policy, scenario.trace, clock=clock, startup_s=STARTUP_S).run()
    delay, downs, late_ups = sc.flips_after(result.scale_events, 60.0)
    return {
        "scenario": scenario.note,
        "decision_delay_s": delay,
        "downs_in_minute": downs,
        "late_ups_in_minute": late_ups,
        "anchors": {"ray_serve_upscale_delay_s": 30.0, "knative_panic_window_s": 6.0},
        "ok": delay is not None and delay <= 5.0 and downs == 0,
    }


def goal_routing() -> dict:
    scenario = sc.routing()
    runs = {}
    for name in ("random", "round-robin"):
        runs[name] = Simulation(FixedPool(4, name, rng=sc.seeded()), scenario.trace, autoscale=False).run()
    clock = SimClock()
    # Routing alone: the same fixed pool and immediate dispatch as the anchors.
    policy = dynamic(clock, min_workers=4, max_workers=4, max_outstanding_per_slot=None)
    runs["least-expected-completion"] = Simulation(
        policy, scenario.trace, clock=clock, autoscale=False, initial_workers=4
    ).run()
    lect = runs["least-expected-completion"].latency
    return {
        "scenario": scenario.note,
        **{f"{n}_mean_s": r.latency.mean_s for n, r in runs.items()},
        **{f"{n}_p99_s": r.latency.p99_s for n, r in runs.items()},
        "mean_gain_vs_random": runs["random"].latency.mean_s / lect.mean_s,
        "p99_gain_vs_round_robin": runs["round-robin"].latency.p99_s / lect.p99_s,
        "ok": runs["random"].latency.mean_s >= 2 * lect.mean_s
        and runs["round-robin"].latency.p99_s >= 1.5 * lect.p99_s,
    }


def render(results: dict) -> str:
    b, s, r = results["bursty"], results["step"], results["routing"]
    lines = [
        f"goal 1, bursty ({b['scenario']}):",
        f"  p99       static {b['static_p99_s']:8.2f} s  dynamic {b['dynamic_p99_s']:8.2f} s"
        f"  ratio {b['p99_ratio']:.2f} (goal <= 0.5)",
        f"  worker-s  static {b['static_worker_seconds']:8.0f}    dynamic {b['dynamic_worker_seconds']:8.0f}"
        f"    ratio {b['worker_seconds_ratio']:.2f} (goal <= 1.0)",
        f"goal 2, 4x step ({s['scenario']}):",
        f"  scale-up decided {s['decision_delay_s']} s after the step"
        " (goal <= 5 s; Ray Serve upscale delay 30 s, Knative panic window 6 s)",
        f"  in the following minute: {s['downs_in_minute']} scale-downs (goal 0),"
        f" {s['late_ups_in_minute']} later scale-ups",
        f"goal 3, routing ({r['scenario']}):",
    ]
    for name in ("least-expected-completion", "random", "round-robin"):
        lines.append(f"  {name:26s} mean {r[name + '_mean_s']:7.2f} s   p99 {r[name + '_p99_s']:7.2f} s")
    lines.append(
        f"  mean vs random x{r['mean_gain_vs_random']:.2f} (goal >= 2),"
        f" p99 vs round robin x{r['p99_gain_vs_round_robin']:.2f} (goal >= 1.5)"
    )
    return "\n".join(lines)


def main() -> int:
    results = {"bursty": goal_bursty(), "step": goal_step(), "routing": goal_routing()}
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0 if all(v["ok"] for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
