"""A worker process SIGKILLed under steady load: zero failed or lost requests.

Goal (issue #6): while `autoglm serve` answers a steady open-loop load, SIGKILL
one Dask worker process (the one running a request); every request still gets
a normal response. Anchor, in the same run: the same kill with retries off
(`gateway.max_attempts: 1`), which shows what the kill costs without them.

Each arm: a fresh `autoglm serve` with 2 worker processes of the simulated
backend (about 0.1 s per request), `--rate` requests per second for
`--seconds`, half of them streamed; the kill comes at a third of the run.
Counted: requests answered 200 with the full text (ok), answered with an error
(failed), and never answered (lost: no response within 60 s).

    .venv/bin/python benchmarks/bench_worker_kill.py               # 8 req/s for 12 s per arm
    .venv/bin/python benchmarks/bench_worker_kill.py --rate 15 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoglm_cli.testing.servers import ServeProcess  # noqa: E402

TOKENS = 16
WORDS = ["simulated", "output", "from", "the", "autoglm", "simulated", "backend", "."]
EXPECTED = " ".join(WORDS[i % len(WORDS)] for i in range(TOKENS))


def write_config(work: Path, max_attempts: int) -> Path:
    path = work / f"kill-{max_attempts}.yaml"
    path.write_text(
        json.dumps(
            {
                "model_pool": {"default": "sim"},
                "models": {
                    "sim": {
                        "backend": "simulated",
                        "options": {"a": 0.02, "c": 0.005, "output_tokens": TOKENS},
                    }
                },
                "workers": {"engine": "dask", "count": 2, "control_interval": "0.5s"},
                "gateway": {"auth": False, "max_attempts": max_attempts},
                "log_level": "WARN",
            }
        )
    )
    return path


async def one(client, url: str, stream: bool) -> tuple[str, float]:
    body = {"model": "sim", "messages": [{"role": "user", "content": "steady load"}], "stream": stream}
    start = time.perf_counter()
    try:
        if stream:
            text = ""
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    return "failed", time.perf_counter() - start
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        event = json.loads(line[6:])
                        if "error" in event:
                            return "failed", time.perf_counter() - start
                        for choice in event["choices"]:
                            text += choice["delta"].get("content") or ""
        else:
            response = await client.post(f"{url}/v1/chat/completions", json=body)
            if response.status_code != 200:
                return "failed", time.perf_counter() - start
            text = response.json()["choices"][0]["message"]["content"]
    except asyncio.TimeoutError:
        return "lost", time.perf_counter() - start
    except Exception:
        return "failed", time.perf_counter() - start
    return ("ok" if text == EXPECTED else "failed"), time.perf_counter() - start


async def drive(url: str, rate: float, seconds: float) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
        killed: dict = {}

        async def kill_at(delay: float):
            await asyncio.sleep(delay)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                nodes = (await client.get(f"{url}/readyz")).json()["nodes"]
                busy = [n for n in nodes if n["state"] == "ready" and n["running"] > 0]
                if busy:
                    os.kill(busy[0]["pid"], signal.SIGKILL)
                    killed.update(pid=busy[0]["pid"], at=time.monotonic())
                    break
                await asyncio.sleep(0.005)
            # How long until two nodes are ready again (the nanny restarts the worker, serve places a node).
            while killed and time.monotonic() < killed["at"] + 60:
                nodes = (await client.get(f"{url}/readyz")).json()["nodes"]
                ready = [n for n in nodes if n["state"] == "ready"]
                if len(ready) == 2 and killed["pid"] not in {n["pid"] for n in ready}:
                    killed["recovered"] = time.monotonic() - killed["at"]
                    return
                await asyncio.sleep(0.05)

        async def bounded(i: int):
            try:
                return await asyncio.wait_for(one(client, url, stream=i % 2 == 1), 60)
            except asyncio.TimeoutError:
                return "lost", 60.0

        killer = asyncio.create_task(kill_at(seconds / 3))
        tasks = []
        t0 = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(bounded(i)))
        outcomes = await asyncio.gather(*tasks)
        await killer
        recovered = killed.get("recovered")
        metrics = (await client.get(f"{url}/metrics")).text
    retries = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('autoglm_retries_total{reason="node_failure"}')
    )
    counts = {k: sum(1 for o, _ in outcomes if o == k) for k in ("ok", "failed", "lost")}
    latencies = sorted(t for _, t in outcomes)
    return {
        **counts,
        "total": len(outcomes),
        "killed": bool(killed),
        "retries": retries,
        "recovered_s": recovered,
        "p50_s": latencies[len(latencies) // 2],
        "max_s": latencies[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autoglm-bench-kill-"))
    results = {}
    for name, attempts in (("autoglm (retries on)", 3), ("anchor: max_attempts 1", 1)):
        with ServeProcess(write_config(work, attempts), env={"PYTHONPATH": str(ROOT)}) as server:
            results[name] = asyncio.run(drive(server.url, args.rate, args.seconds))
    print(
        f"steady load {args.rate:g} req/s for {args.seconds:g} s, half streamed; "
        f"SIGKILL of a busy worker at {args.seconds / 3:.0f} s; {os.cpu_count()} CPUs"
    )
    print(
        f"{'':24} {'total':>5} {'ok':>5} {'failed':>6} {'lost':>5} {'retries':>7} {'p50 s':>6} {'max s':>6} "
        f"{'2 nodes again after':>20}"
    )
    for name, r in results.items():
        recovered = f"{r['recovered_s']:.1f} s" if r["recovered_s"] is not None else "-"
        print(
            f"{name:24} {r['total']:5d} {r['ok']:5d} {r['failed']:6d} {r['lost']:5d} {r['retries']:7.0f} "
            f"{r['p50_s']:6.2f} {r['max_s']:6.2f} {recovered:>20}"
        )
    ours = results["autoglm (retries on)"]
    ok = ours["killed"] and ours["failed"] == 0 and ours["lost"] == 0
    print("GOAL MET: zero failed or lost requests" if ok else "GOAL MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
