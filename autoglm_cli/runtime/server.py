"""Run the gateway: bind the port, build the app, serve until interrupted (what `autoglm serve` calls)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentFailure

log = logging.getLogger("autoglm.gateway")


@dataclass(frozen=True)
class ServePlan:
    """What `serve` will run: shown by `serve --dry-run`, checked before anything starts."""

    url: str
    default_model: str
    backup_model: str | None
    models: dict[str, str]  # name -> backend
    scheduler: str
    engine: str
    workers: int
    dask_scheduler: str | None
    auth: bool
    keys_file: str | None
    keys: int
    log_level: str


@dataclass(frozen=True)
class ServeReport:
    url: str
    uptime_s: float
    requests: int


def plan(config, *, keys_file: Path | None, warn: Callable[[str], None]) -> ServePlan:
    from .auth import insecure_mode, read_keys
    from .models import load_catalogue, python_log_level
    from .scheduler.legacy import adapt

    catalogue = load_catalogue(config)
    choice = adapt(config)
    for message in choice.warnings:
        warn(message)
    keys = 0
    if config.gateway.auth:
        assert keys_file is not None
        keys = len(read_keys(keys_file))
        if keys == 0:
            warn(f"no API keys in {keys_file}: every request gets 401; create one with `autoglm keys create`")
        elif insecure_mode(keys_file):
            warn(f"{keys_file} is readable by other users; run `chmod 600 {keys_file}`")
    else:
        warn("gateway.auth is false: the API accepts requests without a key")
    gateway = config.gateway
    return ServePlan(
        url=f"http://{_url_host(gateway.host)}:{gateway.port}",
        default_model=catalogue.default,
        backup_model=catalogue.backup,
        models={name: s.backend for name, s in catalogue.models.items()},
        scheduler=choice.policy,
        engine=config.workers.engine if catalogue.worker_models else "none",
        workers=choice.workers if catalogue.worker_models else 0,
        dask_scheduler=config.workers.scheduler_address,
        auth=gateway.auth,
        keys_file=str(keys_file) if keys_file else None,
        keys=keys,
        log_level=python_log_level(config),
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any worker starts: a taken port fails fast and clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP; without it, keep-alive responses stall 40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EnvironmentFailure(
                f"port {port} on {host} is already in use",
                remedy="Stop the other process, or pick another port with --port (or gateway.port).",
            ) from None
        raise EnvironmentFailure(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; for `serve` that is a normal end.

        Also: systemd notifications beside the gateway (runtime/sd_notify.py), the takeover of a
        shared port on SIGUSR1 and a drain before the sockets close (runtime/swap.py).
        """

        draining_app = None  # swap.DrainingApp
        listeners = None  # swap.Listeners, or None for a plain bind
        _side_tasks: list

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()

        async def startup(self, sockets=None):
            import asyncio
            import signal

            from . import sd_notify, swap

            loop = asyncio.get_running_loop()
            self._side_tasks = []
            host = _probe_host(self.config.host or "127.0.0.1")

            async def ready() -> bool:
                # Before the servers exist (the runtime still starting) it is not ready; after a
                # takeover the first server is the shared port.
                servers = getattr(self, "servers", None) if self.started else None
                if not servers or not servers[0].sockets:
                    return False
                return await sd_notify.readyz_passes(host, servers[0].sockets[0].getsockname()[1])

            # Started before the runtime: the start timeout is extended while Dask and the model load.
            self._side_tasks.append(loop.create_task(sd_notify.keep_systemd_informed(ready)))
            await super().startup(sockets)
            if self.listeners is not None and not self.listeners.joined:
                loop.add_signal_handler(
                    signal.SIGUSR1,
                    lambda: self._side_tasks.append(loop.create_task(swap.join(self, self.listeners))),
                )

        async def shutdown(self, sockets=None):
            from . import sd_notify, swap

            for task in getattr(self, "_side_tasks", []):
                task.cancel()
            sd_notify.notify_stopping()
            if self.draining_app is not None:
                await swap.drain(self, self.draining_app, self.listeners)
            await super().shutdown(sockets)

    return Server


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def serve(
    config, *, keys_file: Path | None, warn: Callable[[str], None], note: Callable[[str], None]
) -> ServeReport:
    """Serve until SIGINT/SIGTERM; returns how long it ran and how many requests it answered."""
    import uvicorn

    from .gateway import create_app
    from .gateway.limits import header_timeout_protocol

    _Server = _server_class()
    from . import swap
    from .logs import LogFile, setup_logging
    from .models import python_log_level

    level = python_log_level(config)
    log_file = (
        LogFile(Path(config.log_file), config.log_max_bytes, config.log_backups) if config.log_file else None
    )
    setup_logging(level, config.log_format, log_file)
    side_port = swap.side_port_from(os.environ)
    if side_port is None:
        listeners = None
        sockets = [bind(config.gateway.host, config.gateway.port)]
    else:  # started by `autoglm deploy`: may take over the port from the running deployment
        listeners = swap.bind_for_swap(config.gateway.host, config.gateway.port, side_port)
        sockets = listeners.active
        if not listeners.joined:
            note(
                f"port {config.gateway.port} is held by the running deployment; "
                f"serving on side port {side_port} until SIGUSR1 hands it over"
            )
    actual_port = (listeners.shared if listeners is not None else sockets[0]).getsockname()[1]
    from ..config import with_overrides

    config = with_overrides(config, {"gateway.port": actual_port})
    url = f"http://{_url_host(config.gateway.host)}:{actual_port}"
    app = create_app(
        config, keys_file=keys_file, warn=warn, on_started=lambda: note(f"serving on {url} (Ctrl-C stops)")
    )
    draining_app = swap.DrainingApp(app)
    server = _Server(
        uvicorn.Config(
            draining_app,
            log_level=level.lower(),
            access_log=level == "DEBUG",
            log_config=None,  # keep our handlers (redacting)
            http=header_timeout_protocol(float(config.gateway.header_timeout)),
            timeout_graceful_shutdown=max(1, round(float(config.gateway.shutdown_grace))),
        )
    )
    server.draining_app = draining_app
    server.listeners = listeners
    started = time.monotonic()
    server.run(sockets=sockets)
    metrics = app.state.gateway.metrics
    answered = sum(
        s.value for m in metrics.http_requests.collect() for s in m.samples if s.name == "http_requests_total"
    )
    return ServeReport(url=url, uptime_s=round(time.monotonic() - started, 1), requests=int(answered))
