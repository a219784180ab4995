"""Jobs from acceptance to outcome: the queue, sending each to a node, retrying elsewhere or failing.

    submit(request) -> scheduler.on_arrival -> queue.push -> dispatch_ready
    dispatch_ready: queue.pop(eligible) -> model pool's choice -> scheduler.route_task -> run
    run: node handle -> result; NodeFailure: mark the node, push the task back at the front
         (up to gateway.max_attempts nodes, then the backup model), else fail the job

A task is eligible when its model (or the backup standing in) has a node with a free
slot (`Node.free_slots`: up to `capacity` jobs are sent to a node at once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from .backends.base import GenerationRequest, GenerationResult
from .errors import ApiError, NodeFailure, ServiceUnavailable
from .fleet import Fleet, NodeEntry
from .jobs import Job, JobStatus
from .metrics import Metrics
from .models import Catalogue
from .scheduler import Node, NoNodeAvailable, Priority, PriorityQueue, QueueFull, Scheduler, Task
from .scheduler.base import Clock
from .scheduler.model_pool import ModelPoolPolicy
from .tasks import BackgroundTasks

log = logging.getLogger("autoglm.runtime")

FINISHED_JOB_TTL = 60.0  # seconds a finished job nobody reads stays (a kept task: gateway.task_ttl)


class Dispatcher:
    def __init__(
        self,
        config,
        *,
        catalogue: Catalogue,
        scheduler: Scheduler,
        queue: PriorityQueue,
        fleet: Fleet,
        metrics: Metrics,
        tasks: BackgroundTasks,
        clock: Clock,
    ) -> None:
        self.config = config
        self.catalogue = catalogue
        self.scheduler = scheduler
        self.queue = queue
        self.fleet = fleet
        self.metrics = metrics
        self.tasks = tasks
        self.clock = clock
        self.pool = ModelPoolPolicy(catalogue.default, catalogue.backup, clock=clock)
        self.jobs: dict[str, Job] = {}
        self.stopping = False
        self._wake: asyncio.Event | None = None  # set: look at the queue again

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Accept requests from now on (on the running loop)."""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a node's state, the pool): dispatch on the loop's next turn."""
        if self._wake is not None:
            self._wake.set()

    async def loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.dispatch_ready()

    def shut(self) -> None:
        """Stop dispatching; every unfinished job fails (its runner is cancelled)."""
        self.stopping = True
        for job in list(self.jobs.values()):
            if not job.finished:
                if job.runner is not None:
                    job.runner.cancel()
                self.fail(job, ServiceUnavailable("the gateway is shutting down"))

    def rescue(self, entry: NodeEntry) -> None:
        """`entry`'s node was marked dead: its requests are retried elsewhere now, not when the
        transport to the dead process gives up (Dask's connect timeout is 30 s)."""
        current = asyncio.current_task()  # a runner marking its own node dead retries by itself
        for job in list(self.jobs.values()):
            if (
                job.node_id == entry.node.id
                and job.status is JobStatus.RUNNING
                and job.runner is not None
                and job.runner is not current
                and not job.runner.done()
            ):
                job.rescued = True
                job.runner.cancel()
                job.runner.add_done_callback(lambda _task, job=job: self._rescued_unstarted(job, entry))

    def _rescued_unstarted(self, job: Job, entry: NodeEntry) -> None:
        """A runner cancelled before its first step never reaches `run`'s handlers: retry here."""
        if not job.rescued or job.finished:
            return  # `run` took care of it
        job.rescued = False
        node = entry.node
        node.running = max(0, node.running - 1)
        self.scheduler.on_completion(job.task, node, 0.0, False)
        self.retry_or_fail(job, NodeFailure(f"node {node.id} died"), job.served_model)
        if not self.stopping:
            self.dispatch_ready()

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
        try:
            return self._accept(request, priority, stream, key_id, keep, prompt_tokens, prefix_hashes)
        except ApiError as err:
            self.metrics.count_error(err)
            raise

    def _accept(
        self,
        request: GenerationRequest,
        priority: Priority,
        stream: bool,
        key_id: str | None,
        keep: bool,
        prompt_tokens: int,
        prefix_hashes: tuple[int, ...],
    ) -> Job:
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
            clock=self.clock,
        )
        if self.target_model(request.model) is None:
            raise self.fleet.unservable(request.model)
        try:
            self.queue.push(task)
        except QueueFull as exc:
            raise ServiceUnavailable(str(exc), code="queue_full", headers={"Retry-After": "1"}) from None
        self.scheduler.on_arrival(task)
        self.jobs[task.id] = job
        self.dispatch_ready()  # at once, not on the dispatcher's next turn: one loop hop less per request
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
            self.update_queue_gauges()
            return
        entry = self.fleet.entries.get(job.node_id or "")
        if entry is not None and entry.handle is not None:
            try:
                await entry.handle.cancel(job.request.id)
            except Exception:  # best effort: the runner is cancelled below anyway
                log.debug("cancel on node %s failed", entry.node.id, exc_info=True)
        if job.runner is not None and not job.runner.done():
            job.runner.cancel()
        job.cancelled()

    # -- which node may take a task ------------------------------------------------

    def target_model(self, model: str, *, task_id: str | None = None, commit: bool = False) -> str | None:
        """The model a task for `model` runs on (the model pool's choice: itself, or the backup
        standing in for the default), or None when nothing can serve it."""
        job = self.jobs.get(task_id) if task_id else None
        servable = self.fleet.servable
        if job is not None and job.forced_model:
            return job.forced_model if servable(job.forced_model) else None
        choice = self.pool.choose(model, servable, commit=commit)
        return choice.model if servable(choice.model) else None

    def eligible(self, task: Task) -> bool:
        target = self.target_model(task.model, task_id=task.id)
        return target is not None and any(n.free_slots > 0 for n in self.fleet.model_nodes(target))

    # -- dispatching -----------------------------------------------------------------

    def dispatch_ready(self) -> None:
        routed = False
        while True:
            task = self.queue.pop(self.eligible)
            if task is None:
                break
            job = self.jobs.get(task.id)
            if job is None or job.finished:
                continue
            target = self.target_model(task.model, task_id=task.id, commit=True)
            try:
                node = self.scheduler.route_task(dataclasses.replace(task, model=target))
            except NoNodeAvailable:
                self.queue.push(task, front=True)
                break
            entry = self.fleet.entries[node.id]
            node.running += 1
            if job.dispatched_at is None:
                job.dispatched_at = self.clock()
                self.metrics.queue_wait.labels(target).observe(job.dispatched_at - task.arrived_at)
            job.status, job.node_id, job.served_model = JobStatus.RUNNING, node.id, target
            job.fallback_from = task.model if target != task.model else None
            job.runner = self.tasks.spawn(self.run(job, entry, target), name=f"autoglm-job-{job.id}")
            routed = True
        if routed:
            # After the runners' first steps (they send the requests): the routing bookkeeping
            # the requests need not wait for (the next decision does it first if still pending).
            asyncio.get_running_loop().call_soon(self.scheduler.record_routed)
        self.update_queue_gauges()

    async def run(self, job: Job, entry: NodeEntry, model: str) -> None:
        """Run `job` on `entry`'s node and settle its outcome; the node's slot is free after."""
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

        def report(learn: bool, output_tokens: int | None = None) -> None:
            nonlocal reported
            reported = True
            self.scheduler.on_completion(
                job.task, node, self.service_time(entry, started), learn, output_tokens=output_tokens
            )

        try:
            if job.stream:
                result = await entry.handle.stream(request, self._streamer(job, model, node))
            else:
                result = await entry.handle.generate(request)
        except NodeFailure as exc:
            report(False)
            self.fleet.node_failed(entry, str(exc))
            self.retry_or_fail(job, exc, model)
        except ApiError as err:
            report(False)
            if err.status >= 500 and entry.worker is None:  # the upstream's own 5xx: its breaker counts it
                self.fleet.upstream_failed(entry, err.message)
            self.fail(job, err)
        except asyncio.CancelledError:
            if job.rescued and not job.cancel_requested and not self.stopping:
                job.rescued = False
                report(False)
                self.retry_or_fail(job, NodeFailure(f"node {node.id} died"), model)
                # The runner ends normally: the retry is a new runner.
            elif job.cancel_requested:
                job.cancelled()
            elif not job.finished:
                self.fail(job, ServiceUnavailable("the gateway is shutting down"))
        except Exception as exc:  # a bug below: fail this request, keep serving the others
            log.exception("request %s failed on node %s", job.id, node.id)
            self.fail(job, ApiError(f"internal error: {type(exc).__name__}"))
        else:
            whole = result.finish_reason != "cancelled" and not request.resume_text  # a resumed one: part
            report(whole, result.completion_tokens if whole else None)
            self.pool.record_success(model)
            self.fleet.node_succeeded(entry)
            self.succeeded(job, result, node, request)
        finally:
            if not reported:  # cancelled, shut down, or a bug: free its place in the policy's books
                report(False)
            node.running = max(0, node.running - 1)
            if not self.stopping:
                self.dispatch_ready()  # the freed slot takes the next queued task right away

    def _streamer(self, job: Job, model: str, node: Node):
        """`job.push`, timing the first piece (time to first token) and telling the policy."""

        def push(piece: str) -> None:
            if job.first_token_at is None:
                job.first_token_at = now = self.clock()
                self.metrics.time_to_first_token.labels(model).observe(now - job.task.arrived_at)
                self.scheduler.on_first_token(job.task, node)
            job.push(piece)

        return push

    def fail(self, job: Job, error: ApiError) -> None:
        """`job` ends with `error`, counted by its code."""
        if job.finished:
            return
        self.metrics.count_error(error)
        job.fail(error)

    def service_time(self, entry: NodeEntry, started: float) -> float:
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

    def succeeded(self, job: Job, result: GenerationResult, node: Node, request: GenerationRequest) -> None:
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
        if job.first_token_at is not None and result.completion_tokens > 1:
            between = (self.clock() - job.first_token_at) / (result.completion_tokens - 1)
            self.metrics.time_per_output_token.labels(model).observe(between)
        job.succeed(result)

    def retry_or_fail(self, job: Job, exc: Exception, model: str | None = None) -> None:
        """The node failed `job`: queue it again (another node, or the backup), or fail it."""
        job.task.attempts += 1
        if job.cancel_requested:
            job.cancelled()
            return
        max_attempts = self.config.gateway.max_attempts
        if job.task.attempts >= max_attempts and not self.stopping and not job.forced_model:
            # The default failed on every node tried: the model pool sends it to the backup.
            retry = self.pool.after_failure(model or job.task.model)
            if retry is not None and self.fleet.servable(retry.model) and not job.sent_text:
                log.warning(
                    "request %s: %s failed on %d node(s); falling back to %s",
                    job.id,
                    model,
                    job.task.attempts,
                    retry.model,
                )
                job.forced_model, job.task.attempts = retry.model, 0
                job.status, job.node_id = JobStatus.QUEUED, None
                self.queue.push(job.task, front=True)
                return
        if job.task.attempts >= max_attempts or self.stopping or job.relayed:
            # An engine's events already reached the client: another node would start over.
            self.fail(
                job,
                ServiceUnavailable(
                    f"the request failed on {job.task.attempts} node(s); last: {exc}", code="nodes_failed"
                ),
            )
            return
        log.warning("request %s: node failed (%s); retrying on another node", job.id, exc)
        self.metrics.retries.labels("node_failure").inc()
        job.status, job.node_id = JobStatus.QUEUED, None
        self.queue.push(job.task, front=True)

    # -- the control tick's part ------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Fail queued jobs past `gateway.queue_timeout` or whose model nothing can serve; forget
        finished jobs nobody will read."""
        for task in list(self.queue.ordered()):
            job = self.jobs.get(task.id)
            if job is None:
                self.queue.remove(task.id)
                continue
            if now >= job.deadline:
                self.queue.remove(task.id)
                waited = float(self.config.gateway.queue_timeout)
                self.fail(
                    job,
                    ServiceUnavailable(
                        f"no node was free within gateway.queue_timeout ({waited:g} s)",
                        code="queue_timeout",
                        headers={"Retry-After": "5"},
                    ),
                )
            elif self.target_model(task.model, task_id=task.id) is None:
                self.queue.remove(task.id)
                self.fail(job, self.fleet.unservable(task.model))
        ttl = float(self.config.gateway.task_ttl)
        for job_id, job in list(self.jobs.items()):
            if (
                job.finished
                and job.finished_at is not None
                and now - job.finished_at > (ttl if job.keep else FINISHED_JOB_TTL)
            ):
                del self.jobs[job_id]

    def update_queue_gauges(self) -> None:
        for priority, depth in self.queue.depth().items():
            self.metrics.queue_depth.labels(priority.name.lower()).set(depth)
