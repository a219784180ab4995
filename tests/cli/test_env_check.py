"""`autoglm env-check` as a user runs it: table, summary, --json, --only, --list-checks, exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from autoglm_cli.cli import env_check as env_check_cli
from autoglm_cli.ops.envcheck import CATEGORIES
from autoglm_cli.testing.net import blackhole_listener, tcp_server
from tests.conftest import run_autoglm

CHECK_KEYS = {"category", "name", "severity", "status", "value", "remedy", "details"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A config whose endpoints are a loopback server; the HF endpoint on loopback too."""
    with tcp_server() as (host, port):
        monkeypatch.setenv("HF_ENDPOINT", f"http://{host}:{port}")
        config = tmp_path / "autoglm.yaml"
        config.write_text(
            "dependencies: ['typer>=0.12', 'pyyaml']\n"
            f"gateway: {{port: {_free_port()}}}\n"
            f"env_check: {{required_endpoints: ['{host}:{port}']}}\n"
        )
        yield config


def test_json_document_shape(cli, setup):
    result = cli("--config", str(setup), "--json", "env-check")
    doc = result.json
    assert doc["schema"] == "autoglm/v1" and doc["command"] == "env-check"
    report = doc["result"]
    assert set(report) == {"categories", "checks", "summary", "elapsed_s"}
    assert report["categories"] == list(CATEGORIES)
    assert {c["category"] for c in report["checks"]} == set(CATEGORIES)
    for check in report["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["severity"] in {"required", "recommended", "info"}
        assert check["status"] in {"ok", "warn", "fail"}
        if check["status"] == "ok":
            assert check["remedy"] == ""
    summary = report["summary"]
    assert summary["total"] == len(report["checks"]) == summary["ok"] + summary["warn"] + summary["fail"]
    assert doc["exit_code"] == result.exit_code == (1 if summary["required_failed"] else 0)
    assert doc["ok"] is (result.exit_code == 0)


def test_json_after_the_subcommand_gives_the_same_document(cli, setup):
    before = cli("--config", str(setup), "--json", "env-check", "--only", "packages").json
    after = cli("--config", str(setup), "env-check", "--only", "packages", "--json").json
    for doc in (before, after):
        doc["result"].pop("elapsed_s")
    assert before == after


def test_the_table_is_grouped_by_category_with_a_summary_line(cli, setup, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no git: a required check fails
    result = cli(
        "--config", str(setup), "env-check", "--only", "binaries", "--only", "network", "--only", "packages"
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    headings = [line.strip() for line in lines if line.strip() in CATEGORIES]
    assert headings == ["binaries", "packages", "network"]
    git_line = next(line for line in lines if line.strip().startswith("git "))
    assert git_line.split()[:5] == ["git", "fail", "required", "not", "found"]
    assert any("-> Install git" in line for line in lines)
    assert "required check(s) failed" in lines[-1]
    # git fails, 4 recommended tools warn, 2 packages and 1 endpoint (HF_ENDPOINT is the same one) pass
    assert lines[-1].startswith("8 checks: 3 ok, 4 warn, 1 fail")


def test_quiet_prints_nothing_and_keeps_the_exit_code(cli, setup, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("--config", str(setup), "env-check", "--only", "binaries", "--quiet")
    assert (result.exit_code, result.stdout) == (1, "")


def test_list_checks_shows_the_plan(cli, setup):
    result = cli(
        "--config",
        str(setup),
        "env-check",
        "--list-checks",
        "--only",
        "packages",
        "--only",
        "ports",
        "--json",
    )
    assert result.exit_code == 0
    checks = result.json["result"]["checks"]
    assert [(c["category"], c["name"]) for c in checks][:2] == [("packages", "typer"), ("packages", "pyyaml")]
    assert set(checks[0]) == {"category", "name", "severity", "description"}
    human = cli("--config", str(setup), "env-check", "--list-checks")
    assert "checks in 7 categories" in human.stdout


def test_timeout_option_overrides_the_config(cli, tmp_path):
    with blackhole_listener("127.0.0.8") as (host, port):
        config = tmp_path / "c.yaml"
        config.write_text(f"env_check: {{endpoints: ['{host}:{port}'], timeout: 30s}}\n")
        result = cli("--config", str(config), "--json", "env-check", "--only", "network", "--timeout", "0.3")
    check = next(c for c in result.json["result"]["checks"] if c["name"] == f"{host}:{port}")
    assert check["value"] == f"TCP connect failed: {host}:{port}: timed out after 0.3 s"


def test_an_unknown_category_is_a_usage_error(cli):
    result = cli("env-check", "--only", "gpus")
    assert result.exit_code == 2
    assert "unknown check category: gpus" in result.stderr
    assert "accelerators" in result.stderr


def test_a_bad_dependency_in_the_config_exits_2_naming_it(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dependencies: ['torch>>1']\n")
    result = cli("--config", str(config), "env-check", "--only", "packages")
    assert result.exit_code == 2
    assert "dependencies[0]" in result.stderr


def test_help_lists_every_category():
    assert env_check_cli._CATEGORY_HELP.split(", ") == list(CATEGORIES)


def test_as_a_real_process(setup):
    result = run_autoglm("env-check", "--only", "ports", "--json", env={"AUTOGLM_CONFIG": str(setup)})
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["summary"]["fail"] == 0


def test_torch_and_docker_stay_out_of_the_cli_process(tmp_path):
    # torch is probed in a child interpreter; docker is imported by the docker check only.
    code = (
        "import sys\n"
        "from autoglm_cli.cli.app import main\n"
        "main(['env-check', '--only', 'accelerators', '--only', 'binaries', '--quiet'])\n"
        "print('LOADED=' + ','.join(m for m in ('torch', 'docker') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert "LOADED=\n" in proc.stdout, proc.stdout + proc.stderr
