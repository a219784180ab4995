"""The project's branch-name convention: `main`, `feature/*`, `bugfix/*`, `hotfix/*`, `release/*`.

Names outside it are reported as warnings, never changed: renaming someone's
branch is not ours to do. The patterns come from the config (`clone.branch_conventions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

DEFAULT_CONVENTIONS = ("main", "feature/*", "bugfix/*", "hotfix/*", "release/*")


def follows_convention(name: str, patterns: Sequence[str] = DEFAULT_CONVENTIONS) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def branch_warnings(names: Iterable[str], patterns: Sequence[str] = DEFAULT_CONVENTIONS) -> tuple[str, ...]:
    """One warning per branch name outside the convention, in the order given."""
    if not patterns:
        return ()
    expected = ", ".join(patterns)
    return tuple(
        f"branch `{name}` does not follow the naming convention ({expected})"
        for name in names
        if not follows_convention(name, patterns)
    )
