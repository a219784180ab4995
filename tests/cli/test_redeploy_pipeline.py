"""`autoglm redeploy`: plans, the journal, resuming at the failed step, step selection."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.redeploy import redeploy_config as _config

STEPS = ["clone", "env-check", "migrate-cache", "fetch-weights", "verify", "deploy", "health"]


def test_dry_run_plans_every_step_and_writes_nothing(cli, tmp_path):
    result = cli("redeploy", "--config", _config(tmp_path), "--dry-run", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    steps = result.json["result"]["steps"]
    assert [s["name"] for s in steps] == STEPS
    assert all(s["status"] == "planned" and s["detail"] for s in steps)
    assert "health gate" in steps[STEPS.index("deploy")]["detail"]
    assert not (tmp_path / "state").exists()  # no journal, no snapshot, no health key


@pytest.mark.slow
def test_a_failed_step_is_journaled_and_a_rerun_resumes_there(cli, tmp_path, monkeypatch):
    config = _config(tmp_path, required_binary="autoglm-no-such-tool")
    first = cli("redeploy", "--config", config, "--json")
    assert first.exit_code == 1
    steps = {s["name"]: s for s in first.json["result"]["steps"]}
    assert steps["clone"]["status"] == "skipped"
    assert steps["env-check"]["status"] == "failed"
    assert "autoglm-no-such-tool" in steps["env-check"]["detail"]
    assert all(steps[name]["status"] == "pending" for name in STEPS[2:])
    journal = json.loads((tmp_path / "state" / "redeploy.json").read_text())
    assert journal["steps"]["env-check"]["status"] == "failed"
    assert "deploy" not in journal["steps"]

    second = cli("redeploy", "--config", config, "--json")
    assert second.exit_code == 1
    doc = second.json["result"]
    assert doc["resumed_from"] == "env-check"
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["clone"]["status"] == "earlier"  # done in the first run, not repeated
    assert steps["env-check"]["status"] == "failed"

    human = cli("redeploy", "--config", config)
    assert "resuming at env-check" in human.stderr
    assert "the next run resumes at env-check" in human.stdout.replace("\n", " ")

    again = cli("redeploy", "--config", config, "--from-step", "clone", "--json")
    assert again.json["result"]["resumed_from"] is None
    assert again.json["result"]["steps"][0]["status"] == "skipped"  # clone ran again


@pytest.mark.slow
def test_a_changed_config_starts_from_the_top(cli, tmp_path):
    config = _config(tmp_path, required_binary="autoglm-no-such-tool")
    assert cli("redeploy", "--config", config).exit_code == 1
    changed = _config(tmp_path, required_binary="autoglm-no-such-tool", port=18998)
    result = cli("redeploy", "--config", changed, "--json")
    assert result.json["result"]["resumed_from"] is None
    assert result.json["result"]["steps"][0]["status"] == "skipped"


def test_only_runs_the_named_steps(cli, tmp_path):
    result = cli("redeploy", "--config", _config(tmp_path), "--only", "env-check", "--json")
    assert result.exit_code == 0, result.stdout
    statuses = {s["name"]: s["status"] for s in result.json["result"]["steps"]}
    assert statuses["env-check"] == "ok"
    assert {statuses[n] for n in STEPS if n != "env-check"} == {"not selected"}


def test_step_names_are_checked(cli, tmp_path):
    result = cli("redeploy", "--config", _config(tmp_path), "--only", "deploi")
    assert result.exit_code == 2
    assert "unknown step 'deploi'" in result.stderr
    both = cli("redeploy", "--config", _config(tmp_path), "--only", "deploy", "--from-step", "clone")
    assert both.exit_code == 2
