"""Python packages against the specifiers in config `dependencies` (`torch>=1.13`, `dask[distributed]`).

Uses the installed distributions' metadata, never an import: importing torch to
learn its version would take seconds and could crash on a broken CUDA set-up.
"""

from __future__ import annotations

from ...config import Config
from ...errors import ConfigError
from .model import Check, CheckSpec, Severity

CATEGORY = "packages"


def plan(config: Config) -> list[CheckSpec]:
    from packaging.requirements import InvalidRequirement, Requirement

    specs = []
    for i, text in enumerate(config.dependencies):
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigError(
                f"{text!r} is not a requirement specifier ({exc})",
                field=f"dependencies[{i}]",
                remedy="Write it as pip does, e.g. `torch>=1.13` or `dask[distributed]`.",
            ) from None
        specs.append(
            CheckSpec(
                CATEGORY,
                requirement.name,
                Severity.REQUIRED,
                f"installed distribution satisfies `{text}`",
                run=lambda spec, req=requirement: check_requirement(spec, req),
                timeout=10,
            )
        )
    return specs


def check_requirement(spec: CheckSpec, req) -> Check:
    install = f"pip install '{req}'"
    if req.marker is not None and not req.marker.evaluate():
        return spec.ok(f"not needed here (marker: {req.marker})", requirement=str(req))
    version = installed_version(req.name)
    if version is None:
        return spec.problem("not installed", install, requirement=str(req))
    if not _satisfies(version, str(req.specifier)):
        return spec.problem(
            f"{version}, need {req.specifier}", install, requirement=str(req), version=version
        )
    missing = _missing_extra_requirements(req)
    if missing:
        return spec.problem(
            f"{version}, but extra requirement(s) missing: {', '.join(missing)}",
            install,
            requirement=str(req),
            version=version,
            missing=missing,
        )
    return spec.ok(version, requirement=str(req), version=version)


def installed_version(name: str) -> str | None:
    from importlib import metadata  # ~20 ms (email parsing): only when a package is looked up

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _satisfies(version: str, specifier: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if not specifier:
        return True
    try:
        # Pre-releases count: a user running torch 2.5.0rc1 asked for it.
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _missing_extra_requirements(req) -> list[str]:
    """The requirements an extra (`dask[distributed]`) pulls in that are absent or too old."""
    if not req.extras:
        return []
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in metadata.requires(req.name) or []:
        try:
            dep = Requirement(line)
        except InvalidRequirement:
            continue
        if dep.marker is None:
            continue  # a base requirement, not an extra's
        # An extra's requirement holds for that extra and not without one; a base
        # requirement with a platform marker holds (or not) either way.
        wanted = any(dep.marker.evaluate({"extra": extra}) for extra in req.extras)
        if not wanted or dep.marker.evaluate({"extra": ""}):
            continue
        version = installed_version(dep.name)
        if version is None or not _satisfies(version, str(dep.specifier)):
            missing.append(str(dep.name) + str(dep.specifier))
    return missing
