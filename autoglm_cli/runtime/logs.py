"""Logging for the service: one stderr handler, `log_level` and `log_format` from config,
secrets redacted.

`log_format: json` writes one JSON object per line (time, level, logger, message, and a
record's structured `fields`, e.g. the request lines of `autoglm.requests`), for log
shippers that index fields instead of parsing text.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..redact import redact

_handler: logging.Handler | None = None
_level = "WARNING"
_format = "text"
_log_file: LogFile | None = None
REQUESTS_LOGGER = "autoglm.requests"  # one line per finished request, at INFO


@dataclass(frozen=True)
class LogFile:
    """Log to `path` instead of stderr, rotated at `max_bytes` with `backups` old files kept."""

    path: Path
    max_bytes: int
    backups: int


class StdioRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that this process's stdout and stderr also point at when they were
    opened on the same file (the local deploy target starts serve that way): after each
    rollover they follow the new file, so a raw traceback or a library's print never lands
    in a rotated-away file."""

    def __init__(self, log_file: LogFile) -> None:
        super().__init__(log_file.path, maxBytes=log_file.max_bytes, backupCount=log_file.backups)
        self.follow_stdio = [fd for fd in (1, 2) if _same_file(fd, log_file.path)]

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            for fd in self.follow_stdio:
                os.dup2(self.stream.fileno(), fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, theirs = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


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


def setup_logging(level: str, log_format: str = "text", log_file: LogFile | None = None) -> None:
    """Route autoglm's and uvicorn's loggers through one redacting handler at `level`: stderr,
    or `log_file` (rotated)."""
    global _handler, _level, _format, _log_file
    if _handler is not None:
        _handler.close()
    _format, _log_file, _handler = log_format, log_file, None
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
    if _log_file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    elif _handler is None:
        handler = StdioRotatingFileHandler(_log_file)
    else:  # one rotating handler per file: others hand their records to it
        handler = _Forward(_handler)
    if _format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    return handler


class _Forward(logging.Handler):
    """A handler of its own (its own level, which Dask may change) that writes through the
    one file handler."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


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
