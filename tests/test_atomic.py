"""`atomic_write`: the old file or the whole new one, never a temporary left behind."""

from __future__ import annotations

import stat

import pytest

from autoglm_cli.atomic import atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "SHA256SUMS"
    target.write_bytes(b"old\n")
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SHA256SUMS"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "SHA256SUMS"
    target.write_bytes(b"old\n")
    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # type: ignore[arg-type]  # neither bytes nor text: the write fails
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SHA256SUMS"]


def test_atomic_write_gives_the_mode_asked_for(tmp_path):
    secret = tmp_path / "keys" / "health.key"
    atomic_write(secret, "k\n", mode=0o600)  # the folder is created
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == "k\n"
