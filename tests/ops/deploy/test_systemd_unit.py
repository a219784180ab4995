"""`deploy --target systemd`: the rendered unit, field by field, and systemd-analyze verify."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd allows repeated keys such as DeviceAllow=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"key outside a section: {line}"
        current.setdefault(key, []).append(value)
    return sections


# The unit runs an installation outside the sandbox's hidden paths (wherever this checkout
# and its venv live: CI may clone under /tmp); Debian's python3 is one that exists, so
# `systemd-analyze verify` finds the ExecStart binary.
UNIT_PYTHON = "/usr/bin/python3"


@pytest.fixture
def systemd_config(tmp_path):
    env_file = tmp_path / "secrets.env"
    env_file.write_text("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz\n")
    config = tmp_path / "systemd.yaml"
    config.write_text(
        "gateway: {host: 127.0.0.1, port: 8123}\n"
        f"weights: {{cache_dir: {tmp_path / 'hub'}}}\n"
        "model_pool: {default: tiny}\n"
        "models: {tiny: {source: zai-org/tiny-glm, size_gb: 2}}\n"
        "deploy:\n"
        "  name: glm-svc\n"
        f"  state_dir: {tmp_path / 'state'}\n"
        f"  env_file: {env_file}\n"
        "  health_timeout: 60s\n"
        "  health_timeout_per_gb: 30s\n"
        f"  systemd: {{user: nobody, python: {UNIT_PYTHON}}}\n"
    )
    return config


def test_rendered_unit_field_by_field(cli, systemd_config, tmp_path):
    result = cli("deploy", "--target", "systemd", "--config", systemd_config)
    assert result.exit_code == 0, result.stderr
    unit = parse_unit(result.stdout)
    service = unit["Service"]
    assert service["User"] == ["nobody"]
    assert service["Restart"] == ["always"]
    assert service["EnvironmentFile"] == [str(tmp_path / "secrets.env")]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["DevicePolicy"] == ["closed"]
    assert "char-nvidia* rw" in service["DeviceAllow"]  # GPUs stay visible
    assert "PrivateDevices" not in service  # it would hide /dev/nvidia*
    # A slow load is normal: start timeout = base + per GB x size (60 + 30 x 2).
    assert service["TimeoutStartSec"] == ["120"]
    exec_start = service["ExecStart"][0].split()
    assert exec_start[:4] == [UNIT_PYTHON, "-m", "autoglm_cli", "serve"]
    assert exec_start[exec_start.index("--port") + 1] == "8123"
    # The snapshot (0600, may hold upstream keys) reaches the service as a credential (%d).
    assert exec_start[exec_start.index("--config") + 1] == "%d/config.yaml"
    credential = dict(c.split(":", 1) for c in service["LoadCredential"])
    snapshot = Path(credential["config.yaml"])
    assert snapshot.parent == tmp_path / "state" / "configs" and snapshot.is_file()
    assert service["StateDirectory"] == service["CacheDirectory"] == ["glm-svc-service"]
    assert f"-{tmp_path / 'hub'}" in service["BindReadOnlyPaths"]  # the weights, read-only
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]
    # Secrets stay in the env file: neither in the unit nor in the snapshot it runs.
    assert "hf_abcdefghij" not in result.stdout
    assert "hf_abcdefghij" not in snapshot.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_rendered_unit_passes_systemd_analyze_verify(cli, systemd_config, tmp_path):
    result = cli("deploy", "--target", "systemd", "--config", systemd_config)
    assert result.exit_code == 0
    path = tmp_path / "glm-svc.service"
    path.write_text(result.stdout)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # The command ran the same check and said so.
    assert "systemd-analyze verify" in result.stderr


def test_json_mode_carries_the_unit_and_its_check(cli, systemd_config):
    result = cli("deploy", "--target", "systemd", "--config", systemd_config, "--json")
    assert result.exit_code == 0
    doc = result.json["result"]
    assert doc["action"] == "rendered"
    assert "[Service]" in doc["unit"]
    assert doc["unit_check"]["ok"] is True


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="systemd runs here: --install would install")
def test_install_without_systemd_is_a_clear_environment_error(cli, systemd_config):
    result = cli("deploy", "--target", "systemd", "--install", "--config", systemd_config)
    assert result.exit_code == 3
    assert "systemd is not running" in result.stderr


def test_the_unit_is_ready_when_the_model_is_and_watched_while_it_serves(cli, systemd_config):
    service = parse_unit(cli("deploy", "--target", "systemd", "--config", systemd_config).stdout)["Service"]
    assert service["Type"] == ["notify"]  # active once /readyz passes, not at exec
    assert service["NotifyAccess"] == ["main"]
    assert int(service["WatchdogSec"][0]) > 0
    # A large model may extend the start timeout while it loads, up to a bound.
    assert service["Environment"].count("AUTOGLM_START_BUDGET_S=360") == 1
    assert service["SyslogIdentifier"] == ["glm-svc"]


def test_without_a_configured_user_the_unit_runs_as_a_dynamic_user(cli, systemd_config):
    text = systemd_config.read_text().replace(f"  systemd: {{user: nobody, python: {UNIT_PYTHON}}}\n", "")
    text += f"  systemd: {{python: {UNIT_PYTHON}}}\n"
    systemd_config.write_text(text)
    service = parse_unit(cli("deploy", "--target", "systemd", "--config", systemd_config).stdout)["Service"]
    assert service["DynamicUser"] == ["yes"] and "User" not in service


def test_rendering_and_dry_run_do_not_need_the_secrets_file(cli, systemd_config, tmp_path):
    (tmp_path / "secrets.env").unlink()  # it lives on the server, not on this machine
    rendered = cli("deploy", "--target", "systemd", "--config", systemd_config)
    assert rendered.exit_code == 0, rendered.stderr
    assert parse_unit(rendered.stdout)["Service"]["EnvironmentFile"] == [str(tmp_path / "secrets.env")]
    planned = cli("deploy", "--target", "systemd", "--install", "--dry-run", "--config", systemd_config)
    assert planned.exit_code == 0, planned.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_exposure_is_at_most_3_with_the_gpus_reachable(cli, systemd_config, tmp_path):
    result = cli("deploy", "--target", "systemd", "--config", systemd_config)
    path = tmp_path / "glm-svc.service"
    path.write_text(result.stdout)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    found = re.search(r"Overall exposure level for glm-svc.service: ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 3.0
    service = parse_unit(result.stdout)["Service"]
    assert "char-nvidia* rw" in service["DeviceAllow"] and "PrivateDevices" not in service


def test_an_exec_start_the_sandbox_hides_is_refused(systemd_config, tmp_path):
    """A virtualenv under /tmp (PrivateTmp=) or a home (ProtectHome=): exit 2 with the remedy."""
    text = systemd_config.read_text().replace(f", python: {UNIT_PYTHON}", "")  # the running one
    systemd_config.write_text(text)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "autoglm_cli", "deploy", "--target", "systemd"]
        + ["--config", str(systemd_config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "hides from the service" in proc.stderr and "/opt/autoglm" in proc.stderr
    assert proc.stdout == ""


def test_a_configured_interpreter_the_sandbox_hides_is_refused_too(cli, systemd_config):
    text = systemd_config.read_text().replace(f"python: {UNIT_PYTHON}", "python: /home/me/venv/bin/python")
    systemd_config.write_text(text)
    result = cli("deploy", "--target", "systemd", "--config", systemd_config)
    assert result.exit_code == 2
    assert "/home/me/venv/bin/python" in result.stderr and "hides from the service" in result.stderr
