"""`autoglm serve`: the plan it shows, config errors, a taken port, warnings, a clean stop."""

from __future__ import annotations

import socket

import httpx
import yaml

from autoglm_cli.runtime.auth import KeyStore
from autoglm_cli.testing.servers import ServeProcess

SIM = {"model_pool": {"default": "sim"}, "models": {"sim": {"backend": "simulated"}}}


def write(tmp_path, data, name="serve.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_dry_run_shows_the_plan(cli, tmp_path):
    keys = tmp_path / "keys.json"
    KeyStore(keys).create()
    config = write(tmp_path, {**SIM, "workers": {"count": 3}, "scheduler": "priority-based"})
    result = cli("--json", "serve", "--config", config, "--keys-file", keys, "--port", "9999", "--dry-run")
    assert result.exit_code == 0, result.stdout
    plan = result.json["result"]
    assert plan["url"] == "http://127.0.0.1:9999" and plan["models"] == {"sim": "simulated"}
    # The original config's name selects the dynamic scheduler (with priorities and aging).
    assert plan["workers"] == 3 and plan["engine"] == "dask" and plan["scheduler"] == "dynamic"
    assert plan["auth"] is True and plan["keys"] == 1 and plan["keys_file"] == str(keys)
    human = cli("serve", "--config", config, "--keys-file", keys, "--dry-run")
    assert "workers.count (3) fixes the pool" in human.stderr  # the adapter says a fixed count pins it
    assert "embedded LocalCluster" in human.stdout


def test_serve_warns_when_auth_is_off_or_no_key_exists(cli, tmp_path):
    off = cli("serve", "--config", write(tmp_path, {**SIM, "gateway": {"auth": False}}), "--dry-run")
    assert "auth is false" in off.stderr
    empty = cli(
        "serve",
        "--config",
        write(tmp_path, SIM, "b.yaml"),
        "--keys-file",
        tmp_path / "none.json",
        "--dry-run",
    )
    assert "no API keys" in empty.stderr


def test_a_default_model_that_is_not_defined_is_exit_2(cli, tmp_path):
    config = write(
        tmp_path, {"model_pool": {"default": "glm-4"}, "models": {"sim": {"backend": "simulated"}}}
    )
    result = cli("serve", "--config", config, "--dry-run")
    assert result.exit_code == 2
    assert "model_pool.default" in result.stderr and "glm-4" in result.stderr
    nothing = cli("serve", "--config", write(tmp_path, {}, "empty.yaml"), "--dry-run")
    assert nothing.exit_code == 2 and "no models defined" in nothing.stderr


def test_a_taken_port_is_exit_3_before_anything_starts(cli, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write(tmp_path, {**SIM, "gateway": {"auth": False}})
        result = cli("serve", "--config", config, "--port", port)
    assert result.exit_code == 3
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_serve_runs_until_sigint_and_reports_json(tmp_path):
    config = write(tmp_path, {**SIM, "gateway": {"auth": False}, "workers": {"engine": "inline"}})
    server = ServeProcess(config, extra=["--json"])
    server.start()
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    assert server.stop() == 0
    out = server.output()
    assert '"command": "serve"' in out and '"requests":' in out


def test_every_example_config_is_a_valid_serve_plan(cli, tmp_path):
    from tests.conftest import REPO_ROOT

    keys = tmp_path / "keys.json"
    KeyStore(keys).create()
    expected = {"simulated.yaml": "simulated", "transformers.yaml": "transformers", "upstream.yaml": "openai"}
    for name, backend in expected.items():
        result = cli(
            "--json", "serve", "--config", REPO_ROOT / "examples" / name, "--keys-file", keys, "--dry-run"
        )
        assert result.exit_code == 0, (name, result.stdout, result.stderr)
        plan = result.json["result"]
        assert set(plan["models"].values()) == {backend} and plan["auth"] is True
        assert "warning" not in result.stderr, (name, result.stderr)
