"""The worker side of `autoglm worker`: a Dask worker plugin that loads the model.

`autoglm worker tcp://HOST:8786 --model NAME` runs `dask worker ... --preload
autoglm_cli.runtime.workers.plugin`; Dask imports this module in the worker and
calls `dask_setup(worker)`, which registers `ModelPlugin`. The plugin starts
loading the model as soon as the worker is up (so `serve` finds it warm), from
the config file named by `$AUTOGLM_CONFIG` and the models in
`$AUTOGLM_WORKER_MODELS` (comma-separated; default: `model_pool.default`).
"""

from __future__ import annotations

import asyncio
import logging
import os

from distributed.diagnostics.plugin import WorkerPlugin

from .registry import host_for

log = logging.getLogger("autoglm.runtime.worker")

ENV_MODELS = "AUTOGLM_WORKER_MODELS"


class ModelPlugin(WorkerPlugin):
    """Loads the worker's models when it starts (and again after the nanny restarts it)."""

    name = "autoglm-model"

    def __init__(self, settings: list) -> None:
        self.settings = settings  # list[BackendSettings]
        self._tasks: list[asyncio.Task] = []

    async def setup(self, worker) -> None:
        pin_gpus(worker.name)
        for settings in self.settings:
            host = host_for(settings)
            # Load in the background: the worker joins the cluster at once, the actor waits on the load.
            self._tasks.append(asyncio.ensure_future(host.load()))
            log.warning("autoglm worker %s: loading model %s", worker.address, settings.model)

    def teardown(self, worker) -> None:
        for task in self._tasks:
            task.cancel()


def pin_gpus(name, environ=os.environ) -> str | None:
    """Make this worker process see only its own GPU set (from `$AUTOGLM_WORKER_GPUS`, set by
    `autoglm worker` on a host with several GPUs), before anything initialises CUDA."""
    from .gpus import ENV, ENV_GPUS, ENV_PER_WORKER, gpu_set, worker_index

    gpus = [g for g in environ.get(ENV_GPUS, "").split(",") if g]
    visible = gpu_set(worker_index(name) or 0, gpus, int(environ.get(ENV_PER_WORKER) or 1))
    if visible is not None:
        environ[ENV] = visible
        log.warning("autoglm worker %s: %s=%s", name, ENV, visible)
    return visible


def settings_from_environment():
    from ...config import load_config
    from ..models import model_settings

    config = load_config(os.environ.get("AUTOGLM_CONFIG") or None)
    names = [n for n in os.environ.get(ENV_MODELS, "").split(",") if n] or [config.model_pool.default]
    return [model_settings(config, name) for name in names]


async def dask_setup(worker) -> None:
    """Dask's preload hook."""
    await worker.plugin_add(ModelPlugin(settings_from_environment()), name=ModelPlugin.name)


def worker_models() -> list[str]:
    """Run on a worker through `client.run`: the models its plugin loads."""
    from .registry import loaded_models

    return loaded_models()


def worker_capacity() -> dict[str, dict]:
    """Run on a worker through `client.run`: each hosted model's capacity and batch now."""
    from .registry import hosts

    return {name: host.capacity() for name, host in hosts().items()}
