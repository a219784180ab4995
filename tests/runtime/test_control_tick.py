"""The control tick outlives a cluster that lost its scheduler: the queue sweep still runs,
and admission refuses at once while no node can come (like /readyz)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.backends.base import GenerationRequest
from autoglm_cli.runtime.errors import ApiError
from autoglm_cli.runtime.service import Runtime
from autoglm_cli.runtime.workers.clusters import InlineCluster

from .conftest import FakeClock


class LosableCluster(InlineCluster):
    """An inline cluster whose scheduler can go away: `workers()` then raises, as Dask's
    client did (`AttributeError: 'NoneType' object has no attribute 'identity'`)."""

    can_scale = False  # its workers come from elsewhere (none here): requests wait for them

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.lost = False
        self.connected = True

    async def workers(self):
        if self.lost:
            raise AttributeError("'NoneType' object has no attribute 'identity'")
        return {}


def config():
    return parse_config(
        json.dumps(
            {
                "model_pool": {"default": "sim"},
                "models": {"sim": {"backend": "simulated"}},
                "workers": {"engine": "inline", "count": 1, "control_interval": "1h"},
                "gateway": {"queue_timeout": "5s"},
            }
        ),
        environ={},
    )


def test_the_tick_sweeps_the_queue_while_the_cluster_fails_and_admission_follows_the_cluster(caplog):
    clock = FakeClock()

    async def scenario():
        cluster = LosableCluster()
        runtime = Runtime(config(), cluster=cluster, clock=clock)
        await runtime.start()
        try:
            # No worker yet, but one may come: the request waits in the queue.
            job = runtime.submit(GenerationRequest(id="r1", model="sim", kind="completion", prompt="x"))
            assert job.status == "queued" and runtime.readiness()["accepting"] is True
            cluster.lost = True
            clock.now += 6  # past gateway.queue_timeout
            with caplog.at_level(logging.ERROR, logger="autoglm.runtime"):
                await runtime.tick()
                await runtime.tick()  # the same error again: not logged twice
            assert job.status == "failed" and job.error.code == "queue_timeout"
            lines = [r for r in caplog.records if "control tick" in r.getMessage()]
            assert len(lines) == 1 and "AttributeError" in lines[0].getMessage()
            # The scheduler is gone: nothing can come, so a new request is refused at once.
            cluster.connected = False
            with pytest.raises(ApiError) as refused:
                runtime.submit(GenerationRequest(id="r2", model="sim", kind="completion", prompt="x"))
            assert refused.value.status == 503 and refused.value.code == "model_unavailable"
            assert refused.value.headers["Retry-After"]
            report = runtime.readiness()
            assert report["ready"] is False and report["accepting"] is False
        finally:
            await runtime.stop()

    asyncio.run(scenario())
