"""`deploy --with-monitoring DIR`: the monitoring kit beside a deployment, pointed at it,
written again by the next deploy (and so by redeploy), never by a dry run."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from autoglm_cli.ops.deploy.monitoring import KIT_FILES, kit_text, scrape_target, write_monitoring
from autoglm_cli.testing.servers import free_port
from tests.ops.deploy.conftest import simulated_config


def test_the_kit_points_at_the_gateway_and_keeps_the_rules(tmp_path):
    written = write_monitoring(tmp_path / "mon", "http://0.0.0.0:8123")
    assert sorted(written) == sorted(str(tmp_path / "mon" / name) for name in KIT_FILES)
    scrape = yaml.safe_load((tmp_path / "mon" / "prometheus.yml").read_text())
    gateway = next(job for job in scrape["scrape_configs"] if job["job_name"] == "autoglm-gateway")
    assert gateway["static_configs"] == [{"targets": ["127.0.0.1:8123"]}]
    assert scrape["rule_files"] == ["rules/autoglm-recording.yml", "rules/autoglm-alerts.yml"]
    for name in KIT_FILES[1:]:
        assert (tmp_path / "mon" / name).read_text() == kit_text(name)
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "config", str(tmp_path / "mon" / "prometheus.yml")], capture_output=True
        )
        assert checked.returncode == 0, checked.stdout


def test_scrape_targets_for_each_kind_of_address():
    assert scrape_target("http://127.0.0.1:8000") == "127.0.0.1:8000"
    assert scrape_target("http://[::1]:9000/") == "[::1]:9000"
    assert scrape_target("http://gpu-7.example:8000") == "gpu-7.example:8000"


@pytest.mark.slow
def test_deploy_writes_the_kit_and_the_next_deploy_restores_it(cli, tmp_path, deployments):
    port = free_port()
    config = simulated_config(tmp_path / "sim.yaml", port=port, state_dir=deployments)
    kit = tmp_path / "monitoring"

    planned = cli("--json", "deploy", "--config", config, "--with-monitoring", kit, "--dry-run")
    assert planned.exit_code == 0
    assert any(str(kit) in line for line in planned.json["result"]["plan"])
    assert not kit.exists()  # a dry run writes nothing

    first = cli("--json", "deploy", "--config", config, "--with-monitoring", kit)
    assert first.exit_code == 0, first.stderr
    assert sorted(first.json["result"]["monitoring"]) == sorted(str(kit / name) for name in KIT_FILES)
    scrape = yaml.safe_load((kit / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]

    (kit / "prometheus.yml").unlink()
    (kit / "rules" / "autoglm-alerts.yml").write_text("edited away\n")
    again = cli("--json", "deploy", "--config", config, "--with-monitoring", kit)
    assert again.exit_code == 0 and again.json["result"]["action"] == "unchanged"
    assert (kit / "prometheus.yml").exists()
    assert (kit / "rules" / "autoglm-alerts.yml").read_text() == kit_text("rules/autoglm-alerts.yml")
