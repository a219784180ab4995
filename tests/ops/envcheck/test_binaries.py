"""Binaries on PATH: real executables (scripts in a private PATH, and the real git)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from autoglm_cli.errors import ConfigError, ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, run_checks
from autoglm_cli.ops.envcheck.binaries import parse_entry

from .conftest import by_name, config, write_executable

# What each tool really prints for its version command.
VERSION_OUTPUTS = {
    "git": ("git version 2.39.5", "2.39.5"),
    "docker": ("Docker version 28.2.2, build e6534b4", "28.2.2"),
    "kubectl": ("Client Version: v1.32.4\nKustomize Version: v5.5.0", "1.32.4"),
    "helm": ("v3.14.0+g3fc9f4b", "3.14.0"),
    "nvidia-smi": ("NVIDIA-SMI version  : 580.159.04\nNVML version        : 580.159", "580.159.04"),
}


def test_versions_are_parsed_from_each_tools_own_output(bin_dir):
    for name, (output, _) in VERSION_OUTPUTS.items():
        # Only the right arguments get the version, as with the real tools.
        args = {"kubectl": "version --client", "helm": "version --short"}.get(name, "--version")
        write_executable(bin_dir, name, f'[ "$*" = "{args}" ] || exit 3\nprintf "%s\\n" "{output}"\n')
    report = run_checks(config(), only=["binaries"])
    for name, (_, version) in VERSION_OUTPUTS.items():
        check = by_name(report, name)
        assert check.status is Status.OK, check
        assert check.details["version"] == version
        assert check.value == f"{version} at {bin_dir / name}"
    assert by_name(report, "git").severity is Severity.REQUIRED
    assert by_name(report, "helm").severity is Severity.RECOMMENDED
    assert report.exit_code == ExitCode.OK


def test_a_missing_required_binary_fails_and_a_missing_recommended_one_warns(bin_dir):
    report = run_checks(config(), only=["binaries"])
    git = by_name(report, "git")
    assert (git.status, git.value) == (Status.FAIL, "not found on PATH")
    assert "Install git" in git.remedy
    assert by_name(report, "helm").status is Status.WARN
    assert report.summary.required_failed == 1
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_a_version_specifier_in_the_config_is_enforced(bin_dir):
    write_executable(bin_dir, "git", 'echo "git version 2.17.1"\n')
    report = run_checks(
        config("env_check: {required_binaries: ['git>=2.30'], recommended_binaries: []}"), only=["binaries"]
    )
    git = by_name(report, "git")
    assert git.status is Status.FAIL
    assert git.value == f"2.17.1 at {bin_dir / 'git'}, need >=2.30"
    assert git.remedy.startswith("Upgrade git to >=2.30")

    write_executable(bin_dir, "git", 'echo "git version 2.43.0"\n')
    report = run_checks(
        config("env_check: {required_binaries: ['git>=2.30'], recommended_binaries: []}"), only=["binaries"]
    )
    assert by_name(report, "git").status is Status.OK


def test_a_binary_without_a_version_is_found_but_says_so(bin_dir):
    write_executable(bin_dir, "helm", 'echo "Error: unknown flag" >&2\nexit 1\n')
    check = by_name(
        run_checks(config("env_check: {recommended_binaries: [helm]}"), only=["binaries"]), "helm"
    )
    assert check.status is Status.OK
    assert check.value.startswith(f"{bin_dir / 'helm'} (version unknown: ")
    assert "exited 1: Error: unknown flag" in check.value


def test_a_hanging_tool_is_cut_off_at_the_command_timeout(bin_dir):
    write_executable(bin_dir, "kubectl", "exec /bin/sleep 30\n")
    report = run_checks(
        config("env_check: {recommended_binaries: [kubectl], command_timeout: 0.3}"), only=["binaries"]
    )
    check = by_name(report, "kubectl")
    assert check.status is Status.WARN
    assert "(version unknown: `kubectl version --client` did not answer within 0.3 s)" in check.value


def test_the_real_git_on_path():
    git = shutil.which("git")
    assert git is not None, "git is needed by the test suite"
    expected = subprocess.run([git, "--version"], capture_output=True, text=True, check=True).stdout.split()[
        2
    ]
    check = by_name(run_checks(config(), only=["binaries"]), "git")
    assert check.status is Status.OK
    assert expected.startswith(check.details["version"])


def test_a_name_in_both_lists_is_checked_once_as_required(bin_dir):
    report = run_checks(
        config("env_check: {required_binaries: [docker], recommended_binaries: [docker, helm]}"),
        only=["binaries"],
    )
    assert [c.name for c in report.checks] == ["docker", "helm"]
    assert by_name(report, "docker").severity is Severity.REQUIRED


@pytest.mark.parametrize(
    ("entry", "name", "spec"),
    [("git", "git", ""), ("git>=2.30", "git", ">=2.30"), ("nvidia-smi >= 535", "nvidia-smi", ">= 535")],
)
def test_entries_are_a_name_and_an_optional_specifier(entry, name, spec):
    parsed = parse_entry(entry, "f")
    assert (parsed.name, parsed.specifier) == (name, spec)


def test_a_bad_specifier_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError) as info:
        run_checks(config("env_check: {required_binaries: ['git>=two']}"), only=["binaries"])
    assert info.value.field == "env_check.required_binaries[0]"
    assert info.value.exit_code == ExitCode.USAGE
