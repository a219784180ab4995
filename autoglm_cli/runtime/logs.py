"""Logging for the service: one stderr handler, `log_level` from config, secrets redacted."""

from __future__ import annotations

import logging
import sys

from ..redact import redact

_handler: logging.Handler | None = None
_level = "WARNING"


class RedactingFilter(logging.Filter):
    """Masks tokens, keys and URL credentials in every record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: str) -> None:
    """Route autoglm's and uvicorn's loggers through one redacting stderr handler at `level`."""
    global _handler, _level
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
