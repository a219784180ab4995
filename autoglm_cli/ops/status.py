"""The one status word of a check, shared by `env-check` and `health` (and what reads their reports).

`Word` is the base of every state that reports carry as a word (a step's status, a
deploy's action): equal to its string, printed and serialised as it.
"""

from __future__ import annotations

import enum


class Word(str, enum.Enum):
    """A state that is also its word: `Word("ok") == "ok"`, f"{member}" == "ok", JSON "ok"."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(Word):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable here (no GPU, a bare URL without a state file)
