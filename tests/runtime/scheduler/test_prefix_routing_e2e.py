"""End to end, real processes: `autoglm serve` in front of three fake engines (batching mode)
and `autoglm bench` replaying conversations whose turns share their prefixes (Mooncake JSON
lines with `hash_ids`). With `scheduler: dynamic` a conversation's next turn goes back to the
engine that holds its earlier turns, so the engines' own prefix caches hit markedly more than
with `round-robin`. Counts only, no timing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from autoglm_cli.testing.engine_fleet import FakeEngines, serve_config
from autoglm_cli.testing.servers import ServeProcess

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


ENGINE_ARGS = ["--step-ms", "1", "--prefill-ms", "0.2", "--stream-interval", "8", "--hash-blocks", "100000"]
ENGINE_ARGS += ["--max-model-len", "100000", "--output-field", FIELD, "--no-record"]
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"


def _run(tmp_path, policy: str) -> tuple[dict, list[dict], float]:
    with FakeEngines(ENGINES, ENGINE_ARGS) as engines:
        config = tmp_path / f"{policy}.yaml"
        config.write_text(yaml.safe_dump(serve_config(engines.urls, policy)))
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
        counts = engines.sums((HITS, QUERIES))
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    return json.loads(bench.stdout)["result"], rows, counts[HITS] / counts[QUERIES]


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
