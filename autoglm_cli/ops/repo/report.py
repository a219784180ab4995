"""What `autoglm clone` reports: one row per URL it looked at, and the checkout's state.

Every URL in a report is already redacted; the raw URLs (tokens included) stay in
the plan objects, which are never rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import ExitCode

RowKind = Literal["remote", "pushurl", "submodule"]

# cloned: fresh clone done; repointed: URL changed after the proof; unchanged: URL kept
# (its history checked); hijacked: the URL kept answers with another project's history;
# unrelated: the new URL holds another project (refused); unchecked: could not be probed
# (a push-only URL), left as is; stale: a submodule URL a `moves` entry covers, not rewritten.
RowStatus = Literal["cloned", "repointed", "unchanged", "hijacked", "unrelated", "unchecked", "stale"]

FAILED_STATUSES = ("hijacked", "unrelated")


@dataclass(frozen=True)
class UrlChange:
    kind: RowKind
    name: str  # the remote's name, or the submodule's path
    old: str  # redacted
    new: str  # redacted; equal to `old` when unchanged
    status: RowStatus
    proof: str = ""  # e.g. "holds 1a2b3c4d5e (tip of main)"
    verdict: str | None = None  # contains | shared-history | unrelated | None (not probed)
    rule: str | None = None  # the `moves` key (or "--to") that produced `new`

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class CloneReport:
    action: Literal["clone", "repoint"]
    directory: str
    dry_run: bool
    changes: tuple[UrlChange, ...]
    branch: str | None  # the checked-out branch (None: detached HEAD)
    commit: str | None  # HEAD
    upstream: str | None  # e.g. origin/main
    ahead: int | None  # commits on HEAD not on the upstream
    behind: int | None  # commits on the upstream not on HEAD
    fetched: tuple[str, ...]  # remotes (and submodule paths) fetched
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if any(c.failed for c in self.changes) else ExitCode.OK

    @property
    def changed(self) -> bool:
        return any(c.status in ("cloned", "repointed") for c in self.changes)
