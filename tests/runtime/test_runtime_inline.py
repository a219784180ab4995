"""Runtime behaviour through the gateway, on in-process (inline) simulated nodes: priorities,
fallback to the backup model, queue limits, auth switched off, and the scaling seam."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.backends.base import GenerationRequest
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.runtime.scheduler import NodeState, Priority
from autoglm_cli.runtime.scheduler.static import StaticScheduler
from autoglm_cli.runtime.service import Runtime
from autoglm_cli.testing.servers import ThreadedServer, free_port, wait_http


def config(**sections):
    base = {
        "model_pool": {"default": "sim"},
        "models": {"sim": {"backend": "simulated", "options": {"c": 0.05, "output_tokens": 4}}},
        "workers": {"engine": "inline", "count": 1, "control_interval": "0.1s"},
        "gateway": {"auth": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(json.dumps(base), environ={})


LONG = {"sim": {"backend": "simulated", "options": {"c": 0.05, "output_tokens": 200}}}  # 10 s a request


def run_order(app, url: str, ids: dict[str, str], timeout: float = 20) -> list[str]:
    """The names of the tasks `ids` ({task id: name}) in the order the gateway sent them to the
    node, once all have succeeded (read from the runtime: polling statuses cannot tell apart
    two short tasks that both ended between two polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {httpx.get(f"{url}/v1/tasks/{task_id}").json()["status"] for task_id in ids}
        if statuses == {"succeeded"}:
            break
        time.sleep(0.02)
    assert statuses == {"succeeded"}
    jobs = app.state.gateway.runtime.jobs
    return [ids[task_id] for task_id in sorted(ids, key=lambda task_id: jobs[task_id].dispatched_at)]


def hold_the_node(url: str) -> str:
    """Once the node is ready, give it a 10 s task (cancel it to free the node); its id."""
    wait_http(f"{url}/readyz", timeout=30)
    reply = httpx.post(f"{url}/v1/tasks", json={"prompt": "blocker"})
    assert reply.status_code == 202 and reply.json()["status"] == "running"
    return reply.json()["id"]


def test_high_priority_tasks_overtake_normal_and_low(tmp_path):
    app = create_app(config(models=LONG))
    with ThreadedServer(app) as server:
        blocker = hold_the_node(server.url)
        ids = {}
        for name, priority in [("low", "low"), ("normal", "normal"), ("high", "high")]:
            body = {"prompt": name, "priority": priority, "max_tokens": 2}
            reply = httpx.post(f"{server.url}/v1/tasks", json=body)
            assert reply.status_code == 202 and reply.json()["status"] == "queued"
            ids[reply.json()["id"]] = name
        httpx.delete(f"{server.url}/v1/tasks/{blocker}")  # the node frees with all three queued
        order = run_order(app, server.url, ids)
    assert order == ["high", "normal", "low"]


def test_priority_header_on_chat_completions_is_accepted(tmp_path):
    with ThreadedServer(create_app(config())) as server:
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"x-autoglm-priority": "high"},
            json={"messages": [{"role": "user", "content": "x"}]},
        )
        assert reply.status_code == 200
        bad = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"x-autoglm-priority": "urgent"},
            json={"messages": [{"role": "user", "content": "x"}]},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "priority"


def test_fallback_to_the_backup_model_says_so():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cfg = config(
        model_pool={"default": "glm", "backup": "sim"},
        models={
            "glm": {"backend": "openai", "source": dead},
            "sim": {"backend": "simulated", "options": {"output_tokens": 3}},
        },
    )
    with ThreadedServer(create_app(cfg)) as server:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for the probe to fail the upstream node
            nodes = httpx.get(f"{server.url}/readyz").json()["nodes"]
            if any(n["model"] == "glm" and n["state"] == "failed" for n in nodes):
                break
            time.sleep(0.05)
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False  # the default cannot serve
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        raw = api.chat.completions.with_raw_response.create(
            model="glm", messages=[{"role": "user", "content": "x"}]
        )
        reply = raw.parse()
        assert reply.model == "sim" and raw.headers["x-autoglm-fallback"] == "backup"
        assert raw.headers["x-autoglm-fallback-from"] == "glm"
        assert reply.choices[0].message.content == "simulated output from"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'autoglm_fallbacks_total{from_model="glm",to_model="sim"} 1.0' in metrics


def test_no_node_and_no_backup_is_503_with_the_reason():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cfg = config(model_pool={"default": "glm"}, models={"glm": {"backend": "openai", "source": dead}})
    with ThreadedServer(create_app(cfg)) as server:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for the probe to fail the upstream node
            if httpx.get(f"{server.url}/readyz").json()["nodes"][0]["state"] == "failed":
                break
            time.sleep(0.02)
        reply = httpx.post(f"{server.url}/v1/completions", json={"prompt": "x"})
        assert reply.status_code == 503
        error = reply.json()["error"]
        assert error["code"] == "model_unavailable" and "Connection refused" in error["message"]


def test_queue_timeout_and_queue_full_answer_503():
    cfg = config(models=LONG, gateway={"queue_timeout": "0.3s", "max_queue": 1})
    with ThreadedServer(create_app(cfg)) as server:
        busy = hold_the_node(server.url)
        waiting = httpx.post(f"{server.url}/v1/tasks", json={"prompt": "queued"})
        full = httpx.post(f"{server.url}/v1/completions", json={"prompt": "one too many"})
        assert full.status_code == 503 and full.json()["error"]["code"] == "queue_full"
        assert full.headers["retry-after"] == "1"
        deadline = time.monotonic() + 20  # the control tick (every 0.1 s) expires it after 0.3 s
        while time.monotonic() < deadline:
            task = httpx.get(f"{server.url}/v1/tasks/{waiting.json()['id']}").json()
            if task["status"] != "queued":
                break
            time.sleep(0.02)
        assert task["status"] == "failed" and task["error"]["code"] == "queue_timeout"
        httpx.delete(f"{server.url}/v1/tasks/{busy}")


def test_requests_are_validated_in_openai_error_shape():
    with ThreadedServer(create_app(config())) as server:
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}], "temperature": 5},
        )
        assert reply.status_code == 400
        assert reply.json()["error"]["type"] == "invalid_request_error"
        assert reply.json()["error"]["param"] == "temperature"
        two = httpx.post(
            f"{server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "n": 2}
        )
        assert two.status_code == 400 and two.json()["error"]["code"] == "unsupported_parameter"
        assert two.json()["error"]["param"] == "n"
        missing = httpx.get(f"{server.url}/v1/tasks/task-nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "task_not_found"


class Adjustable(StaticScheduler):
    """A static policy whose size a test turns, like a dynamic policy would."""


def test_scaling_down_drains_nodes_before_removing_them():
    async def scenario():
        cfg = config(
            workers={"count": None, "min": 1, "max": 4, "engine": "inline", "control_interval": "0.05s"},
            models={"sim": {"backend": "simulated", "options": {"c": 0.1, "output_tokens": 5}}},
        )
        scheduler = Adjustable(3)
        runtime = Runtime(cfg, scheduler=scheduler)
        await runtime.start()
        try:
            for _ in range(50):
                await asyncio.sleep(0.02)
                if sum(e.node.healthy for e in runtime.entries.values()) == 3:
                    break
            assert sum(e.node.healthy for e in runtime.entries.values()) == 3
            jobs = [
                runtime.submit(
                    GenerationRequest(id=f"r{i}", model="sim", kind="completion", prompt="x"),
                    priority=Priority.NORMAL,
                )
                for i in range(3)
            ]
            assert [e.node.running for e in runtime.entries.values()] == [1, 1, 1]  # all three busy
            scheduler.workers = 1
            await runtime.tick()
            states = sorted(e.node.state.value for e in runtime.entries.values())
            assert states == ["draining", "draining", "ready"]  # busy victims finish their work first
            results = await asyncio.gather(*(job.done for job in jobs))
            assert all(r.completion_tokens == 5 for r in results)
            for _ in range(20):
                await runtime.tick()
                live = [e for e in runtime.entries.values() if e.node.state is not NodeState.DEAD]
                if len(live) == 1:
                    break
                await asyncio.sleep(0.02)
            assert [e.node.state for e in live] == [NodeState.READY]
            assert runtime.desired_workers == 1
            scheduler.workers = 2
            await runtime.tick()  # grows the cluster; the next ticks place and load the new node

            async def ticked_healthy() -> int:
                await runtime.tick()
                return sum(e.node.healthy for e in runtime.entries.values())

            for _ in range(500):
                if await ticked_healthy() == 2:
                    break
                await asyncio.sleep(0.01)
            assert sum(e.node.healthy for e in runtime.entries.values()) == 2
        finally:
            await runtime.stop()

    asyncio.run(scenario())


def test_a_client_that_leaves_mid_stream_frees_its_node():
    cfg = config(models={"sim": {"backend": "simulated", "options": {"c": 0.5, "output_tokens": 50}}})
    with ThreadedServer(create_app(cfg)) as server:
        body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
                for i, _ in enumerate(response.iter_lines()):
                    if i >= 4:
                        break  # leave after a few events; the answer would take 25 s
            left = time.monotonic()
            while time.monotonic() - left < 3:
                [node] = client.get(f"{server.url}/readyz").json()["nodes"]
                if node["running"] == 0:
                    break
                time.sleep(0.05)
            assert node["running"] == 0
            # The node is free for the next request at once (0.5 s), not after the abandoned
            # answer's remaining 20 s; the bound leaves a loaded machine 10 s of slack.
            started = time.monotonic()
            reply = client.post(f"{server.url}/v1/completions", json={"prompt": "x", "max_tokens": 1})
            assert reply.status_code == 200 and time.monotonic() - started < 10
