"""The CLI's conventions: every command registered, exit codes, --json anywhere, fast start."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from autoglm_cli import __version__
from tests.conftest import REPO_ROOT, run_autoglm

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


# -- one parse, global options anywhere, errors as sentences -----------------------------

SIMULATED = REPO_ROOT / "examples" / "simulated.yaml"


def test_worker_passes_everything_after_double_dash_to_dask(cli):
    result = cli("worker", "tcp://h:8786", "--dry-run", "--config", SIMULATED, "--", "--nthreads", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[-2:] == ["--nthreads", "2"]


def test_worker_json_before_the_subcommand_keeps_the_extra_args(cli):
    result = cli(
        "--json", "--config", SIMULATED, "worker", "tcp://h:8786", "--dry-run", "--", "--nthreads", "2"
    )
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["command"][-2:] == ["--nthreads", "2"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_and_json_are_accepted_before_or_after_every_subcommand(cli, where, tmp_path):
    config = tmp_path / "autoglm.yaml"
    config.write_text("gateway: {keys_file: ./from-config.json}\n")
    flags = ["--config", str(config), "--json"]
    argv = [*flags, "keys", "list"] if where == "before" else ["keys", "list", *flags]
    result = cli(*argv)
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["keys_file"].endswith("from-config.json")


def test_env_check_takes_config_after_the_subcommand(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("env_check: {ports: [0]}\n")  # invalid: proves this file was read
    result = cli("env-check", "--only", "ports", "--config", config, "--json")
    assert result.exit_code == 2
    assert result.json["error"]["field"] == "env_check.ports[0]"


def _boom(*args, **kwargs):
    raise AssertionError("a file without any hash cannot be cached (https://user:s3cret@hub.example/x)")


def test_an_unexpected_error_is_one_line_and_exit_70(cli, monkeypatch):
    from autoglm_cli.ops import envcheck

    monkeypatch.setattr(envcheck, "run_checks", _boom)
    monkeypatch.delenv("AUTOGLM_DEBUG", raising=False)
    result = cli("env-check", "--only", "ports")
    assert result.exit_code == 70
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AssertionError" in lines[0] and "this is a bug in autoglm" in lines[0]
    assert "AUTOGLM_DEBUG=1" in lines[0]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_debug_prints_a_redacted_traceback_and_keeps_exit_code_and_json(cli, monkeypatch):
    from autoglm_cli.ops import envcheck

    monkeypatch.setattr(envcheck, "run_checks", _boom)
    monkeypatch.setenv("AUTOGLM_DEBUG", "1")
    result = cli("--json", "env-check", "--only", "ports")
    assert result.exit_code == 70
    assert "Traceback (most recent call last)" in result.stderr
    assert "s3cret" not in result.stderr and "s3cret" not in result.stdout
    assert result.json["error"]["exit_code"] == 70


def test_an_interrupt_says_so_and_exits_130(cli, monkeypatch):
    from autoglm_cli.ops import envcheck

    def interrupted(*args, progress, **kwargs):
        progress.task("checking the environment")
        raise KeyboardInterrupt

    monkeypatch.setattr(envcheck, "run_checks", interrupted)
    result = cli("env-check", "--only", "ports")
    assert result.exit_code == 130
    assert "interrupted during checking the environment" in result.stderr


# -- help reads as one tool ----------------------------------------------------------------


def _all_commands():
    from typer import _click

    from autoglm_cli.cli.app import COMMANDS
    from autoglm_cli.cli.app import cli as root

    ctx = _click.Context(root)
    for name in COMMANDS:
        command = root.materialized(ctx, name)
        subs = getattr(command, "commands", None)
        if subs:
            for sub_name, sub in subs.items():
                yield f"{name} {sub_name}", sub
        else:
            yield name, command


def test_short_flags_mean_one_thing_across_the_tool():
    meaning: dict[str, str] = {}
    for name, command in _all_commands():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in param.opts if len(o) == 2 and o != "-h"):
                assert meaning.setdefault(short, longs[0]) == longs[0], (name, short, longs, meaning[short])


@pytest.mark.parametrize("name", [n for n, _ in _all_commands()])
def test_help_has_examples_and_placeholders_in_words(cli, name):
    result = cli(*name.split(), "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout, result.stdout
    assert not re.search(r"<[a-z]", result.stdout), result.stdout  # `<list[str]>`, `<int range>`
    assert max(map(len, result.stdout.splitlines())) <= 80
    for option in ("--json", "--quiet", "--config", "--verbose", "--no-color"):
        assert option in result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_for_each_shell(cli, shell):
    result = cli("--show-completion", shell)
    assert result.exit_code == 0
    assert "_AUTOGLM_COMPLETE" in result.stdout


def test_completion_offers_subcommands_and_their_options():
    env = {"_AUTOGLM_COMPLETE": "complete_bash", "COMP_WORDS": "autoglm env-check --on", "COMP_CWORD": "2"}
    result = run_autoglm(env=env)
    assert "--only" in result.stdout, (result.stdout, result.stderr)
    env = {"_AUTOGLM_COMPLETE": "complete_bash", "COMP_WORDS": "autoglm fetch-", "COMP_CWORD": "1"}
    assert "fetch-weights" in run_autoglm(env=env).stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "--port", "abc", "--dry-run"], "'abc' is not a valid integer"),
        (["serve", "--port", "70000", "--dry-run"], "not in the range"),
        (["deploy", "--target", "nope"], "'nope' is not one of 'local', 'docker', 'systemd'"),
    ],
)
def test_bad_option_values_are_usage_errors(cli, argv, message):
    result = cli(*argv)
    assert result.exit_code == 2
    assert message in result.stderr


def test_running_a_command_does_not_import_pydantic(tmp_path):
    code = (
        "import sys\n"
        "from autoglm_cli.cli.app import main\n"
        f"main(['keys', 'list', '--keys-file', {str(tmp_path / 'k.json')!r}, '--json'])\n"
        "print('PYDANTIC=' + str('pydantic' in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "PYDANTIC=False" in proc.stdout


def test_ctrl_c_in_the_health_gate_says_what_runs_now(cli, monkeypatch, tmp_path):
    from autoglm_cli.ops import deploy as deploy_ops

    def interrupted_in_the_gate(*args, progress, **kwargs):
        progress.task("health gate (up to 60 s)")
        raise KeyboardInterrupt  # ops has put back what ran before (here: nothing)

    monkeypatch.setattr(deploy_ops, "deploy", interrupted_in_the_gate)
    result = cli("deploy", "--config", SIMULATED, "--state-dir", tmp_path / "state")
    assert result.exit_code == 130
    assert "interrupted during health gate (up to 60 s): the new deployment was stopped" in result.stderr


def test_an_unanticipated_os_error_is_a_sentence(cli, monkeypatch):
    from autoglm_cli.ops import envcheck

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "weights/x")

    monkeypatch.setattr(envcheck, "run_checks", missing)
    result = cli("env-check", "--only", "ports")
    assert result.exit_code == 3
    assert "error: no such file or directory: weights/x" in result.stderr
    assert "Errno" not in result.stderr and "FileNotFoundError(" not in result.stderr


def test_root_help_fits_80_columns(cli):
    result = cli("--help")
    assert max(map(len, result.stdout.splitlines())) <= 80, result.stdout
    assert "70  a bug in autoglm" in result.stdout


def test_a_usage_error_names_the_command_in_json(cli):
    result = cli("verify", "--no-such-flag", "--json")
    assert result.exit_code == 2
    assert result.json["command"] == "verify"
