"""verify_manifest / verify_expected on real trees: the verdicts and exit codes CI relies on."""

from __future__ import annotations

import os

import pytest

from autoglm_cli.errors import ExitCode, ManifestError, UsageError
from autoglm_cli.ops.checksums import ExpectedFile, FileStatus, verify_expected, verify_manifest
from tests.fixtures.checksum_tree import sha256


def statuses(report) -> list[tuple[str, str]]:
    return [(f.name, f.status.value) for f in report.files]


def write_manifest(path, lines: list[str]) -> None:
    path.write_bytes("".join(line + "\n" for line in lines).encode())


@pytest.fixture
def root(tmp_path, monkeypatch):
    """The tree, and the current directory: names resolve from there, as with `sha256sum -c`."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    (root / "b.bin").write_bytes(b"b")
    monkeypatch.chdir(root)
    return root


def test_all_ok(root):
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin", f"{sha256(b'b')}  b.bin"])
    report = verify_manifest(root / "SUMS")
    assert statuses(report) == [("a.bin", "ok"), ("b.bin", "ok")]
    assert report.exit_code == ExitCode.OK
    assert report.root == str(root)  # defaults to the current directory
    assert report.bytes_hashed == 2


def test_unsafe_entries_are_refused_even_when_the_target_matches(tmp_path, root):
    secret = tmp_path / "secret"
    secret.write_bytes(b"s")
    digest = sha256(b"s")
    write_manifest(
        root / "SUMS",
        [
            f"{sha256(b'a')}  a.bin",
            f"{digest}  {secret}",
            f"{digest}  ../secret",
            f"{digest}  x/../../secret",
        ],
    )

    report = verify_manifest(root / "SUMS")

    assert [f.status for f in report.files] == [FileStatus.OK] + [FileStatus.MALFORMED] * 3
    assert [f.unsafe for f in report.files] == [False, True, True, True]
    assert "absolute path" in report.files[1].detail
    assert "escape the root" in report.files[2].detail
    assert report.bytes_hashed == 1  # the secret was never read
    assert report.exit_code == ExitCode.USAGE  # refused without --strict


def test_a_name_with_a_nul_byte_is_refused(root):
    (root / "SUMS").write_bytes(f"{sha256(b'a')}  a.bin\x00/etc/passwd\n".encode())
    report = verify_manifest(root / "SUMS")
    assert report.files[0].unsafe
    assert report.exit_code == ExitCode.USAGE


def test_a_file_listed_twice_is_hashed_once_and_judged_per_line(root):
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin", f"{sha256(b'x')}  ./a.bin"])
    report = verify_manifest(root / "SUMS")
    assert statuses(report) == [("a.bin", "ok"), ("./a.bin", "mismatch")]
    assert report.bytes_hashed == 1
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_a_known_size_decides_a_mismatch_without_hashing(root):
    """What a source with sizes (Hub metadata) gets: a cheap check before the hash."""
    report = verify_expected(
        [ExpectedFile("a.bin", sha256(b"a"), size=1), ExpectedFile("b.bin", sha256(b"b"), size=5)],
        root,
        source="hub metadata",
    )
    assert statuses(report) == [("a.bin", "ok"), ("b.bin", "mismatch")]
    assert report.files[1].detail == "size is 1 bytes, expected 5"
    assert report.bytes_hashed == 1
    assert report.source == "hub metadata"


def test_hugging_face_style_symlinks_are_followed(tmp_path):
    """A snapshot folder is made of links into blobs/; a dangling one is a missing file."""
    snapshot, blobs = tmp_path / "snapshots" / "rev", tmp_path / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    (blobs / "abc").write_bytes(b"weights")
    (snapshot / "model.safetensors").symlink_to("../../blobs/abc")
    (snapshot / "config.json").symlink_to("../../blobs/gone")
    write_manifest(
        snapshot / "SUMS", [f"{sha256(b'weights')}  model.safetensors", f"{sha256(b'{}')}  config.json"]
    )

    report = verify_manifest(snapshot / "SUMS", root=snapshot)

    assert statuses(report) == [("model.safetensors", "ok"), ("config.json", "missing")]
    assert report.files[1].detail == "dangling symbolic link"


def test_extra_files_fail_only_when_asked_and_the_manifest_is_not_one(root):
    (root / "sub").mkdir()
    (root / "sub" / "stray.bin").write_bytes(b"?")
    os.mkfifo(root / "pipe")
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin", f"{sha256(b'b')}  b.bin"])

    assert verify_manifest(root / "SUMS").exit_code == ExitCode.OK
    report = verify_manifest(root / "SUMS", fail_on_extra=True)

    assert statuses(report)[2:] == [("pipe", "extra"), ("sub/stray.bin", "extra")]
    assert report.files[2].detail == "not a regular file (a FIFO)"
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_missing_files_and_ignore_missing(root):
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin", f"{sha256(b'c')}  c.bin"])
    assert verify_manifest(root / "SUMS").exit_code == ExitCode.CHECK_FAILED
    report = verify_manifest(root / "SUMS", ignore_missing=True)
    assert report.exit_code == ExitCode.OK
    assert report.summary == "1 ok, 1 missing (ignored)"
    assert [f.name for f in report.failures] == []


def test_ignore_missing_still_fails_when_no_file_was_verified(root):
    """As `sha256sum --ignore-missing`: a manifest for another tree must not pass."""
    write_manifest(root / "SUMS", [f"{sha256(b'c')}  c.bin", f"{sha256(b'd')}  d.bin"])
    report = verify_manifest(root / "SUMS", ignore_missing=True)
    assert report.exit_code == ExitCode.CHECK_FAILED
    assert report.summary.endswith("no file was verified")


def test_malformed_lines_fail_only_with_strict(root):
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin", "not a line"])
    lenient = verify_manifest(root / "SUMS")
    assert statuses(lenient) == [("a.bin", "ok"), ("not a line", "malformed")]
    assert lenient.files[1].line == 2
    assert lenient.exit_code == ExitCode.OK
    assert verify_manifest(root / "SUMS", strict=True).exit_code == ExitCode.USAGE


def test_a_manifest_of_nothing_but_garbage_is_malformed(root):
    write_manifest(root / "SUMS", ["garbage", "more garbage"])
    report = verify_manifest(root / "SUMS")
    assert report.exit_code == ExitCode.USAGE
    assert report.summary == "no properly formatted checksum lines"


@pytest.mark.parametrize("content", [b"", b"# only a comment\n\n"], ids=["empty", "comments-only"])
def test_an_empty_manifest_is_an_error(root, content):
    (root / "SUMS").write_bytes(content)
    with pytest.raises(ManifestError, match="no checksum lines"):
        verify_manifest(root / "SUMS")


def test_a_missing_manifest_is_an_error_with_a_remedy(root):
    with pytest.raises(ManifestError) as caught:
        verify_manifest(root / "nope")
    assert "No such file" in caught.value.message
    assert "--generate" in caught.value.remedy


def test_a_root_that_is_not_a_directory_is_a_usage_error(root):
    write_manifest(root / "SUMS", [f"{sha256(b'a')}  a.bin"])
    with pytest.raises(UsageError, match="is not a directory"):
        verify_manifest(root / "SUMS", root=root / "a.bin")


# --- bad input: the manifest is streamed, over-long lines refused -----------------------


def test_an_over_long_line_is_malformed_and_not_kept(root):
    from autoglm_cli.ops.checksums.manifest import MAX_LINE_BYTES

    with open(root / "SUMS", "wb") as out:
        out.write(f"{sha256(b'a')}  a.bin\n".encode())
        out.write(b"x" * (2 * 1024 * 1024) + b"\n")  # 2 MB of one malformed line
        out.write(f"{sha256(b'b')}  b.bin\n".encode())
    report = verify_manifest(root / "SUMS")
    assert [(f.status.value, f.line) for f in report.files] == [("ok", 1), ("malformed", 2), ("ok", 3)]
    assert report.files[1].detail == f"line longer than {MAX_LINE_BYTES // 1024} KiB: not a checksum line"
    assert len(report.files[1].name) < 300


def test_binary_data_is_not_a_manifest(root):
    """`verify /dev/urandom` stops with a clear error instead of reading forever."""
    import random

    noise = random.Random(1).randbytes(4 * 1024 * 1024)
    with pytest.raises(ManifestError, match="not a sha256sum manifest"):
        verify_manifest("-", data=noise)


def test_a_manifest_is_read_as_a_stream(root):
    import io

    class OneLineAtATime(io.RawIOBase):
        """A stream that fails if anyone reads it whole."""

        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readline(self, size=-1):
            assert size > 0, "the manifest must be read with a bounded line length"
            return self.data.readline(size)

    text = f"{sha256(b'a')}  a.bin\n{sha256(b'b')}  b.bin".encode()  # no newline at the end
    report = verify_manifest("-", stream=OneLineAtATime(text))
    assert [f.status.value for f in report.files] == ["ok", "ok"]
