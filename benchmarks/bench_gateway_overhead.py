"""Gateway overhead at 200 req/s against an instant upstream, gateway vs direct in the same run.

Goal (issue #6): the gateway adds at most 3 ms at p50 and 10 ms at p99 (LiteLLM documents ~3 ms).

Three processes: an instant OpenAI-compatible upstream (a bare ASGI app under
uvicorn that answers at once), `autoglm serve` with the `openai` backend in
front of it (auth on, metrics on), and this load generator. The load is open
loop (requests start on a fixed schedule, whatever the answers do) at `--rate`
per second, in alternating phases: one phase straight to the upstream, one
through the gateway, and so on, so both arms see the same machine. Added
latency = gateway percentile - direct percentile.

    .venv/bin/python benchmarks/bench_gateway_overhead.py             # 2 x 6 phases of 1 s at 200 req/s
    .venv/bin/python benchmarks/bench_gateway_overhead.py --phases 20 # longer, steadier figures
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

import psutil  # noqa: E402

from autoglm_cli.runtime.auth import KeyStore  # noqa: E402
from autoglm_cli.testing.servers import ServeProcess, free_port, wait_http  # noqa: E402

ERRORS: dict[str, int] = {}
BODY = {"model": "instant", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last 10 s in which some runnable task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return float(line.split("avg10=")[1].split()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class RawClient:
    """A minimal keep-alive HTTP/1.1 client: a few microseconds of CPU per request, so the load
    generator (on the same cores) disturbs the two arms as little as possible. Both arms use it."""

    def __init__(self, url: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connect(self):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def post(self) -> int:
        if self.idle:
            reader, writer = self.idle.pop()
            writer.write(self.request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed this idle keep-alive connection: retry once on a new one (as clients do).
                writer.close()
                reader, writer = await self._connect()
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
        else:
            reader, writer = await self._connect()
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def phase(client: RawClient, rate: float, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def one():
        nonlocal errors
        start = time.perf_counter()
        try:
            status = await client.post()
            if status != 200:
                errors += 1
                ERRORS[str(status)] = ERRORS.get(str(status), 0) + 1
                return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors += 1
            ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            return
        latencies.append(time.perf_counter() - start)

    tasks = []
    t0 = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, errors


async def measure(
    upstream: str, gateway: str, key: str, rate: float, phases: int, seconds: float, warmup: int
):
    body = json.dumps(BODY).encode()
    clients = {
        "direct": RawClient(upstream, "/v1/chat/completions", body, {}),
        "gateway": RawClient(gateway, "/v1/chat/completions", body, {"Authorization": f"Bearer {key}"}),
    }
    for client in clients.values():  # warm the connections
        await phase(client, rate, warmup / rate)
    results = {name: [] for name in clients}
    errors = dict.fromkeys(clients, 0)
    for _ in range(phases):
        for name, client in clients.items():
            latencies, failed = await phase(client, rate, seconds)
            results[name] += latencies
            errors[name] += failed
    for client in clients.values():
        client.close()
    return results, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second in each phase")
    parser.add_argument("--phases", type=int, default=6, help="phases per arm (alternating)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one phase")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autoglm-bench-gw-"))
    up_port = free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "autoglm_cli.testing.servers:instant_upstream_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(up_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
    )
    keys = work / "keys.json"
    _, key = KeyStore(keys).create(name="bench")
    config = work / "gateway.yaml"
    config.write_text(
        "model_pool: {default: instant}\n"
        f"models: {{instant: {{backend: openai, source: '{upstream_url}/v1'}}}}\n"
        "connection_pool: {max_connections: 200, max_idle_connections: 200}\n"
        "log_level: WARN\n"
    )
    try:
        wait_http(f"{upstream_url}/v1/models", timeout=30)
        with ServeProcess(config, keys_file=keys, env={"PYTHONPATH": str(ROOT)}) as gateway:
            pressure_before = cpu_pressure()
            gateway_process = psutil.Process(gateway.proc.pid)
            cpu_before = sum(gateway_process.cpu_times()[:2])
            results, errors = asyncio.run(
                measure(upstream_url, gateway.url, key, args.rate, args.phases, args.seconds, warmup=200)
            )
            cpu_used = sum(gateway_process.cpu_times()[:2]) - cpu_before
            pressure = cpu_pressure()
    finally:
        upstream.terminate()
        upstream.wait(10)

    print(
        f"open-loop {args.rate:.0f} req/s, {args.phases} alternating phases of {args.seconds:g} s per arm, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'':8} {'n':>6} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    stats = {}
    for name, values in results.items():
        p50, p90, p99 = (percentile(values, q) * 1000 for q in (50, 90, 99))
        stats[name] = (p50, p99)
        print(f"{name:8} {len(values):6d} {errors[name]:6d} {p50:8.2f} {p90:8.2f} {p99:8.2f}")
    added50 = stats["gateway"][0] - stats["direct"][0]
    added99 = stats["gateway"][1] - stats["direct"][1]
    print(
        f"added by the gateway: p50 {added50:.2f} ms (goal <= 3), p99 {added99:.2f} ms (goal <= 10); "
        f"ratio gateway/direct p50 {stats['gateway'][0] / stats['direct'][0]:.2f}x"
    )
    print(
        f"mean direct {statistics.mean(results['direct']) * 1000:.2f} ms, "
        f"gateway {statistics.mean(results['gateway']) * 1000:.2f} ms"
    )
    if ERRORS:
        print(f"errors by kind: {ERRORS}")
    served = len(results["gateway"]) + errors["gateway"] + 200  # the warm-up requests included
    print(f"gateway CPU per request: {cpu_used / served * 1000:.2f} ms")
    if pressure is not None:
        print(
            f"machine CPU pressure (PSI some avg10) before/after: {pressure_before:.0f}% / {pressure:.0f}% "
            "(time runnable tasks waited for a CPU; high values inflate the tails)"
        )
    ok = added50 <= 3 and added99 <= 10 and not any(errors.values())
    print("GOAL MET" if ok else "GOAL MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
