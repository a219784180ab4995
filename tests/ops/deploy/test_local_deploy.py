"""`deploy --target local` against the real runtime: a background `autoglm serve` with Dask workers."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from autoglm_cli.testing.servers import free_port
from tests.ops.deploy.conftest import simulated_config

pytestmark = pytest.mark.slow


def _record(state_dir) -> dict:
    return json.loads((state_dir / "deployment.json").read_text())


def _listening(port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in psutil.net_connections("tcp"))


def test_deploy_records_the_service_health_passes_and_stop_ends_it(cli, tmp_path, deployments):
    port = free_port()
    config = simulated_config(tmp_path / "sim.yaml", port=port, state_dir=deployments)

    result = cli("deploy", "--config", config, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = result.json["result"]
    assert doc["action"] == "deployed"
    record = _record(deployments)
    assert record["status"] == "running" and record["target"] == "local"
    assert record["port"] == port and record["ports"]["gateway"] == port
    assert port in record["ports"]["listening"]
    assert record["version"] and len(record["config_hash"]) == 64
    proc = psutil.Process(record["pid"])
    assert "serve" in proc.cmdline()
    assert os.path.isfile(record["log_path"])
    # The health probe's key is private to the state dir, and never printed.
    key = (deployments / "health.key").read_text().strip()
    assert key.startswith("ak_") and key not in result.stdout + result.stderr

    health = cli("health", "--config", config, "--json")
    assert health.exit_code == 0, health.stdout
    checks = {c["name"]: c for c in health.json["result"]["checks"]}
    for name in ("liveness", "readiness", "inference", "state"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["inference"]["data"]["completion_tokens"] >= 1
    assert any(n.startswith("node:") and c["status"] == "ok" for n, c in checks.items())
    assert checks["metrics"]["status"] == "ok"

    again = cli("deploy", "--config", config, "--json")
    assert again.json["result"]["action"] == "unchanged"
    assert _record(deployments)["pid"] == record["pid"]

    stopped = cli("deploy", "--stop", "--config", config)
    assert stopped.exit_code == 0
    assert (
        not psutil.pid_exists(record["pid"]) or psutil.Process(record["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert not _listening(port)
    status = cli("deploy", "--status", "--config", config)
    assert status.exit_code == 1 and "stopped" in status.stdout


def test_a_killed_service_is_detected_by_health(cli, tmp_path, deployments):
    port = free_port()
    config = simulated_config(tmp_path / "sim.yaml", port=port, state_dir=deployments)
    assert cli("deploy", "--config", config).exit_code == 0
    pid = _record(deployments)["pid"]

    os.killpg(pid, signal.SIGKILL)  # the whole service: gateway and Dask workers
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)

    result = cli("health", "--config", config, "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in result.json["result"]["checks"]}
    assert checks["liveness"]["status"] == "fail"
    assert checks["state"]["status"] == "fail"
    assert f"pid {pid} is not running" in checks["state"]["detail"]
    human = cli("health", "--config", config)
    assert "UNHEALTHY" in human.stdout


def test_a_broken_new_version_is_rolled_back(cli, tmp_path, deployments):
    port = free_port()
    good = simulated_config(tmp_path / "good.yaml", port=port, state_dir=deployments)
    broken = simulated_config(tmp_path / "broken.yaml", port=port, state_dir=deployments, broken=True)
    assert cli("deploy", "--config", good).exit_code == 0
    before = _record(deployments)

    result = cli("deploy", "--config", broken, "--json")
    assert result.exit_code == 4, result.stdout + result.stderr
    report = result.json["result"]
    assert report["action"] == "rolled_back"
    assert "every node failed" in report["message"]  # the gate gave up early, saying why
    failing = {c["name"]: c for c in report["health"]["checks"]}
    assert failing["readiness"]["status"] == "fail"
    assert "no-such-model" in json.dumps(report["health"])  # the failing health output names the cause
    human = cli("deploy", "--status", "--config", good)
    assert human.exit_code == 0

    after = _record(deployments)
    assert after["config_hash"] == before["config_hash"]  # the running version served throughout:
    assert after["pid"] == before["pid"] and psutil.pid_exists(after["pid"])  # never stopped
    assert not (deployments / "next.json").exists()  # and the failed one is gone
    health = cli("health", "--config", good)
    assert health.exit_code == 0, health.stdout


def test_a_failing_first_deploy_has_nothing_to_restore(cli, tmp_path, deployments):
    port = free_port()
    broken = simulated_config(tmp_path / "broken.yaml", port=port, state_dir=deployments, broken=True)
    result = cli("deploy", "--config", broken, "--json")
    assert result.exit_code == 1
    assert result.json["result"]["action"] == "failed"
    assert "no previous deployment" in result.json["result"]["message"]
    assert not _listening(port)
