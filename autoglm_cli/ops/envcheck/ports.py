"""Ports the deployment will bind: free, or held by which process.

`gateway.port` always, plus `env_check.ports`, on `gateway.host`. "Free" means
what the server will find: a bind with SO_REUSEADDR (as uvicorn and most servers
set it) succeeds, so a port in TIME_WAIT counts as free and a listener does not.
"""

from __future__ import annotations

import errno
import os
import socket

from ...config import Config
from ...errors import ConfigError
from ...redact import redact
from .model import Check, CheckSpec, Severity

CATEGORY = "ports"


def plan(config: Config) -> list[CheckSpec]:
    host = config.gateway.host
    wanted: dict[int, str] = {config.gateway.port: "gateway.port"}
    for i, port in enumerate(config.env_check.ports):
        wanted.setdefault(port, f"env_check.ports[{i}]")
    for port, field in wanted.items():
        if not 1 <= port <= 65535:
            raise ConfigError(f"{port} is not a TCP port (1-65535)", field=field)
    return [
        CheckSpec(
            CATEGORY,
            str(port),
            Severity.REQUIRED,
            f"port {port} on {host} is free to bind ({field})",
            run=lambda spec, port=port: check_port(spec, host, port),
            timeout=15,
        )
        for port, field in wanted.items()
    ]


def check_port(spec: CheckSpec, host: str, port: int) -> Check:
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return spec.problem(
            f"cannot resolve the bind host {host!r}: {exc.strerror}",
            "Set gateway.host to an address of this machine.",
        )
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
    except OSError as exc:
        return _bind_failed(spec, host, port, exc)
    return spec.ok(f"free on {host}", host=host, port=port, holders=[])


def _bind_failed(spec: CheckSpec, host: str, port: int, exc: OSError) -> Check:
    if exc.errno == errno.EADDRINUSE:
        holders = listening_processes(port)
        if holders is None:
            who = "another process (run as root to see which)"
        elif holders:
            who = ", ".join(_describe_holder(h) for h in holders)
        else:
            who = "a socket no process owns (closing, or in another network namespace)"
        return spec.problem(
            f"in use by {who}",
            f"Stop the process holding port {port}, or set another port in the config.",
            host=host,
            port=port,
            holders=holders or [],
        )
    if exc.errno == errno.EACCES:
        return spec.problem(
            f"binding {host}:{port} is not permitted",
            "Use a port >= 1024, or run with CAP_NET_BIND_SERVICE.",
            host=host,
            port=port,
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return spec.problem(
            f"{host} is not an address of this machine",
            "Set gateway.host to one of this machine's addresses (or 0.0.0.0).",
            host=host,
            port=port,
        )
    return spec.problem(f"cannot bind {host}:{port}: {exc.strerror or exc}", "", host=host, port=port)


def listening_processes(port: int) -> list[dict] | None:
    """The processes listening on TCP `port` on any address; None when not allowed to look."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    pids = sorted(
        {
            c.pid or 0
            for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        }
    )
    holders = []
    for pid in pids:
        if not pid:
            holders.append({"pid": None, "name": "a process of another user", "cmdline": ""})
            continue
        try:
            process = psutil.Process(pid)
            name, cmdline = process.name(), redact(" ".join(process.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            name, cmdline = "?", ""
        holders.append({"pid": pid, "name": name, "cmdline": cmdline})
    return holders


def _describe_holder(holder: dict) -> str:
    if not holder["pid"]:
        return holder["name"]
    # "python3 -m http.server 8000" reads better than the interpreter's full path.
    program, _, args = holder["cmdline"].partition(" ")
    cmdline = " ".join(filter(None, [os.path.basename(program), args]))
    if len(cmdline) > 80:
        cmdline = cmdline[:77] + "..."
    return f"{holder['name']} (pid {holder['pid']}{': ' + cmdline if cmdline else ''})"
