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
