"""Commands registered before their issue lands: honest about it, never pretending."""

from __future__ import annotations

from ..errors import NotImplementedYet

# `autoglm <command> anything...` must reach the honest error, not a usage error.
PENDING_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def not_built(command: str, issue: int) -> NotImplementedYet:
    return NotImplementedYet(
        f"`autoglm {command}` is registered but not built yet (issue #{issue}).",
    )
