"""The runtime: wires its parts and runs the dispatch loop and the control tick.

    dispatcher.py  jobs, the queue, running a job on a node, retry or fail
    fleet.py       the nodes: placing, loading, states, in step with the cluster's workers
    scaler.py      the control tick's predict_load / adjust_workers, drain choice, scale hook
    tasks.py       the background asyncio tasks (held until done, cancelled on stop)

The scheduler sees only `Task` and `Node` (pure policy); these parts do all I/O.
Everything runs on one asyncio loop (the gateway's): no locks needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .backends.base import GenerationRequest
from .dispatcher import Dispatcher
from .fleet import DEAD_NODE_TTL, UPSTREAM_REPROBE, Fleet, NodeEntry
from .jobs import Job, new_request_id
from .metrics import Metrics
from .models import Catalogue, load_catalogue
from .scaler import Scaler
from .scheduler import Priority, PriorityQueue, Scheduler, make_queue, make_scheduler
from .scheduler.base import MONOTONIC, Clock
from .tasks import BackgroundTasks

__all__ = ["DEAD_NODE_TTL", "UPSTREAM_REPROBE", "Job", "NodeEntry", "Runtime", "new_request_id"]

log = logging.getLogger("autoglm.runtime")


class Runtime:
    """Owns the queue, the scheduler and the parts; the gateway calls `submit`."""

    def __init__(
        self,
        config,
        *,
        metrics: Metrics | None = None,
        scheduler: Scheduler | None = None,
        queue: PriorityQueue | None = None,
        cluster=None,
        clock: Clock = MONOTONIC,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.catalogue: Catalogue = load_catalogue(config)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.scheduler: Scheduler = scheduler or make_scheduler(config, clock=clock, warn=warn or log.warning)
        self.queue: PriorityQueue = queue or make_queue(config, clock=clock)
        self.tasks = BackgroundTasks()
        self.fleet = Fleet(
            config,
            catalogue=self.catalogue,
            scheduler=self.scheduler,
            metrics=self.metrics,
            tasks=self.tasks,
            clock=clock,
            cluster=cluster,
        )
        self.dispatcher = Dispatcher(
            config,
            catalogue=self.catalogue,
            scheduler=self.scheduler,
            queue=self.queue,
            fleet=self.fleet,
            metrics=self.metrics,
            tasks=self.tasks,
            clock=clock,
        )
        self.fleet.on_change = self.dispatcher.wake
        self.scaler = Scaler(
            config,
            scheduler=self.scheduler,
            fleet=self.fleet,
            queue=self.queue,
            metrics=self.metrics,
            tasks=self.tasks,
        )
        self.metrics.watch_nodes(self.fleet.loads)
        if self.scheduler.task_estimate_error() is not None:  # read at each scrape
            self.metrics.task_estimate_error.set_function(self.scheduler.task_estimate_error)
        self._loops: list[asyncio.Task] = []
        self.started = False

    # -- what the gateway and the tests read ------------------------------------------

    @property
    def cluster(self):
        return self.fleet.cluster

    @property
    def entries(self) -> dict[str, NodeEntry]:
        return self.fleet.entries

    @property
    def jobs(self) -> dict[str, Job]:
        return self.dispatcher.jobs

    @property
    def desired_workers(self) -> int | None:
        return self.fleet.desired_workers

    @property
    def stopping(self) -> bool:
        return self.dispatcher.stopping

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.dispatcher.open()
        initial = self.scaler.initial_workers()
        if self.catalogue.worker_models:
            await self.fleet.start_cluster(initial)
            self.scaler.started(initial)
        self.fleet.add_upstream_nodes()
        await self.fleet.reconcile_workers()
        self._loops = [
            asyncio.create_task(self.dispatcher.loop(), name="autoglm-dispatch"),
            asyncio.create_task(self._control_loop(), name="autoglm-control"),
        ]
        self.started = True

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        self.dispatcher.shut()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.tasks.close()
        await self.fleet.close()

    # -- requests (the dispatcher's) -------------------------------------------------------

    def submit(
        self,
        request: GenerationRequest,
        *,
        priority: Priority = Priority.NORMAL,
        stream: bool = False,
        key_id: str | None = None,
        keep: bool = False,
        prompt_tokens: int = 0,
        prefix_hashes: tuple[int, ...] = (),
    ) -> Job:
        """Accept a request into the queue; raises `ApiError` when it cannot be accepted."""
        return self.dispatcher.submit(
            request,
            priority=priority,
            stream=stream,
            key_id=key_id,
            keep=keep,
            prompt_tokens=prompt_tokens,
            prefix_hashes=prefix_hashes,
        )

    def get(self, job_id: str) -> Job | None:
        return self.dispatcher.get(job_id)

    def release(self, job: Job) -> None:
        self.dispatcher.release(job)

    async def cancel(self, job: Job) -> None:
        await self.dispatcher.cancel(job)

    def cancel_soon(self, job: Job) -> None:
        """Cancel `job` in the background (the client went away; its handler cannot wait)."""
        self.tasks.spawn(self.cancel(job), name=f"autoglm-cancel-{job.id}")

    # -- the control tick ------------------------------------------------------------------

    async def _control_loop(self) -> None:
        interval = float(self.config.workers.control_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the control loop
                log.exception("control tick failed")

    async def tick(self) -> None:
        """Size the pool, follow the cluster's workers, probe and expire nodes, sweep the queue."""
        await self.scaler.step()
        await self.fleet.reconcile_workers()
        now = self.clock()
        self.fleet.maintain(now)
        self.dispatcher.sweep(now)
        self.fleet.update_gauges()
        self.dispatcher.update_queue_gauges()
        self.dispatcher.wake()

    # -- what the gateway shows -------------------------------------------------------------

    def node_report(self) -> list[dict]:
        return self.fleet.report()

    def readiness(self) -> dict:
        default = self.catalogue.default
        ready = self.started and any(n.healthy for n in self.fleet.model_nodes(default))
        return {
            "ready": ready,
            "default_model": default,
            "backup_model": self.catalogue.backup,
            "scheduler": type(self.scheduler).__name__,
            "cluster": self.cluster.describe() if self.cluster is not None else None,
            "desired_workers": self.desired_workers,
            "queue": {p.name.lower(): d for p, d in self.queue.depth().items()},
            "nodes": self.node_report(),
        }
