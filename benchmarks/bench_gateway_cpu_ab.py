"""The gateway's CPU per proxied request, this tree vs another checkout (A/B, alternating rounds).

Timing on a shared machine is noisy; CPU per request much less so. Two `autoglm serve`
processes, one from this tree and one from `--base` (another checkout, e.g. the commit
before a change), in front of the same instant upstream; rounds of requests alternate
between them and the server processes' CPU time is divided by the requests served.

    git archive 04d9318 | (mkdir -p /tmp/base && tar -x -C /tmp/base)
    .venv/bin/python benchmarks/bench_gateway_cpu_ab.py --base /tmp/base --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from autoglm_cli.runtime.auth import KeyStore  # noqa: E402
from autoglm_cli.testing.servers import ServeProcess, free_port, wait_http  # noqa: E402

BODY = {"model": "instant", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


async def burst(url: str, key: str, n: int, concurrency: int = 4) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                reply = await client.post(f"{url}/v1/chat/completions", json=BODY)
                reply.raise_for_status()

        await asyncio.gather(*(one() for _ in range(n)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="another checkout of the project")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=500, help="per round and tree")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    args = parser.parse_args()
    if not args.base:
        print("give --base DIR (another checkout of the project to compare with); nothing measured")
        return 0
    trees = {"base": str(Path(args.base).resolve()), "this": str(ROOT)}
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "autoglm_cli.testing.servers:instant_upstream_app",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="autoglm-bench-cpu-"))
    keys = work / "keys.json"
    _, key = KeyStore(keys).create(name="bench")
    config = work / "gateway.yaml"
    config.write_text(
        "model_pool: {default: instant}\n"
        f"models: {{instant: {{backend: openai, source: 'http://127.0.0.1:{port}/v1'}}}}\n"
        "connection_pool: {max_connections: 200, max_idle_connections: 200}\nlog_level: WARN\n"
    )
    servers = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=30)
        for name, tree in trees.items():
            servers[name] = ServeProcess(config, keys_file=keys, env={"PYTHONPATH": tree}).start()
        for server in servers.values():  # warm up
            asyncio.run(burst(server.url, key, 200))
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, server in servers.items():
                process = psutil.Process(server.proc.pid)
                before = sum(process.cpu_times()[:2])
                asyncio.run(burst(server.url, key, args.requests, args.concurrency))
                cpu[name].append((sum(process.cpu_times()[:2]) - before) / args.requests * 1000)
    finally:
        for server in servers.values():
            server.stop()
        upstream.terminate()
        upstream.wait(10)
    for name, values in cpu.items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:5} CPU ms per request: median {statistics.median(values):.2f} (rounds: {rounds})")
    ratio = statistics.median(cpu["this"]) / statistics.median(cpu["base"])
    print(f"this / base: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
