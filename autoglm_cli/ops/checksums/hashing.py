"""SHA-256 of files, one file per thread.

Threads are enough: `hashlib` (OpenSSL, SHA-NI here) releases the GIL while it
hashes a block bigger than 2 KiB and `readinto` releases it while the kernel
copies, so N threads keep N cores busy. One file is one SHA-256 stream and
cannot be split, so parallelism is across files; the largest go first so that
the last core is not left hashing one big file alone at the end.

Each thread reads into one reused 1 MiB buffer (`readinto` + `memoryview`):
no allocation per block, and a block big enough that Python's per-call overhead
vanishes next to the hashing, yet small enough to stay in the core's L2 cache
between the kernel's copy and the hash. Measured here (docs/benchmarks.md):
8 MiB blocks spill to RAM and run ~5% slower; hashing an mmap straight from
RAM runs at ~1.1 GiB/s against ~1.4 GiB/s for copy-into-L2-then-hash.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...progress import NULL_PROGRESS, Progress
from .tree import file_kind

BLOCK_SIZE = 1 << 20

_thread_state = threading.local()


class NotRegularFileError(OSError):
    """A FIFO, socket, device or directory where a file was expected.

    Opening a FIFO for reading would block until a writer appears and a device
    such as /dev/zero never ends, so these are refused before the first read.
    """


class HashingCancelled(Exception):
    """Raised inside worker threads once the caller gave up (Ctrl-C)."""


def default_jobs() -> int:
    """One thread per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def hash_file(
    path: str | os.PathLike[str],
    *,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    also: Any = None,
) -> str:
    """The SHA-256 of a regular file as lower-case hex: the one way autoglm hashes a file.

    Raises `OSError` when the file cannot be read (`NotRegularFileError` for
    FIFOs, devices and directories). `on_bytes(n)` is called after each block.
    `also` (a hashlib object) is fed the same bytes in the same read, e.g. the git
    blob sha1 that `ops.weights` needs for small Hub files.
    """
    # O_NONBLOCK: opening a FIFO must not hang; it has no effect on regular files.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(0, f"not a regular file ({file_kind(mode)})", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb", buffering=0) as handle:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # bigger read-ahead on cold files
        buffer = _thread_buffer()
        view = memoryview(buffer)
        digest = hashlib.sha256()
        while True:
            if cancel is not None and cancel.is_set():
                raise HashingCancelled()
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if also is not None:
                also.update(view[:count])
            if on_bytes is not None:
                on_bytes(count)
    return digest.hexdigest()


def _thread_buffer() -> bytearray:
    buffer = getattr(_thread_state, "buffer", None)
    if buffer is None:
        buffer = _thread_state.buffer = bytearray(BLOCK_SIZE)
    return buffer


@dataclass(frozen=True)
class HashResult:
    """The outcome for one path: a digest, or why the file could not be read."""

    path: Path
    sha256: str | None
    size: int  # bytes hashed (0 when unreadable)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.sha256 is not None


def hash_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    jobs: int | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "hashing",
) -> list[HashResult]:
    """Hash `paths` in parallel; results in the order of `paths`.

    Unreadable files come back with `error` set, never as an exception. The
    progress task counts bytes. On KeyboardInterrupt the threads stop at their
    next block and the interrupt propagates.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    sizes = [_size_hint(p) for p in paths]
    task = progress.task(description, total=sum(sizes), unit="bytes")
    cancel = threading.Event()
    workers = max(1, min(jobs or default_jobs(), len(paths)))
    results: list[HashResult | None] = [None] * len(paths)

    def hash_one(path: Path) -> HashResult:
        hashed = 0

        def count(n: int) -> None:
            nonlocal hashed
            hashed += n
            task.advance(n)

        try:
            return HashResult(path, hash_file(path, on_bytes=count, cancel=cancel), hashed)
        except OSError as exc:
            return HashResult(path, None, 0, describe_os_error(exc))

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sha256")
    try:
        # Largest first: the tail of the run is then made of small files.
        order = sorted(range(len(paths)), key=lambda i: sizes[i], reverse=True)
        futures = {pool.submit(hash_one, paths[i]): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        task.finish()
    return [r for r in results if r is not None]


def _size_hint(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def describe_os_error(exc: OSError) -> str:
    """`Permission denied`, `Is a directory`...: the reason without the path."""
    return exc.strerror or str(exc)
