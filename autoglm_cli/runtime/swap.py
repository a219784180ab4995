"""Blue-green on one port: a new `serve` takes over from a running one without a dropped request.

`autoglm deploy` starts every service with $AUTOGLM_SWAP_SIDE_PORT set. Such a
service binds its port with SO_REUSEPORT (both deployments run as the same user,
as the kernel requires). When another deployment already listens there, the new
one does not listen on the shared port yet: it serves on the side port, where the
deploy's health gate probes it. Once the gate passed, deploy sends SIGUSR1: the
new service listens on the shared port and attaches a one-instruction classic BPF
program to the port's reuseport group that sends every new connection to it. Then
deploy stops the old one, which drains (`drain`): its responses say
`Connection: close` (clients leave its keep-alive connections), it keeps accepting
until its accept queue is empty (nothing new arrives there once steered away), and
only then closes its socket and finishes the requests in flight.

A service started this way whose port is free (a crash restart, the first deploy)
simply listens at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import EnvironmentFailure

log = logging.getLogger("autoglm.gateway")

SIDE_PORT_ENV = "AUTOGLM_SWAP_SIDE_PORT"
SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
BACKLOG = 2048
DRAIN_GRACE_S = 2.0  # swap: keep answering with `Connection: close` so keep-alive clients move on
DRAIN_MAX_S = 10.0


@dataclass
class Listeners:
    """The sockets `serve` starts with, and the shared-port socket it may take over with later."""

    active: list[socket.socket]
    shared: socket.socket | None = None  # bound to the main port with SO_REUSEPORT, listening or not
    side_port: int | None = None  # serving here until it joins the shared port
    joined: bool = True

    @property
    def swap(self) -> bool:
        return self.shared is not None


def side_port_from(environ: Mapping[str, str]) -> int | None:
    value = environ.get(SIDE_PORT_ENV, "")
    return int(value) if value.isdigit() else None


def _tcp_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _in_use(host: str, port: int, exc: OSError, swap: bool) -> EnvironmentFailure:
    if exc.errno == errno.EADDRINUSE:
        extra = (
            " by a process that did not open it for a takeover (another user, or a service not "
            "started by `autoglm deploy`)"
            if swap
            else ""
        )
        return EnvironmentFailure(
            f"port {port} on {host} is already in use{extra}",
            remedy="Stop the other process, or pick another port with --port (or gateway.port).",
        )
    return EnvironmentFailure(f"cannot listen on {host}:{port}: {exc.strerror}")


def port_has_listener(host: str, port: int) -> bool:
    """Does something listen on host:port? (A plain bind fails only against a listener.)"""
    probe = _tcp_socket(host)
    try:
        probe.bind((host, port))
        return False
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return True
        raise _in_use(host, port, exc, swap=False) from None
    finally:
        probe.close()


def bind_for_swap(host: str, port: int, side_port: int) -> Listeners:
    """The shared-port socket (listening when the port was free) and, when taken, the side socket."""
    taken = port_has_listener(host, port)
    shared = _tcp_socket(host)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        shared.bind((host, port))
    except OSError as exc:
        shared.close()
        raise _in_use(host, port, exc, swap=True) from None
    shared.setblocking(False)
    if not taken:
        shared.listen(BACKLOG)
        return Listeners(active=[shared], shared=shared)
    side = _tcp_socket(host)
    try:
        side.bind((host, side_port))
    except OSError as exc:
        side.close()
        shared.close()
        raise _in_use(host, side_port, exc, swap=False) from None
    side.listen(BACKLOG)
    side.setblocking(False)
    return Listeners(active=[side], shared=shared, side_port=side_port, joined=False)


def listeners_on(port: int) -> int:
    """How many sockets listen on `port` on this host (any user's; no pids needed)."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def steer_new_connections_to(sock: socket.socket, index: int) -> bool:
    """Attach `return index` to the port's reuseport group: new connections go to the socket at
    `index` (the group lists its sockets in the order they started listening). An index past the
    end falls back to the kernel's hash, so the program is harmless once the old socket is gone."""
    program = (_SockFilter * 1)(_SockFilter(0x06, 0, 0, index))  # BPF_RET | BPF_K
    fprog = _SockFprog(1, program)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))
        return True
    except OSError as exc:
        log.warning("could not steer new connections to the new listener: %s", exc)
        return False


def accept_queue(sock: socket.socket) -> int:
    """Connections waiting in a listening socket's accept queue (TCP_INFO's tcpi_unacked)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("I", info, 24)[0]
    except (OSError, struct.error):
        return 0


class DrainingApp:
    """ASGI wrapper: while draining, every response says `Connection: close`."""

    def __init__(self, app) -> None:
        self.app = app
        self.draining = False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.draining:
            return await self.app(scope, receive, send)

        async def send_closing(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return await self.app(scope, receive, send_closing)


async def join(server, listeners: Listeners) -> None:
    """Take over the shared port (on SIGUSR1): listen, steer new connections here, drop the side port."""
    if listeners.joined or listeners.shared is None:
        return
    sock = listeners.shared
    port = sock.getsockname()[1]
    index = listeners_on(port)  # the others in the group come first
    sock.listen(BACKLOG)
    steer_new_connections_to(sock, index)
    config = server.config
    loop = asyncio.get_running_loop()

    def create_protocol(_loop=None):
        return config.http_protocol_class(
            config=config, server_state=server.server_state, app_state=server.lifespan.state, _loop=_loop
        )

    shared_server = await loop.create_server(create_protocol, sock=sock, backlog=BACKLOG)
    side_servers = list(server.servers)
    server.servers.append(shared_server)
    listeners.joined = True
    for side in side_servers:
        side.close()  # stops listening on the side port; connections there finish normally
        server.servers.remove(side)
    log.warning("took over port %d (side port %s closed)", port, listeners.side_port)


async def drain(server, app: DrainingApp, listeners: Listeners | None) -> None:
    """Before uvicorn closes the sockets: tell keep-alive clients to leave, empty the accept queue."""
    app.draining = True
    grace = DRAIN_GRACE_S if listeners is not None and listeners.swap else 0.0
    started = time.monotonic()
    sockets = [s for srv in server.servers for s in (srv.sockets or ())]
    while time.monotonic() - started < DRAIN_MAX_S:
        waiting = sum(accept_queue(s) for s in sockets)  # type: ignore[arg-type]
        if waiting == 0 and time.monotonic() - started >= grace:
            break
        await asyncio.sleep(0.05)
    if listeners is not None and listeners.shared is not None and not listeners.joined:
        listeners.shared.close()  # bound, never listened: nothing to drain
