"""`fetch-weights`: plan what is missing, check the disk, download in parallel, lay out the cache.

For each source (a Hub repo id or a URL): resolve its files and hashes, hash the
copies already on disk (they are reused when they match), compare the bytes still
missing with the free space, then download the rest with `--jobs` workers sharing
one pooled session, and link them into the HF cache (or write them to
`--local-dir`).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...config import Config
from ...errors import AutoglmError, DiskSpaceError, EnvironmentFailure, IntegrityError, UsageError
from ...hf_paths import hub_cache_dir
from ...progress import NULL_PROGRESS, Progress, ProgressTask
from ...redact import redact_url
from ...retry import RetryPolicy
from ...units import size_text
from .cache_layout import HubCacheLayout, LocalDirLayout
from .download import Downloader, FileOutcome, mismatch, partial_bytes
from .hashing import hash_file
from .http import HttpSettings, make_session, policy_from_config
from .plan import FetchPlan, check_hashes, plan_fetch
from .sources import (
    HubSnapshot,
    RemoteFile,
    endpoints_to_try,
    hub_token,
    is_offline,
    is_repo_id,
    is_url,
    resolve_from_cache,
    resolve_hub,
    resolve_plain_url,
)


@dataclass(frozen=True)
class SourceReport:
    """What one source (a repo or a URL) ended up as."""

    source: str  # as asked
    kind: Literal["hub", "url"]
    destination: Path  # the snapshot folder, the local dir, or the file
    files: tuple[FileOutcome, ...]
    bytes_fetched: int
    bytes_reused: int
    duration_s: float
    repo_id: str | None = None
    renamed_from: str | None = None  # the id asked for, when the Hub (or `moves`) answered under another
    revision: str | None = None
    commit: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class FetchReport:
    sources: tuple[SourceReport, ...]
    bytes_fetched: int
    bytes_reused: int
    files: int
    duration_s: float


@dataclass
class FetchOptions:
    revision: str | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    endpoint: str | None = None
    jobs: int | None = None
    force: bool = False
    local_dir: Path | None = None
    cache_dir: Path | None = None
    sha256: str | None = None
    sha256_url: str | None = None
    endpoints: Sequence[str] = ()  # --endpoint repeated: mirrors in order (wins over `endpoint`)
    connections: int | None = None  # byte ranges per file (default: weights.connections, else auto)
    allow_unverified: bool = False  # go on with files no hash is known for
    dry_run: bool = False  # list what would be fetched; download and write nothing
    policy: RetryPolicy | None = None  # default: the config's `retry` section
    cancel: threading.Event = field(default_factory=threading.Event)


def default_sources(config: Config) -> list[tuple[str, str | None]]:
    """The configured default and backup models as (source, revision)."""
    out = []
    for name in (config.model_pool.default, config.model_pool.backup):
        if not name:
            continue
        spec = config.models.get(name)
        source = spec.source if spec and spec.source else name
        if not (is_url(source) or is_repo_id(source) and "/" in source or Path(source).is_dir()):
            raise UsageError(
                f"model {name!r} has no weights source to fetch.",
                remedy=f"Set models.{name}.source in the config to a Hub repo id (org/name) or a URL.",
            )
        out.append((source, spec.revision if spec else None))
    return out


def fetch_weights(
    sources: Sequence[tuple[str, str | None]],
    *,
    config: Config,
    options: FetchOptions,
    progress: Progress = NULL_PROGRESS,
    note: Callable[[str], None] = lambda message: None,
    warn: Callable[[str], None] = lambda message: None,
) -> FetchReport | FetchPlan:
    """Fetch every source; returns what was fetched and reused (with `dry_run`: the plan).

    Raises on the first failing source."""
    if not sources:
        raise UsageError("nothing to fetch: give a repo id or URL, or set model_pool.default in the config.")
    if (options.sha256 or options.sha256_url) and (len(sources) != 1 or not is_url(sources[0][0])):
        raise UsageError("--sha256 and --sha256-url apply to a single URL source.")
    if options.local_dir and len(sources) > 1:
        raise UsageError("--local-dir takes one source; fetch the others in their own runs.")
    started = time.monotonic()
    if options.policy is None:
        options.policy = policy_from_config(config)
    jobs = options.jobs or config.weights.jobs or 4
    endpoints = endpoints_to_try(options.endpoints or options.endpoint, config.weights.endpoints)
    token = hub_token() if any(not is_url(s) for s, _ in sources) else None
    settings = HttpSettings.from_config(config)
    connections = options.connections or config.weights.connections
    if connections is not None and connections < 1:
        raise UsageError(f"--connections must be at least 1, got {connections}.")
    session = make_session(settings, jobs=jobs * (connections or 8), token=token, token_hosts=endpoints)
    downloader = Downloader(
        session,
        # A content read that waits longer than stall_timeout means a stalled link.
        timeout=(settings.timeout[0], float(config.weights.stall_timeout)),
        policy=options.policy,
        cancel=options.cancel,
        on_note=note,
        connections=connections,
        stall_timeout=float(config.weights.stall_timeout),
    )
    if options.dry_run:
        try:
            return plan_fetch(sources, options, config, endpoints, token, session, settings, note)
        finally:
            session.close()
    reports = []
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="autoglm-fetch") as pool:
            ctx = _Context(
                downloader, pool, progress, options, note, warn, config, session, settings, endpoints, token
            )
            for source, revision in sources:
                if not is_url(source) and Path(source).is_dir():
                    note(f"{source} is a local folder: nothing to fetch")
                    continue
                reports.append(_fetch_source(source, options.revision or revision or "main", ctx))
    finally:
        session.close()
    return FetchReport(
        sources=tuple(reports),
        bytes_fetched=sum(r.bytes_fetched for r in reports),
        bytes_reused=sum(r.bytes_reused for r in reports),
        files=sum(len(r.files) for r in reports),
        duration_s=round(time.monotonic() - started, 3),
    )


@dataclass
class _Context:
    downloader: Downloader
    pool: ThreadPoolExecutor
    progress: Progress
    options: FetchOptions
    note: Callable[[str], None]
    warn: Callable[[str], None]
    config: object
    session: object
    settings: HttpSettings
    endpoints: list[str]
    token: str | None


def _fetch_source(source: str, revision: str, ctx: _Context) -> SourceReport:
    if is_url(source):
        return _fetch_url(source, ctx.session, ctx.settings, ctx)
    options, config = ctx.options, ctx.config
    cache = options.cache_dir or hub_cache_dir(config.weights.cache_dir)
    if is_offline():
        # HF_HUB_OFFLINE: no network; check what an earlier fetch left in the cache.
        snapshot = resolve_from_cache(
            source,
            revision=revision,
            cache_dir=cache,
            moves=config.moves,
            include=options.include,
            exclude=options.exclude,
        )
        ctx.note(f"HF_HUB_OFFLINE is set: checking {snapshot.repo_id}@{snapshot.commit[:12]} in the cache")
        return _fetch_hub(snapshot, cache, ctx)
    snapshot = resolve_hub(
        source,
        revision=revision,
        endpoints=ctx.endpoints,
        token=ctx.token,
        moves=config.moves,
        include=options.include,
        exclude=options.exclude,
        policy=options.policy,
        on_note=ctx.note,
    )
    if snapshot.renamed_from:
        ctx.warn(
            f"{snapshot.renamed_from} is now {snapshot.repo_id}: fetched into the cache "
            "under the new id (add it to `moves` in the config to say so)"
        )
    return _fetch_hub(snapshot, cache, ctx)


def _fetch_hub(snapshot: HubSnapshot, cache: Path, ctx: _Context) -> SourceReport:
    started = time.monotonic()
    check_hashes(snapshot.files, snapshot.endpoint, ctx.options.allow_unverified, ctx.warn)
    layout: HubCacheLayout | LocalDirLayout
    layout = (
        LocalDirLayout(ctx.options.local_dir)
        if ctx.options.local_dir
        else HubCacheLayout(cache, snapshot.repo_id)
    )
    layout.prepare()
    if isinstance(layout, HubCacheLayout):
        # Written first, like huggingface_hub: an interrupted run leaves a snapshot it calls incomplete.
        layout.write_ref(snapshot.revision, snapshot.commit)
    layout.write_tree(snapshot.commit, snapshot.all_files)

    def finish_file(remote: RemoteFile) -> None:
        if isinstance(layout, HubCacheLayout):
            layout.link(snapshot.commit, remote)
        else:
            layout.record(snapshot.commit, remote)

    outcomes = _run_files(snapshot.files, layout, snapshot.commit, ctx, finish_file, label=snapshot.repo_id)
    destination = layout.root if isinstance(layout, LocalDirLayout) else layout.snapshot_dir(snapshot.commit)
    return SourceReport(
        source=snapshot.requested_id,
        kind="hub",
        destination=destination,
        files=outcomes,
        bytes_fetched=sum(o.bytes_fetched for o in outcomes),
        bytes_reused=sum(o.bytes_reused for o in outcomes),
        duration_s=round(time.monotonic() - started, 3),
        repo_id=snapshot.repo_id,
        renamed_from=snapshot.renamed_from,
        revision=snapshot.revision,
        commit=snapshot.commit,
        endpoint=redact_url(snapshot.endpoint),
    )


def _fetch_url(url: str, session, settings: HttpSettings, ctx: _Context) -> SourceReport:
    started = time.monotonic()
    remote = resolve_plain_url(
        url,
        session=session,
        sha256=ctx.options.sha256,
        sha256_url=ctx.options.sha256_url,
        timeout=settings.read_timeout,
    )
    layout = LocalDirLayout(ctx.options.local_dir or Path.cwd(), hub=False)
    layout.prepare()
    outcomes = _run_files((remote,), layout, "", ctx, lambda r: None, label=remote.path)
    return SourceReport(
        source=redact_url(url),
        kind="url",
        destination=layout.destination(remote),
        files=outcomes,
        bytes_fetched=sum(o.bytes_fetched for o in outcomes),
        bytes_reused=sum(o.bytes_reused for o in outcomes),
        duration_s=round(time.monotonic() - started, 3),
    )


def _run_files(
    files: Sequence[RemoteFile],
    layout: HubCacheLayout | LocalDirLayout,
    commit: str,
    ctx: _Context,
    finish_file: Callable[[RemoteFile], None],
    *,
    label: str,
) -> tuple[FileOutcome, ...]:
    """Reuse what verifies, check the disk for the rest, download it in parallel."""
    total_bytes = sum(f.size or 0 for f in files)
    total = ctx.progress.task(f"{label} (total)", total=total_bytes or None, unit="bytes")
    try:
        reused = _verify_existing(files, layout, commit, ctx, total)
        missing = [f for f in files if f.path not in reused]
        offline = [f for f in missing if not f.urls]
        if offline:
            names = ", ".join(f.path for f in offline[:5]) + (" ..." if len(offline) > 5 else "")
            raise EnvironmentFailure(
                f"HF_HUB_OFFLINE is set and {len(offline)} file(s) of {label} are missing or bad: {names}.",
                remedy="Unset HF_HUB_OFFLINE and run fetch-weights again: it downloads only these.",
            )
        _check_disk(missing, layout, ctx.options.force)
        for remote in reused.values():
            finish_file(_remote_of(files, remote.path))
        downloaded = _parallel(
            ctx,
            missing,
            lambda remote: ctx.downloader.download(
                remote,
                layout.destination(remote),
                progress=ctx.progress,
                total=total,
                lock=layout.lock_path(remote),
            ),
            then=finish_file,
        )
    finally:
        total.finish()
    by_path = {**reused, **downloaded}
    return tuple(by_path[f.path] for f in files)


def _verify_existing(
    files, layout, commit: str, ctx: _Context, total: ProgressTask
) -> dict[str, FileOutcome]:
    """Hash the copies already on disk; those that match are reused, the others fetched again."""
    candidates = [(f, path) for f in files if (path := layout.existing(commit, f)) is not None]

    def check(item):
        remote, path = item
        digests = hash_file(path, git=remote.sha256 is None and remote.git_oid is not None)
        if mismatch(remote, digests) is not None:
            ctx.note(f"{remote.path}: the copy on disk does not match its hash; fetching it again")
            return None
        total.advance(digests.size)
        if isinstance(layout, HubCacheLayout) and path != layout.blob_path(remote):
            ctx.note(f"{remote.path}: reusing the same bytes from {path.parent.parent.name}")
            path = layout.adopt(path, remote)
        return FileOutcome(remote.path, path, digests.size, digests.sha256, "reused", 0, digests.size)

    results = _parallel(ctx, candidates, check, key=lambda item: item[0].path)
    return {path: outcome for path, outcome in results.items() if outcome is not None}


def _check_disk(missing: Sequence[RemoteFile], layout, force: bool) -> None:
    needed = sum(max(0, (f.size or 0) - partial_bytes(layout.destination(f), f)) for f in missing)
    if not needed:
        return
    where = layout.destination(missing[0]).parent
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if needed > free and not force:
        raise DiskSpaceError(
            f"{_gib(needed)} still to download but only {_gib(free)} free on {where} "
            f"({needed} > {free} bytes)."
        )


def _parallel(ctx: _Context, items, work, *, key=None, then=None) -> dict:
    """Run `work(item)` on the pool; every item runs even when one fails, then the worst error is raised."""
    key = key or (lambda item: item.path)
    futures: dict[Future, object] = {ctx.pool.submit(work, item): item for item in items}
    results: dict = {}
    errors: list[tuple[object, BaseException]] = []
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)  # Ctrl-C still interrupts
            for future in done:
                item = futures[future]
                try:
                    results[key(item)] = outcome = future.result()
                    if then is not None and outcome is not None:
                        then(item)
                except Exception as exc:  # collected: the other files keep going, then we raise
                    errors.append((item, exc))
    except KeyboardInterrupt:
        ctx.options.cancel.set()  # workers stop at their next chunk; partial files stay for the next run
        wait(futures)
        raise
    if errors:
        raise _combine(errors, key)
    return results


def _combine(errors: list[tuple[object, BaseException]], key) -> BaseException:
    """One error for the CLI: an integrity failure wins (exit 1); the others are listed."""
    errors.sort(key=lambda pair: not isinstance(pair[1], IntegrityError))
    first = errors[0][1]
    if not isinstance(first, AutoglmError):
        if isinstance(first, OSError):
            return EnvironmentFailure(str(first))
        return first
    if len(errors) == 1:
        return first
    others = "; ".join(f"{key(item)}: {type(exc).__name__}" for item, exc in errors[1:])
    first.message = f"{first.message} (also failed: {others})"
    first.args = (first.message,)
    return first


def _remote_of(files: Sequence[RemoteFile], path: str) -> RemoteFile:
    return next(f for f in files if f.path == path)


def _gib(n: int) -> str:
    return size_text(n)
