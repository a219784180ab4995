"""generate_manifest writes what `sha256sum` writes, and `sha256sum -c` accepts it."""

from __future__ import annotations

import os

import pytest

from autoglm_cli.errors import UsageError
from autoglm_cli.ops.checksums import generate_manifest
from tests.fixtures.checksum_tree import c_sorted, make_tree, sha256, sha256sum


def test_the_manifest_is_byte_identical_to_sha256sum_and_checks(tmp_path):
    files = make_tree(tmp_path)

    report, data = generate_manifest(tmp_path)

    # Same bytes as sha256sum run over the same names in C order (escapes included).
    assert data == sha256sum("--", *c_sorted(files), cwd=tmp_path).stdout
    (tmp_path.parent / "SUMS").write_bytes(data)
    checked = sha256sum("--check", "--strict", str(tmp_path.parent / "SUMS"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(b": OK\n") == len(files)
    assert [f.sha256 for f in report.files] == [sha256(files[n]) for n in c_sorted(files)]
    assert report.bytes_hashed == sum(len(d) for d in files.values())


def test_writes_the_output_atomically_and_never_lists_itself(tmp_path):
    make_tree(tmp_path, ["a", "b"])
    output = tmp_path / "SHA256SUMS"

    first, _ = generate_manifest(tmp_path, output=output)
    second, data = generate_manifest(tmp_path, output=output)  # the old manifest is in the tree now

    assert [f.name for f in second.files] == ["a", "b"] == [f.name for f in first.files]
    assert output.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SHA256SUMS", "a", "b"]  # no temporary left
    assert second.output == str(output)


def test_skips_what_is_not_a_file_and_says_why(tmp_path):
    make_tree(tmp_path, ["real"])
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "dir-link").symlink_to(tmp_path)  # a cycle if it were followed
    (tmp_path / "file-link").symlink_to("real")

    report, _ = generate_manifest(tmp_path)

    assert [f.name for f in report.files] == ["file-link", "real"]
    assert {(s.name, s.reason) for s in report.skipped} == {
        ("fifo", "not a regular file (a FIFO)"),
        ("dangling", "dangling symbolic link"),
        ("dir-link", "symbolic link to a directory (not followed)"),
    }


def test_non_utf8_names_are_written_as_bytes(tmp_path):
    raw = b"caf\xe9.bin"
    (tmp_path / os.fsdecode(raw)).write_bytes(b"x")
    report, data = generate_manifest(tmp_path)
    assert data == sha256(b"x").encode() + b"  " + raw + b"\n"
    assert report.files[0].name == "caf\\xe9.bin"  # display-safe in tables and JSON


def test_refuses_a_missing_directory_or_output_folder(tmp_path):
    with pytest.raises(UsageError, match="not one"):
        generate_manifest(tmp_path / "nope")
    with pytest.raises(UsageError, match="directory does not exist"):
        generate_manifest(tmp_path, output=tmp_path / "no" / "SUMS")
