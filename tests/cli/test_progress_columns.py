"""Progress bars count in autoglm's units and never show a frozen `0/?`."""

from __future__ import annotations

from rich.progress import Progress

from autoglm_cli.cli._progress_columns import CountColumn, ElapsedColumn, RateColumn


def _task(total, completed, unit):
    progress = Progress()
    task_id = progress.add_task("x", total=total, completed=completed, unit=unit)
    return progress.tasks[task_id]


def test_bytes_are_iec_with_one_unit_when_both_share_it():
    assert CountColumn().render(_task(214 * 1024, 12 * 1024, "bytes")).plain == "12.0/214.0 KiB"
    assert CountColumn().render(_task(3 * 2**30, 512, "bytes")).plain == "512 B/3.0 GiB"


def test_items_and_waits_without_a_count():
    assert CountColumn().render(_task(8, 3, "items")).plain == "3/8"
    assert CountColumn().render(_task(None, 0, "items")).plain == ""
    assert RateColumn().render(_task(8, 3, "items")).plain == ""


def test_elapsed_is_a_duration():
    assert ElapsedColumn().render(_task(None, 0, "items")).plain == "0 ms"
