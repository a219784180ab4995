"""What a killed deploy leaves behind, brought in line with what runs; and the deploy lock.

A deploy or rollback holds `deploy.lock` (its pid and start time) while it runs. When
a command reads the state and finds a record that only a deploy in progress may
leave (`next.json`: a deployment started beside the current one; a current record
still `starting`) but no live lock, the deploy that wrote it was killed:

- `next.json`: the new deployment never took over the port (that is when the file
  goes); it is stopped and removed, the current one runs on untouched.
- current `starting` (a deploy that stopped the old one first): if it runs and holds
  its port it is `running` (it serves; `autoglm health` judges it), else `dead`;
  `autoglm rollback` brings the previous one back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace

from ...atomic import atomic_write
from ...errors import EnvironmentFailure
from .state import DeploymentState, StateDir


def _lock_holder(state: StateDir) -> int | None:
    """The pid of a live deploy holding the lock, else None (no lock, or a stale one)."""
    import psutil

    try:
        data = json.loads(state.lock_file.read_text())
        pid, created = int(data["pid"]), float(data["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        if abs(psutil.Process(pid).create_time() - created) > 1.0:
            return None
    except psutil.NoSuchProcess:
        return None
    return pid


def deploy_in_progress(state: StateDir) -> bool:
    holder = _lock_holder(state)
    return holder is not None and holder != os.getpid()


@contextlib.contextmanager
def deploy_lock(state: StateDir) -> Iterator[None]:
    """Held for the whole deploy or rollback; a second one at the same time is refused."""
    import psutil

    holder = _lock_holder(state)
    if holder is not None and holder != os.getpid():
        raise EnvironmentFailure(
            f"another deploy or rollback (pid {holder}) is working on {state.root}",
            remedy="Wait for it to finish (`autoglm deploy --status` shows what runs).",
        )
    state.ensure()
    me = {"pid": os.getpid(), "create_time": psutil.Process().create_time()}
    atomic_write(state.lock_file, json.dumps(me) + "\n")
    try:
        yield
    finally:
        state.lock_file.unlink(missing_ok=True)


def load_current(state: StateDir, *, repair: bool = True) -> DeploymentState | None:
    """The current deployment. A record a killed deploy left behind (`starting`, or a
    `next.json`) is first brought in line with what runs, unless `repair=False` (dry runs
    write nothing)."""
    record = state.load_current()
    if repair and state.needs_repair(record):
        record = repair_state(state, record)
    return record


def repair_state(state: StateDir, record: DeploymentState | None) -> DeploymentState | None:
    """The current record, corrected and saved, when a killed deploy left it inaccurate."""
    if deploy_in_progress(state):
        return record  # not left behind: being written right now
    from .targets import get_target

    pending = state.load_next()
    if pending is not None:
        backend = get_target(pending.target)
        with contextlib.suppress(Exception):  # gone already is the goal
            backend.discard(pending)
        state.save_next(None)
    if record is not None and record.status == "starting":
        backend = get_target(record.target)
        serving = backend.liveness(record).alive and backend.owns_port(record, record.port)
        record = replace(record, status="running" if serving else "dead")
        state.save_current(record)
    return record
