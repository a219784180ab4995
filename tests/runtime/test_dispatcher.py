"""The dispatcher on its own, over real in-process simulated nodes: up to `capacity` jobs per
node, a node that fails a job (a faked network fault) sends it to another node, and the queue
sweep fails what waited past `gateway.queue_timeout` and forgets finished jobs nobody read (a
fake clock)."""

from __future__ import annotations

import asyncio

from autoglm_cli.runtime.backends.base import GenerationRequest
from autoglm_cli.runtime.dispatcher import FINISHED_JOB_TTL
from autoglm_cli.runtime.errors import NodeFailure
from autoglm_cli.runtime.scheduler import NodeState
from autoglm_cli.runtime.scheduler.static import StaticScheduler

from .conftest import FakeClock, runtime_parts, until
from .test_runtime_inline import config


def request(i: int, **fields) -> GenerationRequest:
    return GenerationRequest(id=f"r{i}", model="sim", kind="completion", prompt="x", **fields)


async def _ready(dispatcher, fleet, workers: int) -> None:
    dispatcher.open()
    await fleet.start_cluster(workers)
    await fleet.reconcile_workers()
    await until(lambda: sum(e.node.healthy for e in fleet.entries.values()) == workers)


def test_a_node_gets_up_to_its_capacity_and_the_rest_wait_in_the_queue():
    async def scenario():
        cfg = config(
            workers={"concurrency": 2},
            models={"sim": {"backend": "simulated", "options": {"c": 0.02, "output_tokens": 5}}},
        )
        dispatcher, fleet, _, tasks = runtime_parts(cfg)
        try:
            await _ready(dispatcher, fleet, 1)
            jobs = [dispatcher.submit(request(i)) for i in range(3)]
            [node] = [e.node for e in fleet.entries.values()]
            seen = (node.running, len(dispatcher.queue), [j.status for j in jobs])
            results = await asyncio.gather(*(j.done for j in jobs))
            return seen, [r.completion_tokens for r in results], node.running
        finally:
            dispatcher.shut()
            await tasks.close()
            await fleet.close()

    (running, queued, statuses), tokens, after = asyncio.run(scenario())
    assert running == 2 and queued == 1 and statuses == ["running", "running", "queued"]
    assert tokens == [5, 5, 5] and after == 0


class FailingHandle:
    """A node whose connection breaks on every request (the faked fault)."""

    def __init__(self, handle) -> None:
        self.handle = handle

    async def generate(self, request):
        raise NodeFailure("connection reset")

    async def close(self) -> None:
        await self.handle.close()


def test_a_job_the_node_fails_is_retried_on_another_node_and_the_node_is_marked_dead():
    async def scenario():
        dispatcher, fleet, _, tasks = runtime_parts(config(), scheduler=StaticScheduler(2))
        try:
            await _ready(dispatcher, fleet, 2)
            broken, healthy = fleet.entries.values()
            broken.handle = FailingHandle(broken.handle)
            job = dispatcher.submit(request(1))  # round robin: the broken node first
            result = await job.done
            retries = dispatcher.metrics.render()[0].decode()
            return result.node, healthy.node.id, broken.node.state, job.task.attempts, retries
        finally:
            dispatcher.shut()
            await tasks.close()
            await fleet.close()

    served_by, healthy, broken_state, attempts, metrics = asyncio.run(scenario())
    assert served_by == healthy and broken_state is NodeState.DEAD and attempts == 1
    assert 'autoglm_retries_total{reason="node_failure"} 1.0' in metrics


def test_the_sweep_fails_a_job_that_waited_past_the_queue_timeout():
    clock = FakeClock()

    async def scenario():
        cfg = config(
            gateway={"queue_timeout": "30s"},
            models={"sim": {"backend": "simulated", "options": {"c": 0.05, "output_tokens": 200}}},
        )
        dispatcher, fleet, _, tasks = runtime_parts(cfg, clock=clock)
        try:
            await _ready(dispatcher, fleet, 1)
            busy = dispatcher.submit(request(1))
            waiting = dispatcher.submit(request(2))
            clock.now += 29
            dispatcher.sweep(clock.now)
            before = waiting.status
            clock.now += 2
            dispatcher.sweep(clock.now)
            await dispatcher.cancel(busy)
            outcome = before, waiting.status, waiting.error.code, len(dispatcher.queue), busy.status
            clock.now += FINISHED_JOB_TTL - 1
            dispatcher.sweep(clock.now)
            kept = set(dispatcher.jobs)
            clock.now += 2  # nobody read them within FINISHED_JOB_TTL: forgotten
            dispatcher.sweep(clock.now)
            return outcome, kept, set(dispatcher.jobs)
        finally:
            dispatcher.shut()
            await tasks.close()
            await fleet.close()

    (before, after, code, queued, busy), kept, left = asyncio.run(scenario())
    assert before == "queued" and after == "failed" and code == "queue_timeout"
    assert queued == 0 and busy == "cancelled"
    assert kept == {"r1", "r2"} and left == set()
