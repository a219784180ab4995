"""Ports the deployment binds: a real free port, and one held by a real process that gets named."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest

from autoglm_cli.errors import ConfigError, ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, list_checks, run_checks
from autoglm_cli.testing.servers import free_port

from .conftest import by_name, config

LISTENER = """\
import socket, sys, time
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
time.sleep(120)
"""


@pytest.fixture
def held_port():
    """A port some other process is listening on; yields (port, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, "--autoglm-test-listener"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        yield port, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_free_gateway_port():
    port = free_port()
    report = run_checks(config(f"gateway: {{host: 127.0.0.1, port: {port}}}"), only=["ports"])
    check = by_name(report, str(port))
    assert (check.severity, check.status, check.value) == (Severity.REQUIRED, Status.OK, "free on 127.0.0.1")
    assert report.exit_code == ExitCode.OK


def test_a_held_port_fails_and_names_the_process_holding_it(held_port):
    port, proc = held_port
    report = run_checks(config(f"gateway: {{port: {port}}}"), only=["ports"])
    check = by_name(report, str(port))
    assert check.status is Status.FAIL
    (holder,) = check.details["holders"]
    assert holder["pid"] == proc.pid
    assert holder["name"] == psutil.Process(proc.pid).name()
    assert "--autoglm-test-listener" in holder["cmdline"]
    assert check.value.startswith(f"in use by {holder['name']} (pid {proc.pid}: ")
    assert f"port {port}" in check.remedy
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_a_listener_on_the_wildcard_address_blocks_the_gateway_host():
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        check = by_name(run_checks(config(f"gateway: {{port: {port}}}"), only=["ports"]), str(port))
    assert check.status is Status.FAIL
    assert check.details["holders"][0]["pid"] == psutil.Process().pid


def test_extra_ports_from_the_config_are_checked_too(held_port):
    port, _ = held_port
    free = free_port()
    report = run_checks(
        config(f"gateway: {{port: {free}}}\nenv_check: {{ports: [{port}, {free}]}}"), only=["ports"]
    )
    assert [(c.name, c.status) for c in report.checks] == [(str(free), Status.OK), (str(port), Status.FAIL)]


def test_a_port_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        list_checks(config("env_check: {ports: [70000]}"), only=["ports"])
    assert info.value.field == "env_check.ports[0]"
