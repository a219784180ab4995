"""The dynamic scheduler wired into the runtime, through the gateway on inline simulated nodes:
`scheduler: priority-based` (dynamic + aging queue), fallback after upstream failures, scale events
on /metrics and in the log, and the scale hook (a real script run with the count)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

import httpx
import openai
import pytest

from autoglm_cli.errors import ConfigError
from autoglm_cli.runtime.backends.base import GenerationRequest
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.runtime.scale_hook import ScaleHook
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler
from autoglm_cli.runtime.service import Runtime
from autoglm_cli.testing.servers import ThreadedServer

from .conftest import until
from .test_runtime_inline import LONG, config, hold_the_node, run_order


def test_priority_based_runs_the_dynamic_scheduler_and_an_aged_low_task_overtakes_a_fresh_high_one():
    cfg = config(
        scheduler="priority-based",
        workers={"count": None, "min": 1, "max": 1},
        models=LONG,
        gateway={"priority_aging": "0.3s"},
    )
    app = create_app(cfg)
    with ThreadedServer(app) as server:
        runtime = app.state.gateway.runtime
        assert isinstance(runtime.scheduler, DynamicScheduler) and runtime.queue.aging_s == 0.3
        assert httpx.get(f"{server.url}/readyz").json()["scheduler"] == "DynamicScheduler"
        ids = {}

        def submit(name: str, priority: str) -> None:
            body = {"prompt": name, "priority": priority, "max_tokens": 2}
            reply = httpx.post(f"{server.url}/v1/tasks", json=body)
            assert reply.status_code == 202 and reply.json()["status"] == "queued"
            ids[reply.json()["id"]] = name

        blocker = hold_the_node(server.url)
        submit("old-low", "low")
        time.sleep(0.8)  # at least: old-low's lead grows with every moment more
        submit("high", "high")
        httpx.delete(f"{server.url}/v1/tasks/{blocker}")
        # When the node frees, old-low ranks 2 - w/0.3 and high 0 - (w - 0.8)/0.3 at best: old-low
        # first. Strict priorities (scheduler: static) would serve high first.
        order = run_order(app, server.url, ids)
    assert order == ["old-low", "high"]


def test_the_default_failing_on_every_node_falls_back_to_the_backup_with_header_and_metric():
    # The default's upstream accepts connections but answers 500 to every request. Each 500 is
    # first the request's own (the client gets it); BREAKER_THRESHOLD of them in a row open the
    # endpoint's breaker, and the model pool then sends requests to the backup.
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from autoglm_cli.runtime.fleet import BREAKER_THRESHOLD

    broken = FastAPI()

    @broken.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "glm", "object": "model"}]}

    @broken.post("/v1/chat/completions")
    async def chat():
        return JSONResponse({"error": {"message": "boom"}}, status_code=500)

    with ThreadedServer(broken) as upstream:
        cfg = config(
            model_pool={"default": "glm", "backup": "sim"},
            models={
                "glm": {"backend": "openai", "source": f"{upstream.url}/v1"},
                "sim": {"backend": "simulated", "options": {"output_tokens": 3}},
            },
            retry={"tries": 1, "base": "0s"},
            gateway={"max_attempts": 1},
        )
        with ThreadedServer(create_app(cfg)) as server:
            api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
            for _ in range(BREAKER_THRESHOLD):
                with pytest.raises(openai.InternalServerError, match="boom"):
                    api.chat.completions.create(model="glm", messages=[{"role": "user", "content": "x"}])
            raw = api.chat.completions.with_raw_response.create(
                model="glm", messages=[{"role": "user", "content": "x"}]
            )
            assert raw.parse().model == "sim" and raw.headers["x-autoglm-fallback"] == "backup"
            metrics = httpx.get(f"{server.url}/metrics").text
    assert 'autoglm_fallbacks_total{from_model="glm",to_model="sim"} 1.0' in metrics


def test_the_dynamic_policy_grows_the_pool_under_a_backlog_and_shows_it_on_metrics_and_in_the_log(caplog):
    async def scenario():
        cfg = config(
            scheduler="dynamic",
            workers={"count": None, "min": 1, "max": 3},
            models={"sim": {"backend": "simulated", "options": {"c": 0.02, "output_tokens": 10}}},
        )
        runtime = Runtime(cfg)
        assert type(runtime.scheduler).__name__ == "DynamicScheduler"
        await runtime.start()
        try:
            jobs = []
            for i in range(40):  # 50 req/s against one node that serves 5 req/s: the queue grows
                jobs.append(
                    runtime.submit(GenerationRequest(id=f"s{i}", model="sim", kind="completion", prompt="x"))
                )
                await asyncio.sleep(0.02)
            results = await asyncio.gather(*(job.done for job in jobs))
            assert all(r.completion_tokens == 10 for r in results)
            assert runtime.desired_workers == 3
            assert sum(e.node.healthy for e in runtime.entries.values()) == 3
            return runtime.metrics.render()[0].decode(), runtime.scheduler.task_cost.relative_error
        finally:
            await runtime.stop()

    with caplog.at_level(logging.INFO, logger="autoglm.scale"):
        metrics, estimate_error = asyncio.run(scenario())
    assert 'autoglm_scheduler_scale_events_total{direction="up",reason="panic"}' in metrics
    assert "autoglm_scheduler_desired_nodes 3.0" in metrics
    for name in (
        "autoglm_scheduler_predicted_load",
        "autoglm_scheduler_actual_nodes",
        'autoglm_queue_depth{priority="low"}',
    ):
        assert name in metrics
    # The gauge is the policy's own figure, read at the scrape; after 40 answers it has estimates.
    (line,) = [x for x in metrics.splitlines() if x.startswith("autoglm_scheduler_task_estimate_error ")]
    assert float(line.split()[1]) == pytest.approx(estimate_error) and estimate_error < 1.0
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "autoglm.scale"]
    ups = [e for e in events if e["direction"] == "up"]
    assert ups and ups[0]["from"] == 1 and ups[0]["reason"] == "panic"
    assert {"time", "from", "to", "reason", "predicted_load", "queue_depth"} <= set(ups[0])


HOOK_SCRIPT = "import sys, pathlib; pathlib.Path(sys.argv[1]).open('a').write(sys.argv[2] + '\\n')"


def test_the_scale_hook_runs_the_command_with_the_count_as_one_argument(tmp_path):
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    out = tmp_path / "calls.txt"
    hook = ScaleHook.parse(f"{sys.executable} {script} {out} --replicas={{n}};touch", 10)
    assert hook.command(3)[-1] == "--replicas=3;touch"  # no shell: the ; stays inside the argument
    assert asyncio.run(ScaleHook.parse(f"{sys.executable} {script} {out} {{n}}", 10).run(4)) == 0
    assert out.read_text() == "4\n"
    slow = ScaleHook.parse(f"{sys.executable} -c 'import time; time.sleep(30)' {{n}}", 0.3)
    started = time.monotonic()
    assert asyncio.run(slow.run(2)) is None and time.monotonic() - started < 10  # killed at its timeout
    with pytest.raises(ConfigError, match="never uses"):
        ScaleHook.parse("kubectl scale deploy/x --replicas=3", 10)
    with pytest.raises(ConfigError, match="not a valid command line"):
        ScaleHook.parse("kubectl 'unclosed {n}", 10)


def test_without_its_own_cluster_the_runtime_publishes_the_count_and_runs_the_hook(tmp_path):
    """A cluster serve does not own (--dask-scheduler: `can_scale` is False): every change of the
    desired count goes to the metric and to the hook, starting with the initial count."""
    from autoglm_cli.runtime.workers.clusters import InlineCluster

    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    out = tmp_path / "calls.txt"

    async def scenario():
        cfg = config(
            scheduler="dynamic",
            workers={
                "count": None,
                "min": 2,
                "max": 5,
                "engine": "inline",
                "control_interval": "1h",
                "scale_hook": f"{sys.executable} {script} {out} {{n}}",
            },
        )
        external = InlineCluster(timeout=10)
        external.can_scale = False  # like an external Dask scheduler: someone else runs the workers
        runtime = Runtime(cfg, cluster=external)
        await runtime.start()
        try:
            await runtime.scaler.scale(4)  # what the control tick does with the policy's answer
            await runtime.scaler.scale(4)  # no change: no second call
            for _ in range(200):
                if out.exists() and out.read_text().count("\n") >= 2:
                    break
                await asyncio.sleep(0.05)
            return runtime.metrics.render()[0].decode()
        finally:
            await runtime.stop()

    metrics = asyncio.run(scenario())
    assert "autoglm_scheduler_desired_nodes 4.0" in metrics
    assert out.read_text() == "2\n4\n"


def test_only_whole_answers_teach_service_times_and_cancelled_ones_leave_the_books():
    async def scenario():
        cfg = config(
            scheduler="dynamic",
            workers={"count": 1, "engine": "inline"},
            models={"sim": {"backend": "simulated", "options": {"c": 0.05, "output_tokens": 100}}},
        )
        runtime = Runtime(cfg)
        await runtime.start()
        try:
            scheduler = runtime.scheduler
            done = runtime.submit(
                GenerationRequest(id="whole", model="sim", kind="completion", prompt="x", max_tokens=2)
            )
            await done.done
            learned = scheduler.task_cost.samples
            # A long answer cancelled after 0.2 s: its 0.2 s says nothing of a 100-token answer.
            long = runtime.submit(
                GenerationRequest(id="long", model="sim", kind="completion", prompt="x", max_tokens=100)
            )
            await asyncio.sleep(0.2)
            await runtime.cancel(long)
            [node] = [n for n in scheduler.nodes.values() if n.healthy]
            await until(lambda: not node.extra.get("inflight"))  # its runner has ended
            return learned, scheduler.task_cost.samples, dict(node.extra.get("inflight", {}))
        finally:
            await runtime.stop()

    learned, after, inflight = asyncio.run(scenario())
    assert learned == 1
    assert after == learned  # the cancelled request taught nothing
    assert inflight == {}  # and no longer counts as running on its node
