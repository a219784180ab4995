"""`verify --incremental`: unchanged files are trusted, any changed byte is caught."""

from __future__ import annotations

import os
import subprocess

import pytest

from autoglm_cli.errors import ExitCode, UsageError
from autoglm_cli.ops.checksums import incremental, verify_manifest
from tests.fixtures.checksum_tree import sha256


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Three files and their manifest; the state dir in tmp_path."""
    monkeypatch.setenv("AUTOGLM_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "w"
    root.mkdir()
    contents = {"a.bin": b"a" * 1000, "b.bin": b"b" * 2000, "c.bin": b"c" * 3000}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    (root / "SUMS").write_text("".join(f"{sha256(d)}  {n}\n" for n, d in contents.items()))
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def later(monkeypatch):
    """A clock 60 s ahead, so files written by the test are not "racily clean" (see RACY_NS)."""
    monkeypatch.setattr(incremental, "clock_ns", lambda: incremental.time.time_ns() + 60_000_000_000)


def change_ctime_until_it_differs(path, recorded_ctime_ns, mtime_ns):
    """Restore the mtime with `touch -d` (as an attacker or a careless copy would) until the
    kernel's clock has ticked past the recorded ctime: polling, not a fixed sleep."""
    stamp = f"@{mtime_ns // 1_000_000_000}.{mtime_ns % 1_000_000_000:09d}"
    while True:
        subprocess.run(["touch", "-d", stamp, str(path)], check=True)
        info = os.stat(path)
        if info.st_ctime_ns != recorded_ctime_ns:
            assert info.st_mtime_ns == mtime_ns
            return


def test_unchanged_files_are_trusted_and_not_read(tree, later):
    first = verify_manifest("SUMS", incremental=True)
    assert (first.exit_code, first.trusted, first.bytes_hashed) == (ExitCode.OK, 0, 6000)

    again = verify_manifest("SUMS", incremental=True)

    assert (again.exit_code, again.trusted, again.bytes_hashed) == (ExitCode.OK, 3, 0)
    assert [f.status.value for f in again.files] == ["ok", "ok", "ok"]
    assert again.summary == "3 ok; 3 unchanged since verified, not re-read"
    assert verify_manifest("SUMS").bytes_hashed == 6000  # without --incremental: everything read


def test_a_byte_written_and_the_mtime_restored_is_caught(tree, later):
    verify_manifest("SUMS", incremental=True)
    target = tree / "b.bin"
    before = os.stat(target)
    with open(target, "r+b") as handle:  # same size, one byte different
        handle.seek(1000)
        handle.write(b"X")
    change_ctime_until_it_differs(target, before.st_ctime_ns, before.st_mtime_ns)

    report = verify_manifest("SUMS", incremental=True)

    assert [f.status.value for f in report.files] == ["ok", "mismatch", "ok"]
    assert (report.trusted, report.bytes_hashed, report.exit_code) == (2, 2000, ExitCode.CHECK_FAILED)
    # and the mismatch stays a mismatch while the file stays as it is (trusted, not forgotten)
    assert [f.status.value for f in verify_manifest("SUMS", incremental=True).files][1] == "mismatch"


def test_a_byte_written_is_caught(tree, later):
    verify_manifest("SUMS", incremental=True)
    (tree / "a.bin").write_bytes(b"A" * 1000)
    report = verify_manifest("SUMS", incremental=True)
    assert report.files[0].status.value == "mismatch"


def test_a_file_replaced_by_another_inode_is_hashed_again(tree, later):
    verify_manifest("SUMS", incremental=True)
    info = os.stat(tree / "c.bin")
    (tree / "c.new").write_bytes(b"c" * 3000)
    os.utime(tree / "c.new", ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(tree / "c.new", tree / "c.bin")
    report = verify_manifest("SUMS", incremental=True)
    assert (report.trusted, report.bytes_hashed, report.exit_code) == (2, 3000, ExitCode.OK)


def test_racily_clean_files_are_not_trusted(tree):
    """Files changed within RACY_NS of the verify could change again in the same tick unseen."""
    verify_manifest("SUMS", incremental=True)
    assert verify_manifest("SUMS", incremental=True).trusted == 0


def test_the_record_is_per_manifest_and_root(tree, later, tmp_path):
    verify_manifest("SUMS", incremental=True)
    assert verify_manifest(tree / "SUMS", root=tree, incremental=True).trusted == 3  # same paths
    (tmp_path / "copy").mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (tmp_path / "copy" / name).write_bytes((tree / name).read_bytes())
    assert verify_manifest("SUMS", root=tmp_path / "copy", incremental=True).trusted == 0


def test_a_damaged_record_costs_a_full_hash_not_a_wrong_answer(tree, later):
    verify_manifest("SUMS", incremental=True)
    record = incremental.record_path(tree / "SUMS", tree)
    record.write_text('{"version": 1, "files": {"a.bin": [1]}}')
    report = verify_manifest("SUMS", incremental=True)
    assert (report.trusted, report.exit_code) == (0, ExitCode.OK)


def test_incremental_needs_a_manifest_file(tree):
    with pytest.raises(UsageError, match="needs a manifest file"):
        verify_manifest("-", data=b"", incremental=True)
