"""`autoglm verify-sha256` / `autoglm verify` as a user and a CI script run them,
next to the real `sha256sum` in both directions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import run_autoglm
from tests.fixtures.checksum_tree import make_tree, sha256, sha256sum

COMMANDS = ["verify-sha256", "verify"]


def flat(text: str) -> str:
    """Messages on stderr are wrapped to the terminal width; compare them unwrapped."""
    return " ".join(text.split())


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "weights"
    root.mkdir()
    return root, make_tree(root)


# --- sha256sum writes, autoglm checks ------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--binary"], ["--tag"]], ids=["text", "binary-marker", "bsd-tag"])
@pytest.mark.parametrize("command", COMMANDS)
def test_verifies_what_sha256sum_wrote(cli, tree, tmp_path, flags, command):
    root, files = tree
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_bytes(sha256sum(*flags, "--", *files, cwd=root).stdout)

    result = cli(command, manifest, "--root", root, "--json")

    assert result.exit_code == 0, result.stdout
    doc = result.json
    assert doc["command"] == command
    assert {f["status"] for f in doc["result"]["files"]} == {"ok"}
    assert len(doc["result"]["files"]) == len(files)


def test_finds_the_same_damage_as_sha256sum(cli, tree, tmp_path):
    root, files = tree
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_bytes(sha256sum("--", *files, cwd=root).stdout)
    (root / "new\nline.txt").write_bytes(b"tampered")
    (root / "back\\slash.bin").unlink()

    ours = cli("verify", manifest, "--root", root, "--json")
    theirs = sha256sum("--check", str(manifest), cwd=root)

    assert ours.exit_code == 1
    assert theirs.returncode == 1
    failed = {f["name"]: f["status"] for f in ours.json["result"]["files"] if f["status"] != "ok"}
    assert failed == {"new\\nline.txt": "mismatch", "back\\slash.bin": "missing"}
    assert b"\\new\\nline.txt: FAILED\n" in theirs.stdout
    assert b"back\\slash.bin: FAILED open or read" in theirs.stdout


# --- autoglm writes, sha256sum checks -------------------------------------------


def test_generate_to_a_file_is_accepted_by_sha256sum_strictly(cli, tree, tmp_path):
    root, files = tree
    manifest = tmp_path / "SHA256SUMS"

    result = cli("verify-sha256", "--generate", root, "--output", manifest)

    assert result.exit_code == 0
    assert result.stdout == ""  # the manifest went to the file
    assert f"wrote {manifest}: {len(files)} files" in flat(result.stderr)
    checked = sha256sum("--check", "--strict", str(manifest), cwd=root)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(b": OK\n") == len(files)
    assert cli("verify", manifest, "--root", root).exit_code == 0


def test_generate_on_stdout_pipes_into_sha256sum(tree):
    """The shell pipeline `autoglm verify-sha256 --generate . | sha256sum -c` as a process pair."""
    root, files = tree
    raw_name = os.fsdecode(b"not-utf8-\xff.bin")  # stdout must carry bytes, not text
    (root / raw_name).write_bytes(b"raw")
    generated = subprocess.run(
        [sys.executable, "-m", "autoglm_cli", "verify-sha256", "--generate", "."],
        cwd=root,
        capture_output=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
    )
    assert generated.returncode == 0, generated.stderr
    checked = sha256sum("--check", "--strict", "-", cwd=root, stdin=generated.stdout)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(b": OK\n") == len(files) + 1


# --- the options of sha256sum -c -------------------------------------------------


@pytest.fixture
def damaged(cli, tmp_path, monkeypatch):
    """A tree with one good, one changed and one missing file, and its manifest; the current
    directory (names resolve from there, as with `sha256sum -c`)."""
    root = tmp_path / "w"
    root.mkdir()
    monkeypatch.chdir(root)
    (root / "good.bin").write_bytes(b"good")
    (root / "changed.bin").write_bytes(b"changed")
    manifest = root / "SHA256SUMS"
    manifest.write_text(
        f"{sha256(b'good')}  good.bin\n{sha256(b'original')}  changed.bin\n{sha256(b'gone')}  gone.bin\n"
    )
    return manifest


def test_the_human_table_and_summary(cli, damaged):
    result = cli("verify", damaged)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["status", "file", "size", "detail"]
    assert lines[1].split()[:2] == ["ok", "good.bin"]
    assert lines[2].split()[:2] == ["mismatch", "changed.bin"]
    assert lines[3].split()[:2] == ["missing", "gone.bin"]
    assert "1 ok, 1 mismatch, 1 missing" in result.stdout


def test_status_prints_nothing_and_answers_with_the_exit_code(cli, damaged, tmp_path):
    failed = cli("verify", damaged, "--status")
    assert (failed.exit_code, failed.stdout, failed.stderr) == (1, "", "")

    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "f").write_bytes(b"f")
    (tmp_path / "ok" / "SUMS").write_text(f"{sha256(b'f')}  f\n")
    passed = cli("verify", tmp_path / "ok" / "SUMS", "--root", tmp_path / "ok", "--status")
    assert (passed.exit_code, passed.stdout, passed.stderr) == (0, "", "")


def test_quiet_prints_only_the_files_that_need_attention(cli, damaged):
    result = cli("verify", damaged, "--quiet")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "changed.bin: MISMATCH (sha256 differs)",
        "gone.bin: MISSING (no such file)",
    ]
    assert result.stderr == ""


def test_ignore_missing(cli, damaged):
    result = cli("verify", damaged, "--ignore-missing")
    assert result.exit_code == 1  # still the mismatch
    assert "gone.bin" not in result.stdout
    assert "1 missing (ignored)" in result.stdout
    (damaged.parent / "changed.bin").write_bytes(b"original")
    assert cli("verify", damaged, "--ignore-missing", "--status").exit_code == 0


def test_json_document_shape(cli, damaged):
    result = cli("--json", "verify", damaged, "--jobs", "2")
    doc = result.json
    assert (doc["schema"], doc["command"], doc["ok"], doc["exit_code"]) == ("autoglm/v1", "verify", False, 1)
    report = doc["result"]
    assert report["source"] == str(damaged)
    assert report["root"] == str(damaged.parent)
    assert report["jobs"] == 2
    assert report["counts"] == {
        "ok": 1,
        "mismatch": 1,
        "missing": 1,
        "extra": 0,
        "unreadable": 0,
        "malformed": 0,
    }
    assert report["summary"] == "1 ok, 1 mismatch, 1 missing"
    assert report["bytes_hashed"] == len(b"good") + len(b"changed")
    changed = report["files"][1]
    assert changed == {
        "name": "changed.bin",
        "status": "mismatch",
        "expected": sha256(b"original"),
        "actual": sha256(b"changed"),
        "size": 7,
        "line": 2,
        "detail": "sha256 differs",
        "unsafe": False,
    }


def test_malformed_lines_with_and_without_strict(cli, tmp_path):
    (tmp_path / "f").write_bytes(b"f")
    (tmp_path / "SUMS").write_text(f"# made by hand\n\n{sha256(b'f')}  f\nnot a checksum line\n")

    lenient = cli("verify", tmp_path / "SUMS")
    strict = cli("verify", tmp_path / "SUMS", "--strict", "--json")

    assert lenient.exit_code == 0
    assert "malformed" in lenient.stdout and "line 4: not a checksum line" in lenient.stdout
    assert strict.exit_code == 2
    assert [f["status"] for f in strict.json["result"]["files"]] == ["ok", "malformed"]


def test_entries_escaping_the_root_are_refused(cli, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").write_bytes(b"o")
    (root / "SUMS").write_text(f"{sha256(b'o')}  ../outside\n{sha256(b'o')}  {tmp_path / 'outside'}\n")

    result = cli("verify", root / "SUMS", "--json")

    assert result.exit_code == 2
    files = result.json["result"]["files"]
    assert [(f["status"], f["unsafe"]) for f in files] == [("malformed", True), ("malformed", True)]
    assert result.json["result"]["bytes_hashed"] == 0


def test_fail_on_extra(cli, tmp_path):
    (tmp_path / "listed").write_bytes(b"l")
    (tmp_path / "stray").write_bytes(b"s")
    (tmp_path / "SUMS").write_text(f"{sha256(b'l')}  listed\n")

    assert cli("verify", tmp_path / "SUMS").exit_code == 0
    result = cli("verify", tmp_path / "SUMS", "--fail-on-extra", "--quiet")
    assert result.exit_code == 1
    assert result.stdout == "stray: EXTRA (not in the manifest)\n"


def test_a_directory_or_fifo_where_a_file_should_be_is_unreadable(cli, tmp_path):
    """Honest unreadable files without privileges: neither can be read as a file (and a FIFO
    must not hang the run). sha256sum fails on them too."""
    (tmp_path / "shard.bin").mkdir()
    os.mkfifo(tmp_path / "pipe.bin")
    (tmp_path / "SUMS").write_text(f"{sha256(b'x')}  shard.bin\n{sha256(b'x')}  pipe.bin\n")

    result = cli("verify", tmp_path / "SUMS", "--quiet")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "shard.bin: UNREADABLE (not a regular file (a directory))",
        "pipe.bin: UNREADABLE (not a regular file (a FIFO))",
    ]


def _without_read_override() -> list[str] | None:
    """A command prefix under which chmod 000 really denies reading (root ignores it otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


@pytest.fixture
def chmod_000(tmp_path):
    prefix = _without_read_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot deny root")
    root = tmp_path / "w"
    root.mkdir()
    (root / "ok.bin").write_bytes(b"ok")
    (root / "locked.bin").write_bytes(b"locked")
    (root / "locked.bin").chmod(0)
    probe = subprocess.run([*prefix, "cat", str(root / "locked.bin")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this machine lets the process read a chmod 000 file anyway")
    yield prefix, root
    (root / "locked.bin").chmod(0o644)


def test_a_chmod_000_file_is_reported_unreadable_not_a_crash(chmod_000, tmp_path):
    prefix, root = chmod_000
    manifest = tmp_path / "SUMS"
    manifest.write_text(f"{sha256(b'ok')}  ok.bin\n{sha256(b'locked')}  locked.bin\n")
    command = [sys.executable, "-m", "autoglm_cli", "verify", str(manifest), "--root", str(root), "--json"]

    ours = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60)
    theirs = subprocess.run([*prefix, "sha256sum", "-c", str(manifest)], cwd=root, capture_output=True)

    assert ours.returncode == 1, ours.stderr
    files = {f["name"]: (f["status"], f["detail"]) for f in json.loads(ours.stdout)["result"]["files"]}
    assert files == {"ok.bin": ("ok", ""), "locked.bin": ("unreadable", "Permission denied")}
    assert theirs.returncode == 1
    assert b"locked.bin: FAILED open or read" in theirs.stdout


def test_generate_stops_on_an_unreadable_file_and_writes_nothing(chmod_000, tmp_path):
    prefix, root = chmod_000
    manifest = tmp_path / "SUMS"
    command = [
        sys.executable,
        "-m",
        "autoglm_cli",
        "verify-sha256",
        "--generate",
        str(root),
        "-o",
        str(manifest),
    ]

    result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60)

    assert result.returncode == 3
    assert "locked.bin: Permission denied; no manifest written" in flat(result.stderr)
    assert not manifest.exists()


# --- input and usage --------------------------------------------------------------


def test_manifest_on_stdin_is_relative_to_the_current_directory(tmp_path):
    (tmp_path / "f").write_bytes(b"f")
    proc = subprocess.run(
        [sys.executable, "-m", "autoglm_cli", "verify", "-", "--quiet"],
        cwd=tmp_path,
        input=f"{sha256(b'f')}  f\n{sha256(b'g')}  g\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == "g: MISSING (no such file)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a MANIFEST to check, or --generate DIR"),
        (["SUMS", "--generate", "."], "not both"),
        (["SUMS", "--output", "x"], "--output only goes with --generate"),
        (["--generate", ".", "--strict"], "--strict only apply when checking"),
        (["no-such-manifest"], "cannot read the manifest no-such-manifest"),
        (["--generate", "no-such-dir"], "is not one"),
    ],
)
def test_usage_errors_exit_2_with_a_message(cli, args, message):
    result = cli("verify", *args)
    assert result.exit_code == 2
    assert message in flat(result.stderr)


def test_usage_error_in_json_mode(cli):
    result = cli("verify", "no-such-manifest", "--json")
    assert result.exit_code == 2
    assert result.json["error"]["type"] == "ManifestError"
    assert "--generate" in result.json["error"]["remedy"]


def test_jobs_must_be_positive(cli, damaged):
    assert cli("verify", damaged, "--jobs", "0").exit_code == 2


def test_generate_json_lists_the_files(cli, tree):
    root, files = tree
    result = cli("verify-sha256", "--generate", root, "--json")
    assert result.exit_code == 0
    entries = result.json["result"]["files"]
    assert len(entries) == len(files)
    assert {e["sha256"] for e in entries} == {sha256(d) for d in files.values()}


def test_real_process_round_trip(tmp_path):
    (tmp_path / "a b.bin").write_bytes(b"ab")
    generated = run_autoglm("verify-sha256", "--generate", tmp_path, "-o", tmp_path / "SHA256SUMS")
    assert generated.exit_code == 0, generated.stderr
    checked = run_autoglm("verify", tmp_path / "SHA256SUMS", "--fail-on-extra", cwd=tmp_path)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert "1 ok" in checked.stdout


# --- names resolve as `sha256sum -c` resolves them ----------------------------------


def test_names_resolve_from_the_current_directory_like_sha256sum(cli, tmp_path, monkeypatch):
    """`cd weights && autoglm verify ../SUMS`, where SUMS was written by `sha256sum weights/*`
    from above... and the other way round: both tools agree."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "a.bin").write_bytes(b"a")
    (tmp_path / "SUMS").write_bytes(sha256sum("a.bin", cwd=weights).stdout)
    (weights / "SUMS").write_bytes(sha256sum("weights/a.bin", cwd=tmp_path).stdout)

    monkeypatch.chdir(weights)
    assert cli("verify", "../SUMS", "--status").exit_code == 0
    assert sha256sum("-c", "../SUMS", cwd=weights).returncode == 0
    monkeypatch.chdir(tmp_path)
    assert cli("verify", "weights/SUMS", "--status").exit_code == 0
    assert sha256sum("-c", "weights/SUMS", cwd=tmp_path).returncode == 0


def test_a_name_found_beside_the_manifest_suggests_root(cli, damaged, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("verify", "w/SHA256SUMS", "--json")
    assert result.exit_code == 1
    report = result.json["result"]
    good = report["files"][0]
    assert (good["status"], good["detail"]) == (
        "missing",
        "no such file here; exists relative to the manifest's folder: pass --root w",
    )
    assert report["files"][2]["detail"] == "no such file"  # gone.bin is gone from both places
    assert "2 missing files exist relative to the manifest's folder: pass --root w" in report["hint"]
    human = cli("verify", "w/SHA256SUMS")
    assert "pass --root w" in flat(human.stdout)
    assert cli("verify", "w/SHA256SUMS", "--root", "w", "--quiet").stdout.count("\n") == 2


def test_a_large_report_is_printed_as_plain_lines(cli, damaged, monkeypatch):
    """Above TABLE_ROWS results, no rich table (100k rows took a minute): one line per problem."""
    from autoglm_cli.cli import verify as verify_cli

    monkeypatch.setattr(verify_cli, "TABLE_ROWS", 2)
    result = cli("verify", damaged)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "changed.bin: MISMATCH (sha256 differs)",
        "gone.bin: MISSING (no such file)",
    ]
    assert "1 ok files not listed; 1 ok, 1 mismatch, 1 missing" in " ".join(result.stdout.split())
