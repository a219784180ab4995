"""The Docker daemon check: the real docker SDK, honouring DOCKER_HOST.

Against the real engine when one answers on the default socket (marked `docker`),
against unreachable hosts, and against a loopback HTTP server speaking the three
Engine API calls the SDK makes, so DOCKER_HOST is proven honoured without an engine.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoglm_cli.errors import ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, run_checks

from .conftest import by_name, config


class _EngineApi(BaseHTTPRequestHandler):
    """GET /_ping and /version, versioned or not, as dockerd answers them."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.endswith("/_ping"):
            body, kind = b"OK", "text/plain"
        elif self.path.endswith("/version"):
            body = json.dumps(
                {"Version": "27.0.0-loopback", "ApiVersion": "1.41", "MinAPIVersion": "1.12"}
            ).encode()
            kind = "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def engine_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EngineApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_docker_host_is_honoured(monkeypatch, engine_api):
    monkeypatch.setenv("DOCKER_HOST", engine_api)
    check = by_name(run_checks(config(), only=["docker"]), "daemon")
    assert check.status is Status.OK
    assert check.value == f"Docker Engine 27.0.0-loopback (API 1.41) at {engine_api}"


def test_an_unreachable_daemon_warns_by_default(monkeypatch, tmp_path):
    socket_path = tmp_path / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    report = run_checks(config(), only=["docker"])
    check = by_name(report, "daemon")
    assert (check.severity, check.status) == (Severity.RECOMMENDED, Status.WARN)
    assert check.value.startswith(f"not reachable at unix://{socket_path}: ")
    assert "DOCKER_HOST" in check.remedy
    assert report.exit_code == ExitCode.OK


def test_an_unreachable_daemon_fails_when_deploying_to_docker(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{_closed_port()}")
    report = run_checks(config("deploy: {target: docker}"), only=["docker"])
    check = by_name(report, "daemon")
    assert (check.severity, check.status) == (Severity.REQUIRED, Status.FAIL)
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_credentials_in_docker_host_are_not_shown(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"tcp://admin:s3cret-token@127.0.0.1:{_closed_port()}")
    check = by_name(run_checks(config(), only=["docker"]), "daemon")
    assert "s3cret-token" not in check.value + json.dumps(dict(check.details))


@pytest.mark.docker
def test_the_real_engine(monkeypatch):
    docker = pytest.importorskip("docker")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    try:
        client = docker.from_env(timeout=5)
        expected = client.version()["Version"]
        client.close()
    except docker.errors.DockerException:
        pytest.skip("no Docker engine answers on the default socket")
    check = by_name(run_checks(config(), only=["docker"]), "daemon")
    assert check.status is Status.OK
    assert check.details["version"] == expected
