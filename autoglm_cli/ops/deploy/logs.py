"""`autoglm logs [-f]`: the recorded deployment's log, whatever its target.

local: the service's log file in the state directory; docker: the container's
logs; systemd: the unit's journal (journalctl). Every line is redacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError
from .repair import load_current
from .state import StateDir, resolve_state_dir
from .targets import get_target


@dataclass(frozen=True)
class LogsReport:
    target: str
    name: str
    state_dir: str
    source: str  # the log file, the container or the unit
    lines: tuple[str, ...] = ()
    # -f: the lines as they come, until interrupted
    follow: Iterator[str] | None = field(default=None, repr=False, compare=False)


def _source(record) -> str:
    if record.target == "docker":
        return f"container {record.container_name}"
    if record.target == "systemd":
        return f"journal of {record.unit_name}"
    return str(record.log_path)


def logs(config, *, state_dir: str | Path | None = None, lines: int = 40, follow: bool = False) -> LogsReport:
    state = StateDir(resolve_state_dir(config, state_dir))
    record = load_current(state)
    if record is None:
        raise UsageError(
            f"no deployment is recorded in {state.root}",
            remedy="Deploy first (`autoglm deploy`), or point at another state directory with --state-dir.",
        )
    backend = get_target(record.target)
    common = dict(target=record.target, name=record.name, state_dir=str(state.root), source=_source(record))
    if follow:
        return LogsReport(**common, follow=backend.follow(record, lines))
    text = backend.logs(record, lines)
    return LogsReport(**common, lines=tuple(text.splitlines()))
