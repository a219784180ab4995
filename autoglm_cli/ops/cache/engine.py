"""Plan, apply, verify and prune a cache migration; the journal makes it resumable.

Order of work, and why it is safe to SIGKILL at any point:

1. finish the journal's open intents (a rename whose compat symlink is missing,
   a prune that was cut short);
2. plan every row from what is on disk now (so a rerun skips what is done);
   refuse the whole run if any row has a problem (colliding targets, symlinks
   out of the cache root, a download in progress) - nothing is touched;
3. per row: apply each entry's items phase by phase (data, then symlinks, then
   refs), verify each one, make the old location resolve (compat), mark the row
   completed;
4. with --prune-old, only when every row completed: verify every item again,
   hashing what was copied or kept, then remove the old entries.

The old location is never written to before step 4, except by a directory rename
(journaled first, finished by step 1 after a crash).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from ...atomic import fsync_directory
from ...errors import AutoglmError, IntegrityError, MigrationRefused
from ...progress import NULL_PROGRESS, Progress
from ..checksums.hashing import hash_file
from . import registry
from .journal import Journal, open_intents, read_records, row_statuses
from .kind import Action, CacheKind, Entry, Item, Problem
from .locations import Locations
from .mapping import MappingRow, MappingTable
from .report import EntryReport, MigrationReport, RowReport


@dataclass(frozen=True)
class PlannedEntry:
    kind: CacheKind
    entry: Entry


@dataclass(frozen=True)
class PlannedRow:
    id: str
    row: MappingRow
    location: str
    entries: tuple[PlannedEntry, ...]
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


def plan(table: MappingTable, locations: Locations, *, copy: bool = False) -> list[PlannedRow]:
    """Read-only: what every row would do, with problems that forbid applying it."""
    rows = []
    for row in table.rows:
        kinds = registry.kinds_for(row, locations)
        entries, problems, notes = [], [], []
        for kind in kinds:
            kind_plan = kind.plan(row, copy=copy)
            entries += [PlannedEntry(kind, e) for e in kind_plan.entries]
            problems += kind_plan.problems
            notes += kind_plan.notes
        location = "; ".join(k.location for k in kinds)
        rows.append(
            PlannedRow(
                registry.row_id(row, kinds), row, location, tuple(entries), tuple(problems), tuple(notes)
            )
        )
    return _check_collisions(rows)


def _content(item: Item) -> tuple:
    """What an item puts at its target, for comparing two items aimed at one path."""
    if item.action in (Action.SYMLINK, Action.WRITE):
        return (item.action.value, item.text)
    if item.action is Action.RENAME:
        return ("tree", item.source)
    return ("file", item.size)


def _same_content(a: Item, b: Item) -> bool:
    if _content(a) != _content(b) or a.action is Action.RENAME:
        return False
    if _content(a)[0] != "file":
        return True
    sha_a = a.sha256 or (hash_file(a.source) if a.source else None)
    sha_b = b.sha256 or (hash_file(b.source) if b.source else None)
    return sha_a is not None and sha_a == sha_b


def _check_collisions(rows: list[PlannedRow]) -> list[PlannedRow]:
    """Two old entries aimed at one new path: fine with equal content (the second keeps
    the first's), refused otherwise."""
    claimed: dict[str, tuple[Entry, Item]] = {}
    result = []
    for prow in rows:
        problems = list(prow.problems)
        entries = []
        for pentry in prow.entries:
            items = []
            for item in pentry.entry.items:
                owner = claimed.get(item.target)
                if item.action is Action.MKDIR or owner is None or owner[0].source == pentry.entry.source:
                    claimed.setdefault(item.target, (pentry.entry, item))
                    items.append(item)
                    continue
                if _same_content(owner[1], item):
                    items.append(replace(item, action=Action.KEEP, done=item.done))
                    continue
                problems.append(
                    Problem(
                        pentry.kind.name,
                        item.target,
                        f"both {owner[0].old_key} and {pentry.entry.old_key} map here, "
                        "with different content",
                    )
                )
            entries.append(PlannedEntry(pentry.kind, replace(pentry.entry, items=tuple(items))))
        result.append(replace(prow, entries=tuple(entries), problems=tuple(problems)))
    return result


# --- apply -------------------------------------------------------------------


class _Runner:
    def __init__(self, journal: Journal, progress: Progress, jobs: int) -> None:
        self.journal = journal
        self.progress = progress
        self.jobs = jobs
        self._lock = threading.Lock()

    def record(self, fn, *args, **kwargs) -> None:
        with self._lock:
            fn(*args, **kwargs)

    def apply_entry(self, pentry: PlannedEntry, task, pool: ThreadPoolExecutor) -> None:
        kind, entry = pentry.kind, pentry.entry
        todo = entry.todo
        for phase in sorted({i.phase for i in todo}):
            batch = [i for i in todo if i.phase == phase]
            # data items run in parallel (copies hash on every core); the rest is cheap
            if len(batch) > 1 and any(i.action is Action.COPY or i.action is Action.LINK for i in batch):
                futures = [pool.submit(self.apply_item, kind, item, task) for item in batch]
                errors = [f.exception() for f in futures]  # waits for all: none left running
                first = next((e for e in errors if e is not None), None)
                if first is not None:
                    raise first
            else:
                for item in batch:
                    self.apply_item(kind, item, task)
        kind.compat(entry)
        for item in todo:
            if item.action is Action.RENAME:
                self.record(self.journal.done, f"rename:{item.target}")

    def apply_item(self, kind: CacheKind, item: Item, task) -> None:
        if item.action is Action.RENAME:
            self.record(
                self.journal.intent,
                f"rename:{item.target}",
                kind.name,
                "rename",
                source=item.source,
                target=item.target,
                ino=item.ino,
            )
        applied = kind.apply(item, on_bytes=task.advance)
        copied = None
        if applied.action is Action.COPY and applied.sha256:
            self.record(self.journal.copied, item.target, item.source, applied.sha256, applied.size)
            copied = self.journal.copies().get(item.target)
        else:
            self.record(self.journal.step)
        problem = kind.verify(item, deep=False, copied=copied)
        if problem:
            raise IntegrityError(f"{item.target}: {problem} after {item.action.value} from {item.source}")


def migrate(
    table: MappingTable,
    locations: Locations,
    *,
    journal_path: str | os.PathLike,
    apply: bool = False,
    copy: bool = False,
    prune_old: bool = False,
    jobs: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> MigrationReport:
    """Plan the migration and, with `apply`, carry it out (see the module docstring)."""
    journal_path = Path(journal_path)
    if not apply:
        records = read_records(journal_path)
        statuses = row_statuses(records)
        open_steps = len(open_intents(records))
        rows = plan(table, locations, copy=copy)
        notes = (
            (f"a previous run was interrupted: {open_steps} step(s) will be finished first",)
            if open_steps
            else ()
        )
        return MigrationReport(
            mode="plan",
            journal=str(journal_path),
            rows=tuple(_row_report(r, statuses.get(r.id), "planned") for r in rows),
            copy=copy,
            prune_old=prune_old,
            notes=notes,
        )

    # more threads than cores: a copy waiting in fsync leaves its core to another copy
    jobs = jobs or min(8, 2 * (os.cpu_count() or 1))
    with Journal(journal_path) as journal:
        recovered = _recover(journal)
        rows = plan(table, locations, copy=copy)
        problems = [p for r in rows for p in r.problems]
        if problems:
            raise MigrationRefused(_problems_message(problems))
        runner = _Runner(journal, progress, jobs)
        reports: list[RowReport] = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for prow in rows:
                reports.append(_apply_row(prow, runner, pool))
        verify_failures: tuple[str, ...] = ()
        pruned = 0
        notes: list[str] = []
        if prune_old:
            if any(r.status != "completed" for r in reports):
                notes.append("old entries kept: not every row completed")
            else:
                verify_failures = _verify_all(rows, journal, progress)
                if verify_failures:
                    notes.append("old entries kept: some new entries did not verify")
                else:
                    pruned = _prune(rows, journal, progress)
                    reports = [replace(r, pruned=True) for r in reports]
    statuses = row_statuses(read_records(journal_path))
    return MigrationReport(
        mode="apply",
        journal=str(journal_path),
        rows=tuple(replace(r, updated=statuses[r.id].updated if r.id in statuses else None) for r in reports),
        copy=copy,
        prune_old=prune_old,
        pruned_entries=pruned,
        recovered_steps=recovered,
        verify_failures=verify_failures,
        notes=tuple(notes),
    )


def _recover(journal: Journal) -> int:
    """Finish what the last run started and could not finish (it was killed)."""
    count = 0
    for record in journal.open_intents():
        finish = registry.RECOVER.get(record.get("op", ""))
        if finish is None:
            continue
        finish(record)
        journal.done(record["id"])
        count += 1
    return count


def _row_meta(prow: PlannedRow) -> dict:
    return {"kind": prow.row.kind, "old": prow.row.old, "new": prow.row.new, "location": prow.location}


def _apply_row(prow: PlannedRow, runner: _Runner, pool: ThreadPoolExecutor) -> RowReport:
    journal = runner.journal
    total_items = sum(len(p.entry.items) for p in prow.entries)
    total_bytes = sum(p.entry.bytes for p in prow.entries)
    todo_bytes = sum(p.entry.todo_bytes for p in prow.entries)
    runner.record(
        journal.row_status, prow.id, "in_progress", **_row_meta(prow), items=total_items, bytes=total_bytes
    )
    task = runner.progress.task(f"{prow.row.label}", total=todo_bytes or None, unit="bytes")
    entry_reports = []
    try:
        for pentry in prow.entries:
            status = "migrated" if pentry.entry.todo else "unchanged"
            runner.apply_entry(pentry, task, pool)
            entry_reports.append(EntryReport.of(pentry.entry, status))
        for pentry in prow.entries:
            for directory in {os.path.dirname(i.target) for i in pentry.entry.todo}:
                fsync_directory(directory)
    except (AutoglmError, OSError) as exc:
        message = exc.message if isinstance(exc, AutoglmError) else f"{type(exc).__name__}: {exc}"
        code = int(exc.exit_code) if isinstance(exc, AutoglmError) else 3
        runner.record(journal.row_status, prow.id, "failed", **_row_meta(prow), error=message)
        done = {e.source for e in entry_reports}
        entry_reports += [
            EntryReport.of(p.entry, "failed") for p in prow.entries if p.entry.source not in done
        ]
        task.finish()
        return _row_report(prow, None, "failed", entries=entry_reports, error=message, code=code)
    task.finish()
    runner.record(
        journal.row_status, prow.id, "completed", **_row_meta(prow), items=total_items, bytes=total_bytes
    )
    return _row_report(prow, None, "completed", entries=entry_reports)


def _verify_all(rows: list[PlannedRow], journal: Journal, progress: Progress) -> tuple[str, ...]:
    """Before pruning: every item of every row, hashing copies and kept files."""
    copies = journal.copies()
    items = [(p.kind, i) for r in rows for p in r.entries for i in p.entry.items]
    hashed = {i.target for _, i in items if i.action in (Action.COPY, Action.KEEP) or i.target in copies}
    total = sum(i.size for _, i in items if i.target in hashed)
    task = progress.task("verifying before prune", total=total or None, unit="bytes")
    failures = []
    for kind, item in items:
        problem = kind.verify(item, deep=True, copied=copies.get(item.target))
        if problem:
            failures.append(f"{item.target}: {problem}")
        if item.target in hashed:
            task.advance(item.size)
    task.finish()
    return tuple(failures)


def _prune(rows: list[PlannedRow], journal: Journal, progress: Progress) -> int:
    count = 0
    for prow in rows:
        for pentry in prow.entries:
            entry = pentry.entry
            paths = [p for p in entry.prune_paths if os.path.lexists(p)]
            if not paths:
                continue
            key = f"prune:{entry.source}"
            journal.intent(key, pentry.kind.name, "prune-paths", paths=paths)
            pentry.kind.prune(paths)
            journal.done(key)
            count += 1
        journal.row_status(prow.id, "completed", **_row_meta(prow), pruned=True)
    return count


def _problems_message(problems: Iterable[Problem]) -> str:
    problems = list(problems)
    lines = [f"{p.path}: {p.message}" for p in problems[:5]]
    more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"refusing to migrate ({len(problems)} problem(s)):\n  " + "\n  ".join(lines) + more


def _row_report(
    prow: PlannedRow, journaled, status: str, *, entries=None, error=None, code=None
) -> RowReport:
    if entries is None:
        entries = [EntryReport.of(p.entry, status) for p in prow.entries]
    row_status = status
    if status == "planned":
        row_status = journaled.status if journaled is not None else "pending"
    return RowReport(
        id=prow.id,
        kind=prow.row.kind,
        old=prow.row.old,
        new=prow.row.new,
        location=prow.location,
        status=row_status,
        entries=tuple(entries),
        problems=prow.problems,
        notes=prow.notes,
        error=error,
        error_exit_code=code,
        updated=journaled.updated if journaled is not None else None,
    )


def status(table: MappingTable, locations: Locations, *, journal_path: str | os.PathLike) -> MigrationReport:
    """Every row's status from the journal; rows of the table it has not seen are pending."""
    statuses = row_statuses(read_records(Path(journal_path)))
    rows: list[RowReport] = []
    for row in table.rows:
        kinds = registry.kinds_for(row, locations)
        rid = registry.row_id(row, kinds)
        seen = statuses.pop(rid, None)
        rows.append(
            RowReport(
                id=rid,
                kind=row.kind,
                old=row.old,
                new=row.new,
                location="; ".join(k.location for k in kinds),
                status=seen.status if seen else "pending",
                error=seen.error if seen else None,
                updated=seen.updated if seen else None,
            )
        )
    for seen in statuses.values():  # rows of earlier runs that this table does not list
        rows.append(
            RowReport(
                id=seen.row,
                kind=seen.kind,
                old=seen.old,
                new=seen.new,
                location=seen.location or "",
                status=seen.status,
                error=seen.error,
                updated=seen.updated,
            )
        )
    return MigrationReport(mode="status", journal=str(journal_path), rows=tuple(rows))
