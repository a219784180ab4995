"""Plain directory caches: entries under old prefixes move to the path the template gives.

Keys are paths relative to `--root`. A row `THUDM/` -> `zai-org/{name}` matches
every entry of `<root>/THUDM/`; a row `user:` -> `profile/{id}` matches every
entry of `<root>` whose name starts with `user:`. Per entry:

- a directory whose new path is free, on the same filesystem: one `rename`, then
  the old path becomes a relative symlink to the new one (the journal records the
  intent first, so a crash between the two steps is finished by the next run);
- a file, a directory merging into an existing one, or anything with `--copy` /
  across filesystems: file by file (hard links or verified copies); the old files
  stay, so the old path keeps resolving.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from . import actions, fileops
from .kind import Action, Applied, Entry, Item, KindPlan, Problem
from .mapping import MappingRow
from .tree import escaping_symlinks, file_item, is_partial, plan_tree, tree_size


def valid_relative_key(key: str) -> bool:
    path = PurePosixPath(key)
    return bool(key) and not path.is_absolute() and ".." not in path.parts and key not in (".", "")


class DirectoryKind:
    name = "dir"
    row_kind = "dir"

    def __init__(self, root: str | os.PathLike, target_root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).absolute()
        self.target_root = Path(target_root).absolute() if target_root else self.root
        same = self.target_root == self.root
        self.location = str(self.root) if same else f"{self.root} -> {self.target_root}"

    def plan(self, row: MappingRow, *, copy: bool) -> KindPlan:
        if not self.root.is_dir():
            return KindPlan(notes=(f"no directory cache at {self.root}",))
        parent_key, _, name_prefix = row.old.rpartition("/")
        parent = self.root / parent_key if parent_key else self.root
        if not parent.is_dir() or not fileops.is_within(parent, self.root):
            return KindPlan(notes=(f"nothing under {parent}",))
        entries, problems = [], []
        for child in sorted(parent.iterdir()):
            if not child.name.startswith(name_prefix) or is_partial(child.name):
                continue
            old_key = f"{parent_key}/{child.name}" if parent_key else child.name
            new_key = row.apply(old_key)
            if new_key is None:
                continue
            target = self.target_root / new_key
            if not valid_relative_key(new_key):
                problems.append(
                    Problem(self.name, str(child), f"{row.label} gives {new_key!r}, not a relative path")
                )
                continue
            lexical_target, lexical_child = os.path.abspath(target), os.path.abspath(child)
            if lexical_target == lexical_child or lexical_target.startswith(lexical_child + os.sep):
                problems.append(
                    Problem(self.name, str(child), f"the new path {target} lies inside the old one")
                )
                continue
            entry, entry_problems = self._plan_entry(child, target, old_key, new_key, copy=copy)
            problems += entry_problems
            if entry is not None:
                entries.append(entry)
        return KindPlan(tuple(entries), tuple(problems))

    def _plan_entry(self, child: Path, target: Path, old_key: str, new_key: str, *, copy: bool):
        def entry(items: list[Item]) -> Entry:
            return Entry(self.name, old_key, new_key, str(child), str(target), tuple(items), (str(child),))

        if child.is_symlink():
            if os.path.realpath(child) == os.path.realpath(target) and target.exists():
                # our compatibility symlink: a previous run moved this entry
                st = target.stat()
                size = tree_size(target) if target.is_dir() else st.st_size
                done = Item(Action.RENAME, str(target), str(child), size=size, ino=st.st_ino, done=True)
                return entry([done]), []
            if not fileops.is_within(child, self.root):
                return None, [
                    Problem(
                        self.name, str(child), f"symlink points out of the cache root ({os.readlink(child)})"
                    )
                ]
            text = os.path.relpath(os.path.realpath(child), target.parent)
            done = target.is_symlink() and os.readlink(target) == text
            if os.path.lexists(target) and not done:
                return None, [Problem(self.name, str(target), f"already exists and is not a link to {text}")]
            return entry([Item(Action.SYMLINK, str(target), str(child), text=text, done=done)]), []

        link = not copy and fileops.same_device(child, self.target_root)
        if child.is_file():
            result = file_item(child, target, link=link, kind=self.name)
            if isinstance(result, Problem):
                return None, [result]
            return entry([result]), []

        escaping = escaping_symlinks(child)
        outside = [p for p in escaping if not fileops.is_within(p, self.root)]
        if outside:
            return None, [
                Problem(self.name, str(p), f"symlink points out of the cache root ({os.readlink(p)})")
                for p in outside
            ]
        if link and not os.path.lexists(target) and not escaping:
            st = child.stat()
            return entry(
                [Item(Action.RENAME, str(target), str(child), size=tree_size(child), ino=st.st_ino)]
            ), []
        tree = plan_tree(child, target, link=link, kind=self.name, cache_root=self.root, skip=frozenset())
        return entry(tree.items), tree.problems

    def apply(self, item: Item, *, on_bytes) -> Applied:
        return actions.apply_item(item, on_bytes=on_bytes)

    def verify(self, item: Item, *, deep: bool, copied: dict | None) -> str | None:
        problem = actions.verify_item(item, deep=deep, copied=copied)
        moved = problem is None and item.action is Action.RENAME and item.source
        if moved and os.path.lexists(item.source) and not _leads_to(item.source, item.target):
            return "the old path does not lead to the new one"
        return problem

    def compat(self, entry: Entry) -> None:
        """After a rename the old path becomes a symlink to the new one."""
        for item in entry.items:
            if item.action is Action.RENAME and item.source and not os.path.islink(item.source):
                actions.compat_symlink(item.source, item.target)

    def prune(self, paths: list[str]) -> None:
        for path in paths:
            fileops.remove_tree(path)  # a compat symlink is unlinked, never followed


def _leads_to(old: str, new: str) -> bool:
    return os.path.realpath(old) == os.path.realpath(new)
