"""A small HTTP/1.1 client pool for the gateway's upstream calls: asyncio protocols and
httptools' C parser, keep-alive connections reused newest first.

Why not httpx/httpcore: on the proxied path they were the gateway's largest CPU cost
(anyio stream wrappers per read and write, a pool pass that polls every idle socket
and counts idle connections quadratically on each request and each release). Here a
reused connection costs a deque pop: an idle socket the server closed is known at
once, because the event loop keeps reading it (`connection_lost`), not by polling.

What it does: `request` (whole body) and `stream` (body chunks as they arrive) on one
origin; Content-Length, chunked and close-delimited bodies; a connect, read (per
wait) and pool timeout; at most `max_connections` at once, at most `max_idle` kept
for `idle_timeout` seconds; TLS for https. A request sent on a reused connection that
the server closed before answering anything is sent once more on a new connection
(the server never read it). Errors are `TransportError`s: `ConnectFailed`,
`ReadTimedOut`, `PoolTimedOut`, `ProtocolFailure`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

Headers = Sequence[tuple[bytes, bytes]]

_HIGH_WATER = 1 << 20  # bytes buffered for a slow reader before the socket is paused


class TransportError(Exception):
    """The upstream could not be reached or broke off (no HTTP answer to pass on)."""


class ConnectFailed(TransportError):
    pass


class ReadTimedOut(TransportError):
    pass


class PoolTimedOut(TransportError):
    pass


class ProtocolFailure(TransportError):
    """The connection closed mid-answer, or the answer was not HTTP/1.1."""


class _Stale(Exception):
    """A reused connection closed before any byte of the answer: send again on a new one."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.requests = 0  # answered on this connection (0: fresh)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self.complete = False
        self.keep_alive = False
        self._got_bytes = False
        self._headers_done = False
        self._error: BaseException | None = None
        self._wakeup: asyncio.Future | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except self._parse_error as exc:
            self._fail(ProtocolFailure(f"the upstream's answer is not HTTP/1.1: {exc}"))
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.complete or self._error is not None:
            return
        if self._headers_done and not self._has_length():
            self.complete = True  # a close-delimited body ends with the connection
            self._wake()
        elif not self._got_bytes:
            self._fail(_Stale())
        else:
            self._fail(ProtocolFailure("the upstream closed the connection mid-answer"))

    # -- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(bytes(body))
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # -- the request side ------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self._reset()
        self.transport.write(data)

    async def headers_received(self, timeout: float | None) -> None:
        while not self._headers_done:
            await self._wait(timeout)

    async def chunks(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _HIGH_WATER // 2:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            await self._wait(timeout)

    async def _wait(self, timeout: float | None) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._wakeup = wakeup = loop.create_future()
        # call_later, not wait_for: no task per wait on the proxied path
        timer = loop.call_later(timeout, _expire, wakeup, timeout) if timeout else None
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def _has_length(self) -> bool:
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
                return True
        return self.status in (204, 304) or 100 <= self.status < 200

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and not self._paused

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


def _expire(wakeup: asyncio.Future, timeout: float) -> None:
    if not wakeup.done():
        wakeup.set_exception(ReadTimedOut(f"the upstream sent nothing for {timeout:g} s"))


class Response:
    """An answer's status, headers (lower-cased names) and body chunks as they arrive."""

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self.status = connection.status
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in connection.headers}

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._connection.chunks(self._read_timeout)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])


class Http1Pool:
    """Connections to one origin (`base_url`'s scheme, host and port)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        max_idle: int = 20,
        idle_timeout: float = 5.0,
        connect_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1].encode()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._slots = asyncio.BoundedSemaphore(max_connections) if max_connections else None
        self._idle: collections.deque[_Connection] = collections.deque()
        self._busy: set[_Connection] = set()
        self._closed = False

    def request_bytes(self, method: str, path: str, headers: Headers, content: bytes) -> bytes:
        lines = [f"{method} {self.base_path}{path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        lines += [name + b": " + value for name, value in headers]
        if content or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(content)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + content

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Headers = (),
        content: bytes = b"",
        read_timeout: float | None = None,
        pool_timeout: float | None = None,
    ) -> AsyncIterator[Response]:
        """The answer once its headers are in; the body is read from it inside the block.
        The connection goes back to the pool only when the whole body was read."""
        await self._take_slot(pool_timeout)
        connection = None
        try:
            data = self.request_bytes(method, path, headers, content)
            connection = await self._send(data, read_timeout)
            yield Response(connection, read_timeout)
        finally:
            if connection is not None:
                self._busy.discard(connection)
                self._release(connection)
            if self._slots is not None:
                self._slots.release()

    async def request(self, method: str, path: str, **options) -> tuple[int, dict[str, str], bytes]:
        """`stream` (same options), the whole body read: (status, headers, body)."""
        async with self.stream(method, path, **options) as response:
            return response.status, response.headers, await response.read()

    async def aclose(self) -> None:
        self._closed = True
        for connection in (*self._idle, *self._busy):
            connection.close()
        self._idle.clear()

    # -- internals ---------------------------------------------------------------------

    async def _take_slot(self, timeout: float | None) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():
            await self._slots.acquire()  # free: no timer needed
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise PoolTimedOut(
                f"no free connection to {self.host}:{self.port} within {timeout:g} s"
            ) from None

    async def _send(self, data: bytes, read_timeout: float | None) -> _Connection:
        while True:
            connection = self._reused() or await self._connect()
            self._busy.add(connection)
            connection.send(data)
            try:
                await connection.headers_received(read_timeout)
                return connection
            except _Stale:
                self._busy.discard(connection)
                if connection.requests == 0:
                    raise ProtocolFailure("the upstream closed the connection without answering") from None
                # a reused connection the server had closed before reading this request: once more
            except BaseException:
                self._busy.discard(connection)
                connection.close()
                raise

    def _reused(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # newest first: the least likely to have timed out
            if not connection.closed and now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        ssl = _tls_context() if self.tls else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, self.host, self.port, ssl=ssl, server_hostname=self.host if ssl else None
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectFailed(
                f"{self.host}:{self.port} did not accept within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:  # asyncio's own text repeats the address; the errno's says why
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConnectFailed(f"{self.host}:{self.port}: {reason}") from None
        return connection

    def _release(self, connection: _Connection) -> None:
        if self._closed or not connection.reusable:
            connection.close()
            return
        connection.requests += 1
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        while len(self._idle) > self.max_idle:
            self._idle.popleft().close()  # the longest idle goes first


@functools.cache
def _tls_context():
    import ssl

    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()
