"""Loopback network stand-ins for tests and benchmarks: a reachable TCP server and
an endpoint whose connects time out, both on 127.0.0.0/8 only, no traffic leaves
the machine.

The unreachable endpoint is a listening socket that never accepts, with its
accept queue filled: Linux then drops new SYNs, so a client's connect() hangs
until its own timeout, exactly like a firewalled host, and exercises the timeout
path for real.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def tcp_server(host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """A server that accepts and closes connections; yields (host, port)."""
    server = socket.create_server((host, 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    thread = threading.Thread(target=serve, name="tcp_server", daemon=True)
    thread.start()
    try:
        yield host, server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


@contextmanager
def blackhole_listener(host: str = "127.0.0.1", max_fillers: int = 16) -> Iterator[tuple[str, int]]:
    """An endpoint on `host` where connect() never completes; yields (host, port)."""
    if not host.startswith("127."):
        raise ValueError("blackhole_listener only binds loopback addresses (127.0.0.0/8)")
    with ExitStack() as stack:
        server = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        server.bind((host, 0))
        server.listen(0)  # never accepted: the queue fills after one connection
        port = server.getsockname()[1]
        for _ in range(max_fillers):
            filler = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            filler.setblocking(False)
            filler.connect_ex((host, port))
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                break  # this SYN was dropped: the queue is full, later connects hang too
        else:
            raise RuntimeError(f"could not fill the accept queue of {host}:{port}")
        yield host, port
