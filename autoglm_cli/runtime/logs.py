"""Logging for the service: one stderr handler, `log_level` and `log_format` from config,
secrets redacted.

`log_format: json` writes one JSON object per line (time, level, logger, message, and a
record's structured `fields`, e.g. the request lines of `autoglm.requests`), for log
shippers that index fields instead of parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from ..redact import redact

_handler: logging.Handler | None = None
_level = "WARNING"
_format = "text"
REQUESTS_LOGGER = "autoglm.requests"  # one line per finished request, at INFO


class RedactingFilter(logging.Filter):
    """Masks tokens, keys and URL credentials in every record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (UTC, ISO 8601), `level`, `logger`, `message`,
    the record's `fields` (structured data, e.g. a request's id, model, node and timings)
    and `error` (a traceback, redacted) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{created}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str, log_format: str = "text") -> None:
    """Route autoglm's and uvicorn's loggers through one redacting stderr handler at `level`."""
    global _handler, _level, _format
    _format = log_format
    _handler = _new_handler()
    _level = level
    for name in ("autoglm", "uvicorn"):
        adopt(name, level)
    # Scale events are rare and worth seeing: INFO on their own logger even at the default WARN.
    numeric = logging.getLevelName(level)
    numeric = numeric if isinstance(numeric, int) else logging.WARNING
    logging.getLogger("autoglm.scale").setLevel(
        min(logging.INFO, numeric) if numeric < logging.ERROR else numeric
    )


def _new_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    if _format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    return handler


def adopt(name: str, level: str | None = None, *, own_handler: bool = False) -> None:
    """Give logger `name` our handler (call after importing a library that installs its own, e.g. Dask)."""
    if _handler is None:
        return
    logger = logging.getLogger(name)
    logger.handlers[:] = [_new_handler() if own_handler else _handler]
    logger.propagate = False
    logger.setLevel(level or _level)


def adopt_dask() -> None:
    """Dask is chatty at INFO: follow the configured level, but not below WARNING unless DEBUG."""
    numeric = logging.getLevelName(_level)
    # Its own handler: LocalCluster(silence_logs=...) sets the level of the handlers on
    # "distributed", which would silence ours (the INFO scale events) too.
    level = _level if _level == "DEBUG" else logging.getLevelName(max(logging.WARNING, numeric))
    adopt("distributed", level, own_handler=True)
