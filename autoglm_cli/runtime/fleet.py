"""The nodes: placing a model on each cluster worker, loading it, their states, and keeping
them in step with the cluster's workers and the upstream endpoints.

The fleet owns the `Node` objects (and tells the policy of every change through
`on_node_change` / `on_node_removed`); the dispatcher reads them and counts `running`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import NodeFailure, ServiceUnavailable
from .metrics import Metrics, NodeLoad
from .models import Catalogue
from .scheduler import Node, NodeKind, NodeState, Scheduler
from .scheduler.base import Clock
from .tasks import BackgroundTasks
from .workers.capacity import apply_capacity

if TYPE_CHECKING:
    from .workers.clusters import Cluster

log = logging.getLogger("autoglm.runtime")

DEAD_NODE_TTL = 60.0  # seconds a dead node stays listed in /readyz
UPSTREAM_REPROBE = 5.0  # seconds between probes of a failed upstream endpoint


@dataclass
class NodeEntry:
    node: Node
    model: str
    handle: object | None = None  # a NodeHandle once placed
    worker: str | None = None  # the cluster worker's address (None: an upstream endpoint)
    dead_since: float | None = None
    last_probe: float = 0.0
    last_done: float = 0.0  # when the node last finished a request (service time of queued ones)


def make_cluster(config) -> Cluster:
    """The cluster `workers.engine` names: in-process nodes, or a Dask cluster (owned or joined)."""
    from .workers.clusters import DaskCluster, InlineCluster

    workers = config.workers
    timeout = float(config.gateway.request_timeout)
    if workers.engine == "inline":
        return InlineCluster(timeout=timeout)
    from .models import python_log_level

    return DaskCluster(
        timeout=timeout,
        address=workers.scheduler_address,
        memory_limit=workers.memory_limit,
        dashboard=workers.dashboard,
        log_level=python_log_level(config),
        gpus=workers.gpus,
        gpus_per_worker=workers.gpus_per_worker,
    )


class Fleet:
    """The nodes of every model, on cluster workers and upstream endpoints."""

    def __init__(
        self,
        config,
        *,
        catalogue: Catalogue,
        scheduler: Scheduler,
        metrics: Metrics,
        tasks: BackgroundTasks,
        clock: Clock,
        cluster: Cluster | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.catalogue = catalogue
        self.scheduler = scheduler
        self.metrics = metrics
        self.tasks = tasks
        self.clock = clock
        self.cluster: Cluster | None = cluster
        self.on_change = on_change  # a node's state changed: the dispatcher looks again
        self.entries: dict[str, NodeEntry] = {}
        self.desired_workers: int | None = None  # the worker count asked of the cluster
        self._placing: set[str] = set()
        self._node_ids = itertools.count(1)

    async def start_cluster(self, workers: int) -> None:
        """Start the cluster (built from the config unless given) with `workers` workers."""
        if self.cluster is None:
            self.cluster = make_cluster(self.config)
        await self.cluster.start(workers)
        self.desired_workers = workers

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.handle is not None:
                try:
                    await entry.handle.close()
                except Exception:  # shutting down: nothing left to save
                    log.debug("closing node %s failed", entry.node.id, exc_info=True)
        if self.cluster is not None:
            await self.cluster.close()

    # -- which nodes serve a model ---------------------------------------------------

    def model_nodes(self, model: str) -> list[Node]:
        return [e.node for e in self.entries.values() if e.model == model]

    def live_workers(self) -> list[NodeEntry]:
        """Nodes on cluster workers that are not dead."""
        return [e for e in self.entries.values() if e.worker and e.node.state is not NodeState.DEAD]

    def pending(self, model: str) -> bool:
        """A node for `model` is loading or about to be placed."""
        if any(n.state is NodeState.STARTING for n in self.model_nodes(model)):
            return True
        if model in self.catalogue.worker_models and self.cluster is not None:
            if self._placing:
                return True
            return self.desired_workers is None or len(self.live_workers()) < max(1, self.desired_workers)
        return False

    def servable(self, model: str) -> bool:
        return any(n.healthy for n in self.model_nodes(model)) or self.pending(model)

    def unservable(self, model: str) -> ServiceUnavailable:
        errors = sorted({n.error for n in self.model_nodes(model) if n.error})
        detail = f": {'; '.join(errors)}" if errors else ""
        return ServiceUnavailable(f"no node can serve model {model!r}{detail}", code="model_unavailable")

    # -- node states -------------------------------------------------------------------

    def new_node(self, model: str, *, kind: NodeKind, address: str, capacity: int) -> NodeEntry:
        settings = self.catalogue.models[model]
        if settings.backend == "simulated":
            kind = NodeKind.SIMULATED
        node = Node(
            id=f"node-{next(self._node_ids)}",
            models=frozenset({model}),
            kind=kind,
            state=NodeState.STARTING,
            address=address,
            capacity=capacity,
            created_at=self.clock(),
        )
        entry = NodeEntry(node=node, model=model)
        self.entries[node.id] = entry
        self.scheduler.on_node_change(node)
        self.update_gauges()
        return entry

    def set_state(self, entry: NodeEntry, state: NodeState, error: str | None = None) -> None:
        node = entry.node
        if node.state is state and node.error == error:
            return
        node.state, node.error = state, error
        if state is NodeState.DEAD and entry.dead_since is None:
            entry.dead_since = self.clock()
        self.scheduler.on_node_change(node)
        self.update_gauges()
        self.on_change()

    def node_failed(self, entry: NodeEntry, reason: str) -> None:
        if entry.worker is None:  # an upstream endpoint: probe it again later
            log.warning("node %s (%s) failed: %s", entry.node.id, entry.node.address, reason)
            self.set_state(entry, NodeState.FAILED, reason)
            return
        if entry.node.state is not NodeState.DEAD:
            log.warning("node %s on %s is dead: %s", entry.node.id, entry.worker, reason)
            self.set_state(entry, NodeState.DEAD, reason)
            if entry.handle is not None:
                self.tasks.spawn(entry.handle.close(), name=f"autoglm-close-{entry.node.id}")

    # -- placing and loading ------------------------------------------------------------

    def add_upstream_nodes(self) -> None:
        """One node per endpoint of every upstream model; each is probed in the background."""
        from .backends.openai_upstream import UpstreamHandle, endpoints_of

        for model in self.catalogue.upstream_models:
            settings = self.catalogue.models[model]
            for url in endpoints_of(settings):
                handle = UpstreamHandle(
                    settings, url, on_retry=lambda reason: self.metrics.retries.labels("upstream").inc()
                )
                entry = self.new_node(
                    model, kind=NodeKind.UPSTREAM, address=handle.label, capacity=settings.max_connections
                )
                entry.handle = handle
                self.tasks.spawn(self.load(entry), name=f"autoglm-probe-{entry.node.id}")

    async def load(self, entry: NodeEntry) -> None:
        entry.last_probe = self.clock()
        try:
            status = await entry.handle.load()
        except NodeFailure as exc:
            self.set_state(entry, NodeState.DEAD if entry.worker else NodeState.FAILED, str(exc))
            return
        for key in ("pid", "host", "upstream"):
            if status.get(key) is not None:
                entry.node.extra[key] = status[key]
        apply_capacity(entry.node, status, accepted=self.config.workers.concurrency)
        if status.get("state") == "ready":
            if entry.node.state is not NodeState.READY:
                log.info("node %s ready: %s on %s", entry.node.id, entry.model, entry.node.address)
            self.set_state(entry, NodeState.READY)
        else:
            error = status.get("error") or "the model did not load"
            if entry.node.state is not NodeState.FAILED:
                log.error(
                    "node %s failed: %s on %s: %s", entry.node.id, entry.model, entry.node.address, error
                )
            self.set_state(entry, NodeState.FAILED, error)

    def choose_model(self, preloaded: tuple[str, ...]) -> str | None:
        """The model a new worker gets: one it preloaded, else the worker model with fewest nodes."""
        for name in preloaded:
            if name in self.catalogue.models:
                return name
        order = self.catalogue.worker_models
        if not order:
            return None
        live: dict[str, int] = dict.fromkeys(order, 0)
        for entry in self.live_workers():
            if entry.model in live:
                live[entry.model] += 1
        return min(order, key=lambda m: (live[m], order.index(m)))

    async def place(self, address: str) -> None:
        try:
            model = self.choose_model(await self.cluster.preloaded_models(address))
            if model is None:
                return
            entry = self.new_node(
                model, kind=NodeKind.ACTOR, address=address, capacity=self.config.workers.concurrency
            )
            entry.node.slots = 1  # until its status says how many it batches (apply_capacity in load)
            entry.worker = address
            try:
                entry.handle = await self.cluster.place(address, self.catalogue.models[model])
            except Exception as exc:  # the worker went away while we placed the actor
                self.set_state(
                    entry, NodeState.DEAD, f"placing the model failed: {type(exc).__name__}: {exc}"
                )
                return
        finally:
            self._placing.discard(address)
        node = entry.node
        node.extra["engine"] = self.cluster.engine
        log.info("node %s: loading %s on %s", node.id, model, address)
        await self.load(entry)

    async def reconcile_workers(self) -> None:
        """A node on every new worker; the nodes of vanished workers dead (or retired)."""
        if self.cluster is None:
            return
        workers = await self.cluster.workers()
        live = {e.worker for e in self.live_workers()}
        for address in workers:
            if address not in live and address not in self._placing:
                self._placing.add(address)
                self.tasks.spawn(self.place(address), name=f"autoglm-place-{address}")
        for entry in list(self.entries.values()):
            if entry.worker and entry.worker not in workers and entry.node.state is not NodeState.DEAD:
                if entry.node.state is NodeState.DRAINING:
                    self.set_state(entry, NodeState.DEAD, "retired")
                else:
                    self.node_failed(entry, "its worker left the cluster")

    def maintain(self, now: float) -> None:
        """Probe failed upstream endpoints again; forget nodes dead for DEAD_NODE_TTL."""
        for entry in list(self.entries.values()):
            if self._needs_probe(entry, now):
                self.tasks.spawn(self.load(entry), name=f"autoglm-probe-{entry.node.id}")
            if entry.dead_since is not None and now - entry.dead_since > DEAD_NODE_TTL:
                del self.entries[entry.node.id]
                self.scheduler.on_node_removed(entry.node)

    @staticmethod
    def _needs_probe(entry: NodeEntry, now: float) -> bool:
        """A failed upstream endpoint is probed again every UPSTREAM_REPROBE seconds."""
        failed_upstream = (
            entry.worker is None and entry.node.state is NodeState.FAILED and entry.handle is not None
        )
        return failed_upstream and now - entry.last_probe >= UPSTREAM_REPROBE

    # -- what the gateway shows -----------------------------------------------------------

    def loads(self) -> list[NodeLoad]:
        """Each node's requests in flight and batch occupancy (sequences running / slots)."""
        loads = []
        for entry in self.entries.values():
            node = entry.node
            slots = node.slots or node.capacity
            running = min(node.running, slots)  # beyond its slots, a node queues them itself
            occupancy = running / slots if slots > 0 else 0.0
            loads.append(NodeLoad(node.id, entry.model, node.running, occupancy))
        return loads

    def update_gauges(self) -> None:
        counts = dict.fromkeys(NodeState, 0)
        for entry in self.entries.values():
            counts[entry.node.state] += 1
        for state, count in counts.items():
            self.metrics.nodes.labels(state.value).set(count)
        self.metrics.actual_nodes.set(counts[NodeState.STARTING] + counts[NodeState.READY])

    def report(self) -> list[dict]:
        report = []
        for entry in self.entries.values():
            node = entry.node
            report.append(
                {
                    "id": node.id,
                    "model": entry.model,
                    "kind": node.kind.value,
                    "state": node.state.value,
                    "address": node.address,
                    "running": node.running,
                    "capacity": node.capacity,
                    "service_time_ewma": round(node.service_time_ewma, 4),
                    "error": node.error,
                    **{k: v for k, v in node.extra.items() if k in ("pid", "host", "engine", "upstream")},
                }
            )
        return report
