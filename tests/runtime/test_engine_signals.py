"""Engine signals: parsing vLLM / SGLang metrics, the load a policy sees, routing on it, and the
gateway polling real (fake) engines over HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.engines.signals import apply, metrics_url_of, parse_metrics
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.runtime.prefix import block_hashes, prompt_hashes, shared_blocks
from autoglm_cli.runtime.scheduler.base import Node, NodeKind, NodeState, Task
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler
from autoglm_cli.runtime.scheduler.engine_load import effective_load, has_signals
from autoglm_cli.testing.fake_engine import FakeEngine
from autoglm_cli.testing.servers import ThreadedServer

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="glm"} 3.0
vllm:num_requests_running{engine="1",model_name="glm"} 2.0
vllm:num_requests_waiting{engine="0",model_name="glm"} 4.0
vllm:kv_cache_usage_perc{engine="0",model_name="glm"} 0.42
vllm:prefix_cache_hits_total{engine="0",model_name="glm"} 100.0
"""
OLD_VLLM = (
    'vllm:num_requests_running{model_name="glm"} 1.0\nvllm:gpu_cache_usage_perc{model_name="glm"} 0.5\n'
)
SGLANG = (
    'sglang:num_running_reqs{model_name="glm"} 7\nsglang:num_queue_reqs{model_name="glm"} 1\n'
    'sglang:token_usage{model_name="glm"} 0.9\n'
)


def test_parses_vllm_summing_label_sets_older_vllm_and_sglang():
    signals = parse_metrics(VLLM)
    assert (signals.running, signals.waiting, signals.kv_cache_usage) == (5, 4, 0.42)
    old = parse_metrics(OLD_VLLM)
    assert (old.running, old.waiting, old.kv_cache_usage) == (1, None, 0.5)
    sg = parse_metrics(SGLANG)
    assert (sg.running, sg.waiting, sg.kv_cache_usage) == (7, 1, 0.9)
    assert parse_metrics("garbage\n# nothing\n").running is None


def test_metrics_url_from_the_base_url_or_the_option():
    assert metrics_url_of("http://10.0.0.7:8001/v1", {}) == "http://10.0.0.7:8001/metrics"
    assert metrics_url_of("http://h:1/v1/", {"metrics_url": "http://h:2/m"}) == "http://h:2/m"
    assert metrics_url_of("https://api.example.com/v1", {"metrics_url": ""}) is None


def _node(name: str, *, running: int = 0) -> Node:
    return Node(
        id=name,
        models=frozenset({"glm"}),
        kind=NodeKind.UPSTREAM,
        state=NodeState.READY,
        capacity=100,
        running=running,
    )


def test_effective_load_moves_the_report_by_what_was_sent_or_finished_since_and_ignores_stale_ones():
    node = _node("a", running=2)
    assert effective_load(node, now=10.0) == 2  # no report: the gateway's own count
    apply(node, parse_metrics(VLLM), now=10.0)  # 5 running + 4 waiting, 2 of them ours
    assert effective_load(node, now=10.5) == 9
    node.running = 5  # three more sent since the poll
    assert effective_load(node, now=10.5) == 12
    node.running = 0  # our two finished since: the engine holds the other clients' 7
    assert effective_load(node, now=10.5) == 7
    assert not has_signals(node, now=20.0) and effective_load(node, now=20.0) == 0


def test_the_dynamic_policy_routes_to_the_engine_with_the_least_reported_load():
    clock = [100.0]
    policy = DynamicScheduler(clock=lambda: clock[0])
    busy, idle = _node("busy"), _node("idle")
    for node in (busy, idle):
        policy.on_node_change(node)
    apply(busy, parse_metrics(VLLM), now=100.0)  # 9 requests at the engine (other clients)
    apply(idle, parse_metrics('vllm:num_requests_running{model_name="glm"} 1\n'), now=100.0)
    picks = {policy.route_task(Task(id=f"t{i}", model="glm")).id for i in range(5)}
    assert picks == {"idle"}
    clock[0] = 200.0  # reports went stale: back to the gateway's own view, both empty
    picks = []
    for i in range(6):  # each pick counted at its node, as the runtime does
        node = policy.route_task(Task(id=f"u{i}", model="glm"))
        node.running += 1
        picks.append(node.id)
    assert picks.count("busy") == picks.count("idle") == 3  # the stale 9 would have sent all to idle


def test_prefix_hashes_are_chained_whole_blocks_that_keep_no_text():
    system = {"role": "system", "content": "You are a careful assistant. " * 40}
    first = prompt_hashes(messages=[system, {"role": "user", "content": "hello"}])
    second = prompt_hashes(messages=[system, {"role": "user", "content": "something else entirely"}])
    other = prompt_hashes(messages=[{"role": "system", "content": "Different. " * 100}])
    assert len(first) >= 4 and shared_blocks(first, second) >= 4
    assert shared_blocks(first, other) == 0
    assert block_hashes("x" * 255) == () and len(block_hashes("x" * 512)) == 2
    assert all(isinstance(h, int) for h in first)


@pytest.fixture(scope="module")
def two_engines():
    engines = [FakeEngine(model="glm", batch=2, token_s=0.05, output_tokens=40) for _ in range(2)]
    servers = [ThreadedServer(e).start() for e in engines]
    yield engines, servers
    for server in servers:
        server.stop()


def test_the_gateway_polls_engines_and_the_gateway_passes_prefix_hashes(two_engines):
    engines, servers = two_engines
    config = parse_config(
        json.dumps(
            {
                "model_pool": {"default": "glm"},
                "models": {
                    "glm": {
                        "backend": "openai",
                        "source": f"{servers[0].url}/v1",
                        "options": {"endpoints": [f"{s.url}/v1" for s in servers]},
                    }
                },
                "scheduler": "dynamic",
                "gateway": {"auth": False},
                "engines": {"poll_interval": "0.05s"},
            }
        ),
        environ={},
    )
    app = create_app(config)
    runtime = app.state.gateway.runtime
    # Load the first engine from outside the gateway (another client): 2 running, 3 waiting.
    outside = [
        threading.Thread(
            target=httpx.post,
            args=(f"{servers[0].url}/v1/chat/completions",),
            kwargs={"json": {"messages": [{"role": "user", "content": "x"}]}, "timeout": 30},
        )
        for _ in range(5)
    ]
    with ThreadedServer(app) as front:
        for thread in outside:
            thread.start()
        deadline = time.monotonic() + 10
        nodes = []
        while time.monotonic() < deadline:
            nodes = sorted(runtime.entries.values(), key=lambda e: e.node.address)
            first = next(e.node for e in nodes if e.node.address.startswith(servers[0].url))
            if first.engine_running == 2 and first.engine_waiting == 3:
                break
            time.sleep(0.02)
        assert first.engine_running == 2 and first.engine_waiting == 3 and first.signals_at is not None
        reply = httpx.post(
            f"{front.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "y"}], "max_tokens": 2},
            timeout=30,
        )
        assert reply.status_code == 200
        assert len(engines[1].requests) == 1  # the policy sent it to the idle engine
        for thread in outside:
            thread.join()


def test_poller_skips_an_endpoint_without_metrics():
    from autoglm_cli.runtime.engines.signals import EngineSignalPoller

    class Entry:
        def __init__(self, node, url):
            self.node, self.handle = node, type("H", (), {"metrics_url": url})()

    async def scenario(url):
        runtime = type("R", (), {})()
        node = _node("a")
        runtime.entries, runtime.clock = {"a": Entry(node, url)}, time.monotonic
        poller = EngineSignalPoller(runtime, interval=10).start()
        await poller.stop()  # the loop's first pass may not have run: poll by hand
        poller = EngineSignalPoller(runtime, interval=10)
        import httpx as _httpx

        poller._client = _httpx.AsyncClient(timeout=2)
        await poller.poll_once()
        targets = poller.targets()
        await poller._client.aclose()
        return node, targets

    with ThreadedServer(FakeEngine(model="glm")) as server:
        node, targets = asyncio.run(scenario(f"{server.url}/metrics"))
        assert node.engine_running == 0 and len(targets) == 1
        node, targets = asyncio.run(scenario(f"{server.url}/no-metrics-here"))
        assert node.engine_running is None and targets == []


def test_the_gateway_gives_every_task_its_prompt_prefix_hashes(two_engines):
    from autoglm_cli.runtime.service import Runtime

    _, servers = two_engines
    config = parse_config(
        json.dumps(
            {
                "model_pool": {"default": "glm"},
                "models": {"glm": {"backend": "openai", "source": f"{servers[0].url}/v1"}},
                "scheduler": "dynamic",
                "gateway": {"auth": False},
            }
        ),
        environ={},
    )
    seen: list[Task] = []

    class Recording(DynamicScheduler):
        def route_task(self, task):
            seen.append(task)
            return super().route_task(task)

    runtime = Runtime(config, scheduler=Recording())
    system = {"role": "system", "content": "Answer in French. " * 60}
    with ThreadedServer(create_app(config, runtime=runtime)) as front:
        for question in ("one", "two"):
            body = {"messages": [system, {"role": "user", "content": question}], "max_tokens": 1}
            assert httpx.post(f"{front.url}/v1/chat/completions", json=body, timeout=30).status_code == 200
    first, second = (t.prefix_hashes for t in seen)
    assert first == prompt_hashes(messages=[system, {"role": "user", "content": "one"}])
    assert len(first) >= 4 and shared_blocks(first, second) >= len(first) - 1


def test_the_fake_engine_counts_prefix_cache_hits_on_its_metrics():
    system = {"role": "system", "content": "Shared system prompt. " * 50}
    with ThreadedServer(FakeEngine(model="glm", prefill_s=0.0)) as server:
        for question in ("a", "b"):
            body = {"messages": [system, {"role": "user", "content": question}], "max_tokens": 1}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10).status_code == 200
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
    hits = next(line for line in text.splitlines() if line.startswith("vllm:prefix_cache_hits_total"))
    assert float(hits.split()[-1]) >= 4  # the second request found the system prompt's blocks
    assert parse_metrics(text).kv_cache_usage > 0


def test_the_kv_cache_size_comes_from_vllms_cache_config_info_and_reaches_the_node():
    text = (
        VLLM + 'vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="25000",'
        'enable_prefix_caching="True"} 1.0\n'
    )
    signals = parse_metrics(text)
    assert signals.kv_cache_tokens == 400_000
    assert parse_metrics(VLLM).kv_cache_tokens is None  # not reported: unknown
    node = _node("a")
    apply(node, parse_metrics(VLLM), now=1.0)
    assert node.kv_cache_tokens is None
    apply(node, signals, now=2.0)
    assert node.kv_cache_tokens == 400_000
    apply(node, parse_metrics(VLLM), now=3.0)  # a report without it keeps what is known
    assert node.kv_cache_tokens == 400_000


def test_the_batching_fake_engine_reports_its_kv_cache_size_like_vllm():
    with ThreadedServer(FakeEngine(model="glm", step_s=0.001, kv_tokens=64_000)) as server:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert parse_metrics(text).kv_cache_tokens == 64_000
