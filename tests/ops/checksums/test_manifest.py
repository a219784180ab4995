"""Manifest parsing and writing, checked against what the real `sha256sum` writes and accepts."""

from __future__ import annotations

import os

import pytest

from autoglm_cli.ops.checksums import format_line, parse_manifest
from tests.fixtures.checksum_tree import TRICKY_NAMES, make_tree, sha256, sha256sum

GOOD_DIGEST = sha256(b"a")


@pytest.mark.parametrize(
    ("flags", "binary", "style"),
    [([], False, "gnu"), (["--binary"], True, "gnu"), (["--tag"], False, "bsd")],
    ids=["text", "binary-marker", "bsd-tag"],
)
def test_parses_every_line_sha256sum_writes(tmp_path, flags, binary, style):
    files = make_tree(tmp_path)
    written = sha256sum(*flags, "--", *files, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    if any("\n" in n or "\\" in n for n in files):
        assert b"\n\\" in written.stdout  # the escaped form really is exercised

    manifest = parse_manifest(written.stdout)

    assert manifest.malformed == ()
    assert {e.name: e.sha256 for e in manifest.entries} == {n: sha256(d) for n, d in files.items()}
    assert {(e.binary, e.style) for e in manifest.entries} == {(binary, style)}
    assert [e.line for e in manifest.entries] == list(range(1, len(files) + 1))


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_format_line_is_byte_for_byte_what_sha256sum_writes(tmp_path, name):
    files = make_tree(tmp_path, [name])
    expected = sha256sum("--", name, cwd=tmp_path).stdout
    assert format_line(name, sha256(files[name])) == expected


def test_non_utf8_names_round_trip_as_bytes(tmp_path):
    raw = b"latin1-\xe9.bin"
    (tmp_path / os.fsdecode(raw)).write_bytes(b"x")
    written = sha256sum("--", os.fsdecode(raw), cwd=tmp_path).stdout
    entry = parse_manifest(written).entries[0]
    assert os.fsencode(entry.name) == raw
    assert format_line(entry.name, entry.sha256) == written


def test_accepts_the_variants_sha256sum_accepts(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    text = (
        "# a comment line\n"
        "\n"
        f"{GOOD_DIGEST}  a\n"  # text
        f"{GOOD_DIGEST} *a\n"  # binary marker
        f"{GOOD_DIGEST.upper()}  a\n"  # upper-case digest
        f"  {GOOD_DIGEST}  a\n"  # leading blanks
        f"{GOOD_DIGEST}  a\r\n"  # CRLF
        f"SHA256 (a) = {GOOD_DIGEST}\n"  # BSD tag
        f"SHA256(a)= {GOOD_DIGEST}\n"  # BSD tag, compact
        f"\\{GOOD_DIGEST}  a\n"  # escaped form without escapes
    ).encode()
    (tmp_path / "SUMS").write_bytes(text)

    manifest = parse_manifest(text)

    assert manifest.malformed == ()
    assert [(e.name, e.sha256) for e in manifest.entries] == [("a", GOOD_DIGEST)] * 8
    assert [e.line for e in manifest.entries] == [3, 4, 5, 6, 7, 8, 9, 10]
    # ...and the real sha256sum agrees that every line is good, strictly.
    checked = sha256sum("--check", "--strict", "SUMS", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(b"a: OK") == 8


def test_the_first_gnu_line_fixes_the_form_like_coreutils(tmp_path):
    """`HEX name` (one blank, as `md5 -r` writes) is valid only in a manifest of such lines."""
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / " a").write_bytes(b"not a")
    reversed_first = f"{GOOD_DIGEST} a\n{GOOD_DIGEST}\ta\n{GOOD_DIGEST}  a\n".encode()
    marker_first = f"{GOOD_DIGEST}  a\n{GOOD_DIGEST} a\n".encode()

    ours = parse_manifest(reversed_first)
    # In the reversed form the byte after the blank is part of the name: " a".
    assert [e.name for e in ours.entries] == ["a", "a", " a"]
    (tmp_path / "REV").write_bytes(reversed_first)
    theirs = sha256sum("--check", "REV", cwd=tmp_path)
    assert theirs.stdout.splitlines() == [b"a: OK", b"a: OK", b" a: FAILED"]

    ours = parse_manifest(marker_first)
    assert [e.name for e in ours.entries] == ["a"]
    assert [m.line for m in ours.malformed] == [2]
    (tmp_path / "MARK").write_bytes(marker_first)
    assert b"1 line is improperly formatted" in sha256sum("--check", "MARK", cwd=tmp_path).stderr


MALFORMED_LINES = {
    "garbage": b"this is not a checksum line",
    "blank-only": b"   ",
    "short-digest": GOOD_DIGEST[:-1].encode() + b"  a",
    "non-hex-digest": b"g" + GOOD_DIGEST[1:].encode() + b"  a",
    "no-blank-after-digest": GOOD_DIGEST.encode() + b"a",
    "no-name": GOOD_DIGEST.encode(),
    "bad-escape": b"\\" + GOOD_DIGEST.encode() + b"  a\\qb",
    "trailing-backslash": b"\\" + GOOD_DIGEST.encode() + b"  a\\",
    "bsd-no-paren": b"SHA256 (a = " + GOOD_DIGEST.encode(),
    "bsd-no-equals": b"SHA256 (a) " + GOOD_DIGEST.encode(),
    "bsd-short-digest": b"SHA256 (a) = " + GOOD_DIGEST[:10].encode(),
    "other-algorithm": b"MD5 (a) = 0cc175b9c0f1b6a831c399e269772661",
}


@pytest.mark.parametrize("line", MALFORMED_LINES.values(), ids=MALFORMED_LINES.keys())
def test_malformed_lines_are_reported_where_sha256sum_rejects_them(tmp_path, line):
    (tmp_path / "a").write_bytes(b"a")
    text = f"{GOOD_DIGEST}  a\n".encode() + line + b"\n"
    (tmp_path / "SUMS").write_bytes(text)

    manifest = parse_manifest(text)

    assert [e.name for e in manifest.entries] == ["a"]
    assert [m.line for m in manifest.malformed] == [2]
    assert manifest.malformed[0].reason
    strict = sha256sum("--check", "--strict", "SUMS", cwd=tmp_path)
    assert strict.returncode == 1
    assert b"improperly formatted" in strict.stderr
