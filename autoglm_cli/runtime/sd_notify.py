"""systemd's notify protocol (sd_notify(3)): READY=1, WATCHDOG=1, EXTEND_TIMEOUT_USEC.

A datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading
'@' is the abstract namespace). Without $NOTIFY_SOCKET (not under systemd, or a
unit that is not Type=notify) every call is a no-op, so `serve` runs the same
everywhere. `keep_systemd_informed` is the asyncio task `serve` runs beside the
gateway: while the model loads it extends the start timeout, it says READY=1
when `/readyz` first passes, and from then on pets the watchdog from the event
loop, so a wedged loop is what systemd kills and restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("autoglm.sd_notify")

EXTEND_EVERY_S = 10.0  # while loading: ask for this much more start time, again and again
POLL_S = 0.5


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; False when there is no socket to send it to (or it failed)."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
        return False


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec=), or None when no watchdog is set for us."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


async def readyz_passes(host: str, port: int, timeout: float = 5.0) -> bool:
    """One `GET /readyz` on our own port: True on a 200."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET /readyz HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout)
        return status.split(b" ")[1:2] == [b"200"]
    except (OSError, asyncio.TimeoutError, IndexError):
        return False
    finally:
        writer.close()


async def keep_systemd_informed(
    ready: Callable[[], Awaitable[bool]],
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs until cancelled: EXTEND_TIMEOUT_USEC while not ready, READY=1 once, then WATCHDOG=1.

    Extensions stop after $AUTOGLM_START_BUDGET_S seconds of loading (the unit sets it), so a
    load that never finishes still meets TimeoutStartSec= and a restart.
    """
    env = os.environ if environ is None else environ
    if not env.get("NOTIFY_SOCKET"):
        return
    budget = env.get("AUTOGLM_START_BUDGET_S", "")
    budget_s = float(budget) if budget.replace(".", "", 1).isdigit() else float("inf")
    extend_usec = int(EXTEND_EVERY_S * 3 * 1e6)
    loading_s = 0.0
    since_extend = EXTEND_EVERY_S
    while not await ready():
        if since_extend >= EXTEND_EVERY_S and loading_s < budget_s:
            notify(f"EXTEND_TIMEOUT_USEC={extend_usec}\nSTATUS=loading the model", env)
            since_extend = 0.0
        await sleep(POLL_S)
        since_extend += POLL_S
        loading_s += POLL_S
    notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving", env)
    interval = watchdog_interval(env)
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1", env)
        await sleep(interval)


def notify_stopping(environ: Mapping[str, str] | None = None) -> None:
    notify("STOPPING=1\nSTATUS=draining", environ)
