"""Fixtures for the repo tests: an isolated git, the org-move world, a checkout with local work."""

from __future__ import annotations

import pytest

from autoglm_cli.retry import RetryPolicy
from tests.fixtures.git_repos import OrgMove, build_org_move, isolated_env, make_checkout


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch, tmp_path):
    for key, value in isolated_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def world(tmp_path) -> OrgMove:
    return build_org_move(tmp_path / "remotes")


@pytest.fixture
def work(world, tmp_path):
    """A checkout of the old name with a submodule, a push URL, local commits, a stash, edits."""
    return make_checkout(world, tmp_path / "work", push_url=world.old_url)


class Waits(list):
    """The waits a RetryPolicy asked for (nobody actually sleeps)."""


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def retry(waits) -> RetryPolicy:
    """The project's default policy (3 tries, base 1 s), sleeping into `waits`, jitter fixed at 1.0x."""
    return RetryPolicy(sleep=waits.append, random=lambda: 0.5)
