"""What a partial download holds, as recorded next to it, for the next run to resume.

For a destination `D`:

- `D.partial`: the bytes (a single stream fills it from the start; several
  ranges write it in place, so it may have holes);
- `D.partial.json`: what the bytes must become (size, sha256, git oid), plus for
  the ranged engine (format 2) the ranges complete at the last checkpoint, how
  much of the start of the file is hashed (`hashed`) and the hash state at that
  point, so a resume goes on hashing without re-reading those bytes. The state
  is written only after the partial file was fdatasync'd: a power cut can never
  leave a state that covers bytes the disk lost;
- `D.partial.ranges` (format 2): 16 bytes `(start, end)` appended after every
  write of a range, between checkpoints; a kill loses at most the buffers in flight.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ...atomic import atomic_write
from ...redact import redact_url
from .sources import RemoteFile

SINGLE_STREAM = 1  # the bytes are a prefix of the file: the partial file's length
RANGED = 2
PARTIAL_SUFFIX = ".partial"
SIDECAR_SUFFIX = ".partial.json"
JOURNAL_SUFFIX = ".partial.ranges"
_RECORD = struct.Struct("<QQ")


class Intervals:
    """Sorted, merged half-open byte ranges [start, end)."""

    def __init__(self, items=()) -> None:
        self._items: list[list[int]] = []
        for start, end in items:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if start >= end:
            return
        items = self._items
        i = bisect.bisect_left(items, [start, start])
        if i > 0 and items[i - 1][1] >= start:
            i -= 1
        j = i
        while j < len(items) and items[j][0] <= end:
            start, end = min(start, items[j][0]), max(end, items[j][1])
            j += 1
        items[i:j] = [[start, end]]

    def prefix(self) -> int:
        """Where the run of bytes from offset 0 ends."""
        return self._items[0][1] if self._items and self._items[0][0] == 0 else 0

    def total(self) -> int:
        return sum(end - start for start, end in self._items)

    def gaps(self, size: int) -> list[tuple[int, int]]:
        out, at = [], 0
        for start, end in self._items:
            if start > at:
                out.append((at, min(start, size)))
            at = max(at, end)
        if at < size:
            out.append((at, size))
        return [(s, e) for s, e in out if s < e]

    def overlap(self, start: int, end: int) -> int:
        return sum(max(0, min(e, end) - max(s, start)) for s, e in self._items)

    def as_list(self) -> list[tuple[int, int]]:
        return [(s, e) for s, e in self._items]

    def copy(self) -> Intervals:
        return Intervals(self.as_list())


@dataclass
class PartialState:
    format: int
    done: Intervals
    hashed: int = 0  # the first `hashed` bytes are in `states`
    states: dict[str, str] = field(default_factory=dict)  # algorithm -> saved hash state (base64)


def partial_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + PARTIAL_SUFFIX), dest.with_name(dest.name + SIDECAR_SUFFIX)


def journal_path(dest: Path) -> Path:
    return dest.with_name(dest.name + JOURNAL_SUFFIX)


def load_partial(dest: Path, remote: RemoteFile) -> PartialState | None:
    """The state of a partial download of `remote` at `dest`; None when there is none or it is stale."""
    partial, sidecar = partial_paths(dest)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        length = partial.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(
        data.get(key) != getattr(remote, key) for key in ("size", "sha256", "git_oid")
    ):
        return None
    size = remote.size
    if data.get("format") == SINGLE_STREAM:
        if size is not None and length > size:
            return None
        return PartialState(SINGLE_STREAM, Intervals([(0, length)]))
    if data.get("format") != RANGED or size is None:
        return None
    done = Intervals((s, e) for s, e in data.get("done", ()) if 0 <= s < e <= size)
    for start, end in read_journal(journal_path(dest)):
        if 0 <= start < end <= size:
            done.add(start, end)
    if length < size:  # the file lost its tail (or was never extended): keep what it still holds
        done = Intervals((s, min(e, length)) for s, e in done.as_list() if s < length)
    hashed = int(data.get("hashed") or 0)
    states = {k: v for k, v in (data.get("states") or {}).items() if isinstance(v, str)}
    if hashed > done.prefix() or not states:
        hashed, states = 0, {}
    return PartialState(RANGED, done, hashed, states)


def partial_bytes(dest: Path, remote: RemoteFile) -> int:
    """Bytes of `remote` already on disk in a matching partial file (0 when none or it is stale)."""
    state = load_partial(dest, remote)
    return state.done.total() if state else 0


def write_sidecar(dest: Path, remote: RemoteFile, state: PartialState | None = None) -> None:
    body: dict = {
        "format": state.format if state else SINGLE_STREAM,
        "path": remote.path,
        "url": redact_url(remote.urls[0]) if remote.urls else None,  # for people reading it; never a token
        "size": remote.size,
        "sha256": remote.sha256,
        "git_oid": remote.git_oid,
    }
    if state is not None and state.format == RANGED:
        body |= {"done": state.done.as_list(), "hashed": state.hashed, "states": state.states}
    atomic_write(partial_paths(dest)[1], json.dumps(body, indent=1).encode())


def read_journal(path: Path) -> list[tuple[int, int]]:
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    usable = len(raw) - len(raw) % _RECORD.size  # a torn last record is ignored
    return [_RECORD.unpack_from(raw, i) for i in range(0, usable, _RECORD.size)]


def journal_record(start: int, end: int) -> bytes:
    return _RECORD.pack(start, end)


def remove_partial(dest: Path) -> None:
    for path in (*partial_paths(dest), journal_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_bookkeeping(dest: Path) -> None:
    """The sidecar and the journal (after the file was published, or before a single stream)."""
    for path in (partial_paths(dest)[1], journal_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class Cancelled(Exception):
    """The run is being interrupted; the partial file stays for the next run."""
