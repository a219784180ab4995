"""Helpers of the one Output module that the commands share."""

from __future__ import annotations

import pytest

from autoglm_cli.cli.output import escape_markup, size_text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (200 << 20, "200.0 MiB"), (3 << 40, "3.0 TiB")],
)
def test_size_text(n, text):
    assert size_text(n) == text


def test_escape_markup_keeps_brackets_literal():
    assert escape_markup("[bold]x[/]") == "\\[bold]x\\[/]"
