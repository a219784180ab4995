"""`autoglm redeploy`'s help names the pipeline's steps, in order."""

from __future__ import annotations

from autoglm_cli.cli import redeploy as redeploy_cli
from autoglm_cli.ops.redeploy import STEPS


def test_the_help_lists_exactly_the_steps_the_pipeline_runs():
    assert redeploy_cli._STEPS_HELP.split(", ") == list(STEPS)
