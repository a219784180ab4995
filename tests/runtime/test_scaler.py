"""The scaler on its own, over a real InlineCluster: growing at once, shrinking by draining
the nodes to go (the policy's choice, else the cluster's order) and retiring exactly those."""

from __future__ import annotations

import asyncio

from autoglm_cli.runtime.scheduler import NodeState
from autoglm_cli.runtime.scheduler.static import StaticScheduler

from .conftest import runtime_parts, until
from .test_runtime_inline import config

POOL = {"workers": {"count": None, "min": 1, "max": 4, "engine": "inline"}}


class PicksTheOldest(StaticScheduler):
    """A policy with its own drain choice: the first nodes it heard of go first."""

    def nodes_to_remove(self, count):
        return list(self.nodes.values())[:count]


async def _ready_pool(fleet, scaler, n: int) -> None:
    await fleet.start_cluster(scaler.initial_workers())
    await scaler.scale(n)
    await fleet.reconcile_workers()
    await until(lambda: sum(e.node.healthy for e in fleet.entries.values()) == n)


def test_shrinking_drains_busy_nodes_first_and_retires_exactly_the_chosen_workers():
    async def scenario():
        _, fleet, scaler, tasks = runtime_parts(config(**POOL), scheduler=PicksTheOldest(1))
        try:
            await _ready_pool(fleet, scaler, 3)
            assert scaler.initial_workers() == 1 and fleet.desired_workers == 3
            first, second, third = fleet.entries.values()
            first.node.running = 1  # busy: it finishes its work before its worker goes
            await scaler.scale(1)
            assert [e.node.state for e in (first, second, third)] == [
                NodeState.DRAINING,
                NodeState.DRAINING,
                NodeState.READY,
            ]
            assert fleet.desired_workers == 3 and len(await fleet.cluster.workers()) == 3
            first.node.running = 0
            await scaler.scale(1)
            workers = await fleet.cluster.workers()
            await fleet.reconcile_workers()
            states = [e.node.state for e in (first, second, third)]
            return list(workers), third.worker, states, fleet.desired_workers
        finally:
            await tasks.close()
            await fleet.close()

    workers, kept, states, desired = asyncio.run(scenario())
    assert workers == [kept] and desired == 1
    assert states == [NodeState.DEAD, NodeState.DEAD, NodeState.READY]  # retired, not failed


def test_growing_again_undoes_a_drain_and_the_cluster_order_decides_without_a_policy_choice():
    async def scenario():
        _, fleet, scaler, tasks = runtime_parts(config(**POOL), scheduler=StaticScheduler(1))
        try:
            await _ready_pool(fleet, scaler, 2)
            for entry in fleet.entries.values():
                entry.node.running = 1
            await scaler.scale(1)
            draining = [e.worker for e in fleet.entries.values() if e.node.state is NodeState.DRAINING]
            newest = fleet.cluster.removal_order()[0]
            await scaler.scale(2)  # the load came back before the drain ended
            states = {e.node.state for e in fleet.entries.values()}
            return draining, newest, states
        finally:
            await tasks.close()
            await fleet.close()

    draining, newest, states = asyncio.run(scenario())
    assert draining == [newest]
    assert states == {NodeState.READY}


def test_the_control_step_asks_the_policy_and_clamps_its_answer():
    async def scenario():
        _, fleet, scaler, tasks = runtime_parts(config(**POOL), scheduler=StaticScheduler(9))
        try:
            await fleet.start_cluster(scaler.initial_workers())
            await scaler.step()  # the policy wants 9; workers.max is 4
            return fleet.desired_workers, len(await fleet.cluster.workers()), scaler.scheduler.queue_depth
        finally:
            await tasks.close()
            await fleet.close()

    assert asyncio.run(scenario()) == (4, 4, 0)
