"""Docker blue-green under a probe load: a redeploy and a rollback drop nothing; logs; health --container."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest

from autoglm_cli.testing.servers import free_port
from tests.ops.deploy.conftest import redeploy_and_roll_back_under_load

# An image build (a few minutes on a busy machine) comes first when the source changed.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]


def docker_config(path, *, name, port, base, state_dir, output_tokens=5, load_seconds=0.0) -> str:
    path.write_text(
        "model_pool: {default: sim-glm}\n"
        "scheduler: static\n"
        "models:\n  sim-glm: {backend: simulated, options: {a: 0.005, b: 0.0, c: 0.001, "
        f"output_tokens: {output_tokens}, load_seconds: {load_seconds}}}}}\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {port}, keys_file: {path.parent / 'keys.json'}}}\n"
        f"weights: {{cache_dir: {path.parent / 'hub'}}}\n"
        f"deploy: {{target: docker, name: {name}, state_dir: {state_dir}, health_timeout: 120s,\n"
        f"         docker: {{base_image: '{base}', gpus: none, restart: unless-stopped}}}}\n"
    )
    return str(path)


@pytest.fixture
def container_name(docker_engine):
    client, _ = docker_engine
    name = f"autoglm-swap-{uuid.uuid4().hex[:8]}"
    yield name
    for suffix in ("", "-next", "-previous"):
        with contextlib.suppress(Exception):
            client.containers.get(name + suffix).remove(force=True)


def test_docker_redeploy_and_rollback_under_load(cli, tmp_path, docker_engine, container_name):
    client, base = docker_engine
    port = free_port()
    state_dir = tmp_path / "state"
    common = dict(name=container_name, port=port, base=base, state_dir=state_dir)
    one = docker_config(tmp_path / "one.yaml", output_tokens=5, **common)
    two = docker_config(tmp_path / "two.yaml", output_tokens=6, **common)
    first = cli("deploy", "--config", one, "--json")
    assert first.exit_code == 0, first.stdout + first.stderr
    old_id = client.containers.get(container_name).id
    key = (state_dir / "health.key").read_text().strip()

    redeploy_and_roll_back_under_load(cli, port, key, one, two)

    live = client.containers.get(container_name)
    record = json.loads((state_dir / "deployment.json").read_text())
    assert live.id == record["container_id"] and live.status == "running" and live.id != old_id
    previous = client.containers.get(f"{container_name}-previous")
    assert previous.status == "exited"  # drained and kept for the next rollback
    assert not [c for c in client.containers.list(all=True) if c.name == f"{container_name}-next"]

    shown = cli("logs", "--config", one)
    assert shown.exit_code == 0 and "serving on" in shown.stdout

    # health --container with no --state-dir: the key from the deploy's state dir, the mounted cache.
    health = cli("health", "--container", container_name, "--json")
    assert health.exit_code == 0, health.stdout
    checks = {c["name"]: c for c in health.json["result"]["checks"]}
    assert checks["inference"]["status"] == "ok"
    assert checks["disk"]["data"]["path"] == str(tmp_path / "hub")

    assert cli("deploy", "--stop", "--config", one).exit_code == 0
    assert container_name not in {c.name for c in client.containers.list(all=True)}
