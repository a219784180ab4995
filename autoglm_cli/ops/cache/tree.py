"""Plan the items that rebuild one directory tree elsewhere (per file: link, copy or keep).

Shared by the directory-cache kind and the trust_remote_code module kind. Old
files stay where they are, so the old path keeps resolving ("kept links").
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import fileops
from .kind import Action, Item, Problem

SKIP_NAMES = frozenset({"__pycache__"})  # regenerated on import; their paths would be stale anyway


def is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(fileops.PARTIAL_SUFFIX)


@dataclass
class TreePlan:
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def file_item(source: Path, target: Path, *, link: bool, kind: str, phase: int = 0) -> Item | Problem:
    """Link or copy one regular file; an existing target is kept only with the same content."""
    st = source.stat()
    action = Action.LINK if link else Action.COPY
    if not os.path.lexists(target):
        return Item(action, str(target), str(source), size=st.st_size, ino=st.st_ino, phase=phase)
    if os.path.isfile(target) and not os.path.islink(target):
        if fileops.same_file(source, target):
            return Item(
                Action.LINK, str(target), str(source), size=st.st_size, ino=st.st_ino, done=True, phase=phase
            )
        tst = os.stat(target)
        if tst.st_size == st.st_size:
            if tst.st_mtime_ns == st.st_mtime_ns:  # a copy a previous run published (mtime kept)
                return Item(Action.COPY, str(target), str(source), size=st.st_size, done=True, phase=phase)
            if fileops.first_difference(source, target) is None:  # same bytes: stops at the first difference
                return Item(Action.KEEP, str(target), str(source), size=st.st_size, phase=phase)
    return Problem(kind, str(target), f"already exists with other content than {source}")


def plan_tree(
    source: Path,
    target: Path,
    *,
    link: bool,
    kind: str,
    cache_root: Path,
    skip: frozenset[str] = SKIP_NAMES,
) -> TreePlan:
    """Items that make `target` hold what `source` holds; symlinks must stay inside `cache_root`."""
    plan = TreePlan()
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        here = Path(dirpath)
        there = target / here.relative_to(source)
        plan.items.append(Item(Action.MKDIR, str(there), done=there.is_dir()))
        # os.walk lists symlinks to directories among dirnames; treat them as links
        for name in sorted([d for d in dirnames if (here / d).is_symlink()] + filenames):
            if is_partial(name):
                continue
            src = here / name
            dst = there / name
            if src.is_symlink():
                _plan_symlink(src, dst, source, target, cache_root, kind, plan)
                continue
            result = file_item(src, dst, link=link, kind=kind)
            (plan.problems if isinstance(result, Problem) else plan.items).append(result)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return plan


def _plan_symlink(
    src: Path, dst: Path, source_root: Path, target_root: Path, cache_root: Path, kind: str, plan: TreePlan
) -> None:
    text = os.readlink(src)
    resolved = Path(os.path.realpath(src))
    if not fileops.is_within(resolved, cache_root):
        plan.problems.append(Problem(kind, str(src), f"symlink points out of the cache root ({text})"))
        return
    if fileops.is_within(resolved, source_root) and not os.path.isabs(text):
        new_text = text  # points inside the moved tree: the same relative text still works
    elif os.path.isabs(text):
        new_text = text
    else:
        new_text = os.path.relpath(resolved, dst.parent)
    done = dst.is_symlink() and os.readlink(dst) == new_text
    if os.path.lexists(dst) and not done:
        plan.problems.append(Problem(kind, str(dst), f"already exists and is not a symlink to {new_text}"))
        return
    plan.items.append(Item(Action.SYMLINK, str(dst), str(src), text=new_text, done=done, phase=1))


def escaping_symlinks(tree: Path) -> list[Path]:
    """Symlinks under `tree` that point outside it (a directory rename would break them)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not fileops.is_within(path, tree):
                found.append(path)
    return found


def tree_size(tree: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            with contextlib.suppress(OSError):  # vanished meanwhile
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
