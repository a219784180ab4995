"""Docker daemon reachable: a docker SDK ping, honouring DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH.

Required when `deploy.target` is `docker`, recommended otherwise.
"""

from __future__ import annotations

import os

from ...config import Config
from ...redact import redact, redact_url
from .model import Check, CheckSpec, Severity

CATEGORY = "docker"
DEFAULT_HOST = "unix:///var/run/docker.sock"


def plan(config: Config) -> list[CheckSpec]:
    severity = Severity.REQUIRED if config.deploy.target == "docker" else Severity.RECOMMENDED
    timeout = float(config.env_check.timeout)
    return [
        CheckSpec(
            CATEGORY,
            "daemon",
            severity,
            f"docker SDK ping of {redact_url(os.environ.get('DOCKER_HOST') or DEFAULT_HOST)}",
            run=lambda spec: check_daemon(spec, timeout),
            timeout=3 * timeout + 5,  # connect, version and ping, each bounded by `timeout`
        )
    ]


def check_daemon(spec: CheckSpec, timeout: float, environ=None) -> Check:
    environ = os.environ if environ is None else environ
    host = redact_url(environ.get("DOCKER_HOST") or DEFAULT_HOST)
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return spec.problem("docker SDK not installed", "pip install 'docker>=7'", host=host)

    try:
        # version="auto" asks the daemon for its API version: the first round trip.
        client = docker.from_env(version="auto", timeout=timeout, environment=dict(environ))
        try:
            client.ping()
            version = client.version()
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        return spec.problem(
            f"not reachable at {host}: {_first_line(redact(str(exc)))}",
            "Start the daemon (`systemctl start docker` or `dockerd`), or point DOCKER_HOST at one.",
            host=host,
        )
    engine = version.get("Version", "?")
    api = version.get("ApiVersion", "?")
    return spec.ok(
        f"Docker Engine {engine} (API {api}) at {host}", host=host, version=engine, api_version=api
    )


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no answer"
    return line if len(line) <= 200 else line[:197] + "..."
