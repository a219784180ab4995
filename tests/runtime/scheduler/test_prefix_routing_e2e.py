"""End to end, real processes: `autoglm serve` in front of three fake engines (batching mode)
and `autoglm bench` replaying conversations whose turns share their prefixes (Mooncake JSON
lines with `hash_ids`). With `scheduler: dynamic` a conversation's next turn goes back to the
engine that holds its earlier turns, so the engines' own prefix caches hit markedly more than
with `round-robin`. Counts only, no timing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
import yaml

from autoglm_cli.testing.servers import ServeProcess, free_port, wait_http

ENGINES = 3
CONVERSATIONS, TURNS = 8, 4
OUTPUT = 20
FIELD = "fake_output_tokens"


def _trace(path):
    """Conversation c, turn t: a system block every request shares, then its own blocks, two
    more each turn (a turn's prompt starts with the whole previous turn's)."""
    rows = []
    for t in range(TURNS):
        for c in range(CONVERSATIONS):
            ids = [1, *(1000 * (c + 1) + j for j in range(2 * t + 1))]
            rows.append(
                {
                    "timestamp": int((t * CONVERSATIONS + c) * 200),  # ms: one request every 0.2 s
                    "input_length": 512 * len(ids) - 100,
                    "output_length": OUTPUT,
                    "hash_ids": ids,
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _engines(tmp_path):
    ports = [free_port() for _ in range(ENGINES)]
    args = ["--step-ms", "1", "--prefill-ms", "0.2", "--stream-interval", "8", "--hash-blocks", "100000"]
    args += ["--max-model-len", "100000", "--output-field", FIELD, "--no-record"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "autoglm_cli.testing.fake_engine", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    return [f"http://127.0.0.1:{p}" for p in ports], procs


def _hits(urls) -> tuple[float, float]:
    hits = queries = 0.0
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        hits += float(re.search(r"^vllm:prefix_cache_hits_total\{.*\} (\S+)$", text, re.M).group(1))
        queries += float(re.search(r"^vllm:prefix_cache_queries_total\{.*\} (\S+)$", text, re.M).group(1))
    return hits, queries


def _run(tmp_path, policy: str) -> tuple[dict, list[dict], float]:
    urls, procs = _engines(tmp_path)
    try:
        for url, proc in zip(urls, procs, strict=True):
            wait_http(f"{url}/health", timeout=60, alive=lambda p=proc: p.poll() is None)
        config = tmp_path / f"{policy}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "model_pool": {"default": "fake", "backup": None},
                    "models": {
                        "fake": {
                            "backend": "openai",
                            "source": f"{urls[0]}/v1",
                            "options": {"model": "fake-model", "endpoints": [f"{u}/v1" for u in urls]},
                        }
                    },
                    "scheduler": policy,
                    "workers": {"count": ENGINES},
                    "gateway": {"auth": False},
                }
            )
        )
        records = tmp_path / f"{policy}.jsonl"
        with ServeProcess(config, log=tmp_path / f"{policy}.log") as server:
            bench = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "autoglm_cli",
                    "--json",
                    "bench",
                    f"{server.url}/v1",
                    "--trace",
                    str(_trace(tmp_path / "conversations.jsonl")),
                    "--max-tokens",
                    "4096",
                    "--output-length-field",
                    FIELD,
                    "--requests",
                    str(records),
                    "--no-plot",
                    "--timeout",
                    "60",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        assert bench.returncode == 0, bench.stderr[-3000:]
        hits, queries = _hits(urls)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    return json.loads(bench.stdout)["result"], rows, hits / queries


@pytest.mark.slow
def test_dynamic_sends_follow_up_turns_to_the_engine_holding_their_prefix(tmp_path):
    dynamic, rows, dynamic_rate = _run(tmp_path, "dynamic")
    _, _, round_robin_rate = _run(tmp_path, "round-robin")
    requests = CONVERSATIONS * TURNS
    assert (dynamic["requests"], dynamic["succeeded"]) == (requests, requests)
    # Every client sent max_tokens 4096; the answers had the traced length all the same.
    assert {r["max_tokens"] for r in rows} == {4096}
    assert {r["completion_tokens"] for r in rows} == {OUTPUT}
    # The engines' own counters: most of a follow-up turn's prompt was cached where dynamic sent
    # it, against about one engine in three by turns.
    assert dynamic_rate >= 1.5 * round_robin_rate, (dynamic_rate, round_robin_rate)
    assert dynamic_rate >= 0.5
