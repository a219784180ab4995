"""The main job for real: after THUDM became zai-org, one `autoglm redeploy` brings the service back.

Real git remotes (file://), a real HF cache written by huggingface_hub under the old
repo id, the local hub server answering for the new id, the tiny real model served
by the transformers backend on Dask, health probed through the gateway.
"""

from __future__ import annotations

import json

import pytest

from autoglm_cli.testing.servers import free_port
from tests.fixtures.git_repos import build_org_move, git, make_checkout

pytestmark = [pytest.mark.slow, pytest.mark.transformers]

OLD, NEW = "THUDM/tiny-glm", "zai-org/tiny-glm"


@pytest.fixture
def moved_world(tmp_path, hub_server, hf_cache, tiny_model_dir):
    """Code and weights as they were before the move, and the hub as it is after it."""
    from huggingface_hub import snapshot_download

    world = build_org_move(tmp_path / "git")
    work = make_checkout(world, tmp_path / "GLM-4", submodules=False)
    hub_server.add_repo(OLD, tiny_model_dir)
    snapshot_download(OLD, cache_dir=hf_cache)  # the cache as the old deployment left it
    hub_server.add_repo(NEW, tiny_model_dir, aliases=[OLD])  # the move: the old id now redirects
    hub_server.reset_counters()
    return world, work


def _config(tmp_path, world, work, hf_cache, state_dir) -> str:
    moves = {**world.moves, "THUDM/": "zai-org/"}
    path = tmp_path / "redeploy.yaml"
    path.write_text(
        f"moves: {json.dumps(moves)}\n"
        "cache_migrations: [{old: 'THUDM/', new: 'zai-org/{name}', kind: hf}]\n"
        "model_pool: {default: tiny}\n"
        f"models: {{tiny: {{source: {NEW}, backend: transformers}}}}\n"
        "scheduler: static\n"
        "workers: {engine: dask, count: 1}\n"
        f"gateway: {{host: 127.0.0.1, port: {free_port()}, keys_file: {tmp_path / 'keys.json'}}}\n"
        f"weights: {{cache_dir: {hf_cache}}}\n"
        "env_check: {required_binaries: [git], recommended_binaries: [], timeout: 0.5s}\n"
        f"deploy: {{state_dir: {state_dir}, repo: '{world.old_url}', checkout: {work.path}, branch: main,\n"
        "         health_timeout: 120s}\n"
    )
    return str(path)


def test_one_redeploy_brings_the_service_back_and_a_second_one_changes_nothing(
    cli,
    tmp_path,
    moved_world,
    hub_server,
    hf_cache,
    deployments,
):
    world, work = moved_world
    config = _config(tmp_path, world, work, hf_cache, deployments)

    result = cli("redeploy", "--config", config, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    steps = {s["name"]: s for s in result.json["result"]["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {
        "clone": "ok",
        "env-check": "ok",
        "migrate-cache": "ok",
        "fetch-weights": "ok",
        "verify": "ok",
        "deploy": "ok",
        "health": "ok",
    }
    # clone: the checkout follows the project to its new home; local work untouched.
    assert git("remote", "get-url", "origin", cwd=work.path) == world.new_url
    assert git("rev-parse", "main", cwd=work.path) == work.local_commit
    # migrate-cache + fetch-weights: the weights moved to the new id, nothing downloaded again.
    assert (hf_cache / "models--zai-org--tiny-glm" / "blobs").is_dir()
    assert steps["fetch-weights"]["data"]["bytes_fetched"] == 0
    assert hub_server.bytes_served(repo=NEW) == 0
    # deploy: recorded with the weights revision it serves; health answered for real.
    record = json.loads((deployments / "deployment.json").read_text())
    commit = (hf_cache / "models--zai-org--tiny-glm" / "refs" / "main").read_text().strip()
    assert record["weights_revision"] == commit
    assert record["status"] == "running"
    assert json.loads((deployments / "redeploy.json").read_text())["steps"]["health"]["status"] == "ok"

    again = cli("redeploy", "--config", config, "--json")
    assert again.exit_code == 0, again.stdout
    steps = {s["name"]: s for s in again.json["result"]["steps"]}
    assert "already running" in steps["deploy"]["detail"]
    assert json.loads((deployments / "deployment.json").read_text())["pid"] == record["pid"]
