"""Check files under a root against expected SHA-256 digests.

Two layers, so other sources of expected digests can reuse the second:

- `verify_manifest`: a sha256sum manifest (file or bytes) -> `verify_expected`;
- `verify_expected`: any list of `ExpectedFile` (a manifest, Hub metadata...)
  -> one `FileResult` per entry (+ extra files) in a `VerifyReport`.

Exit codes (`VerifyReport.exit_code`), first match wins:
2  an entry escapes the root, `--strict` and a malformed line, or no entries at all;
1  any mismatch, unreadable file, missing file (unless `ignore_missing`), extra
   file (with `fail_on_extra`), or nothing verified under `ignore_missing`;
0  otherwise.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ...errors import EnvironmentFailure, ExitCode, ManifestError, UsageError
from ...progress import NULL_PROGRESS, Progress
from .hashing import default_jobs, describe_os_error, hash_files
from .incremental import FileStamp, StatRecord, record_path
from .manifest import MalformedLine, ManifestEntry, NotAManifest, display_name, iter_manifest
from .tree import SkippedPath, UnsafeName, file_kind, safe_relative_name, walk_files


class FileStatus(str, enum.Enum):
    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"
    EXTRA = "extra"
    UNREADABLE = "unreadable"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class ExpectedFile:
    """What one source says a file under the root must hash to."""

    name: str  # relative to the root, `/`-separated
    sha256: str  # lower-case hex
    size: int | None = None  # when known (Hub metadata): a cheap check before hashing
    line: int | None = None  # where the source said so (manifest line)


@dataclass(frozen=True)
class FileResult:
    """The verdict on one manifest line or one file."""

    name: str  # display-safe (control characters escaped)
    status: FileStatus
    expected: str | None = None
    actual: str | None = None
    size: int | None = None
    line: int | None = None
    detail: str = ""  # why, for anything but ok
    unsafe: bool = False  # malformed because it would escape the root: always fatal


@dataclass(frozen=True)
class VerifyReport:
    source: str  # the manifest path, `-` for stdin, or another source's name
    root: str
    files: tuple[FileResult, ...]
    counts: dict[str, int]  # every FileStatus value -> number of results
    summary: str  # one line for people
    jobs: int
    bytes_hashed: int
    seconds: float
    strict: bool = False
    ignore_missing: bool = False
    fail_on_extra: bool = False
    trusted: int = 0  # files not re-read: stat unchanged since verified (--incremental)
    incremental: bool = False
    hint: str = ""  # advice for a likely mistake (names resolved against the wrong folder)

    @property
    def entries(self) -> int:
        """Well-formed entries the source listed (malformed lines and extra files excluded)."""
        return sum(n for status, n in self.counts.items() if status not in ("malformed", "extra"))

    @property
    def checked(self) -> int:
        """Entries whose file was present and looked at."""
        return self.counts["ok"] + self.counts["mismatch"] + self.counts["unreadable"]

    @property
    def exit_code(self) -> ExitCode:
        c = self.counts
        if any(f.unsafe for f in self.files) or (self.strict and c["malformed"]) or self.entries == 0:
            return ExitCode.USAGE
        if c["mismatch"] or c["unreadable"] or c["extra"]:
            return ExitCode.CHECK_FAILED
        if c["missing"] and not self.ignore_missing:
            return ExitCode.CHECK_FAILED
        if self.ignore_missing and self.checked == 0:
            return ExitCode.CHECK_FAILED  # like sha256sum: "no file was verified"
        return ExitCode.OK

    @property
    def failures(self) -> tuple[FileResult, ...]:
        """The results a person has to look at (everything but ok, and ignored missing files)."""
        return tuple(
            f
            for f in self.files
            if f.status is not FileStatus.OK and not (f.status is FileStatus.MISSING and self.ignore_missing)
        )


def verify_manifest(
    manifest: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    data: bytes | None = None,
    stream: BinaryIO | None = None,
    jobs: int | None = None,
    strict: bool = False,
    ignore_missing: bool = False,
    fail_on_extra: bool = False,
    incremental: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> VerifyReport:
    """Verify the files a sha256sum manifest lists.

    `manifest` is a path, or `-` with the manifest in `data` or `stream` (stdin by default).
    Names resolve as `sha256sum -c` resolves them: against the current directory,
    or `root`. The manifest is read line by line (memory stays bounded whatever its size).
    `incremental` trusts files whose stat is unchanged since they were last verified.
    Raises `ManifestError` when the manifest cannot be read or holds no lines.
    """
    from_stdin = os.fspath(manifest) == "-"
    manifest_path = None if from_stdin else Path(manifest)
    if incremental and manifest_path is None:
        raise UsageError(
            "--incremental needs a manifest file, not stdin",
            remedy="Write the manifest to a file; the record of verified files is kept per manifest.",
        )
    root_given = root is not None
    root = Path(root) if root is not None else Path.cwd()
    if data is not None:
        stream = io.BytesIO(data)
    with contextlib.ExitStack() as stack:
        if stream is None:
            stream = (
                sys.stdin.buffer
                if manifest_path is None
                else stack.enter_context(_open_manifest(manifest_path))
            )
        try:
            parsed = list(iter_manifest(stream))
        except NotAManifest as why:
            raise ManifestError(
                f"{manifest} is not a sha256sum manifest: {why}",
                remedy="Pass a file of `HEX  name` or `SHA256 (name) = HEX` lines.",
            ) from None
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot read the manifest {manifest}: {describe_os_error(exc)}"
            ) from exc
    entries = [e for e in parsed if isinstance(e, ManifestEntry)]
    if not parsed:
        raise ManifestError(f"{manifest}: the manifest holds no checksum lines")
    malformed = [
        FileResult(name=bad.text, status=FileStatus.MALFORMED, line=bad.line, detail=bad.reason)
        for bad in parsed
        if isinstance(bad, MalformedLine)
    ]
    expected = [ExpectedFile(e.name, e.sha256, line=e.line) for e in entries]
    del parsed, entries
    report = verify_expected(
        expected,
        root,
        source=os.fspath(manifest),
        invalid=malformed,
        exclude=frozenset({manifest_path}) if manifest_path else frozenset(),
        jobs=jobs,
        strict=strict,
        ignore_missing=ignore_missing,
        fail_on_extra=fail_on_extra,
        record=record_path(manifest_path, root) if incremental and manifest_path else None,
        progress=progress,
    )
    if not root_given and manifest_path is not None:
        report = _suggest_root(report, expected, manifest_path, root)
    return report


def _open_manifest(path: Path) -> BinaryIO:
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        return path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ManifestError(
            f"cannot read the manifest {path}: {describe_os_error(exc)}",
            remedy="Pass the path of a sha256sum manifest, or create one with --generate DIR.",
        ) from exc
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read the manifest {path}: {describe_os_error(exc)}") from exc


def _suggest_root(
    report: VerifyReport, expected: Sequence[ExpectedFile], manifest: Path, cwd: Path
) -> VerifyReport:
    """Missing names that exist relative to the manifest's folder: say so, and suggest --root.

    `autoglm verify` used to resolve names against the manifest's folder; `sha256sum -c`
    (and now autoglm) resolves them against the current directory.
    """
    folder = manifest.absolute().parent
    if folder == cwd.absolute():
        return report
    names = {e.line: e.name for e in expected}
    there = {
        i
        for i, f in enumerate(report.files)
        if f.status is FileStatus.MISSING and f.line in names and _exists_under(folder, names[f.line])
    }
    if not there:
        return report
    relative = os.path.relpath(folder)
    shown = str(folder) if relative.startswith(os.pardir + os.sep + os.pardir) else relative
    advice = f"exists relative to the manifest's folder: pass --root {shown}"
    files = tuple(
        replace(f, detail=f"no such file here; {advice}") if i in there else f
        for i, f in enumerate(report.files)
    )
    many = len(there) > 1
    hint = (
        f"{len(there)} missing file{'s exist' if many else ' exists'} relative to the manifest's folder: "
        f"pass --root {shown} (names resolve against the current directory, as with sha256sum -c)"
    )
    return replace(report, files=files, hint=hint, summary=f"{report.summary}; {hint}")


def _exists_under(folder: Path, name: str) -> bool:
    try:
        return (folder / safe_relative_name(name)).exists()
    except (UnsafeName, OSError):
        return False


def verify_expected(
    expected: Sequence[ExpectedFile],
    root: str | os.PathLike[str],
    *,
    source: str,
    invalid: Sequence[FileResult] = (),
    exclude: frozenset[Path] = frozenset(),
    jobs: int | None = None,
    strict: bool = False,
    ignore_missing: bool = False,
    fail_on_extra: bool = False,
    record: Path | None = None,
    progress: Progress = NULL_PROGRESS,
) -> VerifyReport:
    """Hash the files `expected` names under `root` and compare.

    `invalid` holds results the source already decided (malformed manifest
    lines); they are merged by line number. `exclude` lists files that are never
    extra (the manifest itself). Unreadable and missing files become results,
    never exceptions. With `record` (a file under the state dir, see `incremental`), a
    file whose stat is unchanged since it was last hashed is not read again.
    """
    started = time.perf_counter()
    stats = StatRecord(record) if record is not None else None
    root = Path(root)
    if not root.is_dir():
        raise UsageError(
            f"the root {root} is not a directory",
            remedy="Pass --root DIR, the directory the manifest's names are relative to.",
        )
    jobs = jobs or default_jobs()

    # 1. Names: refuse the unsafe, find each distinct file once.
    normal_names: list[str | None] = []
    refused: dict[int, str] = {}
    for index, entry in enumerate(expected):
        try:
            normal_names.append(safe_relative_name(entry.name))
        except UnsafeName as why:
            normal_names.append(None)
            refused[index] = str(why)

    # 2. Look before hashing: missing, unreadable and wrong-size files need no hash.
    decided: dict[str, tuple[FileStatus, str, int | None]] = {}
    to_hash: dict[str, FileStamp] = {}  # an ordered set: a file listed twice is hashed once
    trusted: dict[str, tuple[str, int]] = {}  # --incremental: stat unchanged since verified
    for entry, normal in zip(expected, normal_names, strict=True):
        if normal is None or normal in decided or normal in to_hash or normal in trusted:
            continue
        verdict = _inspect(root / normal, entry.size)
        if isinstance(verdict, FileStamp):
            known = stats.trusted_sha256(normal, verdict) if stats is not None else None
            if known is None:
                to_hash[normal] = verdict
            else:
                trusted[normal] = (known, verdict.size)
        else:
            decided[normal] = verdict

    # 3. Hash in parallel.
    hashed = hash_files([root / n for n in to_hash], jobs=jobs, progress=progress, description="verifying")
    digests = {n: (h.sha256, h.size, h.error) for n, h in zip(to_hash, hashed, strict=True)}
    digests.update((n, (sha, size, None)) for n, (sha, size) in trusted.items())
    if stats is not None:
        for (name, stamp), outcome in zip(to_hash.items(), hashed, strict=True):
            if outcome.ok:
                stats.remember(name, stamp, outcome.sha256)
        stats.save()

    # 4. One result per entry, in the source's order; malformed lines merged by line number.
    results: list[FileResult] = []
    for index, (entry, normal) in enumerate(zip(expected, normal_names, strict=True)):
        base = FileResult(
            name=display_name(entry.name), status=FileStatus.OK, expected=entry.sha256, line=entry.line
        )
        if normal is None:
            results.append(_with(base, status=FileStatus.MALFORMED, detail=refused[index], unsafe=True))
        elif normal in decided:
            status, detail, size = decided[normal]
            results.append(_with(base, status=status, detail=detail, size=size))
        else:
            sha256, size, error = digests[normal]
            if error is not None or sha256 is None:
                results.append(_with(base, status=FileStatus.UNREADABLE, detail=error or ""))
            elif sha256 == entry.sha256:
                results.append(_with(base, actual=sha256, size=size))
            else:
                results.append(
                    _with(base, status=FileStatus.MISMATCH, actual=sha256, size=size, detail="sha256 differs")
                )
    results = sorted([*results, *invalid], key=lambda r: r.line if r.line is not None else 0)

    # 5. Files under the root that no entry names.
    if fail_on_extra:
        listed = {n for n in normal_names if n is not None}
        results += _extras(root, listed, exclude)

    counts = {status.value: 0 for status in FileStatus}
    for result in results:
        counts[result.status.value] += 1
    return VerifyReport(
        source=source,
        root=os.path.abspath(root),
        files=tuple(results),
        counts=counts,
        summary=_summary(results, counts, strict=strict, ignore_missing=ignore_missing)
        + (f"; {len(trusted)} unchanged since verified, not re-read" if trusted else ""),
        jobs=jobs,
        bytes_hashed=sum(h.size for h in hashed),
        seconds=round(time.perf_counter() - started, 3),
        strict=strict,
        ignore_missing=ignore_missing,
        fail_on_extra=fail_on_extra,
        trusted=len(trusted),
        incremental=stats is not None,
    )


def _inspect(path: Path, expected_size: int | None) -> tuple[FileStatus, str, int | None] | FileStamp:
    """A verdict reached without hashing, or the file's stamp when it must be hashed."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        detail = "dangling symbolic link" if path.is_symlink() else "no such file"
        return FileStatus.MISSING, detail, None
    except OSError as exc:
        return FileStatus.UNREADABLE, describe_os_error(exc), None
    if not stat.S_ISREG(info.st_mode):
        return FileStatus.UNREADABLE, f"not a regular file ({file_kind(info.st_mode)})", None
    if expected_size is not None and info.st_size != expected_size:
        return FileStatus.MISMATCH, f"size is {info.st_size} bytes, expected {expected_size}", info.st_size
    return FileStamp.of(info)


def _extras(root: Path, listed: set[str], exclude: frozenset[Path]) -> list[FileResult]:
    extras = []
    for item in walk_files(root, exclude=exclude):
        name = item.name if isinstance(item, SkippedPath) else item
        if name in listed:
            continue
        detail = item.reason if isinstance(item, SkippedPath) else "not in the manifest"
        extras.append(FileResult(name=display_name(name), status=FileStatus.EXTRA, detail=detail))
    return extras


def _with(result: FileResult, **changes) -> FileResult:
    return replace(result, **changes)


def _summary(results: list[FileResult], counts: dict[str, int], *, strict: bool, ignore_missing: bool) -> str:
    entries = sum(n for s, n in counts.items() if s not in ("malformed", "extra"))
    if entries == 0:
        return "no properly formatted checksum lines"
    unsafe = sum(1 for r in results if r.unsafe)
    parts = []
    for status, label in _LABELS.items():
        n = counts[status.value] - (unsafe if status is FileStatus.MALFORMED else 0)
        if not n:
            continue
        text = _plural(n, label)
        if status is FileStatus.MISSING and ignore_missing:
            text += " (ignored)"
        if status is FileStatus.MALFORMED and not strict:
            text += " (skipped; --strict fails on them)"
        parts.append(text)
    if unsafe:
        parts.append(_plural(unsafe, "unsafe entry") + " refused (escapes the root)")
    checked = counts["ok"] + counts["mismatch"] + counts["unreadable"]
    if ignore_missing and checked == 0:
        parts.append("no file was verified")
    return ", ".join(parts)


_LABELS = {
    FileStatus.OK: "ok",
    FileStatus.MISMATCH: "mismatch",
    FileStatus.MISSING: "missing",
    FileStatus.UNREADABLE: "unreadable",
    FileStatus.EXTRA: "extra file",
    FileStatus.MALFORMED: "malformed line",
}


def _plural(n: int, label: str) -> str:
    if n == 1 or label in ("ok", "missing", "unreadable"):
        return f"{n} {label}"
    if label == "mismatch":
        return f"{n} mismatches"
    if label.endswith("entry"):
        return f"{n} {label[:-1]}ies"
    return f"{n} {label}s"
