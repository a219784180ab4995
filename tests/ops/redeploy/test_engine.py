"""The redeploy engine called as a library: one step table, plans, step selection, the states."""

from __future__ import annotations

import pytest

from autoglm_cli.config import load_config
from autoglm_cli.errors import UsageError
from autoglm_cli.ops.redeploy import STEPS, redeploy
from autoglm_cli.ops.redeploy_context import StepStatus
from tests.fixtures.redeploy import redeploy_config as _config


def test_a_dry_run_plans_every_step_and_writes_nothing(tmp_path):
    config = load_config(_config(tmp_path), environ={})
    report = redeploy(config, dry_run=True)
    assert [s.name for s in report.steps] == list(STEPS)
    assert {s.status for s in report.steps} == {StepStatus.PLANNED}
    assert report.exit_code == 0
    assert not (tmp_path / "state").exists()


def test_only_marks_the_other_steps_not_selected(tmp_path):
    config = load_config(_config(tmp_path), environ={})
    report = redeploy(config, dry_run=True, only=["verify"])
    statuses = {s.name: s.status for s in report.steps}
    assert statuses.pop("verify") is StepStatus.PLANNED
    assert set(statuses.values()) == {StepStatus.NOT_SELECTED}
    assert statuses["clone"] == "not selected"  # the state is also its word (JSON, journal)


def test_an_unknown_step_is_a_usage_error_listing_the_steps(tmp_path):
    config = load_config(_config(tmp_path), environ={})
    with pytest.raises(UsageError) as caught:
        redeploy(config, only=["nope"])
    assert ", ".join(STEPS) in caught.value.remedy
