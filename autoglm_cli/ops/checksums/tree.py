"""File names relative to a root: which are safe to open, and which files a tree holds."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class UnsafeName(ValueError):
    """A manifest name that would reach outside the root (absolute, `..`, NUL byte)."""


def safe_relative_name(name: str) -> str:
    """The normalized form of a manifest name, or `UnsafeName` if it escapes the root.

    The check is on the name alone: a manifest must not make us open `/etc/shadow`
    or `../../.ssh/id_rsa`. Symbolic links inside the root are followed (a Hugging
    Face snapshot is made of links into `blobs/`); whoever built the tree chose them.
    """
    if "\0" in name:
        raise UnsafeName("the name contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeName("absolute path: manifest names must be relative to the root")
    if ".." in name.split("/"):
        raise UnsafeName("'..' in the path: the entry would escape the root")
    normal = posixpath.normpath(name)
    if normal in (".", ""):
        raise UnsafeName("the name is the root directory itself")
    return normal


@dataclass(frozen=True)
class SkippedPath:
    """Something in the tree that is not a file we can hash (a FIFO, a dangling link...)."""

    name: str
    reason: str


def walk_files(root: Path, *, exclude: frozenset[Path] = frozenset()) -> Iterator[str | SkippedPath]:
    """Relative names (with `/`) of the regular files under `root`, in sorted byte order.

    Symbolic links to files count as files; links to directories are not followed
    (no cycles) and come back as `SkippedPath`, like FIFOs, sockets and devices.
    `exclude` holds absolute paths to leave out (the manifest itself).
    """
    root = Path(root)
    excluded = {os.path.abspath(p) for p in exclude}
    found: list[tuple[bytes, str | SkippedPath]] = []

    def unreadable_directory(exc: OSError) -> None:
        # os.walk would skip it silently; a manifest missing a whole folder must not.
        name = os.path.relpath(exc.filename, root) if exc.filename else "."
        found.append((os.fsencode(name), SkippedPath(name, f"directory not readable: {exc.strerror}")))

    for directory, subdirs, files in os.walk(root, onerror=unreadable_directory, followlinks=False):
        subdirs.sort()
        rel_dir = os.path.relpath(directory, root)
        # os.walk lists links to directories among subdirs; they are not descended.
        candidates = files + [d for d in subdirs if os.path.islink(os.path.join(directory, d))]
        for entry in candidates:
            full = os.path.join(directory, entry)
            if os.path.abspath(full) in excluded:
                continue
            name = entry if rel_dir == "." else f"{rel_dir}/{entry}"
            found.append((os.fsencode(name), _classify(full, name)))
    found.sort(key=lambda pair: pair[0])  # byte order, like `LC_ALL=C sort`
    for _, item in found:
        yield item


def _classify(full: str, name: str) -> str | SkippedPath:
    try:
        mode = os.stat(full).st_mode  # follows links
    except FileNotFoundError:
        return SkippedPath(name, "dangling symbolic link")
    except OSError as exc:
        return SkippedPath(name, exc.strerror or str(exc))
    if stat.S_ISREG(mode):
        return name
    if stat.S_ISDIR(mode):
        return SkippedPath(name, "symbolic link to a directory (not followed)")
    return SkippedPath(name, f"not a regular file ({file_kind(mode)})")


def file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"
