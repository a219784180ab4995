"""Binaries on PATH and their versions: git, docker, kubectl, helm, nvidia-smi, ...

Which are required comes from `env_check.required_binaries` (default: git) and
`env_check.recommended_binaries`; an entry may carry a version specifier in the
syntax of Python requirements, e.g. `git>=2.30`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from ...config import Config
from ...errors import ConfigError
from .commands import parse_version, run_command
from .model import Check, CheckSpec, Severity

CATEGORY = "binaries"

# How to ask each tool for its version; anything else gets `--version`.
VERSION_ARGS: dict[str, list[str]] = {
    "kubectl": ["version", "--client"],
    "helm": ["version", "--short"],
    "go": ["version"],
}

INSTALL_HINTS: dict[str, str] = {
    "git": "Install git (Debian/Ubuntu: `apt-get install git`).",
    "docker": "Install Docker Engine (https://docs.docker.com/engine/install/).",
    "kubectl": "Install kubectl (https://kubernetes.io/docs/tasks/tools/).",
    "helm": "Install helm (https://helm.sh/docs/intro/install/).",
    "nvidia-smi": "Install the NVIDIA driver; nvidia-smi ships with it.",
}

_ENTRY_RE = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.+-]+?)\s*(?P<spec>(?:[<>=!~]=?|===).*)?$")


@dataclass(frozen=True)
class BinaryRequirement:
    name: str
    specifier: str  # "" when any version will do


def parse_entry(entry: str, field: str) -> BinaryRequirement:
    """`git>=2.30` -> BinaryRequirement("git", ">=2.30"); a ConfigError naming `field` when malformed."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    match = _ENTRY_RE.match(entry)
    if not match:
        raise ConfigError(f"{entry!r} is not a binary name with an optional version specifier", field=field)
    spec = (match.group("spec") or "").strip()
    if spec:
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise ConfigError(f"{entry!r}: {spec!r} is not a valid version specifier", field=field) from None
    return BinaryRequirement(match.group("name"), spec)


def plan(config: Config) -> list[CheckSpec]:
    section = config.env_check
    seen: dict[str, tuple[BinaryRequirement, Severity]] = {}
    for severity, entries, key in (
        (Severity.REQUIRED, section.required_binaries, "required_binaries"),
        (Severity.RECOMMENDED, section.recommended_binaries, "recommended_binaries"),
    ):
        for i, entry in enumerate(entries):
            requirement = parse_entry(entry, f"env_check.{key}[{i}]")
            seen.setdefault(requirement.name, (requirement, severity))  # required wins over recommended

    timeout = float(section.command_timeout)
    return [
        CheckSpec(
            CATEGORY,
            req.name,
            severity,
            f"`{req.name}` on PATH"
            + (f", version {req.specifier}" if req.specifier else "")
            + ", and its version",
            run=lambda spec, req=req: check_binary(spec, req, timeout),
            timeout=timeout + 5,
        )
        for req, severity in seen.values()
    ]


def check_binary(spec: CheckSpec, req: BinaryRequirement, timeout: float) -> Check:
    hint = INSTALL_HINTS.get(req.name, f"Install {req.name} and put it on PATH.")
    path = shutil.which(req.name, path=os.environ.get("PATH", os.defpath))
    if path is None:
        return spec.problem("not found on PATH", hint)

    output = run_command([path, *VERSION_ARGS.get(req.name, ["--version"])], timeout)
    version = parse_version(output.text) if output.ok else None
    if version is None:
        found = f"{path} (version unknown: {output.error or 'no version in its output'})"
        if output.timed_out:  # a tool that hangs on --version will hang on real work too
            return spec.problem(found, f"Check that {path} works when run by hand.", path=path)
        if req.specifier:
            return spec.problem(
                found, f"Check that {path} is a working {req.name} {req.specifier}.", path=path
            )
        return spec.ok(found, path=path, version=None)

    found = f"{version} at {path}"
    if req.specifier and not _satisfies(version, req.specifier):
        return spec.problem(
            f"{found}, need {req.specifier}",
            f"Upgrade {req.name} to {req.specifier}. {hint}",
            path=path,
            version=version,
            required=req.specifier,
        )
    return spec.ok(found, path=path, version=version, required=req.specifier or None)


def _satisfies(version: str, specifier: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False
