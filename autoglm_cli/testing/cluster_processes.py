"""Real cluster processes for fault tests and the chaos benchmark: a `dask scheduler` and
`autoglm worker`s, each its own process (group), started and SIGKILLed like machines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path


class DaskScheduler:
    """`dask scheduler` on 127.0.0.1:`port`; `kill` and `start` again on the same address."""

    def __init__(self, port: int, log: Path) -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.port, self.log = port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> DaskScheduler:
        command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--no-dashboard"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_worker(
    address: str, config: Path, log: Path, *, nworkers: int = 1, env: dict | None = None
) -> subprocess.Popen:
    """`autoglm worker ADDRESS` in its own session: `kill_group` kills it like a machine going away."""
    command = [sys.executable, "-m", "autoglm_cli", "worker", address, "--config", str(config)]
    command += ["--nworkers", str(nworkers)]
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started (its session's process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
