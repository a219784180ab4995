"""Who holds a port: the process behind a port conflict, named for the user."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import EnvironmentFailure
from ...redact import redact


@dataclass(frozen=True)
class PortHolder:
    port: int
    pid: int | None
    name: str
    cmdline: str

    def describe(self) -> str:
        if self.pid is None:
            return f"port {self.port} is in use by a process this user cannot see"
        return f"port {self.port} is held by pid {self.pid} ({self.name}: {self.cmdline})"


class PortInUse(EnvironmentFailure):
    default_remedy = "Stop that process, or pick another port (gateway.port or --port)."

    def __init__(self, holder: PortHolder) -> None:
        super().__init__(holder.describe())
        self.holder = holder


def listening_pids(port: int) -> list[int | None]:
    """The pids with a listening TCP socket on `port` (None where the owner is hidden)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return [None]
    return [c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]


def port_holder(port: int) -> PortHolder | None:
    """The process listening on `port`, or None when nobody listens."""
    import psutil

    pids = listening_pids(port)
    if not pids:
        return None
    pid = pids[0]
    if pid is None:
        return PortHolder(port, None, "?", "?")
    try:
        proc = psutil.Process(pid)
        name = proc.name()
        cmdline = redact(" ".join(proc.cmdline()))[:200]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        name, cmdline = "?", "?"
    return PortHolder(port, pid, name, cmdline)


def process_ports(pid: int) -> list[int]:
    """Every TCP port the process tree rooted at `pid` listens on (gateway, Dask, dashboard)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    pids = {p.pid for p in tree}
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return []
    return sorted({c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.pid in pids})


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the side port of a blue-green start)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
