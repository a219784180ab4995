"""The CLI's conventions: every command registered, exit codes, --json anywhere, fast start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autoglm_cli import __version__
from tests.conftest import run_autoglm

COMMANDS = [
    "clone",
    "env-check",
    "fetch-weights",
    "verify-sha256",
    "verify",
    "deploy",
    "migrate-cache",
    "health",
    "redeploy",
    "serve",
    "worker",
    "keys",
    "bench",
]


def test_help_lists_every_command_and_the_exit_codes(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout
    for code in (
        "0  ok",
        "1  a check failed",
        "2  usage or config error",
        "3  environment",
        "4  deploy failed",
    ):
        assert code in result.stdout


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"autoglm {__version__}"


def test_unknown_command_is_a_usage_error(cli):
    result = cli("no-such-command")
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_usage_error_in_json_mode_is_one_json_document(cli):
    result = cli("--json", "no-such-command")
    assert result.exit_code == 2
    doc = result.json
    assert doc["schema"] == "autoglm/v1"
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 2


def test_python_dash_m_runs_the_cli():
    result = run_autoglm("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"autoglm {__version__}"


HEAVY = ["torch", "transformers", "dask", "distributed", "docker", "fastapi", "huggingface_hub", "uvicorn"]


@pytest.mark.parametrize(
    "argv", [["--help"], ["env-check", "--help"], ["verify", "--help"], ["deploy", "--help"]]
)
def test_help_does_not_import_heavy_packages(argv):
    code = (
        "import sys\n"
        "from autoglm_cli.cli.app import main\n"
        f"main({argv!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in proc.stdout, proc.stdout[-300:]


def test_json_flag_before_and_after_the_subcommand_gives_the_same_document(cli, tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    first = cli("--json", "verify-sha256", "--generate", str(tmp_path))
    second = cli("verify-sha256", "--generate", str(tmp_path), "--json")
    assert first.exit_code == second.exit_code
    assert json.loads(first.stdout)["command"] == json.loads(second.stdout)["command"]
    assert json.loads(first.stdout)["schema"] == "autoglm/v1"
