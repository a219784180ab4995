"""Network probes against real loopback sockets: a server that accepts, a closed port,
and a listener whose full accept queue makes connects time out (nothing leaves 127.0.0.0/8).
DNS failures are injected through the resolver hook (a network fault, not a fake probe).
"""

from __future__ import annotations

import socket
import threading
from contextlib import ExitStack

import pytest

from autoglm_cli.errors import ConfigError, ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, list_checks, run_checks
from autoglm_cli.ops.envcheck.network import Endpoint, parse_endpoint, probe
from autoglm_cli.testing.net import blackhole_listener, tcp_server

from .conftest import by_name, config


@pytest.fixture(autouse=True)
def local_hf_endpoint(monkeypatch):
    """Keep the default HF endpoint probe on loopback (a closed port answers at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return f"http://127.0.0.1:{port}"


def endpoints_config(*, required=(), recommended=(), timeout=2.0):
    return config(
        f"env_check: {{required_endpoints: {list(required)!r}, endpoints: {list(recommended)!r}, "
        f"timeout: {timeout}}}"
    )


def test_a_listening_server_is_reachable_by_name_and_by_address():
    with tcp_server() as (host, port):
        report = run_checks(
            endpoints_config(required=[f"localhost:{port}", f"http://{host}:{port}/v1/models"]),
            only=["network"],
        )
    by_address = by_name(report, f"http://{host}:{port}/v1/models")
    assert by_address.status is Status.OK
    assert by_address.value.startswith(f"127.0.0.1:{port} connected in ")
    by_host = by_name(report, f"localhost:{port}")  # resolved by the system resolver (/etc/hosts)
    assert by_host.status is Status.OK
    assert report.exit_code == ExitCode.OK


def test_a_refused_connection_fails_a_required_endpoint(local_hf_endpoint):
    report = run_checks(
        endpoints_config(required=[local_hf_endpoint.removeprefix("http://")]), only=["network"]
    )
    check = by_name(report, local_hf_endpoint.removeprefix("http://"))
    assert (check.severity, check.status) == (Severity.REQUIRED, Status.FAIL)
    assert check.value.endswith("Connection refused")
    assert check.details["stage_failed"] == "tcp"
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_an_endpoint_that_never_answers_times_out_at_the_configured_timeout():
    with blackhole_listener("127.0.0.7") as (host, port):
        report = run_checks(endpoints_config(recommended=[f"{host}:{port}"], timeout=0.5), only=["network"])
    check = by_name(report, f"{host}:{port}")
    assert check.status is Status.WARN
    assert check.value == f"TCP connect failed: {host}:{port}: timed out after 0.5 s"
    assert report.exit_code == ExitCode.OK  # recommended only


def test_all_probes_are_in_flight_at_once():
    # Each lookup waits at a barrier that opens only when every probe is waiting:
    # probed one after another, the first would give up and report a DNS failure.
    count = 5
    barrier = threading.Barrier(count + 1)  # + the HF endpoint's probe

    def resolver(host, port, **kwargs):
        barrier.wait(timeout=10)
        return socket.getaddrinfo(host, port, **kwargs)

    with ExitStack() as stack:
        servers = [stack.enter_context(tcp_server()) for _ in range(count)]
        names = [f"{host}:{port}" for host, port in servers]
        report = run_checks(
            endpoints_config(recommended=names, timeout=15), only=["network"], resolver=resolver
        )
    for name in names:
        assert by_name(report, name).status is Status.OK


def test_a_dns_failure_is_reported_as_such():
    def resolver(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    report = run_checks(
        endpoints_config(required=["registry.internal:5000"]), only=["network"], resolver=resolver
    )
    check = by_name(report, "registry.internal:5000")
    assert check.status is Status.FAIL
    assert check.value == "DNS lookup of registry.internal failed: Name or service not known"
    assert "DNS resolver" in check.remedy


def test_a_resolver_that_hangs_is_cut_off_at_the_deadline():
    release = threading.Event()

    def resolver(host, port, **kwargs):
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    try:
        report = run_checks(
            endpoints_config(required=["api.cluster.local:6443"], timeout=0.3),
            only=["network"],
            resolver=resolver,
        )
    finally:
        release.set()
    check = by_name(report, "api.cluster.local:6443")
    assert check.status is Status.FAIL
    assert check.value == "no answer within 0.8 s"


def test_the_hf_endpoint_comes_from_hf_endpoint(local_hf_endpoint, monkeypatch):
    plan = list_checks(config(), only=["network"])
    assert [c.name for c in plan.checks] == [local_hf_endpoint]
    assert plan.checks[0].severity is Severity.RECOMMENDED
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert list_checks(config(), only=["network"]).checks[0].severity is Severity.INFO


def test_endpoints_are_deduplicated_and_required_wins(local_hf_endpoint):
    hf_host_port = local_hf_endpoint.removeprefix("http://")
    plan = list_checks(
        config(
            f"env_check: {{endpoints: ['a.internal:80', '{hf_host_port}'], required_endpoints: ['http://a.internal/']}}"
        ),
        only=["network"],
    )
    assert [(c.name, c.severity) for c in plan.checks] == [
        ("http://a.internal/", Severity.REQUIRED),
        (hf_host_port, Severity.RECOMMENDED),
    ]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("api.cluster.local:6443", "api.cluster.local", 6443),
        ("https://huggingface.co", "huggingface.co", 443),
        ("http://mirror.internal/hf", "mirror.internal", 80),
        ("[::1]:8080", "::1", 8080),
        ("https://user:hf_abcdefghijkl@hub.internal:8443/x", "hub.internal", 8443),
    ],
)
def test_endpoint_syntax(text, host, port):
    endpoint = parse_endpoint(text)
    assert (endpoint.host, endpoint.port) == (host, port)
    assert "hf_abcdefghijkl" not in endpoint.label


def test_an_endpoint_without_a_port_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        list_checks(config("env_check: {endpoints: [registry.internal]}"), only=["network"])
    assert info.value.field == "env_check.endpoints[0]"
    assert "needs a port" in info.value.message


def test_probe_reports_resolution_and_connect_times():
    with tcp_server() as (host, port):
        result = probe(Endpoint("x", host, port), timeout=2)
    assert result.ok and result.connected_to == f"{host}:{port}"
    assert result.addresses == (host,)
    assert result.resolve_s is not None and result.connect_s is not None
