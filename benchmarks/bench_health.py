"""Goal: `autoglm health` against a local deployment answers in under 1 s (probes concurrent).

Deploys the runtime locally (the tiny real model when torch is installed, else the
simulated backend), then measures in one run:

- `autoglm health` as a user runs it (a new process: start-up, imports, every probe);
- the probes alone, concurrent (what the command does) vs one after another (the
  anchor), with the ratio.

    .venv/bin/python benchmarks/bench_health.py [--runs 10] [--simulated]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp: Path, simulated: bool) -> Path:
    if simulated:
        model = "{backend: simulated, options: {a: 0.005, b: 0.0, c: 0.001, output_tokens: 5}}"
    else:
        from autoglm_cli.testing.tiny_model import build_tiny_model

        model = f"{{backend: transformers, source: {build_tiny_model(tmp / 'tiny')}}}"
    config = tmp / "bench.yaml"
    config.write_text(
        "model_pool: {default: bench}\n"
        "scheduler: static\n"
        f"models:\n  bench: {model}\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {free_port()}, keys_file: {tmp / 'keys.json'}}}\n"
        f"weights: {{cache_dir: {tmp / 'hub'}}}\n"
        f"deploy: {{state_dir: {tmp / 'state'}, health_timeout: 120s}}\n"
    )
    return config


def autoglm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autoglm_cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--simulated", action="store_true", help="simulated backend even when torch is installed"
    )
    args = parser.parse_args()
    try:
        import torch  # noqa: F401

        simulated = args.simulated
    except ImportError:
        simulated = True

    from autoglm_cli.config import load_config
    from autoglm_cli.ops.deploy.health_target import resolve_target
    from autoglm_cli.ops.health import check_health

    with tempfile.TemporaryDirectory(prefix="autoglm-bench-health-") as tmp_name:
        tmp = Path(tmp_name)
        config_path = write_config(tmp, simulated)
        started = time.perf_counter()
        deployed = autoglm("deploy", "--config", str(config_path))
        if deployed.returncode != 0:
            print(deployed.stdout, deployed.stderr)
            return 1
        print(
            f"deployed ({'simulated' if simulated else 'tiny transformers'} model) "
            f"in {time.perf_counter() - started:.1f} s; {args.runs} runs each, {os.cpu_count()} cores"
        )
        try:
            cli_times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = autoglm("health", "--config", str(config_path), "--json")
                cli_times.append(time.perf_counter() - t0)
                if result.returncode != 0:
                    print(result.stdout[-2000:])
                    return 1
            config = load_config(config_path)
            target = resolve_target(config)
            check_health(target)  # warm the connection paths once
            concurrent, sequential = [], []
            for _ in range(args.runs):
                concurrent.append(check_health(target).duration_ms / 1000)
                sequential.append(check_health(target, concurrent=False).duration_ms / 1000)
        finally:
            autoglm("deploy", "--stop", "--config", str(config_path))

    print(f"{'measure':44} {'p50':>8} {'max':>8}")
    rows = [
        ("`autoglm health` (new process, all probes)", cli_times),
        ("probes concurrent (the command's way)", concurrent),
        ("probes one after another (anchor)", sequential),
    ]
    for name, values in rows:
        print(f"{name:44} {statistics.median(values) * 1000:7.0f}ms {max(values) * 1000:7.0f}ms")
    ratio = statistics.median(sequential) / statistics.median(concurrent)
    print(f"concurrent probes are {ratio:.1f}x faster than sequential ones")
    goal = max(cli_times) < 1.0
    print(f"goal `autoglm health` < 1 s: {'met' if goal else 'MISSED'} (worst {max(cli_times):.2f} s)")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
