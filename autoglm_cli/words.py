"""`Word`: the base of every state a report carries as a word (a check's status, a step's
status, a deploy's action, a request's status): equal to its string, printed and
serialised as it, so JSON documents and comparisons with plain strings keep working."""

from __future__ import annotations

import enum


class Word(str, enum.Enum):
    """A state that is also its word: `Word("ok") == "ok"`, f"{member}" == "ok", JSON "ok"."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
