"""The file steps: verified copies refuse bad bytes and never clobber; links never replace."""

from __future__ import annotations

import hashlib
import os

import pytest

from autoglm_cli.errors import IntegrityError
from autoglm_cli.ops.cache import fileops


def test_copy_verified_returns_the_hash_and_keeps_mode_and_mtime(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(fileops.CHUNK + 123))
    os.chmod(src, 0o444)
    dst = tmp_path / "out" / "dst.bin"
    sha = fileops.copy_verified(src, dst)
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest()
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert oct(dst.stat().st_mode & 0o777) == oct(0o444)
    assert not fileops.partial_path(dst).exists()


def test_copy_verified_refuses_a_source_that_does_not_match_its_name(tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(b"rotten")
    dst = tmp_path / "new" / "blob"
    with pytest.raises(IntegrityError, match="does not match its hash"):
        fileops.copy_verified(src, dst, expect_sha256="0" * 64)
    assert not dst.exists()
    assert not fileops.partial_path(dst).exists()


def test_copy_verified_never_replaces_other_content(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"new")
    dst = tmp_path / "b"
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        fileops.copy_verified(src, dst)
    assert dst.read_bytes() == b"old"


def test_a_leftover_partial_is_never_trusted(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"complete content")
    dst = tmp_path / "b"
    fileops.partial_path(dst).write_bytes(b"compl")  # a killed run's half copy
    fileops.copy_verified(src, dst)
    assert dst.read_bytes() == b"complete content"


def test_link_file_is_idempotent_and_refuses_other_content(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"x")
    dst = tmp_path / "d" / "a"
    fileops.link_file(src, dst)
    fileops.link_file(src, dst)  # again: already done
    assert fileops.same_file(src, dst)
    other = tmp_path / "c"
    other.write_bytes(b"y")
    with pytest.raises(FileExistsError):
        fileops.link_file(other, dst)


def test_remove_tree_never_follows_symlinks(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data").write_text("precious")
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    (doomed / "link-to-dir").symlink_to(keep)
    (doomed / "link-to-file").symlink_to(keep / "data")
    fileops.remove_tree(doomed)
    assert not doomed.exists()
    assert (keep / "data").read_text() == "precious"


def test_first_difference_finds_the_byte(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    data = bytearray(os.urandom(fileops.CHUNK * 2 + 10))
    a.write_bytes(bytes(data))
    b.write_bytes(bytes(data))
    assert fileops.first_difference(a, b) is None
    data[fileops.CHUNK + 5] ^= 1
    b.write_bytes(bytes(data))
    assert fileops.first_difference(a, b) == fileops.CHUNK + 5
    b.write_bytes(bytes(data[:100]))
    assert fileops.first_difference(a, b) == 100


def test_copy_verified_without_copy_file_range(tmp_path, monkeypatch):
    """Where the kernel cannot copy (other platforms, some filesystem pairs), plain writes do it."""
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(fileops.CHUNK * 2 + 7))
    sha = fileops.copy_verified(src, tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest()
