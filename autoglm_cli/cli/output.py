"""The one output object: human, json or quiet.

Data (tables, the JSON document, a new API key) goes to stdout; everything else
(warnings, notes, progress bars, errors) goes to stderr. In `--json` mode stdout
holds exactly one JSON document:

    {"schema": "autoglm/v1", "command": "...", "ok": true, "exit_code": 0,
     "result": {...}}            # or "error": {...} instead of "result"
"""

from __future__ import annotations

import enum
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .. import units
from ..errors import AutoglmError, ExitCode, Interrupted
from ..jsonable import to_jsonable
from ..progress import NULL_PROGRESS, Progress, ProgressTask
from ..redact import redact

if TYPE_CHECKING:
    from rich.console import Console

JSON_SCHEMA = "autoglm/v1"


class Mode(str, enum.Enum):
    HUMAN = "human"
    JSON = "json"
    QUIET = "quiet"


class Output:
    """Renders results and messages for one command invocation."""

    def __init__(self, mode: Mode = Mode.HUMAN, *, verbose: bool = False, command: str = "autoglm"):
        self.mode = mode
        self.verbose = verbose
        self.command = command
        self._stdout: Console | None = None
        self._stderr: Console | None = None
        self.phase: str | None = None  # the last progress step begun: what Ctrl-C interrupted

    # -- consoles (rich is imported only when something is rendered) --------

    @property
    def stdout(self) -> Console:
        if self._stdout is None:
            self._stdout = _console(stderr=False)
        return self._stdout

    @property
    def stderr(self) -> Console:
        if self._stderr is None:
            self._stderr = _console(stderr=True)
        return self._stderr

    @property
    def is_json(self) -> bool:
        return self.mode is Mode.JSON

    # -- messages (stderr) ---------------------------------------------------

    # Messages are never hard-wrapped (soft_wrap=True): one message, one line, so
    # a file:line: field prefix stays greppable; the terminal wraps for the eye.

    def note(self, message: str) -> None:
        if self.mode is Mode.HUMAN:
            self.stderr.print(redact(message), highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.mode is not Mode.QUIET:
            text = f"[yellow]warning:[/] {escape_markup(redact(message))}"
            self.stderr.print(text, highlight=False, soft_wrap=True)

    def debug(self, message: str) -> None:
        if self.verbose:
            self.stderr.print(f"[dim]{escape_markup(redact(message))}[/]", highlight=False, soft_wrap=True)

    # -- results (stdout) ----------------------------------------------------

    def result(
        self,
        data: Any,
        *,
        exit_code: ExitCode = ExitCode.OK,
        human: Callable[[Console], None] | None = None,
        reveal: dict[str, str] | None = None,
    ) -> int:
        """Show a command's report; returns the exit code for the CLI to use.

        `reveal`: secrets the user asked to see exactly once (a new API key). They skip
        redaction on purpose: in JSON they are added to `result` after the rest was
        redacted; in human and quiet modes each is printed alone on stdout.
        """
        if self.mode is Mode.JSON:
            self._json(
                {"ok": exit_code == ExitCode.OK, "exit_code": int(exit_code), "result": to_jsonable(data)},
                reveal=reveal,
            )
            return int(exit_code)
        for secret in (reveal or {}).values():
            self.data(secret)
        if self.mode is Mode.HUMAN and human is not None:
            human(self.stdout)
        return int(exit_code)

    def data(self, text: str) -> None:
        """Raw data for stdout in human and quiet modes (e.g. a new API key, a unit file)."""
        if self.mode is not Mode.JSON:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()

    def error(self, err: AutoglmError) -> int:
        """The one place an error becomes a message; returns its exit code."""
        if self.mode is Mode.JSON:
            body = {k: redact(v) if isinstance(v, str) else v for k, v in err.to_dict().items()}
            self._json({"ok": False, "exit_code": int(err.exit_code), "error": body})
        else:
            console = self.stderr
            text = f"[bold red]error:[/] {escape_markup(redact(err.message))}"
            console.print(text, highlight=False, soft_wrap=True)
            if err.remedy:
                hint = escape_markup(redact(err.remedy))
                console.print(f"[dim]hint:[/] {hint}", highlight=False, soft_wrap=True)
        return int(err.exit_code)

    def _json(self, body: dict, reveal: dict[str, str] | None = None) -> None:
        doc = {"schema": JSON_SCHEMA, "command": self.command, **body}
        text = redact(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        if reveal:
            doc = json.loads(text)
            doc["result"] = {**(doc.get("result") or {}), **reveal}
            text = json.dumps(doc, indent=2, ensure_ascii=False)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    # -- progress (stderr, human mode on a terminal only) ---------------------

    def progress_enabled(self) -> bool:
        return self.mode is Mode.HUMAN and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"

    @contextmanager
    def progress(self, *, bytes_: bool = False) -> Iterator[Progress]:
        """A `Progress` for ops functions; drawn only when a human is watching.

        Bars count in the same units as every summary (`units.size_text`), and show
        the elapsed time, so a long step with no known total still visibly moves.
        The step last begun is kept in `self.phase` for the interrupt message.
        """
        if not self.progress_enabled():
            yield _PhaseTracking(NULL_PROGRESS, self)
            return
        from rich import progress as rp

        from ._progress_columns import CountColumn, ElapsedColumn, RateColumn

        columns: list[Any] = [
            rp.TextColumn("{task.description}"),
            rp.BarColumn(bar_width=24),
            CountColumn(),
            RateColumn(),
            ElapsedColumn(),
        ]
        with rp.Progress(*columns, console=self.stderr, transient=True, refresh_per_second=4) as bar:
            yield _PhaseTracking(_RichProgress(bar, default_unit="bytes" if bytes_ else "items"), self)


class _PhaseTracking:
    """Passes tasks through, remembering the latest description as the output's phase."""

    def __init__(self, inner: Progress, output: Output) -> None:
        self._inner, self._output = inner, output

    def task(
        self,
        description: str,
        total: float | None = None,
        *,
        transient: bool = False,
        unit: str | None = None,
    ) -> ProgressTask:
        self._output.phase = description
        return _PhaseTask(self._inner.task(description, total, transient=transient, unit=unit), self._output)


class _PhaseTask:
    def __init__(self, inner: ProgressTask, output: Output) -> None:
        self._inner, self._output = inner, output

    def advance(self, amount: float = 1) -> None:
        self._inner.advance(amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if description is not None:
            self._output.phase = description
        self._inner.update(total=total, description=description)

    def finish(self) -> None:
        self._inner.finish()


class _RichTask:
    def __init__(self, bar: Any, task_id: Any, lock: threading.Lock, transient: bool) -> None:
        self._bar, self._id, self._lock, self._transient = bar, task_id, lock, transient

    def advance(self, amount: float = 1) -> None:
        self._bar.advance(self._id, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._bar.update(self._id, **kwargs)

    def finish(self) -> None:
        with self._lock:
            if self._transient:
                self._bar.remove_task(self._id)
            else:
                task = self._bar.tasks[self._bar.task_ids.index(self._id)]
                if task.total is not None:
                    self._bar.update(self._id, completed=task.total)


class _RichProgress:
    def __init__(self, bar: Any, *, default_unit: str = "items") -> None:
        self._bar = bar
        self._lock = threading.Lock()
        self._default_unit = default_unit

    def task(
        self,
        description: str,
        total: float | None = None,
        *,
        transient: bool = False,
        unit: str | None = None,
    ) -> ProgressTask:
        with self._lock:
            task_id = self._bar.add_task(
                escape_markup(redact(description)), total=total, unit=unit or self._default_unit
            )
        return _RichTask(self._bar, task_id, self._lock, transient)


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    # rich honours NO_COLOR itself; highlight off so data is not recoloured.
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def escape_markup(text: str) -> str:
    """`text` shown literally by rich (no [markup] in file names or messages)."""
    from rich.markup import escape

    return escape(text)


# One formatting of sizes and durations for the whole tool (re-exported for cli/ modules).
size_text = units.size_text
duration_text = units.duration_text


# The output of the command being run, so `main` can render errors raised before
# or after the command built its own (see cli/app.py).
_active: Output | None = None


def activate(output: Output | None) -> Output | None:
    global _active
    _active = output
    return output


def active() -> Output | None:
    return _active


def interruption() -> Interrupted:
    """Ctrl-C with no command-specific message: at least say during which step."""
    phase = _active.phase if _active is not None else None
    return Interrupted(f"interrupted during {phase}" if phase else "interrupted", remedy="")
