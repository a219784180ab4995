"""`fetch-weights --dry-run`: the files, their sizes, what the cache already holds, the bytes to fetch.

Nothing is downloaded or written. A complete copy is recognised by its presence
and size (a real run also hashes it before reusing it); a partial download by
its sidecar (the bytes a resume would keep).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import CheckFailed
from ...hf_paths import hub_cache_dir
from ...redact import redact_url
from .cache_layout import HubCacheLayout, LocalDirLayout
from .partial_state import partial_bytes
from .ranged import connections_for
from .sources import (
    RemoteFile,
    is_offline,
    is_url,
    resolve_from_cache,
    resolve_hub,
    resolve_plain_url,
)


@dataclass(frozen=True)
class PlannedFile:
    path: str
    size: int | None
    state: Literal["cached", "partial", "missing"]
    on_disk: int  # bytes already there (a complete copy, or what a partial download holds)
    to_download: int | None  # None: the size is unknown
    sha256: str | None
    verified: bool  # a hash is known to check it against
    connections: int


@dataclass(frozen=True)
class PlannedSource:
    source: str
    destination: Path
    files: tuple[PlannedFile, ...]
    repo_id: str | None = None
    commit: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class FetchPlan:
    sources: tuple[PlannedSource, ...]
    files: int
    total_bytes: int
    cached_bytes: int
    bytes_to_download: int
    dry_run: bool = True


def check_hashes(
    files: Sequence[RemoteFile], endpoint: str, allow_unverified: bool, warn: Callable[[str], None]
) -> None:
    """Refuse files no hash is known for (exit 1), unless `--allow-unverified`."""
    blind = [f.path for f in files if not f.has_hash]
    if not blind:
        return
    names = ", ".join(blind[:5]) + (" ..." if len(blind) > 5 else "")
    if not allow_unverified:
        raise CheckFailed(
            f"no hash is known for {len(blind)} file(s) at {redact_url(endpoint)}: {names} "
            "(not in the model info, the tree listing, nor the files' ETag / X-Linked-Etag).",
            remedy="Use an endpoint that publishes hashes, or pass --allow-unverified to download "
            "them unchecked.",
        )
    warn(f"--allow-unverified: {len(blind)} file(s) will not be checked against any hash: {names}")


def plan_fetch(sources, options, config, endpoints, token, session, settings, note) -> FetchPlan:
    planned = []
    for source, revision in sources:
        if not is_url(source) and Path(source).is_dir():
            note(f"{source} is a local folder: nothing to fetch")
            continue
        planned.append(
            _plan_source(
                source,
                options.revision or revision or "main",
                options,
                config,
                endpoints,
                token,
                session,
                settings,
                note,
            )
        )
    files = [f for s in planned for f in s.files]
    return FetchPlan(
        sources=tuple(planned),
        files=len(files),
        total_bytes=sum(f.size or 0 for f in files),
        cached_bytes=sum(f.on_disk for f in files),
        bytes_to_download=sum(f.to_download or 0 for f in files),
    )


def _plan_source(
    source, revision, options, config, endpoints, token, session, settings, note
) -> PlannedSource:
    connections = options.connections or config.weights.connections
    if is_url(source):
        remote = resolve_plain_url(
            source,
            session=session,
            sha256=options.sha256,
            sha256_url=options.sha256_url,
            timeout=settings.read_timeout,
        )
        layout = LocalDirLayout(options.local_dir or Path.cwd(), hub=False)
        return PlannedSource(
            redact_url(source),
            layout.destination(remote),
            (_plan_file(remote, layout, "", connections),),
        )
    cache = options.cache_dir or hub_cache_dir(config.weights.cache_dir)
    if is_offline():
        snapshot = resolve_from_cache(
            source,
            revision=revision,
            cache_dir=cache,
            moves=config.moves,
            include=options.include,
            exclude=options.exclude,
        )
    else:
        snapshot = resolve_hub(
            source,
            revision=revision,
            endpoints=endpoints,
            token=token,
            moves=config.moves,
            include=options.include,
            exclude=options.exclude,
            policy=options.policy,
            on_note=note,
        )
    layout = (
        LocalDirLayout(options.local_dir) if options.local_dir else HubCacheLayout(cache, snapshot.repo_id)
    )
    destination = layout.root if isinstance(layout, LocalDirLayout) else layout.snapshot_dir(snapshot.commit)
    return PlannedSource(
        source=snapshot.requested_id,
        destination=destination,
        files=tuple(_plan_file(f, layout, snapshot.commit, connections) for f in snapshot.files),
        repo_id=snapshot.repo_id,
        commit=snapshot.commit,
        endpoint=redact_url(snapshot.endpoint),
    )


def _plan_file(remote: RemoteFile, layout, commit: str, connections: int | None) -> PlannedFile:
    existing = layout.existing(commit, remote)
    if existing is not None and (remote.size is None or existing.stat().st_size == remote.size):
        size = existing.stat().st_size
        return PlannedFile(remote.path, size, "cached", size, 0, remote.sha256, remote.has_hash, 0)
    held = partial_bytes(layout.destination(remote), remote)
    missing = None if remote.size is None else remote.size - held
    return PlannedFile(
        remote.path,
        remote.size,
        "partial" if held else "missing",
        held,
        missing,
        remote.sha256,
        remote.has_hash,
        connections_for(remote.size, connections),
    )
