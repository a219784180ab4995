"""The one status word of a check, shared by `env-check` and `health` (and what reads their reports)."""

from __future__ import annotations

from ..words import Word


class Status(Word):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable here (no GPU, a bare URL without a state file)
