"""systemd's notify protocol against a real datagram socket (what systemd listens on)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from autoglm_cli.runtime import sd_notify


@pytest.fixture
def notify_socket(tmp_path):
    """A bound AF_UNIX datagram socket, as $NOTIFY_SOCKET names it; yields (env, receive())."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)

    def received() -> list[str]:
        messages = []
        sock.settimeout(0.2)
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                return messages

    yield {"NOTIFY_SOCKET": path}, received
    sock.close()


def test_without_notify_socket_nothing_is_sent():
    assert sd_notify.notify("READY=1", {}) is False
    # returns at once
    asyncio.run(sd_notify.keep_systemd_informed(lambda: asyncio.sleep(0, False), environ={}))


def test_abstract_socket_names_are_understood():
    name = f"autoglm-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sd_notify.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_extend_while_loading_then_ready_then_watchdog(notify_socket):
    env, received = notify_socket
    env = {**env, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    answers = iter([False] * 45 + [True])  # ready after 22.5 s of (fake) loading
    slept = []

    async def ready():
        return next(answers)

    async def sleep(seconds):
        slept.append(seconds)
        if len(slept) > 48:
            raise asyncio.CancelledError  # a few watchdog rounds are enough

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(sd_notify.keep_systemd_informed(ready, environ=env, sleep=sleep))
    messages = received()
    extends = [m for m in messages if m.startswith("EXTEND_TIMEOUT_USEC=")]
    assert len(extends) == 3  # at 0, 10 and 20 s of loading
    ready_at = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    assert ready_at == 3 and f"MAINPID={os.getpid()}" in messages[ready_at]
    assert messages[ready_at + 1 :] and all(m == "WATCHDOG=1" for m in messages[ready_at + 1 :])
    assert slept[-1] == 1.0  # half of WatchdogSec


def test_extensions_stop_at_the_start_budget(notify_socket):
    env, received = notify_socket
    env = {**env, "AUTOGLM_START_BUDGET_S": "15"}
    answers = iter([False] * 80 + [True])

    async def ready():
        return next(answers)

    async def sleep(seconds):
        pass

    asyncio.run(sd_notify.keep_systemd_informed(ready, environ=env, sleep=sleep))
    messages = received()
    assert sum(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages) == 2  # at 0 and 10 s, not at 20
    assert messages[-1].startswith("READY=1")  # no watchdog configured: done after READY


def test_a_watchdog_for_another_pid_is_not_ours():
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
