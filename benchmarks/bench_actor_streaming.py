"""What the Dask actor hop costs: requests and token streams through worker actors vs in-process nodes.

Design being measured (docs/architecture.md, "Streaming through a Dask actor"):
the actor generates into a per-request buffer on its worker, the gateway
long-polls `pull(id)`, which returns as soon as there is new text (all of it
since the last pull). Anchor: the same simulated model on in-process ("inline")
nodes, where a pull is a plain coroutine call. Same gateway, same client, one
run: added time per request, to the first token, and per whole stream.

    .venv/bin/python benchmarks/bench_actor_streaming.py            # 40 requests per arm
    .venv/bin/python benchmarks/bench_actor_streaming.py -n 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoglm_cli.testing.servers import ServeProcess  # noqa: E402

TOKENS = 32


def config(work: Path, engine: str, c: float) -> Path:
    path = work / f"{engine}-{c}.yaml"
    path.write_text(
        json.dumps(
            {
                "model_pool": {"default": "sim"},
                "models": {"sim": {"backend": "simulated", "options": {"c": c, "output_tokens": TOKENS}}},
                "workers": {"engine": engine, "count": 1},
                "gateway": {"auth": False},
                "log_level": "WARN",
            }
        )
    )
    return path


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run_arm(url: str, n: int) -> dict:
    import httpx

    body = {"model": "sim", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            client.post(f"{url}/v1/chat/completions", json=body)
        plain = []
        for _ in range(n):
            start = time.perf_counter()
            client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
            plain.append(time.perf_counter() - start)
        ttft, total, pieces = [], [], []
        for _ in range(n):
            start = time.perf_counter()
            first = None
            count = 0
            with client.stream(
                "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                        count += 1
                        if first is None:
                            first = time.perf_counter() - start
            ttft.append(first)
            total.append(time.perf_counter() - start)
            pieces.append(count)
    return {"plain": median(plain), "ttft": median(ttft), "total": median(total), "events": median(pieces)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=40, help="requests per measurement")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autoglm-bench-stream-"))
    rows = []
    for c in (0.0, 0.01):  # instant tokens, then 100 tokens/s
        arms = {}
        for engine in ("inline", "dask"):
            with ServeProcess(config(work, engine, c), env={"PYTHONPATH": str(ROOT)}) as server:
                arms[engine] = run_arm(server.url, args.n)
        rows.append((c, arms))
    cpus = os.cpu_count()
    print(f"{TOKENS} tokens per request, 1 node, sequential requests, medians of {args.n}; {cpus} CPUs")
    print(
        f"{'token time':>10} {'node':>7} {'request ms':>11} {'first token ms':>15} {'stream ms':>10} "
        f"{'SSE events':>10}"
    )
    for c, arms in rows:
        for engine, r in arms.items():
            print(
                f"{c * 1000:8.0f}ms {engine:>7} {r['plain'] * 1000:11.2f} {r['ttft'] * 1000:15.2f} "
                f"{r['total'] * 1000:10.2f} {r['events']:10d}"
            )
        d, i = arms["dask"], arms["inline"]
        added = [(d[k] - i[k]) * 1000 for k in ("plain", "ttft", "total")]
        print(f"{'':10} {'added':>7} {added[0]:11.2f} {added[1]:15.2f} {added[2]:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
