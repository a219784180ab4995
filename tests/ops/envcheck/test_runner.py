"""The runner: category selection, listing without running, a broken check, the summary."""

from __future__ import annotations

import pytest

from autoglm_cli.errors import ExitCode, UsageError
from autoglm_cli.ops.envcheck import CATEGORIES, CheckSpec, Severity, Status, list_checks, run_checks
from autoglm_cli.ops.envcheck.model import summarize
from autoglm_cli.ops.envcheck.runner import _run_concurrently, select_categories
from autoglm_cli.progress import NULL_PROGRESS

from .conftest import config, write_executable


def test_categories_in_display_order():
    assert CATEGORIES == ("binaries", "packages", "accelerators", "resources", "docker", "network", "ports")
    assert select_categories(["ports", "Binaries"]) == ("binaries", "ports")
    assert select_categories(None) == CATEGORIES


def test_an_unknown_category_is_a_usage_error_listing_the_choices():
    with pytest.raises(UsageError) as info:
        select_categories(["binaries", "gpu"])
    assert "unknown check category: gpu" in info.value.message
    assert "accelerators" in info.value.remedy
    assert info.value.exit_code == ExitCode.USAGE


def test_listing_checks_runs_nothing(bin_dir, tmp_path):
    marker = tmp_path / "ran"
    write_executable(bin_dir, "git", f"echo ran > {marker}\necho git version 2.40.0\n")
    plan = list_checks(config("dependencies: [typer]"), only=["binaries", "packages"])
    assert [(c.category, c.name, c.severity) for c in plan.checks][:2] == [
        ("binaries", "git", Severity.REQUIRED),
        ("binaries", "docker", Severity.RECOMMENDED),
    ]
    assert ("packages", "typer", Severity.REQUIRED) in [(c.category, c.name, c.severity) for c in plan.checks]
    assert not marker.exists()
    run_checks(config(), only=["binaries"])
    assert marker.exists()


def test_a_check_that_crashes_is_reported_and_the_others_still_are():
    def broken(spec):
        raise KeyError("surprise")

    specs = [
        CheckSpec("binaries", "broken", Severity.REQUIRED, "", run=broken),
        CheckSpec("binaries", "fine", Severity.INFO, "", run=lambda spec: spec.ok("yes")),
    ]
    (crashed,), (fine,) = _run_concurrently(specs, NULL_PROGRESS)
    assert crashed.status is Status.FAIL
    assert crashed.value == "the check itself failed: KeyError: 'surprise'"
    assert fine.status is Status.OK


def test_the_summary_counts_and_the_exit_code(bin_dir):
    report = run_checks(config("env_check: {recommended_binaries: [helm]}"), only=["binaries"])
    # git (required) and helm (recommended) are both missing from the empty PATH.
    assert report.summary == summarize(report.checks)
    assert (report.summary.total, report.summary.fail, report.summary.warn) == (2, 1, 1)
    assert report.summary.required_failed == 1
    assert report.exit_code == ExitCode.CHECK_FAILED
    assert report.categories == ("binaries",)
