"""The pool's size: the control tick's `predict_load` / `adjust_workers`, applied to the cluster.

Growing calls `cluster.scale(n)` at once. Shrinking first drains the nodes to go (no new
requests: the policy's `nodes_to_remove`, else the cluster's removal order) and retires
exactly those workers once they are idle. A cluster someone else sizes (`can_scale`
False) gets the count published as a metric and sent to `workers.scale_hook`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from .fleet import Fleet, NodeEntry
from .metrics import Metrics
from .scheduler import NodeState, PriorityQueue, Scheduler
from .tasks import BackgroundTasks

scale_log = logging.getLogger("autoglm.scale")  # one JSON line per scale event


class Scaler:
    def __init__(
        self,
        config,
        *,
        scheduler: Scheduler,
        fleet: Fleet,
        queue: PriorityQueue,
        metrics: Metrics,
        tasks: BackgroundTasks,
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.fleet = fleet
        self.queue = queue
        self.metrics = metrics
        self.tasks = tasks
        self.scale_hook = None
        if config.workers.scale_hook:
            from .scale_hook import ScaleHook

            self.scale_hook = ScaleHook.parse(
                config.workers.scale_hook, float(config.workers.scale_hook_timeout), source=config.source
            )
        self._hook_lock = asyncio.Lock()
        scheduler.listeners.append(self.on_scale_event)

    def clamp(self, n: int) -> int:
        workers = self.config.workers
        if workers.count is not None:
            return max(0, n)
        return max(workers.min, min(workers.max, n))

    def initial_workers(self) -> int:
        """The pool size to start with: the policy's answer at no load, else `workers.min`."""
        initial = self.scheduler.adjust_workers(0.0)
        return self.clamp(initial if initial is not None else self.config.workers.min)

    def started(self, workers: int) -> None:
        """The cluster started with `workers`: publish the count (and run the hook when the
        cluster does not size itself)."""
        self.metrics.desired_nodes.set(workers)
        if not self.fleet.cluster.can_scale:
            self.run_scale_hook(workers)

    async def step(self) -> None:
        """The policy's part of a control tick: observe the queue, predict, size, apply."""
        self.scheduler.set_queue_depth(len(self.queue))
        load = self.scheduler.predict_load()
        self.metrics.predicted_load.set(load)
        wanted = self.scheduler.adjust_workers(load)
        if wanted is None:
            wanted = self.scheduler.desired_workers
        if wanted is not None and self.fleet.catalogue.worker_models:
            await self.scale(wanted)

    async def scale(self, wanted: int) -> None:
        """Apply the scheduler's decision; shrinking drains the nodes to go before removing them."""
        fleet = self.fleet
        wanted = self.clamp(wanted)
        self.metrics.desired_nodes.set(wanted)
        if fleet.cluster is None or not fleet.cluster.can_scale:
            if wanted != fleet.desired_workers:  # published as the metric, and sent to the hook
                fleet.desired_workers = wanted
                self.run_scale_hook(wanted)
            return
        current = fleet.desired_workers if fleet.desired_workers is not None else wanted
        if wanted >= current:
            for entry in fleet.entries.values():  # growing again: undo a drain in progress
                if entry.node.state is NodeState.DRAINING:
                    fleet.set_state(entry, NodeState.READY)
            if wanted > current:
                fleet.desired_workers = wanted
                await fleet.cluster.scale(wanted)
            return
        # Shrinking: drain the nodes to go (no new requests); remove their workers once idle.
        draining = self.choose_drain(current - wanted)
        if all(e.node.running == 0 for e in draining):
            fleet.desired_workers = wanted
            if draining:
                await fleet.cluster.retire([e.worker for e in draining])
            else:
                await fleet.cluster.scale(wanted)

    def choose_drain(self, count: int) -> list[NodeEntry]:
        """The worker nodes to remove: the ones already draining, topped up with the policy's
        choice (`nodes_to_remove`: starting, then least busy) or the cluster's removal order."""
        fleet = self.fleet
        workers = fleet.live_workers()
        chosen = [e for e in workers if e.node.state is NodeState.DRAINING][:count]
        picked = self.scheduler.nodes_to_remove(len(workers))
        if picked is not None:
            by_node = {e.node.id: e for e in workers}
            order = [by_node[n.id] for n in picked if n.id in by_node]
        else:
            by_worker = {e.worker: e for e in workers}
            order = [by_worker[a] for a in fleet.cluster.removal_order() if a in by_worker]
        for entry in order:
            if len(chosen) >= count:
                break
            if entry not in chosen:
                chosen.append(entry)
        for entry in workers:
            if entry in chosen and entry.node.state is NodeState.READY:
                fleet.set_state(entry, NodeState.DRAINING)
            elif entry not in chosen and entry.node.state is NodeState.DRAINING:
                fleet.set_state(entry, NodeState.READY)
        return chosen

    def run_scale_hook(self, n: int) -> None:
        if self.scale_hook is None:
            return

        async def run() -> None:
            async with self._hook_lock:  # in order: the last change wins
                await self.scale_hook.run(n)

        self.tasks.spawn(run(), name=f"autoglm-scale-hook-{n}")

    def on_scale_event(self, event) -> None:
        """A policy changed its desired node count: count it and log one JSON line."""
        self.metrics.scale_events.labels(event.direction, event.reason).inc()
        fields = {
            "time": round(time.time(), 3),
            **event.log_fields(),
            "queue_depth": len(self.queue),
        }
        scale_log.info(json.dumps(fields, sort_keys=False))
