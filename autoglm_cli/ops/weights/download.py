"""The download engine: one file, resumable across runs, hashed while it streams.

For a destination `D` the bytes go to `D.partial`, described by `D.partial.json`
(what the bytes must become: size, sha256, git oid; see `partial_state`). Files
over 64 MiB (or any file given `connections` > 1) are fetched as several byte
ranges at once by `ranged.RangedFill`, which keeps the hash state across runs;
a server that ignores Range sends such a file back here, to one stream. One
stream re-hashes the bytes already on disk and asks for the rest with `Range`. A server
that ignores `Range` (200) restarts the file from zero with that same response; a
416 means either "you already have it all" or "start over". The file is renamed to
`D` only after its size and hash match; a mismatch deletes the partial file and
downloads once more from zero, then fails with both hashes. Corrupted bytes never
reach `D`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...atomic import fsync_directory
from ...errors import EnvironmentFailure, IntegrityError, NetworkError
from ...progress import NULL_PROGRESS, Progress, ProgressTask
from ...redact import redact_url
from ...retry import DEFAULT_RETRY, RetryPolicy
from .hashing import CHUNK_SIZE, Digests, OverlappedHasher, hash_file
from .http import RETRY_STATUSES, TransientHttpError, retry_after_header
from .partial_state import (
    PARTIAL_SUFFIX,
    SIDECAR_SUFFIX,
    SINGLE_STREAM,
    Cancelled,
    PartialState,
    load_partial,
    partial_bytes,
    partial_paths,
    remove_bookkeeping,
    remove_partial,
    write_sidecar,
)
from .ranged import Origin, RangedFill, RangesIgnored, connections_for, origin_label
from .response import body_reader, content_range_start, content_range_total, describe, transient_types
from .sources import RemoteFile

SIDECAR_FORMAT = SINGLE_STREAM
__all__ = ["PARTIAL_SUFFIX", "SIDECAR_SUFFIX", "Downloader", "FileOutcome", "partial_bytes", "partial_paths"]


@dataclass(frozen=True)
class FileOutcome:
    path: str  # the file's path in the repo (or its name)
    destination: Path
    size: int
    sha256: str
    status: Literal["fetched", "resumed", "reused"]
    bytes_fetched: int  # received over the network for this file, discarded bytes included
    bytes_reused: int  # already on disk before this run (a complete file or a partial one)
    restarts: int = 0  # times it started over from zero (Range ignored, 416, hash mismatch)
    connections: int = 1  # parallel byte ranges used for it
    bytes_rehashed: int = 0  # bytes of an earlier run read back from disk to rebuild the hash
    origins: tuple[Origin, ...] = ()  # which bytes came from which endpoint in this run
    verified: bool = True  # False: no hash was known (--allow-unverified)


class _RestartFromZero(Exception):
    pass


class _DiskError(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class Downloader:
    """Downloads `RemoteFile`s with one shared session; safe to use from several threads."""

    def __init__(
        self,
        session,
        *,
        timeout: float | tuple[float, float] = 60.0,
        policy: RetryPolicy = DEFAULT_RETRY,
        chunk_size: int = CHUNK_SIZE,
        cancel: threading.Event | None = None,
        on_note: Callable[[str], None] | None = None,
        connections: int | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.connect_timeout = timeout[0] if isinstance(timeout, tuple) else timeout
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        # No byte for this long: the connection is stalled (the ranged engine moves to the next endpoint).
        self.stall_timeout = float(stall_timeout or read_timeout)
        self.connections = connections  # None: 8 for files over 64 MiB, else 1
        self.policy = policy  # tries, backoff, and the (injectable) sleep
        self.chunk_size = chunk_size
        self.cancel = cancel or threading.Event()
        self.on_note = on_note or (lambda message: None)

    def download(
        self,
        remote: RemoteFile,
        dest: Path,
        *,
        progress: Progress = NULL_PROGRESS,
        total: ProgressTask | None = None,
        lock: Path | None = None,
    ) -> FileOutcome:
        """Bring `remote` to `dest`, verified; resumes a partial file left by an earlier run.

        `lock` (a file) keeps two downloads of the same destination apart, across
        threads and processes; the cache layouts pass huggingface_hub's own lock
        paths, so `hf download` and `fetch-weights` wait for each other too.
        """
        if lock is None:
            return self._download(remote, dest, progress, total)
        from filelock import FileLock, Timeout

        lock.parent.mkdir(parents=True, exist_ok=True)
        guard = FileLock(str(lock))
        try:
            guard.acquire(timeout=0)
        except Timeout:
            self.on_note(f"{remote.path}: another download of it is running; waiting for it")
            guard.acquire()
            done = _already_there(remote, dest)  # the other download may have finished it
            if done is not None:
                guard.release()
                return done
        try:
            return self._download(remote, dest, progress, total)
        finally:
            guard.release()

    def _download(
        self, remote: RemoteFile, dest: Path, progress: Progress, total: ProgressTask | None
    ) -> FileOutcome:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_paths(dest)[0]
        task = progress.task(remote.path, total=remote.size, transient=True, unit="bytes")
        run = _Run(remote, partial, task, total)
        run.connections = connections_for(remote.size, self.connections)
        try:
            state = load_partial(dest, remote)
            if state is None:
                remove_partial(dest)
            for attempt in (1, 2):
                digests = self._fill_file(run, dest, state)
                problem = mismatch(remote, digests)
                if problem is None:
                    _publish(partial, dest)
                    remove_bookkeeping(dest)
                    status = "resumed" if run.reused else "fetched"
                    return FileOutcome(
                        remote.path,
                        dest,
                        digests.size,
                        digests.sha256,
                        status,
                        run.fetched,
                        run.reused,
                        run.restarts,
                        connections=run.connections,
                        bytes_rehashed=run.rehashed,
                        origins=run.origin_list(),
                        verified=remote.sha256 is not None or remote.git_oid is not None,
                    )
                remove_partial(dest)
                state = None
                if attempt == 2:
                    raise IntegrityError(
                        f"{remote.path}: {problem} after a second download from zero "
                        f"({redact_url(run.url)}); the bad bytes were deleted, {dest} was not written.",
                        remedy="The source serves bad bytes: try another endpoint (--endpoint) or report it.",
                    )
                self.on_note(f"{remote.path}: {problem}; deleting it and downloading again from zero")
                run.restarts += 1
                run.reused = 0
                run.rewind_progress()
            raise AssertionError("unreachable")
        finally:
            task.finish()

    def _fill_file(self, run: _Run, dest: Path, state: PartialState | None) -> Digests:
        """Several ranges when the file is big enough (and the server allows it), else one stream."""
        if run.connections > 1:
            if state is not None and state.done.total():
                run.advance(state.done.total(), count_fetched=False)
            fill = RangedFill(
                self,
                run.remote,
                dest,
                run.partial,
                connections=run.connections,
                state=state,
                advance=run.advance,
            )
            try:
                result = fill.run()
            except RangesIgnored as why:
                self.on_note(f"{run.remote.path}: {why}; going on with one stream")
                run.connections = 1
                run.add_origins(fill.origins)
                state = load_partial(dest, run.remote)
            else:
                run.reused += result.reused
                run.rehashed += result.rehashed
                run.add_origins({o.endpoint: o.ranges for o in result.origins})
                return result.digests
        # One stream continues from the contiguous prefix (it writes only from there on).
        offset = state.done.prefix() if state is not None else 0
        if state is None or state.format != SINGLE_STREAM:
            # Cut a ranged partial to its prefix before the sidecar says "a prefix": a kill in
            # between must never leave a full-length file with holes described as one.
            with contextlib.suppress(FileNotFoundError):
                os.truncate(run.partial, offset)
            remove_bookkeeping(dest)
            write_sidecar(dest, run.remote)
        run.rewind_progress()
        return self._fill(run, offset)

    # -- one pass: partial file -> complete partial file, hashed ----------------

    def _fill(self, run: _Run, offset: int) -> Digests:
        run.hasher = self._new_hasher(run.remote)
        try:
            mode = "r+b" if offset and run.partial.exists() else "wb"
            with open(run.partial, mode, buffering=0) as out:
                run.out = out
                out.truncate(offset)
                out.seek(offset)
                if offset:
                    run.hasher.update_from_file(run.partial, offset)
                    run.reused = offset
                    run.rehashed += offset
                    run.advance(offset, count_fetched=False)
                run.offset = run.written_back = offset
                self._receive(run)
                try:
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise _DiskError(exc) from None
            return run.hasher.finish()
        except _DiskError as exc:
            raise EnvironmentFailure(
                f"cannot write {run.partial}: {exc.error.strerror or exc.error}",
                remedy="Free disk space or fix permissions, then run the command again: it resumes.",
            ) from None
        finally:
            run.hasher.close()
            run.out = None

    def _new_hasher(self, remote: RemoteFile) -> OverlappedHasher:
        need_git = not remote.lfs and remote.git_oid is not None and remote.size is not None
        return OverlappedHasher(git_size=remote.size if need_git else None, chunk_size=self.chunk_size)

    def _receive(self, run: _Run) -> None:
        """Request until the partial file holds the whole body (retries, backoff, next endpoint)."""
        remote = run.remote
        urls = list(remote.urls)
        failures = 0
        transient = transient_types()
        while True:
            if remote.size is not None and run.offset >= remote.size:
                return
            if self.cancel.is_set():
                raise Cancelled()
            run.url = urls[0]
            before = (run.restarts, run.offset)
            try:
                if self._request(run):
                    return
                raise _ShortBody(f"the connection closed after {run.offset} of {remote.size} bytes")
            except _RestartFromZero as why:
                self.on_note(f"{remote.path}: {why}; starting over from zero")
                self._restart(run)
                failures = 0
            except _Fatal as fatal:
                if len(urls) == 1:
                    raise NetworkError(f"{remote.path}: {fatal}") from None
                self.on_note(f"{remote.path}: {fatal}; trying the next endpoint")
                urls.pop(0)
                failures = 0
            except transient as exc:
                if (run.restarts, run.offset) != before:
                    failures = 0  # it moved forward: a flaky link, not a dead one
                failures += 1
                reason = describe(exc)
                if failures < self.policy.tries:
                    wait = self.policy.delay(failures, getattr(exc, "retry_after", None))
                    self.on_note(f"{remote.path}: {reason}; retrying in {wait:.1f}s")
                    self.policy.wait(wait)
                elif len(urls) > 1:
                    self.on_note(f"{remote.path}: {reason}; trying the next endpoint")
                    urls.pop(0)
                    failures = 0
                else:
                    raise NetworkError(
                        f"{remote.path}: {reason} ({failures} tries at {redact_url(run.url)}); "
                        f"{run.offset} bytes are kept in {run.partial.name}.",
                        remedy="Check the connection or set another endpoint; the next run resumes.",
                    ) from None

    def _restart(self, run: _Run) -> None:
        """Throw the partial bytes away and start the file (and its hash) over."""
        try:
            run.out.truncate(0)
            run.out.seek(0)
        except OSError as exc:
            raise _DiskError(exc) from None
        run.hasher.close()
        run.hasher = self._new_hasher(run.remote)
        run.restarts += 1
        run.reused = 0
        run.rewind_progress()
        run.offset = 0
        run.written_back = 0

    def _request(self, run: _Run) -> bool:
        """One GET from `run.offset`; True when the body ended where the file ends."""
        remote = run.remote
        headers = {"Range": f"bytes={run.offset}-"} if run.offset else {}
        with self.session.get(run.url, headers=headers, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status == 416:
                total = content_range_total(response.headers.get("Content-Range"))
                if run.offset and total == run.offset and remote.size in (None, run.offset):
                    return True  # the partial file already holds every byte
                raise _RestartFromZero(f"the server refused bytes={run.offset}- (416, its size is {total})")
            if status in RETRY_STATUSES:
                raise TransientHttpError(
                    f"HTTP {status}", status=status, retry_after=retry_after_header(response.headers)
                )
            if status >= 400:
                raise _Fatal(f"{redact_url(run.url)} answered HTTP {status}")
            if run.offset and status == 200:
                # Range ignored: this body is the whole file, so start over with it.
                self.on_note(f"{remote.path}: the server ignored Range; restarting from zero with its answer")
                self._restart(run)
            elif status == 206:
                start = content_range_start(response.headers.get("Content-Range"))
                if start != run.offset:
                    raise _RestartFromZero(f"asked for bytes={run.offset}- but got a range from {start}")
            self._stream(run, response)
            return self._is_complete(run, response)

    def _is_complete(self, run: _Run, response) -> bool:
        if run.remote.size is not None:
            return run.offset >= run.remote.size
        total = content_range_total(response.headers.get("Content-Range"))
        if total is None and "Content-Length" in response.headers and response.status_code == 200:
            total = int(response.headers["Content-Length"])
        return total is None or run.offset >= total

    def _stream(self, run: _Run, response) -> None:
        """Body -> partial file and hasher, through pooled buffers (no copies, no re-read)."""
        hasher, out = run.hasher, run.out
        remaining = None if run.remote.size is None else run.remote.size - run.offset
        read_into = body_reader(response)
        while remaining is None or remaining > 0:
            if self.cancel.is_set():
                raise Cancelled()
            buf = hasher.buffer()
            view = memoryview(buf)
            want = len(buf) if remaining is None else min(len(buf), remaining)
            n = 0
            try:
                while n < want:
                    got = read_into(view[n:want])
                    if not got:
                        break
                    n += got
            finally:
                # Whatever arrived before an error is kept: the next request resumes after it.
                if n:
                    try:
                        out.write(view[:n])
                    except OSError as exc:
                        hasher.give_back(buf)
                        raise _DiskError(exc) from None
                    hasher.submit(buf, n)
                    run.note_origin(run.offset, n)
                    run.offset += n
                    run.advance(n)
                    _start_writeback(run, out)
                else:
                    hasher.give_back(buf)
            if n < want:
                return  # the body ended (complete or short: the caller decides)
            if remaining is not None:
                remaining -= n


class _Run:
    """The state of one file's download, shared by the retry loop and the progress bars."""

    def __init__(
        self, remote: RemoteFile, partial: Path, task: ProgressTask, total: ProgressTask | None
    ) -> None:
        self.remote = remote
        self.partial = partial
        self.task = task
        self.total = total
        self.url = remote.urls[0]
        self.offset = 0
        self.fetched = 0
        self.reused = 0
        self.restarts = 0
        self.hasher: OverlappedHasher | None = None
        self.out = None  # the open partial file
        self.written_back = 0  # bytes of the partial file whose writeback was started
        self._shown = 0
        self.connections = 1
        self.rehashed = 0
        self.origins: dict[str, list[tuple[int, int]]] = {}
        self._progress_lock = threading.Lock()

    def note_origin(self, offset: int, n: int) -> None:
        spans = self.origins.setdefault(origin_label(self.url), [])
        if spans and spans[-1][1] == offset:
            spans[-1] = (spans[-1][0], offset + n)
        else:
            spans.append((offset, offset + n))

    def add_origins(self, found) -> None:
        for label, spans in found.items():
            ranges = spans.as_list() if hasattr(spans, "as_list") else list(spans)
            self.origins.setdefault(label, []).extend(ranges)

    def origin_list(self) -> tuple[Origin, ...]:
        return tuple(
            Origin(label, sum(e - s for s, e in spans), tuple(sorted(spans)))
            for label, spans in self.origins.items()
            if spans
        )

    def advance(self, n: int, *, count_fetched: bool = True) -> None:
        with self._progress_lock:  # the ranged engine's connections call it from their threads
            if count_fetched:
                self.fetched += n
            self._shown += n
            self.task.advance(n)
            if self.total is not None:
                self.total.advance(n)

    def rewind_progress(self) -> None:
        """Bytes thrown away leave the bars (they will be counted again as they come back)."""
        if self._shown:
            self.task.advance(-self._shown)
            if self.total is not None:
                self.total.advance(-self._shown)
            self._shown = 0


class _ShortBody(OSError):
    pass


class _Fatal(Exception):
    pass


WRITEBACK_STEP = 32 * 1024 * 1024


def _start_writeback(run: _Run, out) -> None:
    """Ask the kernel to start writing the last few MiB to disk now, without waiting.

    Otherwise a multi-GB file sits dirty in the page cache and the final fsync
    writes all of it after the last byte arrived; this way the disk works while
    the network does, and the fsync finds little left. (POSIX_FADV_DONTNEED on
    dirty pages starts their writeback; they stay cached.)
    """
    if run.offset - run.written_back < WRITEBACK_STEP or not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError):
        os.posix_fadvise(
            out.fileno(), run.written_back, run.offset - run.written_back, os.POSIX_FADV_DONTNEED
        )
    run.written_back = run.offset


def _already_there(remote: RemoteFile, dest: Path) -> FileOutcome | None:
    if not dest.is_file():
        return None
    digests = hash_file(dest, git=remote.sha256 is None and remote.git_oid is not None)
    if mismatch(remote, digests) is not None:
        return None
    return FileOutcome(remote.path, dest, digests.size, digests.sha256, "reused", 0, digests.size)


def mismatch(remote: RemoteFile, digests: Digests) -> str | None:
    """How `digests` differ from what the hub says of `remote` (None: they match)."""
    if remote.size is not None and digests.size != remote.size:
        return f"size mismatch: expected {remote.size} bytes, got {digests.size}"
    if remote.sha256 is not None and digests.sha256 != remote.sha256:
        return f"sha256 mismatch: expected {remote.sha256}, got {digests.sha256}"
    if remote.sha256 is None and remote.git_oid is not None and digests.git_oid != remote.git_oid:
        return f"git blob sha1 mismatch: expected {remote.git_oid}, got {digests.git_oid}"
    return None


def _publish(partial: Path, dest: Path) -> None:
    """The verified file takes its final name in one rename; the folder entry is made durable."""
    os.replace(partial, dest)
    fsync_directory(dest.parent)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
