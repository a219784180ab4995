"""Gateway overhead at 200 req/s against an instant upstream: gateway vs direct vs LiteLLM, one run.

Goals: issue #6, the gateway adds at most 3 ms at p50 and 10 ms at p99; issue #14 (requests
now pass through to the engine unchanged), at most 1.5 ms at p50 and 5 ms at p99 on a quiet
machine, side by side with LiteLLM's proxy in front of the same upstream (its own venv:
`python -m venv /work/litellm-venv && /work/litellm-venv/bin/pip install 'litellm[proxy]'`;
`--litellm PATH` to its `litellm` script; the arm is left out, and says so, when it is missing).

Three processes: an instant OpenAI-compatible upstream (a bare ASGI app under
uvicorn that answers at once), `autoglm serve` with the `openai` backend in
front of it (auth on, metrics on), and this load generator. The load is open
loop (requests start on a fixed schedule, whatever the answers do) at `--rate`
per second, in alternating phases: one phase straight to the upstream, one
through the gateway, and so on, so both arms see the same machine; after each phase the
script waits until the proxies are idle (LiteLLM saturates at 200 req/s here and keeps
working after its last answer), so no arm's leftovers run in another arm's phase. Added
latency = gateway percentile - direct percentile.

    .venv/bin/python benchmarks/bench_gateway_overhead.py             # 3 x 6 phases of 1 s at 200 req/s
    .venv/bin/python benchmarks/bench_gateway_overhead.py --phases 20 # longer, steadier figures
    .venv/bin/python benchmarks/bench_gateway_overhead.py --rate 40   # the rate LiteLLM was measured at
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
    upstream: str,
    gateway: str,
    key: str,
    rate: float,
    phases: int,
    seconds: float,
    warmup: int,
    litellm: tuple[str, str] | None = None,
    servers: list[int] = (),
):
    body = json.dumps(BODY).encode()
    clients = {
        "direct": RawClient(upstream, "/v1/chat/completions", body, {}),
        "gateway": RawClient(gateway, "/v1/chat/completions", body, {"Authorization": f"Bearer {key}"}),
    }
    if litellm is not None:
        url, master = litellm
        clients["litellm"] = RawClient(
            url, "/v1/chat/completions", body, {"Authorization": f"Bearer {master}"}
        )
    for client in clients.values():  # warm the connections
        await phase(client, rate, warmup / rate)
    results = {name: [] for name in clients}
    errors = dict.fromkeys(clients, 0)
    for _ in range(phases):
        for name, client in clients.items():
            latencies, failed = await phase(client, rate, seconds)
            results[name] += latencies
            errors[name] += failed
            await settle(servers)
    for client in clients.values():
        client.close()
    return results, errors


async def settle(pids: list[int], *, idle_share: float = 0.05, limit_s: float = 15.0) -> None:
    """Wait until the proxies are idle (under `idle_share` of a core over 0.1 s), so that one
    arm's leftovers (a backlog, logging after the answers) do not run in the next arm's phase."""
    if not pids:
        return
    deadline = time.perf_counter() + limit_s
    before = sum(_tree_cpu(pid) for pid in pids)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
        now = sum(_tree_cpu(pid) for pid in pids)
        if now - before < idle_share * 0.1:
            return
        before = now


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (LiteLLM's CLI runs uvicorn in a child)."""
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def start_litellm(script: str, upstream_url: str, work: Path) -> tuple[subprocess.Popen, str, str]:
    """LiteLLM's proxy (one process, its defaults, a master key) in front of the same upstream."""
    import secrets

    port = free_port()
    master = f"sk-{secrets.token_hex(24)}"
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: instant\n"
        "    litellm_params:\n"
        "      model: openai/instant\n"
        f"      api_base: {upstream_url}/v1\n"
        "      api_key: unused\n"
        "general_settings:\n"
        f"  master_key: {master}\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [script, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "litellm.log").open("wb"),
    )
    return process, f"http://127.0.0.1:{port}", master


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second in each phase")
    parser.add_argument("--phases", type=int, default=6, help="phases per arm (alternating)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one phase")
    parser.add_argument(
        "--litellm",
        default="/work/litellm-venv/bin/litellm",
        help="LiteLLM's proxy script ('' : no LiteLLM arm)",
    )
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
    litellm = None
    if args.litellm and Path(args.litellm).exists():
        litellm = start_litellm(args.litellm, upstream_url, work)
    elif args.litellm:
        print(f"LiteLLM not found at {args.litellm}: its arm is left out (see the docstring to install it)")
    try:
        wait_http(f"{upstream_url}/v1/models", timeout=30)
        if litellm is not None:
            wait_http(f"{litellm[1]}/health/liveliness", timeout=120, alive=lambda: litellm[0].poll() is None)
        with ServeProcess(config, keys_file=keys, env={"PYTHONPATH": str(ROOT)}) as gateway:
            pressure_before = cpu_pressure()
            gateway_process = psutil.Process(gateway.proc.pid)
            cpu_before = sum(gateway_process.cpu_times()[:2])
            litellm_cpu = _tree_cpu(litellm[0].pid) if litellm is not None else 0.0
            results, errors = asyncio.run(
                measure(
                    upstream_url,
                    gateway.url,
                    key,
                    args.rate,
                    args.phases,
                    args.seconds,
                    warmup=200,
                    litellm=(litellm[1], litellm[2]) if litellm is not None else None,
                    servers=[gateway.proc.pid, *([litellm[0].pid] if litellm is not None else [])],
                )
            )
            cpu_used = sum(gateway_process.cpu_times()[:2]) - cpu_before
            if litellm is not None:
                litellm_cpu = _tree_cpu(litellm[0].pid) - litellm_cpu
            pressure = cpu_pressure()
    finally:
        upstream.terminate()
        upstream.wait(10)
        if litellm is not None:
            litellm[0].terminate()
            litellm[0].wait(30)

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
        f"added by the gateway: p50 {added50:.2f} ms (goal <= 1.5), p99 {added99:.2f} ms (goal <= 5); "
        f"ratio gateway/direct p50 {stats['gateway'][0] / stats['direct'][0]:.2f}x"
    )
    if "litellm" in stats:
        lite50 = stats["litellm"][0] - stats["direct"][0]
        lite99 = stats["litellm"][1] - stats["direct"][1]
        print(
            f"added by LiteLLM's proxy: p50 {lite50:.2f} ms, p99 {lite99:.2f} ms; "
            f"autoglm adds {added50 / lite50 if lite50 > 0 else float('nan'):.2f}x LiteLLM's p50"
        )
    print(
        f"mean direct {statistics.mean(results['direct']) * 1000:.2f} ms, "
        f"gateway {statistics.mean(results['gateway']) * 1000:.2f} ms"
    )
    if ERRORS:
        print(f"errors by kind: {ERRORS}")
    served = len(results["gateway"]) + errors["gateway"] + 200  # the warm-up requests included
    print(f"gateway CPU per request: {cpu_used / served * 1000:.2f} ms")
    if "litellm" in results:
        lite_served = len(results["litellm"]) + errors["litellm"] + 200
        print(
            f"LiteLLM CPU per request: {litellm_cpu / lite_served * 1000:.2f} ms "
            f"(autoglm uses {cpu_used / served / max(1e-9, litellm_cpu / lite_served):.2f}x of it; "
            "CPU per request depends far less on the machine's load than latency does)"
        )
    if pressure is not None:
        print(
            f"machine CPU pressure (PSI some avg10) before/after: {pressure_before:.0f}% / {pressure:.0f}% "
            "(time runnable tasks waited for a CPU; high values inflate the tails)"
        )
    ok = added50 <= 1.5 and added99 <= 5 and not errors["gateway"]
    print("GOAL MET" if ok else "GOAL MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
