"""The runtime core: jobs, the dispatcher, the control tick, the nodes.

Flow (docs/architecture.md, "Runtime seams"):

    submit(request) -> scheduler.on_arrival -> queue.push
    dispatcher: queue.pop(eligible) -> scheduler.route_task -> node handle -> result
                node died: mark it dead, push the task back at the front, retry elsewhere
    control tick: scheduler.predict_load -> adjust_workers -> cluster.scale(n);
                  place a model node on every new worker; drop nodes of vanished workers;
                  expire queued requests; refresh the gauges

The scheduler sees only `Task` and `Node` (pure policy); this module does all I/O.
Everything runs on one asyncio loop (the gateway's): no locks needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .backends.base import GenerationRequest, GenerationResult
from .errors import ApiError, Cancelled, NodeFailure, ServiceUnavailable
from .metrics import Metrics
from .models import Catalogue, load_catalogue
from .scheduler import (
    Node,
    NodeKind,
    NodeState,
    NoNodeAvailable,
    Priority,
    PriorityQueue,
    QueueFull,
    Scheduler,
    Task,
    make_queue,
    make_scheduler,
)
from .scheduler.base import MONOTONIC, Clock
from .scheduler.model_pool import ModelPoolPolicy

log = logging.getLogger("autoglm.runtime")
scale_log = logging.getLogger("autoglm.scale")  # one JSON line per scale event

DEAD_NODE_TTL = 60.0  # seconds a dead node stays listed in /readyz
UPSTREAM_REPROBE = 5.0  # seconds between probes of a failed upstream endpoint


@dataclass
class Job:
    """One accepted request, from `submit` until its result is read."""

    task: Task
    request: GenerationRequest
    stream: bool
    key_id: str | None = None
    status: str = "queued"  # queued | running | succeeded | failed | cancelled
    created: float = field(default_factory=time.time)
    deadline: float = 0.0  # monotonic: fail it if still queued then
    served_model: str | None = None
    fallback_from: str | None = None
    forced_model: str | None = None  # the backup, after the default failed this request on every node
    node_id: str | None = None
    result: GenerationResult | None = None
    error: ApiError | None = None
    finished_at: float | None = None
    keep: bool = False  # a /v1/tasks job: stays readable for `gateway.task_ttl`
    sent_text: str = ""  # streamed to the client so far (a retry resumes after it)
    sent_pieces: int = 0
    cancel_requested: bool = False
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # stream: str pieces, then None
    runner: asyncio.Task | None = None

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def push(self, piece: str | bytes) -> None:
        if isinstance(piece, str):  # bytes: an engine's own event, relayed as it is (passthrough)
            self.sent_text += piece
            self.sent_pieces += 1
        self.events.put_nowait(piece)

    def _finish(self, status: str) -> None:
        self.status = status
        self.finished_at = time.monotonic()
        self.events.put_nowait(None)

    # The first outcome wins: a job cancelled while its node answers stays cancelled.

    def succeed(self, result: GenerationResult) -> None:
        if self.finished:
            return
        self.result = result
        self._finish("succeeded")
        self.done.set_result(result)

    def fail(self, error: ApiError) -> None:
        if self.finished:
            return
        self.error = error
        self._finish("failed")
        self.done.set_exception(error)
        self.done.exception()  # nobody may await it (a stream, a task): no "never retrieved" noise

    def cancelled(self) -> None:
        if self.finished:
            return
        self._finish("cancelled")
        self.done.set_exception(Cancelled(self.id))
        self.done.exception()


@dataclass
class NodeEntry:
    node: Node
    model: str
    handle: object | None = None  # a NodeHandle once placed
    worker: str | None = None  # the cluster worker's address (None: an upstream endpoint)
    dead_since: float | None = None
    last_probe: float = 0.0
    last_done: float = 0.0  # when the node last finished a request (service time of queued ones)


class Runtime:
    """Owns the queue, the scheduler, the cluster and the nodes; the gateway calls `submit`."""

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
        self.pool = ModelPoolPolicy(self.catalogue.default, self.catalogue.backup, clock=clock)
        self.scale_hook = None
        if config.workers.scale_hook:
            from .scale_hook import ScaleHook

            self.scale_hook = ScaleHook.parse(
                config.workers.scale_hook, float(config.workers.scale_hook_timeout), source=config.source
            )
        self._hook_lock = asyncio.Lock()
        listeners = getattr(self.scheduler, "listeners", None)
        if listeners is not None:
            listeners.append(self._on_scale_event)
        task_cost = getattr(self.scheduler, "task_cost", None)  # the dynamic policy's estimates
        if task_cost is not None:  # read at each scrape; 1 (no idea) until it has estimates
            self.metrics.task_estimate_error.set_function(
                lambda: task_cost.relative_error if task_cost.ready else 1.0
            )
        self.cluster = cluster
        self.entries: dict[str, NodeEntry] = {}
        self.jobs: dict[str, Job] = {}
        self.desired_workers: int | None = None
        self._draining_to: int | None = None
        self._placing: set[str] = set()
        self._node_ids = itertools.count(1)
        self._background: set[asyncio.Task] = set()
        self._wake: asyncio.Event | None = None
        self._loops: list[asyncio.Task] = []
        self.started = False
        self.stopping = False

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        workers = self.config.workers
        initial = self.scheduler.adjust_workers(0.0)
        initial = self._clamp(initial if initial is not None else workers.min)
        if self.catalogue.worker_models:
            if self.cluster is None:
                self.cluster = self._make_cluster()
            await self.cluster.start(initial)
            self.desired_workers = initial
            self.metrics.desired_nodes.set(initial)
            if not self.cluster.can_scale:
                self._run_scale_hook(initial)
        for model in self.catalogue.upstream_models:
            self._add_upstream_nodes(model)
        await self._reconcile_workers()
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="autoglm-dispatch"),
            asyncio.create_task(self._control_loop(), name="autoglm-control"),
        ]
        self.started = True

    def _make_cluster(self):
        from .workers.clusters import DaskCluster, InlineCluster

        workers = self.config.workers
        timeout = float(self.config.gateway.request_timeout)
        if workers.engine == "inline":
            return InlineCluster(timeout=timeout)
        from .models import python_log_level

        return DaskCluster(
            timeout=timeout,
            address=workers.scheduler_address,
            memory_limit=workers.memory_limit,
            dashboard=workers.dashboard,
            log_level=python_log_level(self.config),
        )

    async def stop(self) -> None:
        self.stopping = True
        for loop in self._loops:
            loop.cancel()
        for task_ in list(self._background):
            task_.cancel()
        for job in list(self.jobs.values()):
            if not job.finished:
                if job.runner is not None:
                    job.runner.cancel()
                job.fail(ServiceUnavailable("the gateway is shutting down"))
        await asyncio.gather(*self._loops, *self._background, return_exceptions=True)
        for entry in self.entries.values():
            if entry.handle is not None:
                try:
                    await entry.handle.close()
                except Exception:  # shutting down: nothing left to save
                    log.debug("closing node %s failed", entry.node.id, exc_info=True)
        if self.cluster is not None:
            await self.cluster.close()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task_ = asyncio.create_task(coro, name=name)
        self._background.add(task_)
        task_.add_done_callback(self._background.discard)
        return task_

    def _clamp(self, n: int) -> int:
        workers = self.config.workers
        if workers.count is not None:
            return max(0, n)
        return max(workers.min, min(workers.max, n))

    # -- requests ------------------------------------------------------------------

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
        if self.stopping or self._wake is None:
            raise ServiceUnavailable("the gateway is not running")
        if request.model not in self.catalogue.models:
            raise ApiError(
                f"The model `{request.model}` does not exist or you do not have access to it.",
                status=404,
                type="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        now = self.clock()
        task = Task(
            id=request.id,
            model=request.model,
            prompt_tokens=prompt_tokens,
            max_tokens=request.max_tokens or 0,
            priority=priority,
            arrived_at=now,
            prefix_hashes=prefix_hashes,
        )
        job = Job(
            task=task,
            request=request,
            stream=stream,
            key_id=key_id,
            keep=keep,
            deadline=now + float(self.config.gateway.queue_timeout),
        )
        if self._target_model(request.model, any_state=True) is None:
            raise self._unservable(request.model)
        try:
            self.queue.push(task)
        except QueueFull as exc:
            raise ServiceUnavailable(str(exc), code="queue_full", headers={"Retry-After": "1"}) from None
        self.scheduler.on_arrival(task)
        self.jobs[task.id] = job
        self._dispatch_ready()  # at once, not on the dispatcher's next turn: one loop hop less per request
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def release(self, job: Job) -> None:
        """The gateway has delivered the job's outcome; forget it unless it is a kept task."""
        if job.finished and not job.keep:
            self.jobs.pop(job.id, None)

    async def cancel(self, job: Job) -> None:
        if job.finished:
            return
        job.cancel_requested = True
        if self.queue.remove(job.id) is not None:
            job.cancelled()
            self._update_queue_gauges()
            return
        entry = self.entries.get(job.node_id or "")
        if entry is not None and entry.handle is not None:
            try:
                await entry.handle.cancel(job.request.id)
            except Exception:  # best effort: the runner is cancelled below anyway
                log.debug("cancel on node %s failed", entry.node.id, exc_info=True)
        if job.runner is not None and not job.runner.done():
            job.runner.cancel()
        job.cancelled()

    # -- which node may take a task ------------------------------------------------

    def _model_nodes(self, model: str) -> list[Node]:
        return [e.node for e in self.entries.values() if e.model == model]

    def _pending(self, model: str) -> bool:
        """A node for `model` is loading or about to be placed."""
        if any(n.state is NodeState.STARTING for n in self._model_nodes(model)):
            return True
        if model in self.catalogue.worker_models and self.cluster is not None:
            if self._placing:
                return True
            live = [e for e in self.entries.values() if e.worker and e.node.state is not NodeState.DEAD]
            return self.desired_workers is None or len(live) < max(1, self.desired_workers)
        return False

    def _servable(self, model: str) -> bool:
        return any(n.healthy for n in self._model_nodes(model)) or self._pending(model)

    def _target_model(
        self, model: str, *, any_state: bool = False, task_id: str | None = None, commit: bool = False
    ) -> str | None:
        """The model a task for `model` runs on (the model pool's choice: itself, or the backup
        standing in for the default), or None when nothing can serve it."""
        job = self.jobs.get(task_id) if task_id else None
        if job is not None and job.forced_model:
            return job.forced_model if self._servable(job.forced_model) else None
        choice = self.pool.choose(model, self._servable, commit=commit)
        return choice.model if self._servable(choice.model) else None

    def _eligible(self, task: Task) -> bool:
        target = self._target_model(task.model, task_id=task.id)
        return target is not None and any(n.free_slots > 0 for n in self._model_nodes(target))

    def _unservable(self, model: str) -> ServiceUnavailable:
        errors = sorted({n.error for n in self._model_nodes(model) if n.error})
        detail = f": {'; '.join(errors)}" if errors else ""
        return ServiceUnavailable(f"no node can serve model {model!r}{detail}", code="model_unavailable")

    # -- dispatching -----------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._dispatch_ready()

    def _dispatch_ready(self) -> None:
        while True:
            task = self.queue.pop(self._eligible)
            if task is None:
                break
            job = self.jobs.get(task.id)
            if job is None or job.finished:
                continue
            target = self._target_model(task.model, task_id=task.id, commit=True)
            try:
                node = self.scheduler.route_task(dataclasses.replace(task, model=target))
            except NoNodeAvailable:
                self.queue.push(task, front=True)
                break
            entry = self.entries[node.id]
            node.running += 1
            job.status, job.node_id, job.served_model = "running", node.id, target
            job.fallback_from = task.model if target != task.model else None
            job.runner = self._spawn(self._run(job, entry, target), name=f"autoglm-job-{job.id}")
        self._update_queue_gauges()

    async def _run(self, job: Job, entry: NodeEntry, model: str) -> None:
        node = entry.node
        started = self.clock()
        request = dataclasses.replace(
            job.request, model=model, resume_text=job.sent_text, resume_tokens=job.sent_pieces
        )
        if job.sent_text and request.max_tokens is not None:
            request.max_tokens = max(1, request.max_tokens - job.sent_pieces)
        # The scheduler hears of every end, but learns service times only from whole answers:
        # a refusal, a cancelled or abandoned request took a time that says nothing of the work.
        reported = False

        def report(learn: bool) -> None:
            nonlocal reported
            reported = True
            self.scheduler.on_completion(job.task, node, self._service_time(entry, started), learn)

        try:
            if job.stream:
                result = await entry.handle.stream(request, job.push)
            else:
                result = await entry.handle.generate(request)
        except NodeFailure as exc:
            report(False)
            self._node_failed(entry, str(exc))
            self._retry_or_fail(job, exc, model)
        except ApiError as err:
            report(False)
            job.fail(err)
        except asyncio.CancelledError:
            if job.cancel_requested:
                job.cancelled()
            elif not job.finished:
                job.fail(ServiceUnavailable("the gateway is shutting down"))
        except Exception as exc:  # a bug below: fail this request, keep serving the others
            log.exception("request %s failed on node %s", job.id, node.id)
            job.fail(ApiError(f"internal error: {type(exc).__name__}"))
        else:
            report(result.finish_reason != "cancelled" and not request.resume_text)  # a resumed one: part
            self.pool.record_success(model)
            self._succeeded(job, result, node, request)
        finally:
            if not reported:  # cancelled, shut down, or a bug: free its place in the policy's books
                report(False)
            node.running = max(0, node.running - 1)
            if not self.stopping:
                self._dispatch_ready()  # the freed slot takes the next queued task right away

    def _service_time(self, entry: NodeEntry, started: float) -> float:
        """How long the node worked on a request that finished now.

        A node that runs one request at a time but accepts more (`slots` 1, `capacity` > 1)
        queues them: its service time starts when it finished the previous one, not at
        dispatch. Time spent in its queue must not look like a slow node to the policy.
        """
        now = self.clock()
        begun = started
        if entry.node.slots == 1:
            begun = max(started, entry.last_done)
        entry.last_done = now
        return now - begun

    def _succeeded(self, job: Job, result: GenerationResult, node: Node, request: GenerationRequest) -> None:
        if request.resume_text:  # resumed after a node died mid-stream
            result = dataclasses.replace(
                result,
                text=request.resume_text + result.text,
                completion_tokens=result.completion_tokens + request.resume_tokens,
            )
        if result.finish_reason == "cancelled" and job.cancel_requested:
            job.cancelled()
            return
        result.node = node.id
        model = job.served_model or job.request.model
        self.metrics.tokens.labels(model).inc(result.completion_tokens)
        self.metrics.prompt_tokens.labels(model).inc(result.prompt_tokens)
        if job.fallback_from:
            self.metrics.fallbacks.labels(job.fallback_from, model).inc()
        job.succeed(result)

    def _retry_or_fail(self, job: Job, exc: Exception, model: str | None = None) -> None:
        job.task.attempts += 1
        if job.cancel_requested:
            job.cancelled()
            return
        if (
            job.task.attempts >= self.config.gateway.max_attempts
            and not self.stopping
            and not job.forced_model
        ):
            # The default failed on every node tried: the model pool sends it to the backup.
            retry = self.pool.after_failure(model or job.task.model)
            if retry is not None and self._servable(retry.model) and not job.sent_text:
                log.warning(
                    "request %s: %s failed on %d node(s); falling back to %s",
                    job.id,
                    model,
                    job.task.attempts,
                    retry.model,
                )
                job.forced_model, job.task.attempts = retry.model, 0
                job.status, job.node_id = "queued", None
                self.queue.push(job.task, front=True)
                return
        if job.task.attempts >= self.config.gateway.max_attempts or self.stopping:
            job.fail(
                ServiceUnavailable(
                    f"the request failed on {job.task.attempts} node(s); last: {exc}", code="nodes_failed"
                )
            )
            return
        log.warning("request %s: node failed (%s); retrying on another node", job.id, exc)
        self.metrics.retries.labels("node_failure").inc()
        job.status, job.node_id = "queued", None
        self.queue.push(job.task, front=True)

    # -- nodes -------------------------------------------------------------------------

    def _new_node(self, model: str, *, kind: NodeKind, address: str, capacity: int) -> NodeEntry:
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
        self._update_node_gauges()
        return entry

    def _set_state(self, entry: NodeEntry, state: NodeState, error: str | None = None) -> None:
        node = entry.node
        if node.state is state and node.error == error:
            return
        node.state, node.error = state, error
        if state is NodeState.DEAD and entry.dead_since is None:
            entry.dead_since = self.clock()
        self.scheduler.on_node_change(node)
        self._update_node_gauges()
        if self._wake is not None:
            self._wake.set()

    def _node_failed(self, entry: NodeEntry, reason: str) -> None:
        if entry.worker is None:  # an upstream endpoint: probe it again later
            log.warning("node %s (%s) failed: %s", entry.node.id, entry.node.address, reason)
            self._set_state(entry, NodeState.FAILED, reason)
            return
        if entry.node.state is not NodeState.DEAD:
            log.warning("node %s on %s is dead: %s", entry.node.id, entry.worker, reason)
            self._set_state(entry, NodeState.DEAD, reason)
            if entry.handle is not None:
                self._spawn(entry.handle.close(), name=f"autoglm-close-{entry.node.id}")

    def _add_upstream_nodes(self, model: str) -> None:
        from .backends.openai_upstream import UpstreamHandle, endpoints_of

        settings = self.catalogue.models[model]
        for url in endpoints_of(settings):
            handle = UpstreamHandle(
                settings, url, on_retry=lambda reason: self.metrics.retries.labels("upstream").inc()
            )
            entry = self._new_node(
                model, kind=NodeKind.UPSTREAM, address=handle.label, capacity=settings.max_connections
            )
            entry.handle = handle
            self._spawn(self._load(entry), name=f"autoglm-probe-{entry.node.id}")

    async def _load(self, entry: NodeEntry) -> None:
        entry.last_probe = self.clock()
        try:
            status = await entry.handle.load()
        except NodeFailure as exc:
            self._set_state(entry, NodeState.DEAD if entry.worker else NodeState.FAILED, str(exc))
            return
        for key in ("pid", "host", "upstream"):
            if status.get(key) is not None:
                entry.node.extra[key] = status[key]
        if status.get("state") == "ready":
            if entry.node.state is not NodeState.READY:
                log.info("node %s ready: %s on %s", entry.node.id, entry.model, entry.node.address)
            self._set_state(entry, NodeState.READY)
        else:
            error = status.get("error") or "the model did not load"
            if entry.node.state is not NodeState.FAILED:
                log.error(
                    "node %s failed: %s on %s: %s", entry.node.id, entry.model, entry.node.address, error
                )
            self._set_state(entry, NodeState.FAILED, error)

    def _choose_model(self, preloaded: tuple[str, ...]) -> str | None:
        for name in preloaded:
            if name in self.catalogue.models:
                return name
        order = self.catalogue.worker_models
        if not order:
            return None
        live: dict[str, int] = dict.fromkeys(order, 0)
        for entry in self.entries.values():
            if entry.worker and entry.node.state is not NodeState.DEAD and entry.model in live:
                live[entry.model] += 1
        return min(order, key=lambda m: (live[m], order.index(m)))

    async def _place(self, address: str) -> None:
        try:
            preloaded = ()
            if hasattr(self.cluster, "preloaded_models") and getattr(self.cluster, "address", None):
                preloaded = await self.cluster.preloaded_models(address)
            model = self._choose_model(preloaded)
            if model is None:
                return
            entry = self._new_node(
                model, kind=NodeKind.ACTOR, address=address, capacity=self.config.workers.concurrency
            )
            entry.node.slots = 1  # one model thread: it runs one request, queues the rest
            entry.worker = address
            try:
                entry.handle = await self.cluster.place(address, self.catalogue.models[model])
            except Exception as exc:  # the worker went away while we placed the actor
                self._set_state(
                    entry, NodeState.DEAD, f"placing the model failed: {type(exc).__name__}: {exc}"
                )
                return
        finally:
            self._placing.discard(address)
        node = entry.node
        node.extra["engine"] = self.cluster.engine
        log.info("node %s: loading %s on %s", node.id, model, address)
        await self._load(entry)

    async def _reconcile_workers(self) -> None:
        if self.cluster is None:
            return
        workers = await self.cluster.workers()
        live = {e.worker for e in self.entries.values() if e.worker and e.node.state is not NodeState.DEAD}
        for address in workers:
            if address not in live and address not in self._placing:
                self._placing.add(address)
                self._spawn(self._place(address), name=f"autoglm-place-{address}")
        for entry in list(self.entries.values()):
            if entry.worker and entry.worker not in workers and entry.node.state is not NodeState.DEAD:
                if entry.node.state is NodeState.DRAINING:
                    self._set_state(entry, NodeState.DEAD, "retired")
                else:
                    self._node_failed(entry, "its worker left the cluster")

    async def _scale(self, wanted: int) -> None:
        """Apply the scheduler's decision; shrinking drains the nodes to go before removing them."""
        wanted = self._clamp(wanted)
        self.metrics.desired_nodes.set(wanted)
        if self.cluster is None or not self.cluster.can_scale:
            if wanted != self.desired_workers:  # published as the metric, and sent to the hook
                self.desired_workers = wanted
                self._run_scale_hook(wanted)
            return
        current = self.desired_workers if self.desired_workers is not None else wanted
        if wanted >= current:
            self._draining_to = None
            for entry in self.entries.values():  # growing again: undo a drain in progress
                if entry.node.state is NodeState.DRAINING:
                    self._set_state(entry, NodeState.READY)
            if wanted > current:
                self.desired_workers = wanted
                await self.cluster.scale(wanted)
            return
        # Shrinking: drain the nodes to go (no new requests); remove their workers once idle.
        draining = self._choose_drain(current - wanted)
        self._draining_to = wanted
        if all(e.node.running == 0 for e in draining):
            self.desired_workers = wanted
            self._draining_to = None
            retire = getattr(self.cluster, "retire", None)
            if retire is not None and draining:
                await retire([e.worker for e in draining])
            else:
                await self.cluster.scale(wanted)

    def _choose_drain(self, count: int) -> list[NodeEntry]:
        """The worker nodes to remove: the ones already draining, topped up with the policy's
        choice (`nodes_to_remove`: starting, then least busy) or the cluster's removal order."""
        workers = [e for e in self.entries.values() if e.worker and e.node.state is not NodeState.DEAD]
        chosen = [e for e in workers if e.node.state is NodeState.DRAINING][:count]
        by_node = {e.node.id: e for e in workers}
        pick = getattr(self.scheduler, "nodes_to_remove", None)
        if pick is not None:
            order = [by_node[n.id] for n in pick(len(workers)) if n.id in by_node]
        else:
            by_worker = {e.worker: e for e in workers}
            order = [by_worker[a] for a in self.cluster.removal_order() if a in by_worker]
        for entry in order:
            if len(chosen) >= count:
                break
            if entry not in chosen:
                chosen.append(entry)
        for entry in workers:
            if entry in chosen and entry.node.state is NodeState.READY:
                self._set_state(entry, NodeState.DRAINING)
            elif entry not in chosen and entry.node.state is NodeState.DRAINING:
                self._set_state(entry, NodeState.READY)
        return chosen

    def _run_scale_hook(self, n: int) -> None:
        if self.scale_hook is None:
            return

        async def run() -> None:
            async with self._hook_lock:  # in order: the last change wins
                await self.scale_hook.run(n)

        self._spawn(run(), name=f"autoglm-scale-hook-{n}")

    def _on_scale_event(self, event) -> None:
        """A policy changed its desired node count: count it and log one JSON line."""
        self.metrics.scale_events.labels(event.direction, event.reason).inc()
        fields = {
            "time": round(time.time(), 3),
            **event.log_fields(),
            "queue_depth": len(self.queue),
        }
        scale_log.info(json.dumps(fields, sort_keys=False))

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
        set_depth = getattr(self.scheduler, "set_queue_depth", None)  # optional observation
        if set_depth is not None:
            set_depth(len(self.queue))
        load = self.scheduler.predict_load()
        self.metrics.predicted_load.set(load)
        wanted = self.scheduler.adjust_workers(load)
        if wanted is None:
            wanted = getattr(self.scheduler, "desired_workers", None)
        if wanted is not None and self.catalogue.worker_models:
            await self._scale(wanted)
        await self._reconcile_workers()
        now = self.clock()
        for entry in list(self.entries.values()):
            if self._needs_probe(entry, now):
                self._spawn(self._load(entry), name=f"autoglm-probe-{entry.node.id}")
            if entry.dead_since is not None and now - entry.dead_since > DEAD_NODE_TTL:
                del self.entries[entry.node.id]
                self.scheduler.on_node_removed(entry.node)
        self._sweep_queue(now)
        self._purge_jobs(now)
        self._update_node_gauges()
        self._update_queue_gauges()
        if self._wake is not None:
            self._wake.set()

    @staticmethod
    def _needs_probe(entry: NodeEntry, now: float) -> bool:
        """A failed upstream endpoint is probed again every UPSTREAM_REPROBE seconds."""
        failed_upstream = (
            entry.worker is None and entry.node.state is NodeState.FAILED and entry.handle is not None
        )
        return failed_upstream and now - entry.last_probe >= UPSTREAM_REPROBE

    def _sweep_queue(self, now: float) -> None:
        for task in list(self.queue.ordered()):
            job = self.jobs.get(task.id)
            if job is None:
                self.queue.remove(task.id)
                continue
            if now >= job.deadline:
                self.queue.remove(task.id)
                waited = float(self.config.gateway.queue_timeout)
                job.fail(
                    ServiceUnavailable(
                        f"no node was free within gateway.queue_timeout ({waited:g} s)",
                        code="queue_timeout",
                        headers={"Retry-After": "5"},
                    )
                )
            elif self._target_model(task.model, task_id=task.id) is None:
                self.queue.remove(task.id)
                job.fail(self._unservable(task.model))

    def _purge_jobs(self, now: float) -> None:
        ttl = float(self.config.gateway.task_ttl)
        for job_id, job in list(self.jobs.items()):
            if (
                job.finished
                and job.finished_at is not None
                and now - job.finished_at > (ttl if job.keep else 60)
            ):
                del self.jobs[job_id]

    # -- what the gateway shows -------------------------------------------------------------

    def _update_queue_gauges(self) -> None:
        for priority, depth in self.queue.depth().items():
            self.metrics.queue_depth.labels(priority.name.lower()).set(depth)

    def _update_node_gauges(self) -> None:
        counts = dict.fromkeys(NodeState, 0)
        for entry in self.entries.values():
            counts[entry.node.state] += 1
        for state, count in counts.items():
            self.metrics.nodes.labels(state.value).set(count)
        self.metrics.actual_nodes.set(counts[NodeState.STARTING] + counts[NodeState.READY])

    def node_report(self) -> list[dict]:
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

    def readiness(self) -> dict:
        default = self.catalogue.default
        ready = self.started and any(n.healthy for n in self._model_nodes(default))
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


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
