"""Issue #15 goal 5: goal 1's ordering end to end, on a compressed window of the Mooncake trace.

    .venv/bin/python benchmarks/bench_scheduler_engines_e2e.py [--json] [--quick] [--policies dynamic,p2c]

For each policy (dynamic and every baseline), in one run: 8 fake engines (real processes,
`python -m autoglm_cli.testing.fake_engine` in its continuous-batching mode with the
simulation's engine costs, `EngineModel`), a real `autoglm serve` with them as upstream
nodes and `scheduler: <policy>`, and a real `autoglm bench` replaying the same window of
the Mooncake conversation trace (prompts built from its `hash_ids`, so conversations share
their prefixes byte for byte). Clients send `max_tokens` 4096 on every request; the traced
output length travels in a body field only the fake engine reads (`--output-length-field`),
so no policy sees it. After each run the engines' own prefix-cache counters are read.

Compression: the engines run `--compress` times faster than `EngineModel` (every cost
divided by it), the trace is replayed `--compress` times faster than goal 1's x1.5, the
engine signals are polled `--compress` times more often, and the SLOs (TTFT 5 s, TPOT
100 ms) are divided by it: the queueing of goal 1's setting in a fraction of the wall time.
The figures printed are in compressed seconds; multiply by `--compress` for goal 1's scale.

The same window also goes through the simulation (`engine_sim.py`, the runtime's policy
objects) for reference; `--no-sim` skips it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from autoglm_cli.ops.bench.engine_sim import EngineModel
from autoglm_cli.ops.bench.prompts import prompt_of_blocks
from autoglm_cli.ops.bench.trace import load_trace, scale
from autoglm_cli.runtime.prefix import BLOCK_CHARS, render_messages
from autoglm_cli.runtime.scheduler.registry import POLICIES
from autoglm_cli.testing.engine_fleet import FakeEngines
from autoglm_cli.testing.engine_fleet import serve_config as engine_serve_config
from autoglm_cli.testing.servers import ServeProcess

PREFIX_HITS, PREFIX_QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"

TRACE = Path(__file__).resolve().parent / "traces" / "mooncake_conversation_trace.jsonl"
NODES = 8
SPEEDUP = 1.5  # goal 1's load
SLO_TTFT_S, SLO_TPOT_S = 5.0, 0.1  # goal 1's SLOs, before compression
MAX_TOKENS = 4096  # what every client sends: no oracle
OUTPUT_FIELD = "fake_output_tokens"
ENGINE = EngineModel()
BASELINES = [p for p in POLICIES if p != "dynamic"]


def bytes_per_token() -> float:
    """The replay's prompt text: bytes per trace token (the engines count tokens with it)."""
    text = render_messages([{"role": "user", "content": prompt_of_blocks(range(1, 41), 20000, 512)}])
    return len(text.encode()) / 20000


def engine_args(compress: float, bpt: float, cache_tokens: int | None = None) -> list[str]:
    """The fake engine's options for EngineModel's costs, `compress` times faster. The engine
    hashes 256-byte blocks; a block is 256 / bpt trace tokens."""
    e, k = ENGINE, compress
    block_tokens = BLOCK_CHARS / bpt
    return [
        "--batch",
        str(e.max_batch),
        "--step-ms",
        f"{e.step_base_s * 1000 / k:.6g}",
        "--step-per-seq-ms",
        f"{e.step_per_seq_s * 1000 / k:.6g}",
        "--step-per-kv-token-us",
        f"{e.step_per_kv_token_s * 1e6 / k:.6g}",
        "--prefill-base-ms",
        f"{e.prefill_base_s * 1000 / k:.6g}",
        "--prefill-ms",
        f"{e.prefill_per_token_s * block_tokens * 1000 / k:.6g}",
        "--kv-tokens",
        str(e.kv_cache_tokens),
        "--bytes-per-token",
        f"{bpt:.4f}",
        "--max-prefill-blocks",
        str(math.ceil(e.max_prefill_tokens / block_tokens)),
        "--cache-blocks",
        str(math.ceil((cache_tokens or e.prefix_cache_tokens) / block_tokens)),
        "--hash-blocks",
        "100000",  # the whole prompt: an engine caches all of it
        "--stream-interval",
        "8",
        "--max-model-len",
        "1000000",
        "--output-field",
        OUTPUT_FIELD,
        "--no-record",
    ]


def serve_config(path: Path, policy: str, urls: list[str], poll_s: float) -> Path:
    data = engine_serve_config(
        urls,
        policy,
        engines={"poll_interval": f"{poll_s:g}s"},
        connection_pool={"max_connections": 1000, "max_idle_connections": 200},
        read_timeout="600s",
        gateway={"auth": False, "max_queue": 100000, "queue_timeout": "600s"},
        log_level="WARNING",
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_policy(tmp: Path, policy: str, opts, eargs: list[str]) -> dict:
    k = opts.compress
    with FakeEngines(NODES, eargs, tmp) as engines:
        config = serve_config(tmp / f"{policy}.yaml", policy, engines.urls, opts.poll / k)
        records = tmp / f"{policy}.requests.jsonl"
        with ServeProcess(config, log=tmp / f"{policy}.serve.log", ready_timeout=180) as server:
            args = [
                sys.executable,
                "-m",
                "autoglm_cli",
                "--json",
                "bench",
                f"{server.url}/v1",
                "--trace",
                str(TRACE),
                "--speedup",
                f"{SPEEDUP * k:g}",
                "--start",
                f"{opts.start:g}",
                "--duration",
                f"{opts.window / (SPEEDUP * k):g}",
                "--max-tokens",
                str(MAX_TOKENS),
                "--output-length-field",
                OUTPUT_FIELD,
                "--requests",
                str(records),
                "--no-plot",
                "--timeout",
                "600",
                "--max-error-rate",
                "1",
            ]
            began = time.monotonic()
            load_before = os.getloadavg()[0]
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            wall = time.monotonic() - began
            load_after = os.getloadavg()[0]
        if done.returncode not in (0, 1):
            raise SystemExit(f"{policy}: autoglm bench failed ({done.returncode}):\n{done.stderr[-3000:]}")
        counters = engines.sums((PREFIX_HITS, PREFIX_QUERIES))
    rows = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    ok = [r for r in rows if r["error"] is None]
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    tpot = [r["tpot_s"] for r in ok if r["tpot_s"] is not None]
    e2e = [r["latency_s"] for r in ok]
    slo_ttft, slo_tpot = SLO_TTFT_S / k, SLO_TPOT_S / k
    good = sum(
        1
        for r in ok
        if r["ttft_s"] is not None
        and r["ttft_s"] <= slo_ttft
        and (r["tpot_s"] is None or r["tpot_s"] <= slo_tpot)
    )
    return {
        "policy": policy,
        "requests": len(rows),
        "failed": len(rows) - len(ok),
        "ttft_mean_s": statistics.fmean(ttft) if ttft else math.nan,
        "ttft_p50_s": percentile(ttft, 0.5),
        "ttft_p99_s": percentile(ttft, 0.99),
        "tpot_p50_s": percentile(tpot, 0.5),
        "tpot_p99_s": percentile(tpot, 0.99),
        "e2e_mean_s": statistics.fmean(e2e) if e2e else math.nan,
        "e2e_p99_s": percentile(e2e, 0.99),
        "goodput": good / len(rows) if rows else 0.0,
        "prefix_hit_rate": counters[PREFIX_HITS] / counters[PREFIX_QUERIES]
        if counters[PREFIX_QUERIES]
        else 0.0,
        "max_send_lag_s": max((r["sent_s"] - r["scheduled_s"] for r in rows), default=0.0),
        "wall_s": wall,
        "load_avg": [load_before, load_after],
    }


def simulate(policies: list[str], opts) -> dict[str, dict]:
    """The same window through the simulation (uncompressed: goal 1's seconds)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_scheduler_batching import run_policy as sim_policy

    trace = scale(load_trace(TRACE), speedup=SPEEDUP, start_s=opts.start, duration_s=opts.window / SPEEDUP)
    return {p: sim_policy(p, trace) for p in policies}


METRICS = [  # (key, label, lower is better, unit)
    ("ttft_mean_s", "TTFT mean", True, "s"),
    ("ttft_p99_s", "TTFT p99", True, "s"),
    ("tpot_p50_s", "TPOT p50", True, "ms"),
    ("tpot_p99_s", "TPOT p99", True, "ms"),
    ("e2e_mean_s", "e2e mean", True, "s"),
    ("e2e_p99_s", "e2e p99", True, "s"),
    ("goodput", "goodput", False, "%"),
    ("prefix_hit_rate", "prefix hit", False, "%"),
]


def fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f}"
    if unit == "%":
        return f"{value * 100:.1f}%"
    return f"{value:.2f}"


def ratios(rows: dict[str, dict]) -> dict[str, dict]:
    """Dynamic vs the best baseline on each metric (ratio dynamic / best; for goodput and hit
    rate higher is better, so the goal reads >= 1)."""
    out = {}
    if "dynamic" not in rows:
        return out
    baselines = {p: r for p, r in rows.items() if p != "dynamic"}
    if not baselines:
        return out
    for key, _, lower, _ in METRICS:
        pick = min if lower else max
        best = pick(baselines, key=lambda p, key=key: baselines[p][key])
        value, ref = rows["dynamic"][key], baselines[best][key]
        better = value <= ref if lower else value >= ref
        out[key] = {"best": best, "ratio": value / ref if ref else math.nan, "dynamic_best": better}
    return out


def print_table(title: str, rows: dict[str, dict], with_wall: bool) -> None:
    head = ["policy", *(m[1] for m in METRICS)] + (["failed", "wall s"] if with_wall else [])
    print(f"\n{title}")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for policy, r in rows.items():
        cells = [f"**{policy}**" if policy == "dynamic" else policy]
        cells += [fmt(r[key], unit) for key, _, _, unit in METRICS]
        if with_wall:
            cells += [str(r["failed"]), f"{r['wall_s']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    for key, info in ratios(rows).items():
        label = next(m[1] for m in METRICS if m[0] == key)
        mark = "dynamic best" if info["dynamic_best"] else "dynamic NOT best"
        print(f"  {label:10s}: dynamic / {info['best']} = {info['ratio']:.2f}x ({mark})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated (default: all)")
    parser.add_argument("--start", type=float, default=600.0, help="trace seconds where the window starts")
    parser.add_argument("--window", type=float, default=225.0, help="trace seconds replayed (at x1.5)")
    parser.add_argument("--compress", type=float, default=2.0, help="engines and trace this much faster")
    parser.add_argument("--poll", type=float, default=0.5, help="engine poll interval (uncompressed s)")
    parser.add_argument(
        "--cache-tokens", type=int, default=None, help="each engine's prefix cache (default: EngineModel's)"
    )
    parser.add_argument("--quick", action="store_true", help="a 120 s window (about half the time)")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulated reference")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    opts = parser.parse_args()
    if opts.quick:
        opts.window = min(opts.window, 120.0)
    policies = [p.strip() for p in opts.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise SystemExit(f"unknown policies {unknown} (choose from {', '.join(POLICIES)})")
    bpt = bytes_per_token()
    eargs = engine_args(opts.compress, bpt, opts.cache_tokens)
    setting = {
        "trace": TRACE.name,
        "start_s": opts.start,
        "window_s": opts.window,
        "speedup": SPEEDUP,
        "compress": opts.compress,
        "replay_s": opts.window / (SPEEDUP * opts.compress),
        "nodes": NODES,
        "slo_ttft_s": SLO_TTFT_S / opts.compress,
        "slo_tpot_s": SLO_TPOT_S / opts.compress,
        "poll_interval_s": opts.poll / opts.compress,
        "max_tokens": MAX_TOKENS,
        "bytes_per_token": bpt,
        "engine_args": eargs,
    }
    if not opts.json:
        print(
            f"Mooncake trace {opts.start:.0f}-{opts.start + opts.window:.0f} s at x{SPEEDUP} compressed "
            f"x{opts.compress:g} ({setting['replay_s']:.0f} s replay), {NODES} fake engines, SLO TTFT "
            f"{setting['slo_ttft_s']:.2f} s TPOT {setting['slo_tpot_s'] * 1000:.0f} ms, max_tokens "
            f"{MAX_TOKENS}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="autoglm-e2e15-") as name:
        for policy in policies:
            rows[policy] = run_policy(Path(name), policy, opts, eargs)
            if not opts.json:
                r = rows[policy]
                print(
                    f"  {policy:15s} {r['requests']} req ({r['failed']} failed), TTFT mean "
                    f"{r['ttft_mean_s']:.2f} s p99 {r['ttft_p99_s']:.2f} s, goodput {r['goodput']:.1%}, "
                    f"hits {r['prefix_hit_rate']:.1%}, {r['wall_s']:.0f} s, load {r['load_avg'][1]:.1f}",
                    flush=True,
                )
    sim = {} if opts.no_sim else simulate(policies, opts)
    if opts.json:
        print(
            json.dumps(
                {
                    "setting": setting,
                    "end_to_end": rows,
                    "ratios": ratios(rows),
                    "simulated": sim,
                    "simulated_ratios": ratios(sim),
                },
                indent=2,
            )
        )
        return
    print_table(
        f"End to end (compressed x{opts.compress:g}: seconds here x{opts.compress:g} = goal 1's seconds)",
        rows,
        True,
    )
    if sim:
        print_table("The same window simulated (engine_sim.py, goal 1's seconds)", sim, False)


if __name__ == "__main__":
    main()
