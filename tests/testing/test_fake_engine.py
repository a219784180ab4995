"""The fake engine's continuous-batching mode (`step_s` > 0): a real HTTP server whose answers
have the asked length, stream in groups, queue beyond the batch and reuse cached prefixes."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx

from autoglm_cli.runtime.engines.signals import parse_metrics
from autoglm_cli.testing.fake_engine import FakeEngine, main
from autoglm_cli.testing.servers import ThreadedServer


def _events(response: httpx.Response) -> list[dict]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def _stream(url: str, body: dict) -> list[dict]:
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        return _events(response)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.split()[-1])


def test_a_batching_engine_answers_with_the_length_in_its_output_field_not_max_tokens():
    engine = FakeEngine(model="m", step_s=0.001, output_field="true_length", stream_interval=4)
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hello " * 100}],
        "max_tokens": 4096,
        "true_length": 10,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with ThreadedServer(engine) as server:
        events = _stream(server.url, body)
        whole = httpx.post(
            f"{server.url}/v1/chat/completions", json={**body, "stream": False}, timeout=30
        ).json()
    content = "".join((c.get("delta") or {}).get("content") or "" for e in events for c in e["choices"])
    assert len(content.split()) == 10
    assert events[-1]["usage"]["completion_tokens"] == 10
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["stop"]  # it ended before max_tokens
    assert whole["usage"]["completion_tokens"] == 10 and whole["choices"][0]["finish_reason"] == "stop"
    assert len(whole["choices"][0]["message"]["content"].split()) == 10
    assert engine.state.served == 2


def test_without_an_output_field_max_tokens_bounds_the_answer_as_before():
    engine = FakeEngine(model="m", step_s=0.001, output_tokens=8)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with ThreadedServer(engine) as server:
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).json()
    assert reply["usage"]["completion_tokens"] == 3 and reply["choices"][0]["finish_reason"] == "length"


def test_a_batching_engine_queues_what_its_batch_cannot_hold_and_reports_it():
    # batch of one, answers of 400 steps of 5 ms: the second request waits while the first runs
    engine = FakeEngine(model="m", batch=1, step_s=0.005, output_field="n", stream_interval=50)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4096, "n": 400}
    with ThreadedServer(engine) as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json=body, timeout=60)
            for _ in range(2)
        ]
        seen = set()
        while not all(f.done() for f in futures):
            signals = parse_metrics(httpx.get(f"{server.url}/metrics", timeout=5).text)
            seen.add((signals.running, signals.waiting))
            time.sleep(0.02)
        assert all(f.result().status_code == 200 for f in futures)
        idle = parse_metrics(httpx.get(f"{server.url}/metrics", timeout=5).text)
    assert (1, 1) in seen  # one running, one waiting
    assert all(running <= 1 for running, _ in seen)
    assert (idle.running, idle.waiting) == (0, 0)


def test_a_batching_engine_counts_cached_prefix_blocks_of_the_whole_prompt():
    engine = FakeEngine(model="m", step_s=0.001, hash_blocks=100000)
    shared = "word " * 20000  # 100 KB: past the gateway's 128 hashed blocks
    with ThreadedServer(engine) as server:
        for tail in ("one", "two"):
            body = {"model": "m", "messages": [{"role": "user", "content": shared + tail}], "max_tokens": 2}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).status_code == 200
        queries = _metric(server.url, "vllm:prefix_cache_queries_total")
        hits = _metric(server.url, "vllm:prefix_cache_hits_total")
    blocks = queries / 2  # every block of each prompt is looked up, the last partial one too
    assert blocks > 390
    assert hits >= blocks - 2  # the second found all but its own tail


def test_the_command_line_takes_the_batching_options(monkeypatch):
    seen = {}

    def fake_run(app, **kwargs):
        seen["options"] = app.options

    monkeypatch.setattr("uvicorn.run", fake_run)
    main(
        [
            "--port",
            "1",
            "--step-ms",
            "8",
            "--step-per-seq-ms",
            "0.15",
            "--prefill-ms",
            "5",
            "--kv-tokens",
            "400000",
            "--stream-interval",
            "8",
            "--output-field",
            "n",
            "--max-model-len",
            "100000",
        ]
    )
    o = seen["options"]
    assert (o.step_s, o.step_per_seq_s, o.prefill_s) == (0.008, 0.00015, 0.005)
    assert (o.kv_tokens, o.stream_interval, o.output_field, o.max_model_len) == (400000, 8, "n", 100000)
    assert o.batching
