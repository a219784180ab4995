"""`autoglm verify --hf REPO`: a local snapshot checked against the Hub's own hashes.

The Hub publishes a sha256 for every LFS file (the weights) and a git blob sha1
for every other file; each local file is hashed and compared with the one that
applies. Results use the same words as `verify-sha256`: ok / mismatch / missing /
extra / unreadable; exit 1 on any mismatch or missing file (and on extra files
with `fail_on_extra`).

`write_hub_manifest` turns the Hub's metadata into a sha256sum manifest, so CI can
later verify offline with `autoglm verify FILE`. Small (non-LFS) files have no
sha256 in the metadata: they are downloaded into memory, checked against their
git blob sha1, and hashed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import ExitCode, IntegrityError, NetworkError, UsageError
from ...progress import NULL_PROGRESS, Progress
from ...redact import redact_url
from ...retry import RetryPolicy, call_with_retry
from .cache_layout import HubCacheLayout, hub_cache_dir
from .download import atomic_write
from .hashing import git_blob_header, hash_file
from .http import (
    RETRY_STATUSES,
    HttpSettings,
    TransientHttpError,
    make_session,
    policy_from_config,
    retry_after_header,
)
from .sources import HubSnapshot, RemoteFile, endpoints_to_try, hub_token, resolve_hub

Status = Literal["ok", "mismatch", "missing", "extra", "unreadable"]


@dataclass(frozen=True)
class HubFileResult:
    path: str
    status: Status
    algorithm: Literal["sha256", "git-sha1", ""]
    expected: str | None
    actual: str | None
    size: int | None
    message: str = ""


@dataclass(frozen=True)
class HubVerifyReport:
    repo_id: str
    revision: str
    commit: str
    endpoint: str
    root: Path
    results: tuple[HubFileResult, ...]
    counts: dict[str, int]
    fail_on_extra: bool
    duration_s: float

    @property
    def exit_code(self) -> ExitCode:
        bad = (
            self.counts.get("mismatch", 0) + self.counts.get("missing", 0) + self.counts.get("unreadable", 0)
        )
        if self.fail_on_extra:
            bad += self.counts.get("extra", 0)
        return ExitCode.CHECK_FAILED if bad else ExitCode.OK


@dataclass(frozen=True)
class ManifestReport:
    repo_id: str
    revision: str
    commit: str
    manifest: Path
    files: int
    fetched_small_files: int  # non-LFS files downloaded to learn their sha256
    exit_code: ExitCode = ExitCode.OK


def resolve_for_verify(repo_id: str, *, revision: str, config, endpoint: str | None, include=(), exclude=()):
    endpoints = endpoints_to_try(endpoint, config.weights.endpoints)
    token = hub_token()
    snapshot = resolve_hub(
        repo_id,
        revision=revision,
        endpoints=endpoints,
        token=token,
        moves=config.moves,
        include=include,
        exclude=exclude,
        policy=policy_from_config(config),
    )
    return snapshot, endpoints, token


def verify_hub(
    repo_id: str,
    *,
    config,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    local_dir: Path | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    jobs: int | None = None,
    fail_on_extra: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> HubVerifyReport:
    """Hash the local snapshot (HF cache or `local_dir`) and compare with the Hub's metadata."""
    started = time.monotonic()
    snapshot, _, _ = resolve_for_verify(
        repo_id, revision=revision, config=config, endpoint=endpoint, include=include, exclude=exclude
    )
    if local_dir is not None:
        root = local_dir
    else:
        cache = cache_dir or hub_cache_dir(config.weights.cache_dir)
        root = HubCacheLayout(cache, snapshot.repo_id).snapshot_dir(snapshot.commit)
        if not root.is_dir() and snapshot.renamed_from:
            old = HubCacheLayout(cache, snapshot.renamed_from).snapshot_dir(snapshot.commit)
            root = old if old.is_dir() else root
    results = check_files(root, snapshot.files, jobs=jobs or os.cpu_count() or 2, progress=progress)
    if not include and not exclude:
        results += _extras(root, {f.path for f in snapshot.all_files})
    results = tuple(sorted(results, key=lambda r: r.path))
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return HubVerifyReport(
        repo_id=snapshot.repo_id,
        revision=revision,
        commit=snapshot.commit,
        endpoint=redact_url(snapshot.endpoint),
        root=root,
        results=results,
        counts=counts,
        fail_on_extra=fail_on_extra,
        duration_s=round(time.monotonic() - started, 3),
    )


def check_files(
    root: Path, files: Sequence[RemoteFile], *, jobs: int, progress: Progress = NULL_PROGRESS
) -> tuple[HubFileResult, ...]:
    """Each file under `root` against its Hub hash, hashed in parallel (hashlib releases the GIL)."""
    task = progress.task("verifying", total=sum(f.size or 0 for f in files) or None)

    def check(remote: RemoteFile) -> HubFileResult:
        path = root.joinpath(*remote.path.split("/"))
        use_sha256 = remote.sha256 is not None
        algorithm = "sha256" if use_sha256 else "git-sha1"
        expected = remote.sha256 if use_sha256 else remote.git_oid
        if not path.exists():
            return HubFileResult(remote.path, "missing", algorithm, expected, None, remote.size)
        try:
            digests = hash_file(path, git=not use_sha256)
        except OSError as exc:
            return HubFileResult(
                remote.path, "unreadable", algorithm, expected, None, None, exc.strerror or ""
            )
        task.advance(digests.size)
        actual = digests.sha256 if use_sha256 else digests.git_oid
        if actual == expected:
            return HubFileResult(remote.path, "ok", algorithm, expected, actual, digests.size)
        message = f"{algorithm} {actual}, expected {expected} ({digests.size} bytes, expected {remote.size})"
        return HubFileResult(remote.path, "mismatch", algorithm, expected, actual, digests.size, message)

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return tuple(pool.map(check, files))
    finally:
        task.finish()


def _extras(root: Path, known: set[str]) -> tuple[HubFileResult, ...]:
    if not root.is_dir():
        return ()
    extras = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".cache/") or path.is_dir() or rel.endswith((".partial", ".partial.json")):
            continue
        if rel not in known:
            extras.append(HubFileResult(rel, "extra", "", None, None, None))
    return tuple(extras)


def write_hub_manifest(
    repo_id: str,
    output: Path,
    *,
    config,
    revision: str = "main",
    endpoint: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    policy: RetryPolicy | None = None,
) -> ManifestReport:
    """A sha256sum manifest of the repo at `revision` from Hub metadata (paths relative to the snapshot)."""
    snapshot, endpoints, token = resolve_for_verify(
        repo_id, revision=revision, config=config, endpoint=endpoint, include=include, exclude=exclude
    )
    settings = HttpSettings.from_config(config)
    policy = policy or policy_from_config(config)
    session = make_session(settings, jobs=4, token=token, token_hosts=endpoints)
    lines = []
    fetched = 0
    try:
        for remote in sorted(snapshot.files, key=lambda f: f.path):
            if remote.sha256:
                digest = remote.sha256
            else:
                digest = _sha256_of_small_file(session, remote, snapshot, settings, policy)
                fetched += 1
            lines.append(manifest_line(digest, remote.path))
    finally:
        session.close()
    if output.parent and not output.parent.exists():
        raise UsageError(f"{output.parent} does not exist.", remedy="Create the folder or pick another path.")
    atomic_write(output, "".join(lines).encode())
    return ManifestReport(snapshot.repo_id, revision, snapshot.commit, output, len(lines), fetched)


def _sha256_of_small_file(session, remote: RemoteFile, snapshot: HubSnapshot, settings, policy) -> str:
    def get() -> bytes:
        response = session.get(remote.urls[0], timeout=settings.timeout)
        if response.status_code in RETRY_STATUSES:
            raise TransientHttpError(
                f"HTTP {response.status_code}",
                status=response.status_code,
                retry_after=retry_after_header(response.headers),
            )
        if not response.ok:
            raise NetworkError(f"{redact_url(remote.urls[0])} answered HTTP {response.status_code}.")
        return response.content

    data = call_with_retry(get, policy=policy, retry_if=lambda exc: isinstance(exc, OSError))
    oid = hashlib.sha1(git_blob_header(len(data)) + data).hexdigest()  # noqa: S324 (git's object id)
    if remote.git_oid and oid != remote.git_oid:
        raise IntegrityError(
            f"{remote.path} from {redact_url(snapshot.endpoint)} does not match its git blob sha1 "
            f"(expected {remote.git_oid}, got {oid}); no manifest written."
        )
    return hashlib.sha256(data).hexdigest()


def manifest_line(digest: str, name: str) -> str:
    """One GNU sha256sum line; names with a backslash or newline are escaped the way coreutils does."""
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"
