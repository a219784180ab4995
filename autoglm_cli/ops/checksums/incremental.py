"""`verify --incremental`: trust a file whose stat is unchanged since its hash was verified.

What git's index trusts: size, mtime_ns, ctime_ns, inode and device. Writing a byte
changes mtime and ctime; restoring the mtime (`touch -d`) still changes ctime, which
no unprivileged call can set back. A file replaced by another (a new blob behind a
snapshot link) has another inode. A record is kept per (manifest, root) under the
user's state dir, written atomically.

"Racily clean" files (git's term) are not recorded: a file whose mtime or ctime lies
within `RACY_NS` of the moment it was looked at could still change within the same
timestamp tick without its stat changing; it is hashed again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ...atomic import atomic_write
from ...user_dirs import state_dir

VERSION = 1
clock_ns = time.time_ns  # the wall clock; a test may replace it
RACY_NS = 2_000_000_000  # 2 s: the coarsest common timestamp granularity (FAT) plus margin


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileStamp:
        return cls(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def record_path(
    source: str | os.PathLike, root: str | os.PathLike, environ: Mapping[str, str] = os.environ
) -> Path:
    """The record for one manifest (or another source, e.g. `hf://REPO@COMMIT`) checked against one root."""
    where = os.fspath(source)
    key = f"{where if '://' in where else os.path.abspath(where)}\0{os.path.abspath(root)}"
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:32]
    return state_dir(environ) / "verify" / f"{digest}.json"


class StatRecord:
    """name -> (stamp, sha256) of the files verified last time."""

    def __init__(self, path: Path, *, now_ns: Callable[[], int] | None = None) -> None:
        self.path = path
        self.started_ns = (now_ns or clock_ns)()
        self._old: dict[str, tuple[FileStamp, str]] = _load(path)
        self._new: dict[str, tuple[FileStamp, str]] = {}

    def trusted_sha256(self, name: str, stamp: FileStamp) -> str | None:
        """The recorded sha256 when the file's stat is the one recorded with it, else None."""
        old = self._old.get(name)
        if old is None or old[0] != stamp:
            return None
        self._new[name] = old
        return old[1]

    def remember(self, name: str, stamp: FileStamp, sha256: str) -> None:
        """A file hashed now, with the stat taken before it was read."""
        if max(stamp.mtime_ns, stamp.ctime_ns) >= self.started_ns - RACY_NS:
            return  # racily clean: it could change within this tick unseen
        self._new[name] = (stamp, sha256)

    def save(self) -> None:
        files = {name: [*_fields(stamp), sha] for name, (stamp, sha) in sorted(self._new.items())}
        document = {"version": VERSION, "files": files}
        with contextlib.suppress(OSError):  # a record not written only costs a full hash next time
            atomic_write(self.path, json.dumps(document, separators=(",", ":")), mode=0o600)


def _fields(stamp: FileStamp) -> list[int]:
    return [stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode, stamp.device]


def _load(path: Path) -> dict[str, tuple[FileStamp, str]]:
    try:
        document = json.loads(path.read_bytes())
        if document.get("version") != VERSION:
            return {}
        return {
            name: (FileStamp(*(int(v) for v in row[:5])), str(row[5]))
            for name, row in document["files"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return {}  # no record, or one we cannot trust: hash everything
