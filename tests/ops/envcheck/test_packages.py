"""Python packages against `dependencies`, read from the real installed metadata."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from autoglm_cli.errors import ConfigError, ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, run_checks

from .conftest import by_name, config


def deps(*specs: str):
    return config("dependencies: [" + ", ".join(repr(s) for s in specs) + "]")


def test_an_installed_package_that_satisfies_its_specifier():
    report = run_checks(deps("typer>=0.12", "PyYAML"), only=["packages"])
    typer = by_name(report, "typer")
    assert typer.status is Status.OK
    assert typer.severity is Severity.REQUIRED
    assert typer.value == metadata.version("typer")
    assert by_name(report, "PyYAML").value == metadata.version("pyyaml")
    assert report.exit_code == ExitCode.OK


def test_a_too_old_package_fails_with_the_pip_command_to_fix_it():
    installed = metadata.version("typer")
    check = by_name(run_checks(deps("typer>=999"), only=["packages"]), "typer")
    assert check.status is Status.FAIL
    assert check.value == f"{installed}, need >=999"
    assert check.remedy == "pip install 'typer>=999'"


def test_a_missing_package_fails_and_the_exit_code_says_so():
    report = run_checks(deps("autoglm-no-such-package>=1"), only=["packages"])
    check = by_name(report, "autoglm-no-such-package")
    assert (check.status, check.value) == (Status.FAIL, "not installed")
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_local_versions_and_prereleases_count():
    # The CPU build of torch reports "2.x.y+cpu"; such a local version satisfies ">=1.13".
    torch_version = metadata.version("torch") if _installed("torch") else None
    if torch_version is None:
        pytest.skip("torch is not installed (make install adds it)")
    check = by_name(run_checks(deps("torch>=1.13"), only=["packages"]), "torch")
    assert check.status is Status.OK and check.value == torch_version


def test_a_requirement_whose_marker_does_not_apply_is_not_needed():
    other = "win32" if sys.platform != "win32" else "linux"
    check = by_name(
        run_checks(deps(f"pywin32>=300; sys_platform == '{other}'"), only=["packages"]), "pywin32"
    )
    assert check.status is Status.OK
    assert check.value.startswith("not needed here")


def test_extras_are_checked_through_the_packages_they_pull_in():
    report = run_checks(deps("dask[distributed]", "requests[socks]"), only=["packages"])
    assert by_name(report, "dask").status is Status.OK  # distributed is installed
    socks = by_name(report, "requests")
    if _installed("PySocks"):
        pytest.skip("PySocks happens to be installed")
    assert socks.status is Status.FAIL
    assert "extra requirement(s) missing: PySocks" in socks.value


def test_an_invalid_specifier_is_a_config_error_naming_the_entry():
    with pytest.raises(ConfigError) as info:
        run_checks(deps("typer", "torch>>1"), only=["packages"])
    assert info.value.field == "dependencies[1]"
    assert "'torch>>1' is not a requirement specifier" in info.value.message


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
