"""Every command is documented: a README section and a docs/ page (sqlite-utils style)."""

from __future__ import annotations

import pytest

from autoglm_cli.cli.app import COMMANDS
from tests.conftest import REPO_ROOT


def _command_names() -> list[str]:
    return list(COMMANDS)


@pytest.mark.parametrize("name", _command_names())
def test_every_command_has_a_docs_page(name):
    page = REPO_ROOT / "docs" / f"{name}.md"
    if name == "verify":
        page = REPO_ROOT / "docs" / "verify-sha256.md"
    assert page.is_file(), f"docs/{page.name} is missing"
    assert f"autoglm {name}" in page.read_text()


@pytest.mark.parametrize("name", _command_names())
def test_every_command_is_in_the_readme(name):
    assert f"`autoglm {name}" in (REPO_ROOT / "README.md").read_text()
