"""The project's Dockerfile, built by `deploy --target docker` with local wheels, no network."""

from __future__ import annotations

import pytest

from autoglm_cli import __version__
from autoglm_cli.config import parse_config
from autoglm_cli.ops.deploy.base import LaunchContext
from autoglm_cli.ops.deploy.docker_target import DockerTarget
from autoglm_cli.ops.deploy.model_info import default_model
from autoglm_cli.ops.deploy.snapshot import write_snapshot
from autoglm_cli.ops.deploy.state import StateDir

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_image_builds_offline_runs_as_non_root_and_checks_readyz(docker_engine, tmp_path):
    client, base = docker_engine
    config = parse_config(f"deploy: {{docker: {{base_image: '{base}'}}}}\n", environ={})
    state = StateDir(tmp_path / "state")
    ctx = LaunchContext(
        config=config,
        snapshot=write_snapshot(config, state),
        state=state,
        model=default_model(config),
        host="127.0.0.1",
        port=8000,
    )
    target = DockerTarget()
    tag = target.image_tag(ctx)
    assert tag.startswith(f"autoglm:{__version__}-")
    target.prepare(ctx)  # builds, or reuses the tag when this source was built before
    image = client.images.get(tag)
    assert image.attrs["Config"]["User"] == "autoglm"
    assert image.attrs["Config"]["Healthcheck"]["Test"] == [
        "CMD",
        "python",
        "-m",
        "autoglm_cli.ops.deploy.probe",
    ]
    out = client.containers.run(tag, ["--version"], network_mode="host", remove=True)
    assert out.decode().strip() == f"autoglm {__version__}"
    uid = client.containers.run(tag, [], entrypoint=["id", "-u"], network_mode="host", remove=True)
    assert uid.decode().strip() != "0"
    # No secret and no wheels folder in the image's history or environment.
    env = " ".join(image.attrs["Config"]["Env"])
    assert "HF_TOKEN" not in env
    # A second prepare reuses the image instead of building again.
    target.prepare(ctx)
    assert client.images.get(tag).id == image.id
