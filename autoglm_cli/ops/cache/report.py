"""The reports `migrate-cache` returns (frozen dataclasses; the CLI renders them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ExitCode
from .kind import Entry, Problem


@dataclass(frozen=True)
class ItemReport:
    action: str
    target: str
    source: str | None
    size: int
    done: bool


@dataclass(frozen=True)
class EntryReport:
    kind: str
    old: str  # the old key (repo id, relative path)
    new: str
    source: str
    target: str
    method: str  # link | copy | rename | link+copy | metadata | done
    items: int
    todo: int  # items still to do when planned
    bytes: int
    todo_bytes: int
    actions: dict[str, int]
    status: str  # planned | migrated | unchanged | failed | pruned
    item_list: tuple[ItemReport, ...] = ()

    @classmethod
    def of(cls, entry: Entry, status: str) -> EntryReport:
        return cls(
            kind=entry.kind,
            old=entry.old_key,
            new=entry.new_key,
            source=entry.source,
            target=entry.target,
            method=entry.method,
            items=len(entry.items),
            todo=len(entry.todo),
            bytes=entry.bytes,
            todo_bytes=entry.todo_bytes,
            actions=entry.methods,
            status=status,
            item_list=tuple(
                ItemReport(i.action.value, i.target, i.source, i.size, i.done) for i in entry.items
            ),
        )


@dataclass(frozen=True)
class RowReport:
    id: str
    kind: str
    old: str
    new: str
    location: str
    status: str  # pending | in_progress | completed | failed (from the journal after a run)
    entries: tuple[EntryReport, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    error_exit_code: int | None = None
    updated: float | None = None
    pruned: bool = False

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    @property
    def todo_bytes(self) -> int:
        return sum(e.todo_bytes for e in self.entries)


@dataclass(frozen=True)
class MigrationReport:
    mode: str  # plan | apply | status
    journal: str
    rows: tuple[RowReport, ...]
    copy: bool = False
    prune_old: bool = False
    pruned_entries: int = 0
    recovered_steps: int = 0
    verify_failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(p for r in self.rows for p in r.problems)

    @property
    def exit_code(self) -> ExitCode:
        if self.problems:
            return ExitCode.USAGE  # refused: colliding targets, unsafe symlinks, a download in progress
        codes = [r.error_exit_code for r in self.rows if r.status == "failed" and r.error_exit_code]
        if self.mode == "apply" and codes:
            return ExitCode(max(codes))
        if self.verify_failures:
            return ExitCode.CHECK_FAILED
        return ExitCode.OK
