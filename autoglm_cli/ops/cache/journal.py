"""The migration journal: an append-only JSON Lines file, fsynced, one writer at a time.

Why it exists: every item is idempotent and the plan is recomputed from the
disk on each run, so most of a crashed migration resumes by simply running it
again. Three things cannot be recomputed from the disk, and the journal keeps
them:

- *intents* for the steps that change the old location (a directory rename, a
  prune), written and fsynced *before* the step, so a rerun finishes the step
  (e.g. puts the compatibility symlink in place of a directory that moved);
- the sha256 of every verified copy, so --prune-old can prove a copy without
  trusting its size alone;
- each row's status (pending / in_progress / completed / failed) for `--status`.

A line cut short by a crash (the last one only) is ignored when reading.
Record types: `row`, `intent`, `done`, `copied`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import EnvironmentFailure
from ...user_dirs import state_dir

VERSION = 1

# Test hook (documented in docs/migrate-cache.md): seconds to sleep at every
# journal step, so a crash test can SIGKILL a migration between any two steps.
TEST_DELAY_ENV = "AUTOGLM_MIGRATE_TEST_STEP_DELAY"


def default_journal_path(environ=os.environ) -> Path:
    """`$AUTOGLM_STATE_DIR/migrate-cache.jsonl`, else under `$XDG_STATE_HOME/autoglm`."""
    return state_dir(environ) / "migrate-cache.jsonl"


@dataclass(frozen=True)
class RowStatus:
    row: str  # the row's id (kind, locations, old, new)
    kind: str
    old: str
    new: str
    status: str  # pending | in_progress | completed | failed
    location: str = ""
    pruned: bool = False
    updated: float | None = None
    error: str | None = None
    items: int | None = None
    bytes: int | None = None


def read_records(path: Path) -> list[dict]:
    """Every complete record; a torn last line (crash mid-write) is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class Journal:
    """One migration run's handle on the journal: holds an exclusive lock while open."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.records: list[dict] = []
        self._copies: dict[str, dict] = {}
        self._delay = float(os.environ.get(TEST_DELAY_ENV) or 0)

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EnvironmentFailure(
                f"another migrate-cache run holds the journal {self.path}",
                remedy="Wait for it to finish (a killed run releases the lock at once), then run again.",
            ) from None
        self._fd = fd
        self.records = read_records(self.path)
        self._copies = {r["target"]: r for r in self.records if r.get("t") == "copied"}
        self._repair_torn_tail()
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _repair_torn_tail(self) -> None:
        """Terminate a line cut short by a crash so the next record starts cleanly."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            last = f.read(1)
        if last != b"\n":
            os.write(self._fd, b"\n")
            os.fsync(self._fd)

    # -- writing ---------------------------------------------------------------

    def append(self, record: dict, *, sync: bool = True) -> None:
        if self._fd is None:
            raise RuntimeError("journal is not open")
        record = {"v": VERSION, "at": round(time.time(), 3), **record}
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._fd, line)  # O_APPEND: one write per record
        if sync:
            os.fsync(self._fd)
        self.records.append(record)
        if record.get("t") == "copied":
            self._copies[record["target"]] = record
        self.step()

    def step(self) -> None:
        """Called between migration steps; the documented test hook sleeps here."""
        if self._delay:
            time.sleep(self._delay)

    def row_status(self, row_id: str, status: str, **extra) -> None:
        self.append({"t": "row", "row": row_id, "status": status, **extra})

    def intent(self, key: str, kind: str, op: str, **data) -> None:
        self.append({"t": "intent", "id": key, "kind": kind, "op": op, **data})

    def done(self, key: str) -> None:
        self.append({"t": "done", "id": key})

    def copied(self, target: str, source: str, sha256: str, size: int) -> None:
        st = os.stat(source)
        self.append(
            {
                "t": "copied",
                "target": target,
                "source": source,
                "sha256": sha256,
                "size": size,
                "src_mtime_ns": st.st_mtime_ns,
            }
        )

    # -- reading ---------------------------------------------------------------

    def open_intents(self) -> list[dict]:
        return open_intents(self.records)

    def copies(self) -> dict[str, dict]:
        """The latest verified-copy record per target path."""
        return self._copies


def open_intents(records: list[dict]) -> list[dict]:
    """Intents whose step has no `done` record yet, oldest first."""
    done = {r["id"] for r in records if r.get("t") == "done"}
    seen: dict[str, dict] = {}
    for r in records:
        if r.get("t") == "intent" and r["id"] not in done:
            seen[r["id"]] = r
    return list(seen.values())


def row_statuses(records: list[dict]) -> dict[str, RowStatus]:
    """The latest status of every row the journal has seen."""
    rows: dict[str, RowStatus] = {}
    for r in records:
        if r.get("t") != "row":
            continue
        rows[r["row"]] = RowStatus(
            row=r["row"],
            kind=r.get("kind", ""),
            old=r.get("old", ""),
            new=r.get("new", ""),
            status=r["status"],
            location=r.get("location", ""),
            pruned=bool(r.get("pruned")),
            updated=r.get("at"),
            error=r.get("error"),
            items=r.get("items"),
            bytes=r.get("bytes"),
        )
    return rows
