"""Reading an HTTP download's answer: its body straight into a buffer, its Content-Range,
which errors are worth a retry, and an error as one short line (shared by the one-stream
and the ranged engines)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ...redact import redact_url
from .http import TransientHttpError


@functools.cache
def transient_types() -> tuple[type[BaseException], ...]:
    """The errors worth a retry; called where a download starts (urllib3 costs ~40 ms to import)."""
    import http.client

    import urllib3.exceptions

    # requests' errors are OSErrors; urllib3's and http.client's are not.
    return (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError)


def body_reader(response) -> Callable[[memoryview], int]:
    """`readinto` straight from the socket when the body is plain bytes (the fast path)."""
    raw = response.raw
    fp = getattr(raw, "_fp", None)
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    if encoding == "identity" and fp is not None and hasattr(fp, "readinto"):
        return fp.readinto

    def read_into(view: memoryview) -> int:  # compressed or unusual bodies: urllib3 decodes
        data = raw.read(len(view), decode_content=True)
        view[: len(data)] = data
        return len(data)

    return read_into


def describe(exc: BaseException) -> str:
    if isinstance(exc, TransientHttpError):
        after = f" (Retry-After {exc.retry_after:g}s)" if exc.retry_after is not None else ""
        return f"HTTP {exc.status}{after}"
    text = str(exc).strip() or type(exc).__name__
    return redact_url(text.splitlines()[0][:200])


def content_range_total(value: str | None) -> int | None:
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def content_range_start(value: str | None) -> int | None:
    if not value:
        return None
    spec = value.split(" ", 1)[-1]
    first = spec.split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None
