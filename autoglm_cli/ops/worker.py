"""The `autoglm worker` job: build the `dask worker` command line and run it until it ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ExitCode, UsageError

PLUGIN_MODULE = "autoglm_cli.runtime.workers.plugin"


@dataclass(frozen=True)
class WorkerPlan:
    scheduler: str
    models: tuple[str, ...]
    command: tuple[str, ...]
    env: dict[str, str]  # what is added to the environment


@dataclass(frozen=True)
class WorkerReport:
    scheduler: str
    models: tuple[str, ...]
    returncode: int

    @property
    def exit_code(self) -> ExitCode:
        # Stopped by Ctrl-C or SIGTERM: a normal end for a long-running worker.
        if self.returncode in (0, -signal.SIGINT, -signal.SIGTERM, 130, 143):
            return ExitCode.OK
        return ExitCode.ENVIRONMENT


def plan(
    config: Config,
    *,
    scheduler: str,
    models: tuple[str, ...] = (),
    nworkers: int = 1,
    name: str | None = None,
    host: str | None = None,
    memory_limit: str | None = None,
    extra: tuple[str, ...] = (),
    config_path: Path | None = None,
) -> WorkerPlan:
    from ..runtime.backends import THREADED
    from ..runtime.models import model_settings
    from ..runtime.workers.gpus import ENV_GPUS, ENV_PER_WORKER, host_gpus

    if "://" not in scheduler:
        raise UsageError(
            f"{scheduler!r} is not a scheduler address",
            remedy="Give it as tcp://HOST:PORT (Dask's default port: 8786).",
        )
    names = models or (config.model_pool.default,)
    for model in names:
        settings = model_settings(config, model)  # raises a ConfigError naming the model when undefined
        if settings.backend not in THREADED:
            raise UsageError(
                f"model {model!r} uses the {settings.backend} backend: it runs in the gateway, not on workers"
            )
    command = [
        sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
        "--nthreads", "1",
        "--nworkers", str(nworkers),
        "--memory-limit", memory_limit or config.workers.memory_limit,
        "--preload", PLUGIN_MODULE,
        "--no-dashboard",
    ]  # fmt: skip
    env = {"AUTOGLM_WORKER_MODELS": ",".join(names)}
    gpus = host_gpus(config.workers.gpus)
    if len(gpus) > 1:  # each worker process takes its own GPU set (runtime/workers/gpus.py)
        env[ENV_GPUS] = ",".join(gpus)
        env[ENV_PER_WORKER] = str(config.workers.gpus_per_worker)
        name = name or (f"autoglm-{socket.gethostname()}" if nworkers > 1 else None)  # names end in -0, -1
    if name:
        command += ["--name", name]
    if host:
        command += ["--host", host]
    command += list(extra)
    if config_path is not None:
        env["AUTOGLM_CONFIG"] = str(config_path.resolve())
    return WorkerPlan(scheduler=scheduler, models=tuple(names), command=tuple(command), env=env)


def run(plan: WorkerPlan) -> WorkerReport:
    """Run `dask worker` in the foreground; SIGINT/SIGTERM reach it and end it cleanly."""
    proc = subprocess.Popen(plan.command, env={**os.environ, **plan.env})

    def forward(signum, frame):
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM,)}
    interrupts = 0
    try:
        while True:
            try:
                returncode = proc.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C reached the whole process group: let dask finish; twice: kill
                interrupts += 1
                if interrupts > 1:
                    proc.kill()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return WorkerReport(scheduler=plan.scheduler, models=plan.models, returncode=returncode)
