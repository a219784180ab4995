"""Blue-green for the local target under a probe load: a redeploy and a rollback drop nothing;
`logs`, `rollback` and the repair of a deploy killed during its gate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from autoglm_cli.config import load_config
from autoglm_cli.ops.deploy.logs import logs
from autoglm_cli.testing.servers import free_port
from tests.ops.deploy.conftest import redeploy_and_roll_back_under_load, simulated_config

pytestmark = pytest.mark.slow


def _record(state_dir, name="deployment.json") -> dict:
    return json.loads((state_dir / name).read_text())


def _key(state_dir) -> str:
    return (state_dir / "health.key").read_text().strip()


def test_redeploy_and_rollback_under_load_drop_nothing(cli, tmp_path, deployments):
    port = free_port()
    one = simulated_config(tmp_path / "one.yaml", port=port, state_dir=deployments, output_tokens=5)
    two = simulated_config(tmp_path / "two.yaml", port=port, state_dir=deployments, output_tokens=6)
    assert cli("deploy", "--config", one).exit_code == 0
    first = _record(deployments)

    rolled = redeploy_and_roll_back_under_load(cli, port, _key(deployments), one, two)
    assert rolled.json["result"]["action"] == "restored"
    now, before = _record(deployments), _record(deployments, "previous.json")
    assert now["config_hash"] == first["config_hash"] and now["pid"] != first["pid"]
    assert before["config_hash"] != first["config_hash"]  # a second rollback goes forward again
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == "zombie"
    assert not psutil.pid_exists(before["pid"])  # the rolled-back service drained and went


def test_logs_shows_and_follows_the_service_log(cli, tmp_path, deployments):
    config = simulated_config(tmp_path / "sim.yaml", port=free_port(), state_dir=deployments)
    assert cli("deploy", "--config", config).exit_code == 0
    shown = cli("logs", "--config", config, "--lines", "5")
    assert shown.exit_code == 0
    assert "serving on" in shown.stdout or shown.stdout.count("\n") >= 1
    assert str(_record(deployments)["log_path"]) in shown.stderr

    followed = logs(load_config(config), lines=2, follow=True)
    first = [next(followed.follow), next(followed.follow)]
    assert len(first) == 2
    with open(_record(deployments)["log_path"], "a") as log:
        log.write("a new line with a token hf_abcdefghijklmnopqrstuvwxyz0123\n")
    line = next(followed.follow)
    assert "a new line" in line and "hf_abcdefghijklmnopqrstuvwxyz0123" not in line  # redacted


def test_a_deploy_killed_during_its_gate_is_repaired_by_the_next_command(cli, tmp_path, deployments):
    port = free_port()
    one = simulated_config(tmp_path / "one.yaml", port=port, state_dir=deployments)
    slow = simulated_config(tmp_path / "slow.yaml", port=port, state_dir=deployments, load_seconds=120)
    assert cli("deploy", "--config", one).exit_code == 0
    running = _record(deployments)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    deploy = subprocess.Popen(
        [sys.executable, "-m", "autoglm_cli", "deploy", "--config", slow, "--quiet"], env=env, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while not (deployments / "next.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        pending = _record(deployments, "next.json")
        assert pending["status"] == "starting" and psutil.pid_exists(pending["pid"])
    finally:
        deploy.send_signal(signal.SIGKILL)  # no chance to clean up
        deploy.wait()
    assert (deployments / "deploy.lock").exists()  # stale: its pid is gone

    status = cli("deploy", "--status", "--config", one, "--json")
    assert status.exit_code == 0, status.stdout
    record = status.json["result"]["deployment"]
    assert record["pid"] == running["pid"] and record["status"] == "running"  # header and table agree
    assert not (deployments / "next.json").exists()
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pending["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pending["pid"])  # the half-started one was removed
