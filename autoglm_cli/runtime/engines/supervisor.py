"""Run one engine server and keep it running: start, readiness, restart with backoff, logs.

`EngineSupervisor` owns one process (`EngineLaunch`) from a thread of its own:

- start it in its own session (so stopping it reaches its children: vLLM forks workers),
  its stdout and stderr read line by line into the `autoglm.engine` logger, each line
  prefixed with the engine's label (that is the worker's log);
- ready when its health endpoint answers 200 (`ready` event); an engine that does not
  become ready within `ready_timeout` is killed and counts as a death;
- when it dies: wait `restart_base` seconds, doubling for each death that came quickly
  (before it had been ready for `restart_max` seconds), at most `restart_max`, then start
  it again; `restarts` counts them;
- `stop()`: SIGTERM to its process group, SIGKILL after `stop_timeout`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time

from .commands import EngineLaunch

log = logging.getLogger("autoglm.engine")


class EngineSupervisor:
    def __init__(
        self,
        launch: EngineLaunch,
        *,
        ready_timeout: float = 1800.0,
        restart_base: float = 1.0,
        restart_max: float = 60.0,
        stop_timeout: float = 30.0,
        probe_interval: float = 0.5,
    ) -> None:
        self.launch = launch
        self.ready_timeout = ready_timeout
        self.restart_base = restart_base
        self.restart_max = restart_max
        self.stop_timeout = stop_timeout
        self.probe_interval = probe_interval
        self.ready = threading.Event()
        self.restarts = 0
        self.state = "new"  # new | starting | ready | restarting | stopped
        self.last_exit: int | None = None
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"engine-{launch.index}", daemon=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> EngineSupervisor:
        self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._terminate()
        self._thread.join(self.stop_timeout + 5)
        self.state = "stopped"

    # -- the supervision loop ----------------------------------------------------------

    def _supervise(self) -> None:
        quick_deaths = 0
        while not self._stopping.is_set():
            self.state = "starting"
            began = time.monotonic()
            try:
                self.process = self._spawn()
            except OSError as exc:  # the engine binary is missing: retrying later may not help, but try
                log.error("%s: cannot start %s: %s", self.launch.label, self.launch.argv[0], exc)
                self.last_exit = None
            else:
                ready_at = self._wait_ready(began)
                if ready_at is not None:
                    self.process.wait()
                self.ready.clear()
                self.last_exit = self.process.returncode
                if self._stopping.is_set():
                    break
                lived = time.monotonic() - (ready_at or began)
                if ready_at is not None and lived >= self.restart_max:
                    quick_deaths = 0
                log.warning(
                    "%s: the engine exited with status %s after %.1f s",
                    self.launch.label,
                    self.last_exit,
                    time.monotonic() - began,
                )
            delay = min(self.restart_max, self.restart_base * (2**quick_deaths))
            quick_deaths += 1
            self.state = "restarting"
            log.warning("%s: restarting in %.1f s", self.launch.label, delay)
            if self._stopping.wait(delay):
                break
            self.restarts += 1
        self._terminate()  # stop() may have come between its kill and a new start
        self.state = "stopped"

    def _spawn(self) -> subprocess.Popen:
        log.info("%s: starting: %s", self.launch.label, " ".join(self.launch.argv))
        process = subprocess.Popen(
            list(self.launch.argv),
            env={**os.environ, **self.launch.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(
            target=self._pump, args=(process,), name=f"engine-log-{process.pid}", daemon=True
        ).start()
        return process

    def _pump(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            log.info("%s | %s", self.launch.label, raw.decode("utf-8", "replace").rstrip())
        process.stdout.close()

    def _wait_ready(self, began: float) -> float | None:
        """Probe the health endpoint until it answers 200; the time it did, or None (died / too slow)."""
        import httpx

        assert self.process is not None
        while not self._stopping.is_set():
            if self.process.poll() is not None:
                return None
            try:
                if httpx.get(self.launch.health_url, timeout=2.0, trust_env=False).status_code == 200:
                    self.state = "ready"
                    self.ready.set()
                    log.info("%s: ready (pid %d)", self.launch.label, self.process.pid)
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            if time.monotonic() - began > self.ready_timeout:
                log.error(
                    "%s: not ready within %.0f s (engines.ready_timeout): killing it",
                    self.launch.label,
                    self.ready_timeout,
                )
                self._terminate()
                self.process.wait()
                return None
            self._stopping.wait(self.probe_interval)
        return None

    def _terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
