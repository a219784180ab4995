"""Where worker nodes come from: a Dask cluster, or the gateway process itself.

A cluster knows its workers (by address), places a model node on one
(`place`), and grows or shrinks (`scale`, `retire`): the `Cluster` protocol. The
runtime's fleet and scaler drive it from the control tick; the scheduler's
`adjust_workers` decides the size.

- `DaskCluster`: a `LocalCluster` that `serve` owns (worker processes, one
  thread each; each worker's nanny restarts it when it dies; on a host with
  several GPUs each worker sees its own, see `gpus.py`), or an existing
  scheduler (`--dask-scheduler tcp://...`), where machines join with
  `autoglm worker` and Dask's own cluster managers do the scaling.
- `InlineCluster`: nodes are `ModelHost`s in the gateway process. No isolation
  and no parallelism beyond threads: for the simulated backend and tiny setups.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from ..backends.base import BackendSettings
from .gpus import ENV, gpu_set, host_gpus, worker_index
from .handles import ActorHandle, HostHandle, NodeHandle

log = logging.getLogger("autoglm.runtime.cluster")


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str = ""
    models: tuple[str, ...] = field(default=())  # models its plugin preloaded (autoglm worker --model)


class Cluster(Protocol):
    """What the runtime asks of a cluster (both clusters below implement all of it)."""

    engine: str  # shown in /readyz and on each node
    can_scale: bool  # False: someone else sizes it (the runtime publishes the count, runs the hook)

    async def start(self, n_workers: int) -> None: ...

    async def scale(self, n: int) -> None:
        """Grow or shrink to `n` workers (shrinking removes `removal_order()` first)."""
        ...

    def removal_order(self) -> list[str]:
        """Worker addresses `scale` removes first when shrinking."""
        ...

    async def retire(self, addresses: list[str]) -> None:
        """Remove exactly these workers (drained and idle) for good."""
        ...

    async def workers(self) -> dict[str, WorkerInfo]: ...

    async def preloaded_models(self, address: str) -> tuple[str, ...]:
        """Models the worker at `address` loaded itself (`autoglm worker --model`); () if none."""
        ...

    async def place(self, address: str, settings: BackendSettings) -> NodeHandle:
        """A node serving `settings.model` on the worker at `address`."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> dict: ...


class InlineCluster:
    engine = "inline"
    can_scale = True

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._names: list[str] = []
        self._counter = itertools.count(1)

    async def start(self, n_workers: int) -> None:
        await self.scale(n_workers)

    async def scale(self, n: int) -> None:
        while len(self._names) < n:
            self._names.append(f"inline://{next(self._counter)}")
        del self._names[n:]

    def removal_order(self) -> list[str]:
        """Addresses `scale` removes first when shrinking."""
        return list(reversed(self._names))

    async def retire(self, addresses: list[str]) -> None:
        """Remove these workers (the scheduler chose them: idle, drained)."""
        self._names = [n for n in self._names if n not in set(addresses)]

    async def workers(self) -> dict[str, WorkerInfo]:
        return {name: WorkerInfo(name, name) for name in self._names}

    async def preloaded_models(self, address: str) -> tuple[str, ...]:
        return ()  # its nodes live in this process: nothing runs before the runtime places them

    async def place(self, address: str, settings: BackendSettings) -> NodeHandle:
        from .host import ModelHost

        return HostHandle(ModelHost(settings), timeout=self.timeout)

    async def close(self) -> None:
        self._names.clear()

    def describe(self) -> dict:
        return {"engine": self.engine, "workers": len(self._names)}


class DaskCluster:
    engine = "dask"

    def __init__(
        self,
        *,
        timeout: float,
        address: str | None = None,
        memory_limit: str = "auto",
        dashboard: bool = False,
        host: str = "127.0.0.1",
        log_level: str = "WARNING",
        gpus: str = "auto",
        gpus_per_worker: int = 1,
    ) -> None:
        self.timeout = timeout
        self.gpus = gpus
        self.gpus_per_worker = gpus_per_worker
        self.address = address
        self.memory_limit = memory_limit
        self.dashboard = dashboard
        self.host = host
        self.log_level = log_level
        self.cluster = None
        self.client = None

    @property
    def can_scale(self) -> bool:
        return self.cluster is not None  # an external cluster scales itself

    async def start(self, n_workers: int) -> None:
        from distributed import Client, LocalCluster

        from ..logs import adopt_dask

        adopt_dask()
        if self.address:
            self.client = await Client(self.address, asynchronous=True, timeout="30s")
            return
        gpus = host_gpus(self.gpus)
        cluster_class = LocalCluster if len(gpus) < 2 else pinned_local_cluster(gpus, self.gpus_per_worker)
        self.cluster = await cluster_class(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            asynchronous=True,
            host=self.host,
            # Dask's scheduler always serves HTTP (health, metrics); without the dashboard, keep it
            # local and off the well-known 8787 so that several gateways on one machine never collide.
            dashboard_address=":8787" if self.dashboard else None,
            scheduler_kwargs=None
            if self.dashboard
            else {"dashboard": False, "dashboard_address": f"{self.host}:0"},
            memory_limit=self.memory_limit,
            silence_logs=logging.getLevelName(self.log_level),
        )
        self.client = await Client(self.cluster, asynchronous=True)

    async def scale(self, n: int) -> None:
        if self.cluster is None:
            log.info("the external Dask cluster scales itself; wanted %d workers", n)
            return
        self.cluster.scale(n)

    async def retire(self, addresses: list[str]) -> None:
        """Remove these workers (the scheduler chose them: idle, drained) from the spec: closed for good."""
        if self.cluster is None:
            return
        workers = self.cluster.scheduler_info.get("workers", {})
        names = [str(workers[a]["name"]) for a in addresses if a in workers]
        by_str = {str(k): k for k in self.cluster.worker_spec}
        await self.cluster.scale_down([by_str[n] for n in names if n in by_str])

    def removal_order(self) -> list[str]:
        if self.cluster is None:
            return []
        # SpecCluster.scale removes the most recently added specs first.
        names = list(reversed(list(self.cluster.worker_spec)))
        by_name = {str(w["name"]): a for a, w in self.cluster.scheduler_info.get("workers", {}).items()}
        return [by_name[str(n)] for n in names if str(n) in by_name]

    async def workers(self) -> dict[str, WorkerInfo]:
        identity = await self.client.scheduler.identity()
        running = {
            address: info
            for address, info in identity.get("workers", {}).items()
            if info.get("status", "running") == "running"
        }
        return {a: WorkerInfo(a, str(w.get("name", ""))) for a, w in running.items()}

    async def preloaded_models(self, address: str) -> tuple[str, ...]:
        if not self.address:  # a cluster of our own: its workers run no `autoglm worker` plugin
            return ()
        from .plugin import worker_models

        try:
            reply = await self.client.run(worker_models, workers=[address])
        except Exception:  # the worker went away meanwhile
            return ()
        return tuple(reply.get(address, ()))

    async def place(self, address: str, settings: BackendSettings) -> NodeHandle:
        from .actor import ModelActor

        future = self.client.submit(
            ModelActor,
            settings,
            actor=True,
            workers=[address],
            allow_other_workers=False,
            pure=False,
            key=f"autoglm-actor-{settings.model}-{uuid.uuid4().hex[:8]}",
        )
        actor = await future
        # Without this, a call to a dead worker's actor waits for Dask to recompute the
        # actor's task (which its worker restriction never allows): fail fast instead.
        actor._future = None
        return ActorHandle(actor, future, timeout=self.timeout)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.cluster is not None:
            await self.cluster.close()

    def describe(self) -> dict:
        scheduler = self.address or (self.cluster.scheduler_address if self.cluster is not None else None)
        info = {"engine": self.engine, "scheduler": scheduler, "owned": self.cluster is not None}
        if self.cluster is not None and self.dashboard:
            info["dashboard"] = self.cluster.dashboard_link
        return info


def pinned_local_cluster(gpus: list[str], per_worker: int = 1):
    """A LocalCluster class whose worker i starts with its own `CUDA_VISIBLE_DEVICES` (`gpus.gpu_set`),
    for the workers it starts with and for every one `scale` adds later."""
    from distributed import LocalCluster

    def pin(name, spec: dict) -> dict:
        index = worker_index(name)
        visible = gpu_set(index if index is not None else 0, gpus, per_worker)
        options = dict(spec.get("options") or {})
        options["env"] = {**(options.get("env") or {}), ENV: visible}
        return {**spec, "options": options}

    class PinnedLocalCluster(LocalCluster):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)  # asynchronous: the workers start on `await`, from these specs
            self.worker_spec = {name: pin(name, spec) for name, spec in self.worker_spec.items()}

        def new_worker_spec(self):
            return {name: pin(name, spec) for name, spec in super().new_worker_spec().items()}

    return PinnedLocalCluster
