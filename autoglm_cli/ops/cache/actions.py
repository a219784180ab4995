"""Apply and verify the file-based items every filesystem kind shares.

Kinds that live on a filesystem (hub cache, module cache, directory caches)
delegate here; a kind that is not files (a key-value store) brings its own.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ...atomic import atomic_write
from ...errors import EnvironmentFailure
from ..checksums.hashing import hash_file
from . import fileops
from .kind import Action, Applied, Item


def apply_item(item: Item, *, on_bytes: fileops.OnBytes) -> Applied:
    action = item.action
    if action is Action.LINK:
        try:
            fileops.link_file(item.source, item.target)
            on_bytes(item.size)
            return Applied(Action.LINK, size=item.size)
        except fileops.CrossDevice:
            action = Action.COPY  # another filesystem after all: copy and verify instead
    if action is Action.COPY:
        sha = fileops.copy_verified(item.source, item.target, on_bytes, expect_sha256=item.sha256)
        return Applied(Action.COPY, sha256=sha, size=item.size)
    if action is Action.RENAME:
        _rename(item)
        on_bytes(item.size)
        return Applied(Action.RENAME, size=item.size)
    if action is Action.SYMLINK:
        fileops.make_symlink(item.text, item.target)
    elif action is Action.WRITE:
        if not (os.path.isfile(item.target) and Path(item.target).read_text(encoding="utf-8") == item.text):
            atomic_write(item.target, item.text or "")
    elif action is Action.MKDIR:
        os.makedirs(item.target, exist_ok=True)
    return Applied(action)


def _rename(item: Item) -> None:
    target = Path(item.target)
    if os.path.lexists(target):
        if not target.is_symlink() and item.ino is not None and os.stat(target).st_ino == item.ino:
            return  # a previous run moved it
        raise FileExistsError(f"{target} appeared after the plan was made")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(item.source, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise EnvironmentFailure(
                f"cannot move {item.source} to {target}: another filesystem",
                remedy="Run again with --copy.",
            ) from None
        raise


def compat_symlink(source: str, target: str) -> None:
    """After a rename: `source` becomes a relative symlink to `target` (dual read)."""
    if os.path.lexists(source) and not os.path.islink(source):
        raise EnvironmentFailure(f"{source} still exists; the move did not happen")
    text = os.path.relpath(target, os.path.dirname(source))
    fileops.make_symlink(text, source)


def verify_item(item: Item, *, deep: bool, copied: dict | None) -> str | None:
    """None when `item.target` is right; else a short description of what is wrong."""
    target = item.target
    action = item.action
    if action is Action.LINK and copied is not None:
        action = Action.COPY  # it fell back to a copy (other filesystem)
    if action is Action.MKDIR:
        return None if os.path.isdir(target) else "directory missing"
    if action is Action.KEEP and item.text is not None:
        # a kept ref or symlink: the target's own value stands (e.g. a newer refs/main)
        return None if os.path.lexists(target) else "missing"
    if action is Action.SYMLINK:
        if not os.path.islink(target):
            return "symlink missing"
        if os.readlink(target) != item.text:
            return f"symlink points to {os.readlink(target)}, expected {item.text}"
        return None if os.path.exists(target) else "symlink is dangling"
    if action is Action.WRITE:
        try:
            return None if Path(target).read_text(encoding="utf-8") == item.text else "content differs"
        except OSError:
            return "file missing"
    if action is Action.RENAME:
        if not os.path.isdir(target) or os.path.islink(target):
            return "moved directory missing"
        if item.ino is not None and os.stat(target).st_ino != item.ino:
            return "moved directory is not the original"
        return None
    if not os.path.isfile(target):
        return "file missing"
    if action is Action.LINK:
        if item.source is None or not os.path.exists(item.source):
            return None if item.done else "source vanished"
        return None if fileops.same_file(item.source, target) else "not a hard link of the source"
    if os.path.getsize(target) != item.size:
        return f"size {os.path.getsize(target)} != {item.size}"
    if not deep:
        return None
    if action is Action.COPY and copied is not None:
        expected = copied.get("sha256")
        if item.source and os.path.exists(item.source):
            st = os.stat(item.source)
            if (st.st_size, st.st_mtime_ns) != (copied.get("size"), copied.get("src_mtime_ns")):
                expected = hash_file(item.source)  # source changed since: compare afresh
    elif item.sha256:
        expected = item.sha256
    elif item.source and os.path.exists(item.source):
        if fileops.same_file(item.source, target):
            return None
        expected = hash_file(item.source)
    else:
        return "nothing to compare the copy with"
    actual = hash_file(target)
    return None if actual == expected else f"sha256 {actual} != {expected}"


def recover_rename(record: dict) -> None:
    """Finish a directory rename the journal shows as started (crash between its steps)."""
    source, target, ino = record["source"], record["target"], record.get("ino")
    if os.path.islink(source):
        return  # the compat symlink is there: finished
    if os.path.lexists(source):
        return  # the rename never happened; the next plan does it again
    if os.path.isdir(target) and (ino is None or os.stat(target).st_ino == ino):
        compat_symlink(source, target)
