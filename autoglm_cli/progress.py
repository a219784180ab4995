"""How the library reports progress without printing.

`ops/` functions accept a `Progress` and call `task(...)` / `advance(...)` on it
(`unit="bytes"` for a task that counts bytes: shown in KiB/MiB/GiB with a rate);
the CLI passes a rich-backed implementation (`cli/output.py`), tests and library
users the silent `NULL_PROGRESS`.
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def task(
        self,
        description: str,
        total: float | None = None,
        *,
        transient: bool = False,
        unit: str | None = None,
    ) -> ProgressTask: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


class _NullProgress:
    def task(
        self,
        description: str,
        total: float | None = None,
        *,
        transient: bool = False,
        unit: str | None = None,
    ) -> ProgressTask:
        return _NullTask()


NULL_PROGRESS: Progress = _NullProgress()
