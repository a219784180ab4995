"""Fixtures for deploy tests: a real Docker engine (or a clear skip), free ports."""

from __future__ import annotations

import os
import time

import pytest

from autoglm_cli.ops.deploy.state import DeploymentState

BASE_IMAGE_ENV = "AUTOGLM_BASE_IMAGE"
DEFAULT_BASE_IMAGE = "autoglm-base:test"


@pytest.fixture(scope="session")
def docker_engine():
    """(client, base image) for a real engine; skips, saying why, where none can be used."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:  # pragma: no cover - docker is a core dependency
        pytest.skip("the docker SDK is not installed")
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        pytest.skip(
            f"no Docker engine answers ({str(exc)[:120]}); as root, .ci/setup-system installs and starts one"
        )
    base = os.environ.get(BASE_IMAGE_ENV, DEFAULT_BASE_IMAGE)
    try:
        client.images.get(base)
    except ImageNotFound:
        pytest.skip(
            f"base image {base} is missing; .ci/setup-system builds it with debootstrap (no registry here)"
        )
    return client, base


@pytest.fixture
def deployments(tmp_path):
    """A state dir for the test's deployments; whatever is still running at the end is stopped."""
    from autoglm_cli.config import parse_config
    from autoglm_cli.ops.deploy import stop

    state_dir = tmp_path / "state"
    yield state_dir
    if (state_dir / "deployment.json").exists():
        stop(parse_config("", environ={}), state_dir=state_dir)


def simulated_config(
    path,
    *,
    port: int,
    state_dir,
    model: str = "sim-glm",
    broken: bool = False,
    output_tokens: int = 5,
    load_seconds: float = 0.0,
) -> str:
    """A runnable config (simulated backend: the real gateway, scheduler and Dask, no model math).

    `broken`: the model's weights point at a folder that does not exist, so its node fails
    to load; the service starts, but never becomes ready. `output_tokens` tells versions
    apart in their answers; `load_seconds` is a pretend model load.
    """
    backend = (
        f"{{backend: transformers, source: {path.parent / 'no-such-model'}}}"
        if broken
        else "{backend: simulated, options: {a: 0.005, b: 0.0, c: 0.001, "
        f"output_tokens: {output_tokens}, load_seconds: {load_seconds}}}}}"
    )
    path.write_text(
        f"model_pool: {{default: {model}}}\n"
        "scheduler: static\n"
        f"models:\n  {model}: {backend}\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {port}, keys_file: {path.parent / 'keys.json'}}}\n"
        f"deploy: {{state_dir: {state_dir}, health_timeout: 60s}}\n"
    )
    return str(path)


def deployment_record(**changes) -> DeploymentState:
    """A local deployment's record, with `changes`."""
    fields = dict(
        target="local",
        name="autoglm",
        url="http://127.0.0.1:8000",
        port=8000,
        version="0.1.0",
        config_hash="ab" * 32,
        config_path="/x.yaml",
        model="tiny",
        pid=123,
        command=("a", "b"),
    )
    fields.update(changes)
    return DeploymentState(**fields)


def redeploy_and_roll_back_under_load(cli, port: int, api_key: str, one, two):
    """With `one` running on `port` (answers of 5 tokens), deploy `two` (6 tokens) and roll back,
    under a 20 req/s probe; asserts what a user checks first: both commands succeeded, no
    probe request failed, and each version answered only while it was the one deployed.
    Returns the rollback's CLI result."""
    from autoglm_cli.testing.probe import ProbeLoad

    with ProbeLoad(f"http://127.0.0.1:{port}", model="sim-glm", rate=20, api_key=api_key) as probe:
        time.sleep(1.0)
        deployed = cli("deploy", "--config", two, "--json")
        done_deploy = time.monotonic()
        time.sleep(1.0)
        rolled = cli("rollback", "--config", two, "--json")
        done_rollback = time.monotonic()
        time.sleep(1.0)
    assert deployed.exit_code == 0, deployed.stdout + deployed.stderr
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    result = probe.result
    assert result.failures == [] and result.ok > 40
    # Both versions answered, the new one only once the deploy was under way, the old one
    # again after the rollback; after each command, only its version.
    assert result.by_tokens[5] and result.by_tokens[6]
    assert result.first_seen[6] <= done_deploy and result.last_seen[6] <= done_rollback
    return rolled
