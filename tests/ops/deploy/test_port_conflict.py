"""A port held by another process stops deploy before anything is touched, naming the holder."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest


@pytest.fixture
def held_port():
    """A real process (not ours) listening on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port, proc.pid
    proc.terminate()
    proc.wait(timeout=10)


def test_port_conflict_names_the_holding_process(cli, held_port, tmp_path):
    port, pid = held_port
    result = cli("deploy", "--port", port, "--state-dir", tmp_path / "state")
    assert result.exit_code == 3
    assert f"port {port} is held by pid {pid}" in result.stderr
    assert "http.server" in result.stderr
    assert "pick another port" in result.stderr
    # Nothing was started or recorded.
    assert not (tmp_path / "state" / "deployment.json").exists()


def test_port_conflict_in_json_mode(cli, held_port, tmp_path):
    port, pid = held_port
    result = cli("--json", "deploy", "--port", port, "--state-dir", tmp_path / "state")
    assert result.exit_code == 3
    error = result.json["error"]
    assert error["type"] == "PortInUse"
    assert str(pid) in error["message"]
