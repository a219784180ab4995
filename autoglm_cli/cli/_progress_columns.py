"""Progress-bar columns in autoglm's units (`units.py`): sizes in IEC, elapsed time always."""

from __future__ import annotations

from rich.progress import ProgressColumn, Task
from rich.text import Text

from ..units import duration_text, rate_text, size_text


def _counts_bytes(task: Task) -> bool:
    return task.fields.get("unit") == "bytes"


class CountColumn(ProgressColumn):
    """`12.0/250.0 MiB` for a byte task, `3/8` for items; just the count when the total is unknown."""

    def render(self, task: Task) -> Text:
        if task.total is None and not task.completed:
            return Text("")  # a wait with no count (a health gate): the elapsed time shows it moves
        if not _counts_bytes(task):
            done = f"{task.completed:.0f}"
            shown = f"{done}/{task.total:.0f}" if task.total is not None else done
            return Text(shown, style="progress.download")
        done = size_text(task.completed)
        if task.total is None:
            return Text(done, style="progress.download")
        total = size_text(task.total)
        # "12.0/214.0 KiB", not "12.0 KiB/214.0 KiB", when both share a unit: it fits 80 columns.
        number, _, unit = done.partition(" ")
        shown = f"{number}/{total}" if total.endswith(" " + unit) else f"{done}/{total}"
        return Text(shown, style="progress.download")


class RateColumn(ProgressColumn):
    """Bytes per second for byte tasks; nothing for the others."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not _counts_bytes(task) or speed is None:
            return Text("")
        return Text(rate_text(speed), style="progress.data.speed")


class ElapsedColumn(ProgressColumn):
    """Time since the step began: a wait with no known end (a health gate, a build) still moves."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(duration_text(elapsed or 0), style="progress.elapsed")
