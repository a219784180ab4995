"""What every kind of cache provides to the migration engine, and the plan's pieces.

A kind (the hub cache, the trust_remote_code module cache, a directory cache; a
key-value store could be a fourth) turns one mapping row into *entries* (a repo
folder, a module folder, a directory: what moves as a unit) made of *items*
(one blob, one symlink, one ref). The engine never looks inside an item: it asks
the kind that planned it to apply it, verify it, make the old location resolve
(compat) and, with --prune-old, remove the old entry. A new kind adds a module
with a class like these and a line in `registry.py` (plus, if it journals
intents of its own, a function that finishes them); nothing else changes.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from .mapping import MappingRow


class Action(str, enum.Enum):
    LINK = "link"  # hard link, same filesystem: no byte copied, the old name keeps working
    COPY = "copy"  # copy while hashing, re-read the copy, compare, then publish
    RENAME = "rename"  # move a whole directory; a compat symlink keeps the old path readable
    SYMLINK = "symlink"  # a symlink (hub snapshots -> blobs)
    WRITE = "write"  # a small file with known content (hub refs, empty markers)
    MKDIR = "mkdir"  # a directory that must exist even when empty
    KEEP = "keep"  # the target already holds this content (e.g. a partial re-download)


# What moves data (shown as the "method" in the plan).
MOVING = (Action.LINK, Action.COPY, Action.RENAME)


@dataclass(frozen=True)
class Item:
    """One step of one entry. Kinds may subclass it to carry what they need."""

    action: Action
    target: str
    source: str | None = None
    size: int = 0
    text: str | None = None  # symlink text or file content
    sha256: str | None = None  # known content hash (hub LFS blobs are named by it)
    ino: int | None = None  # the source's inode when planned (links, renames)
    done: bool = False  # already in place: a previous run did it, or it was there
    phase: int = 0  # items of one entry run phase by phase (blobs, then snapshots, then refs)

    @property
    def id(self) -> str:
        return self.target


@dataclass(frozen=True)
class Entry:
    """What moves as a unit: `source` (old) -> `target` (new)."""

    kind: str
    old_key: str
    new_key: str
    source: str
    target: str
    items: tuple[Item, ...]
    prune_paths: tuple[str, ...] = ()  # removed by --prune-old once every item verifies

    @property
    def bytes(self) -> int:
        return sum(i.size for i in self.items if i.action in MOVING)

    @property
    def todo(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if not i.done and i.action is not Action.KEEP)

    @property
    def todo_bytes(self) -> int:
        return sum(i.size for i in self.todo if i.action in MOVING)

    @property
    def methods(self) -> dict[str, int]:
        """How many items move by each action (the plan's link/rename/copy column)."""
        return dict(Counter(i.action.value for i in self.items))

    @property
    def method(self) -> str:
        """One word for the plan: how this entry's data moves."""
        moving = {i.action for i in self.items if i.action in MOVING and not i.done}
        if not moving:
            pending = [i for i in self.items if not i.done and i.action is not Action.KEEP]
            return "metadata" if pending else "done"
        return "+".join(a.value for a in MOVING if a in moving)


@dataclass(frozen=True)
class Problem:
    """Something that makes the plan unsafe to apply (nothing is touched)."""

    kind: str
    path: str
    message: str


@dataclass(frozen=True)
class KindPlan:
    entries: tuple[Entry, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Applied:
    """What applying an item did, for the journal."""

    action: Action  # may differ from the plan: a link across filesystems becomes a copy
    sha256: str | None = None
    size: int = 0
    extra: dict = field(default_factory=dict)


class CacheKind(Protocol):
    """The interface between the engine and one kind of cache."""

    name: str  # e.g. "hf-hub"; journal records carry it
    row_kind: str  # which mapping rows it serves ("hf", "dir")
    location: str  # what it migrates in, for messages

    def plan(self, row: MappingRow, *, copy: bool) -> KindPlan:
        """Read-only: the entries and items this row needs, and anything that makes it unsafe."""

    def apply(self, item: Item, *, on_bytes) -> Applied:
        """Do one item; idempotent (a rerun after a crash may repeat it)."""

    def verify(self, item: Item, *, deep: bool, copied: dict | None) -> str | None:
        """None when the item's target is right; else what is wrong.

        `deep` hashes what was copied or kept (before --prune-old); `copied` is the
        journal's record for a copy (its sha256 and the source's size and mtime).
        """

    def compat(self, entry: Entry) -> None:
        """Make the old location resolve after the entry moved (no-op when links were kept)."""

    def prune(self, paths: list[str]) -> None:
        """Remove old entries (the engine calls this only after every item verified)."""
