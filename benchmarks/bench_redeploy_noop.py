"""Goal: `autoglm redeploy` of an already-current deployment finishes in under 15 s on the tiny model.

One run, side by side, on the tiny real model served by a local hub:

- cold: the first `autoglm redeploy` (fetch, verify, start the service, health gate);
- no-op: the same command again (nothing to fetch or migrate; the running service
  is current and healthy, so it is kept) - the goal;
- forced: `autoglm redeploy --force` (the anchor: the same pipeline, but the service
  is replaced and gated again).

Per-step durations come from the command's own `--json` summary.

    .venv/bin/python benchmarks/bench_redeploy_noop.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REPO = "autoglm-bench/tiny-chat"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redeploy(config: Path, env: dict, *extra: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "autoglm_cli", "redeploy", "--config", str(config), "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - t0
    doc = json.loads(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"redeploy exited {proc.returncode}: {json.dumps(doc, indent=1)[-3000:]}")
    return elapsed, doc["result"]


def main() -> int:
    from autoglm_cli.testing.hub_server import HubServer
    from autoglm_cli.testing.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="autoglm-bench-redeploy-") as tmp_name:
        tmp = Path(tmp_name)
        model = build_tiny_model(tmp / "tiny", shards=2)
        config = tmp / "bench.yaml"
        config.write_text(
            "model_pool: {default: bench}\n"
            "scheduler: static\n"
            f"models:\n  bench: {{source: {REPO}, backend: transformers}}\n"
            "workers: {engine: dask, count: 1}\n"
            f"gateway: {{host: 127.0.0.1, port: {free_port()}, keys_file: {tmp / 'keys.json'}}}\n"
            f"weights: {{cache_dir: {tmp / 'hub'}}}\n"
            "env_check: {required_binaries: [git], recommended_binaries: []}\n"
            f"deploy: {{state_dir: {tmp / 'state'}, health_timeout: 120s}}\n"
        )
        server = HubServer()
        server.add_repo(REPO, model)
        with server as endpoint:
            env = {**os.environ, "HF_ENDPOINT": endpoint}
            try:
                cold, _ = redeploy(config, env)
                noop, noop_doc = redeploy(config, env)
                forced, forced_doc = redeploy(config, env, "--force")
            finally:
                subprocess.run(
                    [sys.executable, "-m", "autoglm_cli", "deploy", "--stop", "--config", str(config)],
                    capture_output=True,
                    env=env,
                    cwd=ROOT,
                )

    print(f"tiny model, local hub, {os.cpu_count()} cores")
    print(f"{'run':30} {'wall':>8}")
    for name, value in (
        ("cold (first redeploy)", cold),
        ("no-op (already current)", noop),
        ("forced (service replaced)", forced),
    ):
        print(f"{name:30} {value:7.1f}s")
    print("\nsteps of the no-op run (forced run in brackets):")
    forced_steps = {s["name"]: s for s in forced_doc["steps"]}
    for step in noop_doc["steps"]:
        other = forced_steps.get(step["name"], {})
        print(
            f"  {step['name']:14} {step['status']:8} {step['duration_s']:6.2f}s  "
            f"[{other.get('duration_s', 0):.2f}s]  {step['detail'][:70]}"
        )
    print(f"\nno-op / forced: {noop / forced:.2f}x")
    goal = noop < 15.0
    print(f"goal no-op redeploy < 15 s: {'met' if goal else 'MISSED'} ({noop:.1f} s)")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
