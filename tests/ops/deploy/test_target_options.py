"""Small pieces of the targets: env files for secrets, GPU requests, a missing engine."""

from __future__ import annotations

import pytest

from autoglm_cli.errors import UsageError
from autoglm_cli.ops.deploy.base import read_env_file
from autoglm_cli.ops.deploy.docker_target import _gpu_requests


def test_env_file_reads_what_docker_and_systemd_read(tmp_path):
    env = tmp_path / "secrets.env"
    env.write_text(
        "# upstream credentials\n\nHF_TOKEN=hf_abcdefghijklmnop\nexport OPENAI_API_KEY='sk-123'\nEMPTY=\n"
        'QUOTED="a b"\n'
    )
    assert read_env_file(env) == {
        "HF_TOKEN": "hf_abcdefghijklmnop",
        "OPENAI_API_KEY": "sk-123",
        "EMPTY": "",
        "QUOTED": "a b",
    }


def test_a_bad_env_file_line_names_the_line_without_the_secret(tmp_path):
    env = tmp_path / "secrets.env"
    env.write_text("HF_TOKEN=hf_abcdefghijklmnop\nhf_qrstuvwxyzabcdef\n")
    with pytest.raises(UsageError) as info:
        read_env_file(env)
    assert f"{env}:2" in info.value.message
    assert "qrstuvwxyz" not in info.value.message


def test_a_missing_env_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        read_env_file(tmp_path / "nope.env")
    assert "deploy.env_file" in info.value.remedy


def test_gpu_requests():
    (request,) = _gpu_requests("all")
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert _gpu_requests("none") == []


def test_no_docker_engine_is_an_environment_error(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    result = cli("deploy", "--target", "docker", "--state-dir", tmp_path / "state", "--port", "18997")
    assert result.exit_code == 3
    assert "no Docker engine answers" in result.stderr
    assert "DOCKER_HOST" in result.stderr


def test_weights_the_containers_user_cannot_read_are_refused_up_front(cli, tmp_path):
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    (model / "model.safetensors").chmod(0o600)  # as transformers' save_pretrained leaves it
    config = tmp_path / "docker.yaml"
    config.write_text(
        "model_pool: {default: tiny}\n"
        f"models: {{tiny: {{backend: transformers, source: {model}}}}}\n"
        f"deploy: {{target: docker, state_dir: {tmp_path / 'state'}}}\n"
        "gateway: {port: 18996}\n"
    )
    result = cli("deploy", "--config", config)
    assert result.exit_code == 2
    assert "cannot be read by the container's non-root user" in result.stderr
    assert f"chmod -R a+rX {model}" in result.stderr
