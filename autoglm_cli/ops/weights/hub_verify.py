"""`autoglm verify --hf REPO`: a local snapshot checked against the Hub's own hashes.

The Hub publishes a sha256 for every LFS file (the weights) and only a git blob
sha1 for the other (small) files. Each file becomes an `ExpectedFile` for
`ops.checksums.verify_expected`, so the report, the words (ok / mismatch /
missing / extra / unreadable) and the exit codes are exactly `verify-sha256`'s:

- LFS files: the Hub's sha256 and size;
- small files: when the local copy has the Hub's git blob sha1, its own sha256
  (the same bytes); otherwise (missing, or different) the sha256 of the Hub's
  copy, downloaded into memory and checked against its git blob sha1.

`write_hub_manifest` turns the Hub's metadata into a sha256sum manifest (small
files downloaded into memory, checked and hashed), so CI can verify offline later
with `autoglm verify FILE`.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...atomic import atomic_write
from ...config import Config
from ...errors import IntegrityError, NetworkError, UsageError
from ...hf_paths import hub_cache_dir, local_dir_metadata
from ...progress import NULL_PROGRESS, Progress
from ...redact import redact_url
from ...retry import RetryPolicy, call_with_retry
from ..checksums import ExpectedFile, VerifyReport, verify_expected
from ..checksums.incremental import record_path
from ..checksums.manifest import format_manifest
from .cache_layout import HubCacheLayout
from .hashing import git_blob_header, hash_file
from .http import (
    RETRY_STATUSES,
    HttpSettings,
    TransientHttpError,
    make_session,
    policy_from_config,
    retry_after_header,
)
from .hub_auth import auth_refused
from .sources import HubSnapshot, RemoteFile, endpoints_to_try, hub_token, resolve_hub

_SPOOL_BYTES = 8 * 1024 * 1024  # a body larger than this goes to a temporary file, not memory
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ManifestReport:
    repo_id: str
    revision: str
    commit: str
    manifest: Path
    files: int
    fetched_small_files: int  # non-LFS files downloaded to learn their sha256


class _Hub:
    """The resolved snapshot plus what it takes to download its small files."""

    def __init__(
        self, repo_id: str, *, revision: str, config: Config, endpoint: str | None, policy=None
    ) -> None:
        self.endpoints = endpoints_to_try(endpoint, config.weights.endpoints)
        self.token = hub_token()
        self.policy = policy or policy_from_config(config)
        self.settings = HttpSettings.from_config(config)
        self.snapshot: HubSnapshot = resolve_hub(
            repo_id,
            revision=revision,
            endpoints=self.endpoints,
            token=self.token,
            moves=config.moves,
            policy=self.policy,
        )
        self._session = None

    def sha256_of_small_file(self, remote: RemoteFile) -> str:
        """Download a file the Hub gives no sha256 for, check its git blob sha1, return its sha256.

        Streamed: a mirror that publishes no hashes at all may send a 150 MB shard this way,
        so the body goes through a spooled temporary file (memory up to 8 MiB) and is read
        again for the git blob id, whose header needs the length first.
        """
        if self._session is None:
            self._session = make_session(self.settings, jobs=1, token=self.token, token_hosts=self.endpoints)
        session = self._session

        def get() -> tuple[str, str]:
            with (
                session.get(remote.urls[0], timeout=self.settings.timeout, stream=True) as response,
                tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as body,
            ):
                if response.status_code in RETRY_STATUSES:
                    raise TransientHttpError(
                        f"HTTP {response.status_code}",
                        status=response.status_code,
                        retry_after=retry_after_header(response.headers),
                    )
                refused = auth_refused(remote.urls[0], response.status_code, token=self.token)
                if refused is not None:
                    raise refused
                if not response.ok:
                    raise NetworkError(f"{redact_url(remote.urls[0])} answered HTTP {response.status_code}.")
                sha256, size = hashlib.sha256(), 0
                for chunk in response.iter_content(_CHUNK_BYTES):
                    sha256.update(chunk)
                    body.write(chunk)
                    size += len(chunk)
                body.seek(0)
                sha1 = hashlib.sha1(git_blob_header(size))  # noqa: S324 (git's object id)
                while chunk := body.read(_CHUNK_BYTES):
                    sha1.update(chunk)
                return sha256.hexdigest(), sha1.hexdigest()

        sha256, oid = call_with_retry(
            get, policy=self.policy, retry_if=lambda exc: isinstance(exc, TransientHttpError)
        )
        if remote.git_oid and oid != remote.git_oid:
            raise IntegrityError(
                f"{remote.path} from {redact_url(self.snapshot.endpoint)} does not match its git blob sha1 "
                f"(expected {remote.git_oid}, got {oid})."
            )
        return sha256

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def verify_hub(
    repo_id: str,
    *,
    config: Config,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    root: Path | None = None,
    jobs: int | None = None,
    ignore_missing: bool = False,
    fail_on_extra: bool = False,
    incremental: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> VerifyReport:
    """Hash the local snapshot (the HF cache's, or `root`) and compare with the Hub's metadata.

    `incremental`: files whose stat is unchanged since they were verified are not re-read
    (see `ops.checksums.incremental`; a record per repo, commit and root).
    """
    hub = _Hub(repo_id, revision=revision, config=config, endpoint=endpoint)
    snapshot = hub.snapshot
    try:
        if root is None:
            cache = cache_dir or hub_cache_dir(config.weights.cache_dir)
            root = HubCacheLayout(cache, snapshot.repo_id).snapshot_dir(snapshot.commit)
            if not root.is_dir() and snapshot.renamed_from:  # cached under the old id, not migrated yet
                old = HubCacheLayout(cache, snapshot.renamed_from).snapshot_dir(snapshot.commit)
                root = old if old.is_dir() else root
        if not root.is_dir():
            raise UsageError(
                f"no local snapshot of {snapshot.repo_id}@{snapshot.commit[:12]} at {root}.",
                remedy=f"Fetch it first (autoglm fetch-weights {snapshot.repo_id}), or pass --root DIR.",
            )
        expected = [_expected(remote, root, hub) for remote in snapshot.files]
    finally:
        hub.close()
    bookkeeping = local_dir_metadata(root)
    exclude = (
        frozenset(p for p in bookkeeping.rglob("*") if p.is_file()) if bookkeeping.is_dir() else frozenset()
    )
    source = f"hf://{snapshot.repo_id}@{snapshot.commit}"
    return verify_expected(
        expected,
        root,
        source=source,
        record=record_path(source, root) if incremental else None,
        exclude=exclude,
        jobs=jobs,
        ignore_missing=ignore_missing,
        fail_on_extra=fail_on_extra,
        progress=progress,
    )


def _expected(remote: RemoteFile, root: Path, hub: _Hub) -> ExpectedFile:
    if remote.sha256:
        return ExpectedFile(remote.path, remote.sha256, size=remote.size)
    local = root.joinpath(*remote.path.split("/"))
    if local.is_file():
        try:
            digests = hash_file(local, git=True)
        except OSError:
            digests = None  # verify_expected reports it unreadable
        if digests is not None and digests.git_oid == remote.git_oid:
            return ExpectedFile(remote.path, digests.sha256, size=remote.size)
    return ExpectedFile(remote.path, hub.sha256_of_small_file(remote), size=remote.size)


def write_hub_manifest(
    repo_id: str,
    output: Path,
    *,
    config: Config,
    revision: str = "main",
    endpoint: str | None = None,
    policy: RetryPolicy | None = None,
) -> ManifestReport:
    """A sha256sum manifest of the repo at `revision` from Hub metadata (paths relative to the snapshot)."""
    if not output.parent.is_dir():
        raise UsageError(
            f"{output.parent} is not a folder.", remedy="Create it, or write the manifest elsewhere."
        )
    hub = _Hub(repo_id, revision=revision, config=config, endpoint=endpoint, policy=policy)
    snapshot = hub.snapshot
    entries = []
    fetched = 0
    try:
        for remote in sorted(snapshot.files, key=lambda f: f.path):
            if remote.sha256:
                entries.append((remote.path, remote.sha256))
            else:
                entries.append((remote.path, hub.sha256_of_small_file(remote)))
                fetched += 1
    finally:
        hub.close()
    atomic_write(output, format_manifest(entries))
    return ManifestReport(snapshot.repo_id, revision, snapshot.commit, output, len(entries), fetched)
