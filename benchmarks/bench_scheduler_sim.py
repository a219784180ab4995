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


def goal_bursty(scenario: sc.Scenario | None = None) -> dict:
    scenario = scenario or sc.bursty()
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


ROUTING_SEEDS = (11, 12, 13, 14, 15)


def goal_routing() -> dict:
    """Per seed: anchors vs least-expected-completion with immediate dispatch (routing alone,
    like the anchors) and with the gateway queue (late binding: one task per node slot); and,
    for what the per-task estimates bring, immediate dispatch without them (tasks counted at the
    mean) and with them but an uninformative max_tokens (4096 on every request)."""
    per_seed = []
    for seed in ROUTING_SEEDS:
        scenario = sc.routing(seed=seed)
        runs = {}
        for name in ("random", "round-robin"):
            pool = FixedPool(4, name, rng=sc.seeded(seed))
            runs[name] = Simulation(pool, scenario.trace, autoscale=False).run().latency
        variants = (
            ("lect-immediate", None, True, None),
            ("lect-gateway-queue", 1, True, None),
            ("lect-no-estimates", None, False, None),
            ("lect-max-tokens-4096", None, True, 4096),
        )
        for name, limit, estimates, max_tokens in variants:
            clock = SimClock()
            policy = dynamic(
                clock, min_workers=4, max_workers=4, max_outstanding_per_slot=limit, task_cost=estimates
            )
            sim = Simulation(
                policy, scenario.trace, clock=clock, autoscale=False, initial_workers=4, max_tokens=max_tokens
            )
            runs[name] = sim.run().latency
        per_seed.append(
            {
                "seed": seed,
                **{f"{n}_mean_s": r.mean_s for n, r in runs.items()},
                **{f"{n}_p99_s": r.p99_s for n, r in runs.items()},
            }
        )

    def gains(name: str) -> dict:
        mean = sorted(r["random_mean_s"] / r[f"{name}_mean_s"] for r in per_seed)
        p99 = sorted(r["round-robin_p99_s"] / r[f"{name}_p99_s"] for r in per_seed)
        return {
            "mean_vs_random_min": mean[0],
            "mean_vs_random_median": mean[len(mean) // 2],
            "p99_vs_round_robin_min": p99[0],
            "p99_vs_round_robin_median": p99[len(p99) // 2],
        }

    immediate, queued = gains("lect-immediate"), gains("lect-gateway-queue")
    ablations = {name: gains(name) for name in ("lect-no-estimates", "lect-max-tokens-4096")}
    return {
        "scenario": sc.routing(seed=ROUTING_SEEDS[0]).note
        + f", seeds {ROUTING_SEEDS[0]}..{ROUTING_SEEDS[-1]}",
        "per_seed": per_seed,
        "immediate": immediate,
        "gateway_queue": queued,
        "ablations": ablations,
        "ok": queued["mean_vs_random_min"] >= 2 and queued["p99_vs_round_robin_min"] >= 1.5,
    }


def render(results: dict) -> str:
    b, s, r, m = results["bursty"], results["step"], results["routing"], results["smooth"]
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
    first = r["per_seed"][0]
    names = ("lect-gateway-queue", "lect-immediate", "lect-no-estimates", "lect-max-tokens-4096")
    for name in (*names, "random", "round-robin"):
        lines.append(
            f"  seed {first['seed']}: {name:20s} mean {first[name + '_mean_s']:6.2f} s"
            f"   p99 {first[name + '_p99_s']:6.2f} s"
        )
    rows = (
        ("gateway queue (runtime)", r["gateway_queue"]),
        ("immediate dispatch", r["immediate"]),
        ("  without task estimates", r["ablations"]["lect-no-estimates"]),
        ("  max_tokens 4096 always", r["ablations"]["lect-max-tokens-4096"]),
    )
    for label, g in rows:
        mean = f"x{g['mean_vs_random_min']:.2f} min / x{g['mean_vs_random_median']:.2f} median"
        p99 = f"x{g['p99_vs_round_robin_min']:.2f} min / x{g['p99_vs_round_robin_median']:.2f} median"
        lines.append(
            f"  {label:24s} mean vs random {mean} (goal >= 2); p99 vs round robin {p99} (goal >= 1.5)"
        )
    lines += [
        f"not a goal, smooth traffic ({m['scenario']}):",
        f"  p99 static {m['static_p99_s']:.2f} s, dynamic {m['dynamic_p99_s']:.2f} s (x{m['p99_ratio']:.2f});"
        f" worker-seconds x{m['worker_seconds_ratio']:.2f}; {m['scale_events']} scale events",
    ]
    return "\n".join(lines)


def main() -> int:
    results = {"bursty": goal_bursty(), "step": goal_step(), "routing": goal_routing()}
    results["smooth"] = {**goal_bursty(sc.smooth()), "ok": True}  # context, not a goal
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0 if all(v["ok"] for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
