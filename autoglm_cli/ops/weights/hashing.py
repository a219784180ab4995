"""Hashing while downloading, on another core.

`OverlappedHasher` takes the buffers the receive loop has just written to disk
and hashes them in a background thread (hashlib releases the GIL), so the hash is
ready when the last byte lands: one pass over the bytes, no re-read. Buffers come
from a small pool and go back to it once hashed, so memory stays bounded
(`depth` x `chunk_size`) and nothing is copied.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

CHUNK_SIZE = 1024 * 1024  # small enough to still be in the CPU cache when hashed


def git_blob_header(size: int) -> bytes:
    return b"blob %d\0" % size


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    git_oid: str | None = None  # git blob sha1, when asked for


class OverlappedHasher:
    """sha256 (and optionally the git blob sha1) of a stream of buffers, computed in a thread."""

    def __init__(self, *, git_size: int | None = None, chunk_size: int = CHUNK_SIZE, depth: int = 8) -> None:
        self._sha256 = hashlib.sha256()
        self._sha1 = None
        if git_size is not None:
            self._sha1 = hashlib.sha1(git_blob_header(git_size))  # noqa: S324 (git's object id)
        self.size = 0
        self.chunk_size = chunk_size
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(depth):
            self._free.put(bytearray(chunk_size))
        self._full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="autoglm-hasher", daemon=True)
        self._thread.start()

    def buffer(self) -> bytearray:
        """A free buffer to receive into (blocks while all are waiting to be hashed)."""
        return self._free.get()

    def submit(self, buf: bytearray, n: int) -> None:
        """Hash the first `n` bytes of `buf` (which must not be touched until it comes back)."""
        if n:
            self.size += n
            self._full.put((buf, n))
        else:
            self._free.put(buf)

    def give_back(self, buf: bytearray) -> None:
        self._free.put(buf)

    def update_from_file(self, path: Path, length: int) -> None:
        """Feed the first `length` bytes of a file (the partial download being resumed)."""
        with open(path, "rb", buffering=0) as fh:
            remaining = length
            while remaining:
                buf = self.buffer()
                n = fh.readinto(memoryview(buf)[: min(len(buf), remaining)])
                if not n:
                    self.give_back(buf)
                    raise OSError(f"{path} is shorter than the {length} bytes expected")
                self.submit(buf, n)
                remaining -= n

    def finish(self) -> Digests:
        self._full.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return Digests(
            size=self.size,
            sha256=self._sha256.hexdigest(),
            git_oid=self._sha1.hexdigest() if self._sha1 is not None else None,
        )

    def close(self) -> None:
        """Stop the thread without a result (the download failed)."""
        if self._thread.is_alive():
            self._full.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            buf, n = item
            try:
                view = memoryview(buf)[:n]
                self._sha256.update(view)
                if self._sha1 is not None:
                    self._sha1.update(view)
            except BaseException as exc:  # surfaced by finish()
                self._error = exc
            finally:
                self._free.put(buf)


def hash_file(path: Path, *, git: bool = False) -> Digests:
    """sha256 (and the git blob sha1 when `git`) of a file on disk, in one read."""
    from ..checksums.hashing import hash_file as sha256_of_file

    size = path.stat().st_size
    sha1 = hashlib.sha1(git_blob_header(size)) if git else None  # noqa: S324
    sha256 = sha256_of_file(path, also=sha1)
    return Digests(size=size, sha256=sha256, git_oid=sha1.hexdigest() if sha1 else None)
