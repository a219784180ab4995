"""One file over several connections: byte ranges written in place, hashed in order, resumable.

The file is cut into pieces (a few per connection, 1-32 MiB); `connections`
threads each take the next missing piece, ask for it with `Range: bytes=a-b` and
`pwrite` what arrives at its offset in the partial file, then append `(a, b)` to
the journal (see `partial_state`). A hashing thread follows the contiguous
prefix of the file, reading back from the page cache what the receivers just
wrote, so the sha256 is ready soon after the last byte lands. Every 0.25 s
it hands a checkpoint (the complete ranges and the hash state, `resumable_hash`)
to a writer thread, which fdatasyncs the partial file and then writes the
sidecar: a resumed run re-reads nothing it had hashed, only complete ranges
beyond that point (which it would read back anyway). When one connection gives
up, the others keep what is already arriving, then the run fails (resumable).

Endpoints are tried in order: when one fails (errors after retries, an HTTP
error) or stalls (no byte for `stall_timeout` seconds), the ranges left continue
from the next one; `origins` says which bytes came from where. A server that
answers 200 to a Range request raises `RangesIgnored` before a byte of that
answer is written: the caller goes on with one stream.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ...errors import EnvironmentFailure, NetworkError
from ...redact import redact_url
from . import resumable_hash
from .hashing import Digests, git_blob_header
from .http import RETRY_STATUSES, TransientHttpError, retry_after_header
from .partial_state import (
    RANGED,
    Cancelled,
    Intervals,
    PartialState,
    journal_path,
    journal_record,
    write_sidecar,
)
from .sources import RemoteFile

PIECE_MIN = 1024 * 1024
PIECE_MAX = 32 * 1024 * 1024  # the hash trails the newest bytes by about connections x piece
PIECES_PER_CONNECTION = 4
STEAL_MIN = 4 * 1024 * 1024  # an idle connection takes half of a piece with at least 2 x this left
STEAL_AFTER_S = 1.0  # ... and at least this long to go: a new request (and what the old one had in
# flight when it stops at the new end) is worth it only for a slow piece
WRITE_CHUNK = 256 * 1024  # the most one write takes; what has arrived is written at once
HASH_CHUNK = 1024 * 1024
CHECKPOINT_S = 0.25  # fdatasync + sidecar; a kill re-reads at most this long's bytes to hash
GRACE_S = 2.0
AUTO_CONNECTIONS = 8
AUTO_MIN_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Origin:
    """Bytes of one file that came from one endpoint in this run."""

    endpoint: str  # scheme://host[:port], no credentials
    bytes: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class RangedResult:
    digests: Digests
    fetched: int  # received in this run
    reused: int  # complete on disk before this run
    rehashed: int  # bytes of earlier runs read back to hash (those beyond the saved hash state)
    origins: tuple[Origin, ...]


class RangesIgnored(Exception):
    """The server answered 200 (the whole file) to a Range request."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"{endpoint} ignores Range requests")
        self.endpoint = endpoint


class Fatal(Exception):
    """This endpoint cannot serve the file (an HTTP error other than 429/5xx, a wrong size)."""


class _Stopped(Exception):
    pass


class _Piece:
    """A range being fetched: `pos` moves up as bytes land; `end` may move down when another
    connection takes over its second half (at the end of the file, so no connection idles)."""

    __slots__ = ("pos", "end", "first", "began")

    def __init__(self, pos: int, end: int) -> None:
        self.pos = pos
        self.end = end
        self.first = pos
        self.began = time.monotonic()

    def seconds_left(self, now: float) -> float:
        """At the rate it has had so far (infinite when nothing came for a while)."""
        elapsed, got = now - self.began, self.pos - self.first
        if got <= 0:
            return float("inf") if elapsed > STEAL_AFTER_S else 0.0
        return (self.end - self.pos) / (got / elapsed)


def connections_for(size: int | None, requested: int | None) -> int:
    """How many connections a file gets: `requested`, or 8 above 64 MiB; never more than its pieces."""
    if size is None or size < 2 * PIECE_MIN:
        return 1
    wanted = requested if requested else (AUTO_CONNECTIONS if size > AUTO_MIN_SIZE else 1)
    return max(1, min(wanted, size // PIECE_MIN))


def piece_size(size: int, connections: int) -> int:
    piece = -(-size // (connections * PIECES_PER_CONNECTION))
    piece = max(PIECE_MIN, min(PIECE_MAX, piece))
    return -(-piece // 65536) * 65536


def origin_label(url: str) -> str:
    parts = urlsplit(url)
    return redact_url(f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}")


class _Endpoints:
    """The file's URLs in order; the first that has not failed is the current one."""

    def __init__(self, urls) -> None:
        self.urls = list(urls)
        self.index = 0
        self.direct: dict[int, str] = {}  # where the URL redirected (the CDN), to skip the redirect
        self.lock = threading.Lock()

    def current(self) -> tuple[int, str]:
        with self.lock:
            return self.index, self.urls[self.index]

    def give_up(self, index: int) -> bool:
        """Endpoint `index` failed: move past it. False when it was the last one."""
        with self.lock:
            if self.index > index:
                return True  # another connection moved on already
            if index + 1 >= len(self.urls):
                return False
            self.index = index + 1
            return True

    def has_next(self, index: int) -> bool:
        return index + 1 < len(self.urls)


class RangedFill:
    """Fill `partial` with `remote`'s bytes over `connections` connections; see the module doc."""

    def __init__(
        self,
        downloader,
        remote: RemoteFile,
        dest: Path,
        partial: Path,
        *,
        connections: int,
        state: PartialState | None,
        advance,
    ) -> None:
        assert remote.size is not None
        self.dl = downloader
        self.remote = remote
        self.dest = dest
        self.partial = partial
        self.size = remote.size
        self.connections = connections
        self.advance = advance  # progress callback (bytes)
        self.need_git = not remote.lfs and remote.git_oid is not None
        state = state if state is not None and state.format == RANGED else self._from_single(state)
        self.done = state.done
        self.done_at_start = state.done.copy()
        self.hashers = self._hashers(state)
        self.hashed_at_start = self.hashed = state.hashed if self.hashers_resumed else 0
        self.endpoints = _Endpoints(remote.urls)
        self.origins: dict[str, Intervals] = {}
        self.fetched = 0
        self.lock = threading.Condition()
        self.stop = threading.Event()  # now: Ctrl-C, Range ignored, a disk error
        # Another connection failed for good: no new piece and no retry, but what is
        # already coming is still read and kept (for up to GRACE_S).
        self.failing = threading.Event()
        self.errors: list[BaseException] = []
        self.pending: list[tuple[int, int]] = []
        self.active: list[_Piece] = []
        piece = piece_size(self.size, connections)
        for start, end in self.done.gaps(self.size):
            self.pending += [(s, min(end, s + piece)) for s in range(start, end, piece)]
        self.fd = -1
        self.journal_fd = -1
        self._writer: threading.Thread | None = None
        self._slot: PartialState | None = None
        self._slot_lock = threading.Lock()
        self._slot_ready = threading.Event()

    # -- setup -------------------------------------------------------------------

    def _from_single(self, state: PartialState | None) -> PartialState:
        done = state.done if state is not None else Intervals()
        return PartialState(RANGED, done)

    def _hashers(self, state: PartialState) -> dict:
        self.hashers_resumed = False
        algorithms = ["sha256"] + (["sha1"] if self.need_git else [])
        if not resumable_hash.available():
            import hashlib

            out = {"sha256": hashlib.sha256()}
            if self.need_git:
                out["sha1"] = hashlib.sha1(git_blob_header(self.size))  # noqa: S324 (git's object id)
            return out
        if state.hashed and all(a in state.states for a in algorithms):
            try:
                out = {a: resumable_hash.ResumableHash.from_text(a, state.states[a]) for a in algorithms}
                self.hashers_resumed = True
                return out
            except (ValueError, TypeError):
                pass
        out = {"sha256": resumable_hash.ResumableHash("sha256")}
        if self.need_git:
            out["sha1"] = resumable_hash.ResumableHash("sha1", prefix=git_blob_header(self.size))
        return out

    # -- run -----------------------------------------------------------------------

    def run(self) -> RangedResult:
        try:
            self.fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
            # The sidecar says "ranges" before the file grows: a kill never leaves a
            # full-length file that a single-stream resume would take for complete.
            write_sidecar(self.dest, self.remote, self._state(self.done.as_list()))
            os.ftruncate(self.fd, self.size)
            self.journal_fd = os.open(journal_path(self.dest), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self._close()
            raise EnvironmentFailure(
                f"cannot write {self.partial}: {exc.strerror or exc}",
                remedy="Free disk space or fix permissions, then run the command again: it resumes.",
            ) from None
        hasher = threading.Thread(target=self._hash_loop, name="autoglm-range-hash", daemon=True)
        hasher.start()
        workers = [
            threading.Thread(target=self._worker, name=f"autoglm-range-{i}", daemon=True)
            for i in range(self.connections)  # more than the pieces left: the others take halves
        ]
        for worker in workers:
            worker.start()
        failing_since = None
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)
                    if self.dl.cancel.is_set():
                        self.stop.set()
                    if self.failing.is_set():
                        failing_since = failing_since or time.monotonic()
                        if time.monotonic() - failing_since > GRACE_S:
                            self.stop.set()
        finally:
            if self.errors or self.dl.cancel.is_set():
                self.stop.set()
            with self.lock:
                self.lock.notify_all()
            hasher.join()
            self._close()
        if self.errors:
            raise self._worst_error()
        if self.dl.cancel.is_set():
            raise Cancelled()
        if self.hashed != self.size:
            raise EnvironmentFailure(f"{self.remote.path}: {self.hashed} of {self.size} bytes were hashed")
        self._fsync()
        return RangedResult(
            digests=Digests(
                size=self.size,
                sha256=self._hexdigest("sha256"),
                git_oid=self._hexdigest("sha1") if self.need_git else None,
            ),
            fetched=self.fetched,
            reused=self.done_at_start.total(),
            rehashed=self.done_at_start.overlap(self.hashed_at_start, self.size),
            origins=tuple(
                Origin(label, spans.total(), tuple(spans.as_list())) for label, spans in self.origins.items()
            ),
        )

    def _fsync(self) -> None:
        """The whole file on disk before it can be published under its final name."""
        try:
            with open(self.partial, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot write {self.partial}: {exc.strerror or exc}",
                remedy="Free disk space or fix permissions, then run the command again: it resumes.",
            ) from None

    def _hexdigest(self, algorithm: str) -> str:
        return self.hashers[algorithm].hexdigest()

    def _worst_error(self) -> BaseException:
        for kind in (RangesIgnored, EnvironmentFailure):
            for error in self.errors:
                if isinstance(error, kind):
                    return error
        return self.errors[0]

    def _close(self) -> None:
        for fd in (self.fd, self.journal_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self.journal_fd = -1

    # -- receivers -------------------------------------------------------------

    def _worker(self) -> None:
        buf = bytearray(WRITE_CHUNK)
        try:
            while not (self.stop.is_set() or self.failing.is_set()):
                piece = self._next_piece()
                if piece is None:
                    if self._may_slow_down():
                        self.stop.wait(0.2)  # a piece in flight may yet turn slow: then take half
                        continue
                    return
                try:
                    self._fetch_piece(piece, buf)
                finally:
                    with self.lock:
                        self.active.remove(piece)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to run(), which raises the worst
            with self.lock:
                self.errors.append(exc)
            if isinstance(exc, NetworkError):
                self.failing.set()
            else:
                self.stop.set()

    def _next_piece(self) -> _Piece | None:
        """The next missing piece; when none is left, the second half of the biggest one in flight."""
        with self.lock:
            if self.pending:
                piece = _Piece(*self.pending.pop(0))
            else:
                now = time.monotonic()
                slow = [
                    p
                    for p in self.active
                    if p.end - p.pos >= 2 * STEAL_MIN and p.seconds_left(now) > STEAL_AFTER_S
                ]
                victim = max(slow, key=lambda p: p.end - p.pos, default=None)
                if victim is None:
                    return None
                middle = victim.pos + (victim.end - victim.pos) // 2
                middle -= middle % 65536
                piece = _Piece(middle, victim.end)
                victim.end = middle
            self.active.append(piece)
            return piece

    def _may_slow_down(self) -> bool:
        with self.lock:
            return any(p.end - p.pos >= 2 * STEAL_MIN for p in self.active)

    def _fetch_piece(self, piece: _Piece, buf: bytearray) -> None:
        from .response import describe, transient_types

        transient = transient_types()
        failures = 0
        policy = self.dl.policy
        while piece.pos < piece.end:
            index, url = self.endpoints.current()
            before = piece.pos
            try:
                self._request(index, url, piece, buf)
                if piece.pos < piece.end:
                    raise ConnectionError(
                        f"the connection closed at byte {piece.pos} of a range ending at {piece.end}"
                    )
            except (RangesIgnored, _Stopped):
                raise
            except Fatal as fatal:
                if self.failing.is_set():
                    raise _Stopped() from None  # another connection gave up: keep what came, stop here
                if not self.endpoints.give_up(index):
                    raise NetworkError(f"{self.remote.path}: {fatal}") from None
                self.dl.on_note(f"{self.remote.path}: {fatal}; the rest from the next endpoint")
                failures = 0
            except transient as exc:
                if self.failing.is_set():
                    raise _Stopped() from None
                if piece.pos != before:
                    failures = 0  # it moved forward: a flaky link, not a dead one
                failures += 1
                if self.endpoints.current()[0] != index:
                    continue  # another connection moved on to the next endpoint: follow it
                stalled = _is_stall(exc)
                reason = f"no byte for {self.dl.stall_timeout:g}s" if stalled else describe(exc)
                more = self.endpoints.has_next(index)
                limit = 1 if stalled and more else 2 if more else policy.tries
                if failures < limit:
                    wait = policy.delay(failures, getattr(exc, "retry_after", None))
                    self.dl.on_note(f"{self.remote.path}: {reason}; retrying in {wait:.1f}s")
                    policy.wait(wait)
                elif self.endpoints.give_up(index):
                    self.dl.on_note(
                        f"{self.remote.path}: {origin_label(url)}: {reason}; "
                        f"the rest from {origin_label(self.endpoints.current()[1])}"
                    )
                    failures = 0
                else:
                    raise NetworkError(
                        f"{self.remote.path}: {reason} ({failures} tries at {redact_url(url)}); "
                        f"{self.done.total()} of {self.size} bytes are kept in {self.partial.name}.",
                        remedy="Check the connection or add another endpoint; the next run resumes.",
                    ) from None

    def _request(self, index: int, url: str, piece: _Piece, buf: bytearray) -> None:
        from .response import body_reader, content_range_start, content_range_total

        target = self.endpoints.direct.get(index, url)
        end = piece.end
        headers = {"Range": f"bytes={piece.pos}-{end - 1}"}
        timeout = (self.dl.connect_timeout, self.dl.stall_timeout)
        with self.dl.session.get(target, headers=headers, stream=True, timeout=timeout) as response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise TransientHttpError(
                    f"HTTP {status}", status=status, retry_after=retry_after_header(response.headers)
                )
            if status >= 400 and target != url:
                self.endpoints.direct.pop(index, None)  # an expired CDN link: back to the endpoint
                raise TransientHttpError(f"HTTP {status} from the redirect target", status=status)
            if status >= 400:
                raise Fatal(f"{redact_url(url)} answered HTTP {status} to bytes={piece.pos}-{end - 1}")
            if status == 200:
                raise RangesIgnored(origin_label(url))
            if status != 206:
                raise Fatal(f"{redact_url(url)} answered HTTP {status} to a Range request")
            content_range = response.headers.get("Content-Range")
            if content_range_start(content_range) != piece.pos:
                raise Fatal(f"{redact_url(url)} sent {content_range!r} for bytes={piece.pos}-{end - 1}")
            total = content_range_total(content_range)
            if total is not None and total != self.size:
                raise Fatal(f"{redact_url(url)} has {total} bytes of {self.remote.path}, not {self.size}")
            if response.url != target:
                self.endpoints.direct[index] = response.url
            self._stream(response, body_reader(response), piece, buf, origin_label(url))

    def _stream(self, response, read_into, piece: _Piece, buf: bytearray, label: str) -> None:
        fp = getattr(response.raw, "_fp", None)
        identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
        if identity and hasattr(fp, "read1"):
            self._stream_arrived(fp, piece, label)
            return
        view = memoryview(buf)
        while piece.pos < piece.end:
            if self.stop.is_set():
                raise _Stopped()
            if self.dl.cancel.is_set():
                self.stop.set()
                raise _Stopped()
            want = min(len(buf), piece.end - piece.pos)
            n = 0
            try:
                while n < want:
                    got = read_into(view[n:want])
                    if not got:
                        break
                    n += got
            finally:
                if n:  # whatever arrived before an error is kept
                    self._write(view[:n], piece.pos, label)
                    piece.pos += n
            if n < want:
                return

    def _stream_arrived(self, fp, piece: _Piece, label: str) -> None:
        """Write whatever each socket read brings (one system call each): a kill loses almost nothing."""
        while piece.pos < piece.end:
            if self.stop.is_set():
                raise _Stopped()
            if self.dl.cancel.is_set():
                self.stop.set()
                raise _Stopped()
            data = fp.read1(min(WRITE_CHUNK, piece.end - piece.pos))
            if not data:
                return
            self._write(memoryview(data), piece.pos, label)
            piece.pos += len(data)

    def _write(self, data: memoryview, offset: int, label: str) -> None:
        try:
            written = 0
            while written < len(data):
                written += os.pwrite(self.fd, data[written:], offset + written)
            os.write(self.journal_fd, journal_record(offset, offset + len(data)))
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot write {self.partial}: {exc.strerror or exc}",
                remedy="Free disk space or fix permissions, then run the command again: it resumes.",
            ) from None
        with self.lock:
            self.done.add(offset, offset + len(data))
            self.origins.setdefault(label, Intervals()).add(offset, offset + len(data))
            self.fetched += len(data)
            if offset <= self.done.prefix() and self.hashed < self.done.prefix():
                self.lock.notify_all()
        self.advance(len(data))

    # -- the hash of the contiguous prefix, and checkpoints ----------------------

    def _hash_loop(self) -> None:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        last = time.monotonic()
        saved = self.hashed
        try:
            while self.hashed < self.size:
                with self.lock:
                    while self.done.prefix() <= self.hashed and not self.stop.is_set():
                        self.lock.wait(0.25)
                        if time.monotonic() - last >= CHECKPOINT_S and self.hashed > saved:
                            break
                    ready = self.done.prefix()
                if self.stop.is_set() and ready <= self.hashed:
                    break
                while self.hashed < ready:
                    n = os.preadv(self.fd, [view[: min(len(buf), ready - self.hashed)]], self.hashed)
                    if n <= 0:
                        raise OSError(f"{self.partial} is shorter than expected")
                    for h in self.hashers.values():
                        h.update(view[:n])
                    self.hashed += n
                if (
                    time.monotonic() - last >= CHECKPOINT_S
                    and self.hashed > saved
                    and self.hashed < self.size
                ):
                    self._hand_checkpoint()
                    saved, last = self.hashed, time.monotonic()
            self._end_checkpoints()
            if self.hashed < self.size:
                self._checkpoint(
                    self._snapshot()
                )  # stopped early (an error, Ctrl-C): what the next run needs
        except BaseException as exc:
            with self.lock:
                self.errors.append(
                    EnvironmentFailure(f"cannot hash {self.partial}: {exc}")
                    if isinstance(exc, OSError)
                    else exc
                )
            self.stop.set()

    # A checkpoint is taken by the hashing thread (the state must match `hashed`) and
    # written by another (fdatasync can take a while; hashing goes on meanwhile).

    def _snapshot(self) -> PartialState:
        with self.lock:
            done = self.done.as_list()
        return self._state(done)

    def _hand_checkpoint(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_checkpoints, name="autoglm-range-ckpt", daemon=True
            )
            self._writer.start()
        with self._slot_lock:
            self._slot = self._snapshot()
        self._slot_ready.set()

    def _write_checkpoints(self) -> None:
        while True:
            self._slot_ready.wait()
            with self._slot_lock:
                state, self._slot = self._slot, None
                self._slot_ready.clear()
            if state is None:
                return
            try:
                self._checkpoint(state)
            except OSError:
                return  # the next checkpoint (or the end of the run) tells

    def _end_checkpoints(self) -> None:
        if self._writer is not None:
            with self._slot_lock:
                self._slot = None
            self._slot_ready.set()
            self._writer.join()
            self._writer = None

    def _checkpoint(self, state: PartialState) -> None:
        if state.states:
            _fdatasync(self.fd)  # the bytes the state covers are on disk before the state is
        write_sidecar(self.dest, self.remote, state)

    def hashers_resumable(self) -> bool:
        return all(isinstance(h, resumable_hash.ResumableHash) for h in self.hashers.values())

    def _state(self, done) -> PartialState:
        states = (
            {name: h.state_text() for name, h in self.hashers.items()} if self.hashers_resumable() else {}
        )
        return PartialState(RANGED, Intervals(done), self.hashed if states else 0, states)


def _is_stall(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (TimeoutError, requests.exceptions.Timeout)):
        return True
    text = str(exc).lower()
    return "timed out" in text or "read timeout" in text


_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
