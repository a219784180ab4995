"""`deploy --target docker` against a real Docker engine: build, run, health, roll back a broken image."""

from __future__ import annotations

import contextlib
import io
import json
import uuid

import pytest

from autoglm_cli.testing.servers import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def container_name(docker_engine):
    client, _ = docker_engine
    name = f"autoglm-test-{uuid.uuid4().hex[:8]}"
    yield name
    for candidate in (name, f"{name}-previous"):
        with contextlib.suppress(Exception):  # already gone is fine
            client.containers.get(candidate).remove(force=True)


@pytest.fixture
def broken_image(docker_engine):
    """An image that starts and exits at once: a broken build of the service."""
    client, base = docker_engine
    dockerfile = f'FROM {base}\nENTRYPOINT ["python3", "-c", "raise SystemExit(\'broken build\')"]\n'
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag="autoglm-broken:test", rm=True
    )
    return "autoglm-broken:test"


@pytest.fixture
def old_images(docker_engine):
    """(an image an earlier deploy built, one a stopped container still uses, one someone built
    FROM ours under another tag): all three carry the label, as a build FROM ours inherits it."""
    client, base = docker_engine
    stale = f"autoglm:0.0.1-{uuid.uuid4().hex[:12]}"
    in_use = f"autoglm:0.0.1-{uuid.uuid4().hex[:12]}"
    theirs = f"autoglm:custom-{uuid.uuid4().hex[:8]}"
    for tag in (stale, in_use, theirs):
        dockerfile = f"FROM {base}\nLABEL io.autoglm.version=0.0.1 test.tag={tag}\n"
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    user = client.containers.create(
        in_use, command=["true"], name=f"autoglm-test-user-{uuid.uuid4().hex[:8]}"
    )
    yield stale, in_use, theirs
    with contextlib.suppress(Exception):
        user.remove(force=True)
    for tag in (stale, in_use, theirs):
        with contextlib.suppress(Exception):
            client.images.remove(tag)


def _config(path, *, name, port, base, state_dir, image=None) -> str:
    docker = f"{{base_image: '{base}', gpus: none, restart: unless-stopped"
    docker += f", image: '{image}'}}" if image else "}"
    (path.parent / "secrets.env").write_text("HF_TOKEN=hf_secretsecretsecretsecret\n")
    path.write_text(
        "model_pool: {default: sim-glm}\n"
        "scheduler: static\n"
        "models:\n  sim-glm: {backend: simulated, options: {a: 0.005, b: 0.0, c: 0.001, output_tokens: 5}}\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {port}, keys_file: {path.parent / 'keys.json'}}}\n"
        f"weights: {{cache_dir: {path.parent / 'hub'}}}\n"
        f"deploy: {{target: docker, name: {name}, state_dir: {state_dir}, health_timeout: 120s,\n"
        f"         env_file: {path.parent / 'secrets.env'}, docker: {docker}}}\n"
    )
    return str(path)


def test_docker_deploy_health_and_rollback_of_a_broken_image(
    cli, tmp_path, docker_engine, container_name, broken_image, old_images
):
    client, base = docker_engine
    port = free_port()
    state_dir = tmp_path / "state"
    good = _config(tmp_path / "good.yaml", name=container_name, port=port, base=base, state_dir=state_dir)

    result = cli("deploy", "--config", good, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    record = json.loads((state_dir / "deployment.json").read_text())
    container = client.containers.get(container_name)
    assert container.id == record["container_id"] and container.status == "running"
    attrs = container.attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/var/cache/autoglm/hub"]["RW"] is False  # the HF cache, read-only
    assert mounts["/etc/autoglm"]["RW"] is False  # its config and keys, made for it
    assert container.labels["io.autoglm.port"] == str(port)
    # Secrets come from the env file at run time; the image knows nothing of them.
    assert "HF_TOKEN=hf_secretsecretsecretsecret" in attrs["Config"]["Env"]
    image_env = client.images.get(record["image"]).attrs["Config"]["Env"]
    assert not any(e.startswith("HF_TOKEN") for e in image_env)
    assert "secretsecret" not in result.stdout
    # Once healthy, the image an earlier deploy built is gone; the live one and images deploy
    # did not build (another tag shape) stay.
    stale, in_use, theirs = old_images
    removed = result.json["result"]["removed"]
    assert stale in removed and not {in_use, theirs, record["image"]} & set(removed)
    tags = {tag for image in client.images.list(name="autoglm") for tag in image.tags}
    assert stale not in tags and {in_use, theirs, record["image"]} <= tags

    by_state = cli("health", "--config", good, "--json")
    assert by_state.exit_code == 0, by_state.stdout
    by_name = cli("health", "--container", container_name, "--state-dir", state_dir, "--json")
    assert by_name.exit_code == 0, by_name.stdout
    checks = {c["name"]: c["status"] for c in by_name.json["result"]["checks"]}
    assert checks["inference"] == "ok" and checks["state"] == "ok"

    broken = _config(
        tmp_path / "broken.yaml",
        name=container_name,
        port=port,
        base=base,
        state_dir=state_dir,
        image=broken_image,
    )
    rolled = cli("deploy", "--config", broken, "--json")
    assert rolled.exit_code == 4, rolled.stdout + rolled.stderr
    report = rolled.json["result"]
    assert report["action"] == "rolled_back"
    assert "exited while starting" in report["message"]
    assert "broken build" in report["logs"]  # the failed container's own last words
    restored = client.containers.get(container_name)
    assert restored.id == container.id and restored.status == "running"
    assert cli("health", "--config", good).exit_code == 0

    assert cli("deploy", "--stop", "--config", good).exit_code == 0
    assert container_name not in {c.name for c in client.containers.list(all=True)}  # removed, not exited
