"""`--target local`: `autoglm serve` as a background process, logs in the state dir.

The service runs in its own session (so a terminal's Ctrl-C or hang-up does not
reach it) with its config snapshot; its pid and the process's start time are
recorded so a recycled pid is never mistaken for it. Stopping sends SIGTERM to
the service (it drains: runtime/swap.py), then SIGKILL to the whole process group
(gateway + Dask workers) after a grace time.

A redeploy or rollback starts the new service beside the running one
($AUTOGLM_SWAP_SIDE_PORT: it serves on a side port while the health gate probes
it), hands the port over with SIGUSR1, then stops the old one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from ...errors import EnvironmentFailure
from .base import LaunchContext, Liveness, Tidied, follow_file, read_env_file, tail
from .ports import PortInUse, listening_pids, port_holder, process_ports
from .state import DeploymentState

STOP_GRACE_S = 30.0  # the drain (runtime/swap.py) plus requests in flight plus Dask's close


def service_environment(secrets: dict[str, str], side_port: int | None = None) -> dict[str, str]:
    """The service's environment: ours minus config overrides (the snapshot decides), plus secrets."""
    from ...runtime.swap import SIDE_PORT_ENV

    env = {k: v for k, v in os.environ.items() if not (k.startswith("AUTOGLM_") and "__" in k)}
    env.pop("AUTOGLM_CONFIG", None)
    env.pop(SIDE_PORT_ENV, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(secrets)
    if side_port is not None:
        env[SIDE_PORT_ENV] = str(side_port)
    return env


def serve_command(config_path: str, host: str, port: int, log_file: str | None = None) -> tuple[str, ...]:
    """`autoglm serve` for a snapshot; with `log_file`, serve writes and rotates its own log
    there (its stdout and stderr point at the same file and follow each rotation)."""
    command = (sys.executable, "-m", "autoglm_cli", "serve", "--config", config_path)
    command += ("--host", host, "--port", str(port))
    return command + (("--log-file", log_file) if log_file else ())


def _process(state: DeploymentState):
    """The recorded process if it is still the same one (pid reuse-safe), else None."""
    import psutil

    if state.pid is None:
        return None
    try:
        proc = psutil.Process(state.pid)
        if state.pid_create_time is not None and abs(proc.create_time() - state.pid_create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(state.pid)
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def _reap(pid: int) -> None:
    """Collect the exit status when the service is our own child (in-process callers, tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class LocalTarget:
    name = "local"
    swaps = True

    def plan(self, ctx: LaunchContext) -> list[str]:
        cmd = " ".join(serve_command(str(ctx.snapshot.path), ctx.host, ctx.port))
        return [f"run in the background: {cmd}", f"log to {ctx.state.logs}/serve-<time>.log"]

    def prepare(self, ctx: LaunchContext) -> None:
        pass

    def launch(self, ctx: LaunchContext, *, side_port: int, beside: bool) -> DeploymentState:
        import psutil

        log_path = ctx.state.ensure().logs / f"serve-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        command = serve_command(str(ctx.snapshot.path), ctx.host, ctx.port, str(log_path))
        proc = self._spawn(command, log_path, ctx.secrets, side_port)
        return ctx.new_state(
            self.name,
            pid=proc.pid,
            pid_create_time=psutil.Process(proc.pid).create_time(),
            command=command,
            log_path=str(log_path),
        )

    def _spawn(
        self, command: tuple[str, ...], log_path, secrets: dict[str, str], side_port: int | None
    ) -> subprocess.Popen:
        try:
            with open(log_path, "ab") as log:
                log.write(
                    f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} autoglm deploy starts the service\n".encode()
                )
                log.flush()
                return subprocess.Popen(
                    list(command),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=service_environment(secrets, side_port),
                    start_new_session=True,  # its own process group: stop() signals gateway + workers
                    close_fds=True,
                )
        except OSError as exc:
            raise EnvironmentFailure(f"cannot start `autoglm serve`: {exc}") from None

    def liveness(self, state: DeploymentState) -> Liveness:
        proc = _process(state)
        if proc is None:
            return Liveness(False, f"pid {state.pid} is not running")
        return Liveness(True, f"pid {state.pid} running")

    def owns_port(self, state: DeploymentState, port: int) -> bool:
        import psutil

        proc = _process(state)
        if proc is None:
            return False
        try:
            tree = {proc.pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            return False
        return any(pid in tree for pid in listening_pids(port))

    def join(self, state: DeploymentState) -> None:
        proc = _process(state)
        if proc is None:
            raise EnvironmentFailure(f"the new service (pid {state.pid}) exited before it took the port over")
        proc.send_signal(signal.SIGUSR1)

    def promote(self, state: DeploymentState) -> DeploymentState:
        return state

    def retire(self, state: DeploymentState) -> None:
        self.stop(state, wait_port=False)  # the new service holds the port by now

    def restore(self, state: DeploymentState, *, side_port: int, beside: bool) -> DeploymentState:
        import psutil

        from ...config import load_config

        if not beside:
            self._wait_port_free(state.port)
            holder = port_holder(state.port)
            if holder is not None:
                raise PortInUse(holder)
        secrets = read_env_file(load_config(state.config_path, environ={}).deploy.env_file)
        log_path = state.log_path or str(self._default_log(state))
        proc = self._spawn(state.command, log_path, secrets, side_port)
        return replace(
            state,
            pid=proc.pid,
            pid_create_time=psutil.Process(proc.pid).create_time(),
            started_at=time.time(),
            status="starting",
        )

    def _default_log(self, state: DeploymentState):
        from pathlib import Path

        return Path(state.config_path).parent.parent / "logs" / "serve-restored.log"

    def discard(self, state: DeploymentState) -> None:
        self.stop(state, wait_port=False)  # beside a running one, the port stays held

    def tidy(self, live: DeploymentState) -> Tidied:
        return Tidied()  # nothing accumulates: the log and state files are reused

    def stop(self, state: DeploymentState, *, wait_port: bool = True) -> None:
        import psutil

        proc = _process(state)
        if proc is None:
            return
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = [proc]
        # SIGTERM to the service only: it closes its Dask cluster itself. Signalling the whole
        # group at once would make Dask's nannies restart workers while the service shuts down.
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            _reap(proc.pid)
            _, alive = psutil.wait_procs(procs, timeout=0.1)
            if not alive:
                break
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: workers it started, too
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(procs, timeout=5)
        _reap(proc.pid)
        if wait_port:
            self._wait_port_free(state.port)

    def _wait_port_free(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while listening_pids(port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def logs(self, state: DeploymentState, lines: int = 40) -> str:
        return tail(state.log_path, lines)

    def follow(self, state: DeploymentState, lines: int = 40):
        return follow_file(state.log_path, lines)

    def listening_ports(self, state: DeploymentState) -> list[int]:
        return process_ports(state.pid) if state.pid else []
