"""Limits that protect the gateway from oversized bodies and connections that never finish.

- `BodyLimitMiddleware` (pure ASGI): a body over `gateway.max_body_bytes` is refused
  with 413, by its Content-Length before a byte of it is read, else (chunked) as soon
  as the bytes read pass the limit; nothing larger is ever held.
- `header_timeout_protocol`: uvicorn's h11 protocol with a timer from the first byte
  of a request (or the connection's start) to the end of its headers; a connection
  that has not sent them within `gateway.header_timeout` is closed. uvicorn's own
  keep-alive timer only covers idle connections between requests.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, detail=f"the request body is larger than gateway.max_body_bytes ({limit} bytes)"
    )


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _refuse(send, limit)
                    return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)  # FastAPI answers an HTTPException raised while reading
            return message

        await self.app(scope, counted_receive, send)


async def _refuse(send, limit: int) -> None:
    import json

    body = json.dumps(
        {
            "error": {
                "message": too_large(limit).detail,
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header_timeout_protocol(header_timeout: float):
    """uvicorn's httptools protocol (C parser: about a third of h11's CPU per request) for
    `uvicorn.Config(http=...)`, closing connections whose request headers do not arrive
    within `header_timeout` seconds of the connection or of the request's first byte."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # a request started: its headers must end in time (not re-armed)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None and header_timeout > 0:
                self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
