"""What env-check produces: checks with a severity and a status, and the report.

A category module describes its checks as `CheckSpec`s (what will be checked, how
severe a problem is) before anything runs, so `--list-checks` can show the plan;
running a spec yields one or more `Check` results. The status follows from the
severity: a problem with a required check is a `fail`, any other problem a `warn`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ExitCode
from ..status import Status


class Severity(str, enum.Enum):
    REQUIRED = "required"  # the deployment cannot work without it
    RECOMMENDED = "recommended"  # some features or targets need it
    INFO = "info"  # reported for the record


@dataclass(frozen=True)
class Check:
    """One result: what was checked, what was found, and what to do about it."""

    category: str
    name: str
    severity: Severity
    status: Status
    value: str  # what was found, one line
    remedy: str = ""  # one line; empty when the check is ok
    details: Mapping[str, Any] = field(default_factory=dict)  # structured facts for --json


@dataclass(frozen=True)
class CheckSpec:
    """A check before it runs: enough to list it, and the function that runs it.

    `run` receives the spec (to build its results with `ok` / `problem`) and
    returns one `Check` or several (one per GPU, say).
    """

    category: str
    name: str
    severity: Severity
    description: str
    run: Callable[[CheckSpec], Check | list[Check]] = field(repr=False, compare=False)
    timeout: float = 30.0  # the runner gives up on the check after this long

    def ok(self, value: str, **details: Any) -> Check:
        return Check(self.category, self.name, self.severity, Status.OK, value, "", details)

    def problem(self, value: str, remedy: str, **details: Any) -> Check:
        status = Status.FAIL if self.severity is Severity.REQUIRED else Status.WARN
        return Check(self.category, self.name, self.severity, status, value, remedy, details)

    def named(self, name: str) -> CheckSpec:
        """The same spec under another name, for a check that reports several results."""
        return CheckSpec(self.category, name, self.severity, self.description, self.run, self.timeout)


@dataclass(frozen=True)
class PlannedCheck:
    """A spec as `--list-checks` shows it."""

    category: str
    name: str
    severity: Severity
    description: str


@dataclass(frozen=True)
class Summary:
    total: int
    ok: int
    warn: int
    fail: int
    required_failed: int


@dataclass(frozen=True)
class EnvReport:
    categories: tuple[str, ...]  # the categories that ran, in display order
    checks: tuple[Check, ...]
    summary: Summary
    elapsed_s: float

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if self.summary.required_failed else ExitCode.OK


@dataclass(frozen=True)
class CheckPlan:
    """What `--list-checks` reports: the checks that would run, nothing run."""

    categories: tuple[str, ...]
    checks: tuple[PlannedCheck, ...]


def summarize(checks: tuple[Check, ...] | list[Check]) -> Summary:
    by_status = {status: sum(1 for c in checks if c.status is status) for status in Status}
    required_failed = sum(1 for c in checks if c.status is Status.FAIL and c.severity is Severity.REQUIRED)
    return Summary(
        total=len(checks),
        ok=by_status[Status.OK],
        warn=by_status[Status.WARN],
        fail=by_status[Status.FAIL],
        required_failed=required_failed,
    )
