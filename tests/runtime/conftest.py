"""Fixtures for the runtime: keys files, configs, `autoglm serve` processes, in-process gateways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from autoglm_cli.runtime.auth import KeyStore


@dataclass
class Keys:
    file: Path
    full: str
    read_only: str
    limited: str  # 2 requests per minute
    other_model: str  # may use only the model "other"


def make_keys(path: Path) -> Keys:
    store = KeyStore(path)
    return Keys(
        file=path,
        full=store.create(name="full")[1],
        read_only=store.create(name="reader", permissions=("model:read",))[1],
        limited=store.create(name="limited", rate_limit=2)[1],
        other_model=store.create(name="other", models=("other",))[1],
    )


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def keys(module_tmp) -> Keys:
    return make_keys(module_tmp / "keys.json")


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class FakeClock:
    """A clock a test moves by hand (`now += seconds`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def runtime_parts(cfg, *, scheduler=None, clock=None, cluster=None):
    """The runtime's parts wired as `Runtime` wires them, on a real `InlineCluster`, for tests
    that drive one part directly (the dispatcher, the fleet, the scaler)."""
    import time

    from autoglm_cli.runtime.dispatcher import Dispatcher
    from autoglm_cli.runtime.fleet import Fleet
    from autoglm_cli.runtime.metrics import Metrics
    from autoglm_cli.runtime.models import load_catalogue
    from autoglm_cli.runtime.scaler import Scaler
    from autoglm_cli.runtime.scheduler import make_queue
    from autoglm_cli.runtime.scheduler.static import StaticScheduler
    from autoglm_cli.runtime.tasks import BackgroundTasks
    from autoglm_cli.runtime.workers.clusters import InlineCluster

    clock = clock or time.monotonic
    catalogue = load_catalogue(cfg)
    scheduler = scheduler or StaticScheduler(1, clock=clock)
    metrics, tasks, queue = Metrics(), BackgroundTasks(), make_queue(cfg, clock=clock)
    fleet = Fleet(
        cfg,
        catalogue=catalogue,
        scheduler=scheduler,
        metrics=metrics,
        tasks=tasks,
        clock=clock,
        cluster=cluster or InlineCluster(timeout=10),
    )
    dispatcher = Dispatcher(
        cfg,
        catalogue=catalogue,
        scheduler=scheduler,
        queue=queue,
        fleet=fleet,
        metrics=metrics,
        tasks=tasks,
        clock=clock,
    )
    fleet.on_change = dispatcher.wake
    scaler = Scaler(cfg, scheduler=scheduler, fleet=fleet, queue=queue, metrics=metrics, tasks=tasks)
    return dispatcher, fleet, scaler, tasks


async def until(predicate, *, timeout: float = 10.0, step: float = 0.01) -> None:
    """Poll `predicate` on the running loop until it holds; fail the test after `timeout`."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {predicate}")
        await asyncio.sleep(step)
