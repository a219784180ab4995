"""`deploy --target systemd`: the rendered unit, field by field, and systemd-analyze verify."""

from __future__ import annotations

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
        "  systemd: {user: nobody}\n"
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
    assert exec_start[:4] == [sys.executable, "-m", "autoglm_cli", "serve"]
    assert exec_start[exec_start.index("--port") + 1] == "8123"
    snapshot = Path(exec_start[exec_start.index("--config") + 1])
    assert snapshot.parent == tmp_path / "state" / "configs" and snapshot.is_file()
    assert f"-{tmp_path / 'state'}" in service["ReadWritePaths"][0]
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
