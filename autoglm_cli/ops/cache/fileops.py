"""File primitives the migration is built from; each one is safe to repeat after a crash.

- `link_file`: a hard link; fails (never replaces) when the target exists with other content.
- `copy_verified`: copy to a hidden sibling while hashing the source, fsync, re-read the
  copy and hash it, publish only if both hashes agree (link + unlink: no clobbering).
- `make_symlink`: publish a symlink atomically (small files: `atomic.atomic_write`).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from ...errors import IntegrityError
from ..checksums.hashing import hash_file

CHUNK = 4 << 20
PARTIAL_SUFFIX = ".autoglm-partial"

OnBytes = Callable[[int], None]


def _noop(_: int) -> None:
    pass


class CrossDevice(Exception):
    """A hard link or rename is impossible here (another filesystem): copy instead."""


def partial_path(target: str | os.PathLike) -> Path:
    """The hidden sibling a copy is written to before it is published."""
    target = Path(target)
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def same_device(a: str | os.PathLike, b_dir: str | os.PathLike) -> bool:
    """Whether `a` and (the nearest existing parent of) `b_dir` share a filesystem."""
    b = Path(b_dir)
    while not b.exists() and b != b.parent:
        b = b.parent
    return os.stat(a).st_dev == os.stat(b).st_dev


def link_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Hard-link `target` to `source`; done already counts; other content raises FileExistsError."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        if not same_file(source, target):
            raise
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise CrossDevice(str(exc)) from None
        raise


def copy_verified(
    source: str | os.PathLike,
    target: str | os.PathLike,
    on_bytes: OnBytes = _noop,
    *,
    expect_sha256: str | None = None,
) -> str:
    """Copy `source` to `target` and prove the copy; returns the sha256 of the content.

    Pass 1 hashes the bytes as they are read while the kernel copies the same
    range to a hidden sibling (`copy_file_range`, like `cp`; plain writes where
    that is not available), then fsyncs it. Pass 2 re-reads the copy and compares it with the source byte
    for byte (as strong as comparing hashes, at memcmp speed, so the sha256 is
    paid once). Only a matching copy is published, and publishing never replaces
    an existing file (FileExistsError instead). With `expect_sha256` (a hub
    blob's name), a source that does not match it is refused.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(target)
    tmp.unlink(missing_ok=True)  # a previous run's leftover: never trusted
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    src_stat = os.stat(source)
    try:
        with open(source, "rb", buffering=0) as fin:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(src_stat.st_mode) | 0o200)
            with open(fd, "wb", buffering=0) as fout:
                in_kernel = hasattr(os, "copy_file_range")
                offset = 0
                while n := fin.readinto(buf):
                    digest.update(view[:n])  # releases the GIL: other copies run meanwhile
                    if in_kernel:
                        in_kernel = _copy_range(fin.fileno(), fout.fileno(), offset, n)
                    if not in_kernel:
                        os.lseek(fout.fileno(), offset, os.SEEK_SET)
                        written = 0
                        while written < n:
                            written += fout.write(view[written:n])
                    offset += n
                    on_bytes(n)
                os.fsync(fout.fileno())
        source_sha = digest.hexdigest()
        differs_at = first_difference(tmp, source)
        if differs_at is not None:
            raise IntegrityError(
                f"the copy of {source} differs from it at byte {differs_at}",
                remedy="Check the target disk (it returned other bytes than written), then run again.",
            )
        if expect_sha256 and source_sha != expect_sha256:
            raise IntegrityError(
                f"{source} does not match its hash {expect_sha256} (got {source_sha}); it was not migrated",
                remedy="The old copy is damaged: fetch the file again (`autoglm fetch-weights`).",
            )
        os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
        os.chmod(tmp, stat.S_IMODE(src_stat.st_mode))
        try:
            rename_noreplace(tmp, target)
        except FileExistsError:
            if hash_file(target) != source_sha:
                raise
    finally:
        tmp.unlink(missing_ok=True)
    return source_sha


def _renameat2() -> Callable[[str, str], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    at_fdcwd, rename_noreplace_flag = -100, 1

    def call(src: str, dst: str) -> int:
        return fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace_flag)

    return call


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None


def rename_noreplace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename atomically, failing with FileExistsError instead of replacing `target`.

    Linux: renameat2(RENAME_NOREPLACE). Elsewhere (or on filesystems without it):
    link + unlink, which is just as safe but may leave `source` behind after a crash.
    """
    if _RENAMEAT2 is not None and _RENAMEAT2(os.fspath(source), os.fspath(target)) == 0:
        return
    if _RENAMEAT2 is not None:
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), os.fspath(target))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), os.fspath(source))
    os.link(source, target)
    os.unlink(source)


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> bool:
    """Copy [offset, offset+length) inside the kernel (as `cp` does); False: not possible here."""
    done = 0
    try:
        while done < length:
            copied = os.copy_file_range(src_fd, dst_fd, length - done, offset + done, offset + done)
            if copied == 0:
                return False
            done += copied
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            return False
        raise
    return True


def first_difference(a: str | os.PathLike, b: str | os.PathLike) -> int | None:
    """The offset of the first byte where two files differ (a length difference counts); None if equal."""
    buf_a, buf_b = bytearray(CHUNK), bytearray(CHUNK)
    offset = 0
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            n, m = fa.readinto(buf_a), fb.readinto(buf_b)
            same = buf_a == buf_b if n == m == CHUNK else buf_a[:n] == buf_b[:m]
            if not same:
                k = next((i for i in range(min(n, m)) if buf_a[i] != buf_b[i]), min(n, m))
                return offset + k
            if n == 0:
                return None
            offset += n


def make_symlink(text: str, target: str | os.PathLike) -> None:
    """Create symlink `target` -> `text`; an equal one counts as done."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(text, target)
    except FileExistsError:
        if not (target.is_symlink() and os.readlink(target) == text):
            raise


def is_within(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path` (symlinks resolved) lies inside `root` (symlinks resolved)."""
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a file, a symlink (never what it points to) or a directory tree."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if os.path.islink(child):
                os.unlink(child)
            else:
                os.rmdir(child)
    os.rmdir(path)
