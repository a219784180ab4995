"""The fleet on its own: nodes placed on a real InlineCluster's workers, loaded, followed as
workers come and go, forgotten after their TTL (a fake clock), and shared out between models."""

from __future__ import annotations

import asyncio

from autoglm_cli.runtime.fleet import DEAD_NODE_TTL
from autoglm_cli.runtime.scheduler import NodeState

from .conftest import FakeClock, runtime_parts, until
from .test_runtime_inline import config

TWO_MODELS = {
    "model_pool": {"default": "sim", "backup": "alt"},
    "models": {
        "sim": {"backend": "simulated", "options": {"output_tokens": 2}},
        "alt": {"backend": "simulated", "options": {"output_tokens": 2}},
    },
}


def test_every_worker_gets_a_node_the_models_are_shared_out_and_a_vanished_worker_is_dead_then_forgotten():
    clock = FakeClock()

    async def scenario():
        cfg = config(**TWO_MODELS)
        _, fleet, _, tasks = runtime_parts(cfg, clock=clock)
        try:
            assert fleet.pending("sim")  # no node yet, but workers are on their way
            await fleet.start_cluster(3)
            await fleet.reconcile_workers()
            await until(lambda: sum(e.node.healthy for e in fleet.entries.values()) == 3)
            models = sorted(e.model for e in fleet.entries.values())
            assert models == ["alt", "sim", "sim"]  # default first, then the least served
            assert set(fleet.scheduler.nodes) == set(fleet.entries)  # the policy heard of each
            assert fleet.servable("sim") and not fleet.pending("sim")

            await fleet.cluster.scale(2)  # a worker leaves
            await fleet.reconcile_workers()
            dead = [e for e in fleet.entries.values() if e.node.state is NodeState.DEAD]
            assert len(dead) == 1 and dead[0].node.error == "its worker left the cluster"
            fleet.maintain(clock.now)
            assert dead[0].node.id in fleet.entries  # still listed in /readyz for a while
            clock.now += DEAD_NODE_TTL + 1
            fleet.maintain(clock.now)
            assert dead[0].node.id not in fleet.entries
            assert dead[0].node.id not in fleet.scheduler.nodes
            return fleet.report()
        finally:
            await tasks.close()
            await fleet.close()

    report = asyncio.run(scenario())
    assert len(report) == 2 and {r["state"] for r in report} == {"ready"}
    assert all(r["engine"] == "inline" and r["capacity"] >= 1 for r in report)


def test_a_model_that_fails_to_load_leaves_its_node_failed_with_the_reason():
    async def scenario():
        cfg = config(models={"sim": {"backend": "simulated", "options": {"output_tokens": "many"}}})
        _, fleet, _, tasks = runtime_parts(cfg)
        try:
            await fleet.start_cluster(1)
            await fleet.reconcile_workers()
            await until(lambda: any(e.node.state is NodeState.FAILED for e in fleet.entries.values()))
            [entry] = fleet.entries.values()
            unservable = fleet.unservable("sim")
            return entry.node.error, unservable.code, unservable.message
        finally:
            await tasks.close()
            await fleet.close()

    error, code, message = asyncio.run(scenario())
    assert "output_tokens" in error
    assert code == "model_unavailable" and "output_tokens" in message
