"""A request on a node the runtime marks dead is sent to another node at once, not left to the
transport's timeout; one whose client has gone is never sent anywhere again."""

from __future__ import annotations

import asyncio
import json

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.backends.base import GenerationRequest
from autoglm_cli.runtime.scheduler import NodeState
from autoglm_cli.runtime.service import Runtime

from .conftest import until


def config():
    return parse_config(
        json.dumps(
            {
                "model_pool": {"default": "sim"},
                # 1 s a request on the first try; the request timeout is far longer.
                "models": {"sim": {"backend": "simulated", "options": {"a": 1.0}}},
                "workers": {"engine": "inline", "count": 2, "control_interval": "1h"},
                "gateway": {"request_timeout": "1h"},
            }
        ),
        environ={},
    )


def request(rid: str) -> GenerationRequest:
    return GenerationRequest(id=rid, model="sim", kind="completion", prompt="x")


@pytest.mark.parametrize("on_the_node", [False, True], ids=["just-dispatched", "running-on-the-node"])
def test_a_dead_nodes_request_is_retried_elsewhere_at_once(on_the_node):
    async def scenario():
        runtime = Runtime(config())
        await runtime.start()
        try:
            await until(lambda: sum(n.node.state is NodeState.READY for n in runtime.entries.values()) == 2)
            job = runtime.submit(request("r1"))
            await until(lambda: job.status == "running")
            first = runtime.entries[job.node_id]
            if on_the_node:
                await asyncio.sleep(0.2)  # the node is working on it (1 s)
            runtime.fleet.node_failed(first, "its worker left the cluster")
            # Rescued now: queued again or already on the other node, not waiting on the dead one.
            await until(lambda: job.node_id not in (None, first.node.id), timeout=0.5)
            result = await asyncio.wait_for(job.done, 10)
            assert result.node != first.node.id and job.task.attempts == 1

            orphan = runtime.submit(request("r2"))
            await until(lambda: orphan.status == "running")
            await runtime.cancel(orphan)  # the client went away
            second = runtime.entries[orphan.node_id] if orphan.node_id else None
            if second is not None:
                runtime.fleet.node_failed(second, "its worker left the cluster")
            await asyncio.sleep(0.1)
            assert orphan.status == "cancelled" and runtime.queue.remove("r2") is None
        finally:
            await runtime.stop()

    asyncio.run(scenario())
