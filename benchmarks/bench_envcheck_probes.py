"""env-check network probes: 20 unreachable endpoints with a 2 s timeout, concurrent vs sequential.

Goal (issue #2): all 20 finish in under 3 s in total. The anchor is the same
probe run one endpoint after the other (what a naive loop does: 20 x 2 s).

The endpoints are real but never answer: one listening socket per address
127.0.0.2 ... 127.0.0.21 whose accept queue is full, so the kernel drops the
SYNs and every connect() runs into its timeout (autoglm_cli/testing/net.py).
Nothing leaves the loopback interface.

Measured three ways:
  library     run_checks(config, only=["network"]) in this process;
  cli         `autoglm --json env-check --only network` as a new process
              (start-up, config loading and rendering included);
  sequential  network.probe() for each endpoint in turn (the anchor).

    .venv/bin/python benchmarks/bench_envcheck_probes.py [--endpoints 20] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from autoglm_cli.config import parse_config
from autoglm_cli.ops.envcheck import run_checks
from autoglm_cli.ops.envcheck.network import parse_endpoint, probe
from autoglm_cli.testing.net import blackhole_listener

GOAL_S = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per probe (env_check.timeout)")
    args = parser.parse_args()
    if not 1 <= args.endpoints <= 250:
        parser.error("--endpoints must be 1..250 (one 127.0.0.x address each)")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        targets = [stack.enter_context(blackhole_listener(f"127.0.0.{2 + i}")) for i in range(args.endpoints)]
        names = [f"{host}:{port}" for host, port in targets]
        config_text = f"env_check: {{endpoints: {names!r}, timeout: {args.timeout}}}\n"
        # The HF endpoint probe is part of every network run; make it the first target (deduplicated).
        os.environ["HF_ENDPOINT"] = f"http://{names[0]}"
        config = parse_config(config_text)
        config_file = Path(tmp) / "autoglm.yaml"
        config_file.write_text(config_text)

        start = time.perf_counter()
        report = run_checks(config, only=["network"])
        library_s = time.perf_counter() - start
        library_timeouts = sum("timed out" in c.value for c in report.checks)

        start = time.perf_counter()
        cli = [sys.executable, "-m", "autoglm_cli", "--json", "--config", str(config_file), "env-check"]
        proc = subprocess.run(
            [*cli, "--only", "network"],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        cli_s = time.perf_counter() - start
        cli_timeouts = sum("timed out" in c["value"] for c in json.loads(proc.stdout)["result"]["checks"])

        print(f"{args.endpoints} unreachable endpoints, {args.timeout:g} s timeout each\n", flush=True)
        print(f"{'mode':<12} {'wall s':>8} {'timed out':>10}")
        print(f"{'library':<12} {library_s:>8.2f} {library_timeouts:>10}")
        print(f"{'cli':<12} {cli_s:>8.2f} {cli_timeouts:>10}", flush=True)

        start = time.perf_counter()
        sequential = [probe(parse_endpoint(name), args.timeout) for name in names]
        sequential_s = time.perf_counter() - start
        sequential_timeouts = sum("timed out" in r.error for r in sequential)
        print(f"{'sequential':<12} {sequential_s:>8.2f} {sequential_timeouts:>10}")

    all_timed_out = library_timeouts == cli_timeouts == sequential_timeouts == args.endpoints
    meets = cli_s < GOAL_S and library_s < GOAL_S and all_timed_out
    print(
        f"\nspeed-up vs sequential: {sequential_s / library_s:.1f}x (library),"
        f" {sequential_s / cli_s:.1f}x (cli)"
        f"\ngoal: all {args.endpoints} in < {GOAL_S:g} s: {'meets' if meets else 'MISSES'}"
        + ("" if all_timed_out else " (not every probe timed out: the targets did not behave as intended)")
    )
    return 0 if meets else 1


if __name__ == "__main__":
    sys.exit(main())
