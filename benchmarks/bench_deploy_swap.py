"""Deploys without downtime: a redeploy and a rollback under a 50 req/s probe load (issue 16).

For each target (local, docker) and each model-load delay (0 s, 30 s of the simulated
backend's `load_seconds`), one run:

  1. deploy version A (answers 5 tokens), start the probe (50 non-streamed req/s,
     keep-alive connections, as an OpenAI client), redeploy to version B (6 tokens),
     then `rollback` to A; count failed requests, and when B first answered;
  2. the anchor, the previous behaviour (stop the old one, then start the new one on
     the same port: `deploy(blue_green=False)`), under the same probe.

Goal: 0 failed requests for blue-green, and the new version serving within its gate
time (first answer from B minus the deploy's start <= the gate budget).

    .venv/bin/python benchmarks/bench_deploy_swap.py                    # local and docker, 0 s and 30 s
    .venv/bin/python benchmarks/bench_deploy_swap.py --targets local --delays 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoglm_cli.config import load_config  # noqa: E402
from autoglm_cli.ops.deploy import deploy, stop  # noqa: E402
from autoglm_cli.ops.deploy.rollback import rollback  # noqa: E402
from autoglm_cli.testing.probe import ProbeLoad  # noqa: E402
from autoglm_cli.testing.servers import free_port  # noqa: E402

RATE = 50.0


def write_config(work: Path, tag: str, *, target: str, port: int, tokens: int, delay: float) -> Path:
    path = work / f"{tag}.yaml"
    docker = "{base_image: 'autoglm-base:test', gpus: none}"
    path.write_text(
        "model_pool: {default: sim-glm}\n"
        "scheduler: static\n"
        "models:\n  sim-glm: {backend: simulated, options: {a: 0.005, b: 0.0, c: 0.001, "
        f"output_tokens: {tokens}, load_seconds: {delay}}}}}\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {port}, keys_file: {work / 'keys.json'}}}\n"
        f"weights: {{cache_dir: {work / 'hub'}}}\n"
        f"deploy: {{target: {target}, name: bench-swap-{target}, state_dir: {work / 'state'}, "
        f"health_timeout: {60 + delay * 2:.0f}s, docker: {docker}}}\n"
    )
    return path


def docker_ready() -> bool:
    try:
        import docker

        client = docker.from_env()
        client.images.get("autoglm-base:test")
        return True
    except Exception:  # noqa: BLE001 - any reason means: skip the docker runs
        return False


def must(report, what: str):
    if report.exit_code != 0:
        raise SystemExit(f"{what} failed: {report.action}: {report.message}\n{report.logs}")
    return report


def one_run(target: str, delay: float, *, blue_green: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        work = Path(tmp)
        port = free_port()
        a = load_config(write_config(work, "a", target=target, port=port, tokens=5, delay=delay))
        b = load_config(write_config(work, "b", target=target, port=port, tokens=6, delay=delay))
        state = work / "state"
        must(deploy(a), "deploy A")
        key = (state / "health.key").read_text().strip()
        try:
            url = f"http://127.0.0.1:{port}"
            # 32 connections: each waits for its answer, so fewer fall behind the schedule when
            # a deployment's start-up takes the CPU.
            with ProbeLoad(url, model="sim-glm", rate=RATE, workers=32, api_key=key) as probe:
                probing = time.monotonic()
                time.sleep(2.0)
                started = time.monotonic()
                to_b = must(deploy(b, blue_green=blue_green), "redeploy to B")
                deployed = time.monotonic()
                time.sleep(2.0)
                back_at = time.monotonic()
                back = must(rollback(b), "rollback to A") if blue_green else None
                rolled = time.monotonic()
                time.sleep(2.0)
                probed_s = time.monotonic() - probing
        finally:
            with contextlib.suppress(Exception):
                stop(a)
            if target == "docker":  # the replaced container is kept for rollback: not here
                with contextlib.suppress(Exception):
                    import docker

                    docker.from_env().containers.get(f"bench-swap-{target}-previous").remove(force=True)
        result = probe.result
        first_b = result.first_seen.get(6)
        last_b = result.last_seen.get(6)
        return {
            "target": target,
            "load_delay_s": delay,
            "mode": "blue-green" if blue_green else "stop-then-start (anchor)",
            "requests": result.sent,
            "req_per_s": round(result.sent / probed_s, 1),
            "failed": len(result.failures),
            "failures_sample": [f for _, f in result.failures[:3]],
            "redeploy_s": round(deployed - started, 1),
            "gate_budget_s": round(to_b.timeout_s, 1),
            "gate_waited_s": round(to_b.waited_s, 1),
            "b_serving_after_s": round(first_b - started, 1) if first_b is not None else None,
            "rollback_s": round(rolled - back_at, 1) if back is not None else None,
            # After the rollback started, B answered until it handed the port back to A.
            "b_last_after_rollback_start_s": round(last_b - back_at, 1)
            if back is not None and last_b is not None
            else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", default=["local", "docker"])
    parser.add_argument("--delays", nargs="+", type=float, default=[0.0, 30.0])
    parser.add_argument("--no-anchor", action="store_true", help="skip the stop-then-start runs")
    args = parser.parse_args()
    rows = []
    if "docker" in args.targets and not docker_ready():
        print("docker: skipped (no engine or no autoglm-base:test image; as root run .ci/setup-system)")
        args.targets = [t for t in args.targets if t != "docker"]
    for target in args.targets:
        for delay in args.delays:
            for blue_green in (True, False) if not args.no_anchor else (True,):
                row = one_run(target, delay, blue_green=blue_green)
                rows.append(row)
                print(json.dumps(row), flush=True)
    header = ["target", "load delay", "mode", "requests (req/s)", "failed", "redeploy s", "B serving after s"]
    header += ["gate budget s", "rollback s"]
    print("\n| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in rows:
        sent = f"{r['requests']} ({r['req_per_s']})"
        cells = [r["target"], f"{r['load_delay_s']:.0f} s", r["mode"], sent, r["failed"]]
        cells += [r["redeploy_s"], r["b_serving_after_s"], r["gate_budget_s"], r["rollback_s"] or "-"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
