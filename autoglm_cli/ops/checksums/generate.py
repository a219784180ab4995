"""Write a sha256sum manifest for a directory tree (`verify-sha256 --generate DIR`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...atomic import atomic_write
from ...errors import EnvironmentFailure, UsageError
from ...progress import NULL_PROGRESS, Progress
from .hashing import default_jobs, hash_files
from .manifest import display_name, format_manifest
from .tree import SkippedPath, walk_files


@dataclass(frozen=True)
class GeneratedEntry:
    name: str  # display-safe; the manifest itself holds the exact bytes
    sha256: str
    size: int


@dataclass(frozen=True)
class GenerateReport:
    root: str
    output: str | None  # None: the caller prints the manifest
    files: tuple[GeneratedEntry, ...]
    skipped: tuple[SkippedPath, ...]  # FIFOs, dangling links, links to directories
    bytes_hashed: int
    seconds: float
    jobs: int


def generate_manifest(
    root: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> tuple[GenerateReport, bytes]:
    """Hash every regular file under `root`; returns the report and the manifest bytes.

    Names are relative to `root`, sorted by bytes, in the format GNU `sha256sum`
    writes (so `cd root && sha256sum -c MANIFEST` accepts it). With `output`, the
    manifest is also written there atomically; a manifest inside `root` does not
    list itself. Raises `EnvironmentFailure` (nothing written) if a file cannot be
    read: a manifest that silently lacks a file would verify a partial tree.
    """
    started = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--generate needs a directory; {root} is not one")
    output_path = Path(output).absolute() if output is not None else None
    if output_path is not None and not output_path.parent.is_dir():
        raise UsageError(f"cannot write {output}: its directory does not exist")
    jobs = jobs or default_jobs()

    names: list[str] = []
    skipped: list[SkippedPath] = []
    for item in walk_files(root, exclude=frozenset({output_path}) if output_path else frozenset()):
        (skipped if isinstance(item, SkippedPath) else names).append(item)

    hashed = hash_files([root / n for n in names], jobs=jobs, progress=progress, description="hashing")
    unreadable = [(name, h.error) for name, h in zip(names, hashed, strict=True) if not h.ok]
    if unreadable:
        listing = "; ".join(f"{display_name(n)}: {why}" for n, why in unreadable[:5])
        more = f" (and {len(unreadable) - 5} more)" if len(unreadable) > 5 else ""
        raise EnvironmentFailure(
            f"cannot read {len(unreadable)} file(s) under {root}: {listing}{more}; no manifest written",
            remedy="Fix the permissions or move the files out of the tree, then generate again.",
        )

    data = format_manifest([(name, h.sha256 or "") for name, h in zip(names, hashed, strict=True)])
    if output_path is not None:
        try:
            atomic_write(output_path, data)
        except OSError as exc:
            raise EnvironmentFailure(f"cannot write {output}: {exc.strerror or exc}") from exc
    report = GenerateReport(
        root=os.path.abspath(root),
        output=str(output) if output is not None else None,
        files=tuple(
            GeneratedEntry(display_name(n), h.sha256 or "", h.size)
            for n, h in zip(names, hashed, strict=True)
        ),
        skipped=tuple(SkippedPath(display_name(s.name), s.reason) for s in skipped),
        bytes_hashed=sum(h.size for h in hashed),
        seconds=round(time.perf_counter() - started, 3),
        jobs=jobs,
    )
    return report, data
