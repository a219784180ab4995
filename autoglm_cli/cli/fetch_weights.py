"""`autoglm fetch-weights`: resumable, verified weight downloads into the standard HF cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import Interrupted
from ..hf_paths import hub_cache_dir
from .context import start
from .options import JobsOption, JsonOption, QuietOption
from .output import duration_text, size_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.weights.fetch import FetchReport

HELP = "Download model weights resumably, hashed while downloading, into the HF cache"
EXAMPLES = (
    "autoglm fetch-weights zai-org/glm-4-9b-chat --include '*.json'",
    "autoglm fetch-weights --config examples/local.yaml     # the config's models",
    "autoglm fetch-weights https://host/m.gguf --sha256 HEX --local-dir weights/",
)


def command(
    ctx: typer.Context,
    sources: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Hub repo ids (org/name) or http(s) URLs (default: model_pool.default and .backup).",
            show_default=False,
        ),
    ] = None,
    revision: Annotated[
        Optional[str], typer.Option("--revision", "-r", help="Branch, tag or commit (default: main).")
    ] = None,
    include: Annotated[
        Optional[list[str]], typer.Option("--include", help="Only files matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Skip files matching this glob (repeatable).")
    ] = None,
    endpoint: Annotated[
        Optional[list[str]],
        typer.Option(
            "--endpoint",
            help="Hub endpoint; repeat it for mirrors, tried in order, also mid-file (default: "
            "weights.endpoints in order, else $HF_ENDPOINT, else the Hub).",
        ),
    ] = None,
    jobs: JobsOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Start even when the free disk space looks too small.")
    ] = False,
    local_dir: Annotated[
        Optional[Path],
        typer.Option("--local-dir", help="Write the files themselves here instead of into the HF cache."),
    ] = None,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--cache-dir", help="HF cache to fill (default: weights.cache_dir, else $HF_HUB_CACHE)."
        ),
    ] = None,
    sha256: Annotated[
        Optional[str], typer.Option("--sha256", help="Expected sha256 of a URL source.", show_default=False)
    ] = None,
    sha256_url: Annotated[
        Optional[str],
        typer.Option("--sha256-url", help="sha256sum manifest for a URL source (default: URL.sha256)."),
    ] = None,
    connections: Annotated[
        Optional[int],
        typer.Option(
            "--connections",
            min=1,
            help="Byte ranges of one file fetched at once (default: weights.connections, else 8 for "
            "files over 64 MiB).",
        ),
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified", help="Download files no hash is known for (a mirror without hashes)."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List the files, their sizes, what is cached and the bytes to download."
        ),
    ] = False,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "fetch-weights", json=json, quiet=quiet)
    from ..ops.weights.fetch import FetchOptions, default_sources, fetch_weights

    config = run.config
    wanted = [(source, None) for source in sources] if sources else default_sources(config)
    options = FetchOptions(
        revision=revision,
        include=include or (),
        exclude=exclude or (),
        endpoints=tuple(endpoint or ()),
        jobs=jobs,
        force=force,
        local_dir=local_dir,
        cache_dir=cache_dir,
        sha256=sha256,
        sha256_url=sha256_url,
        connections=connections,
        allow_unverified=allow_unverified,
        dry_run=dry_run,
    )
    started = time.time()
    try:
        with run.out.progress(bytes_=True) as progress:
            report = fetch_weights(
                wanted,
                config=config,
                options=options,
                progress=progress,
                note=run.out.note,
                warn=run.out.warn,
            )
    except KeyboardInterrupt:
        root = local_dir or hub_cache_dir(str(cache_dir or "") or config.weights.cache_dir)
        raise interrupted(root, started) from None
    render = _render_plan if dry_run else _render
    return run.out.result(report, human=lambda console: render(console, report))


def interrupted(root: Path, since: float) -> Interrupted:
    """What Ctrl-C left: the partial files written in this run, kept so a rerun resumes."""
    from ..ops.weights.download import PARTIAL_SUFFIX

    kept = [p for p in root.rglob(f"*{PARTIAL_SUFFIX}") if p.is_file() and p.stat().st_mtime >= since - 1]
    if not kept:
        return Interrupted(
            f"interrupted: the files fetched so far are kept in {root}; rerun the same command to finish",
            remedy="",
        )
    total = sum(p.stat().st_size for p in kept)
    return Interrupted(
        f"interrupted: {size_text(total)} kept in {len(kept)} partial file(s) under {root}; "
        "rerun the same command to resume",
        remedy="",
    )


def _render_plan(console: Console, plan) -> None:
    from rich.table import Table

    for source in plan.sources:
        where = f"{source.repo_id}@{source.commit[:12]}" if source.commit else source.source
        console.print(f"{where} -> {source.destination} (dry run: nothing written)", soft_wrap=True)
        table = Table(show_edge=False, box=None, pad_edge=False)
        for name, justify in (
            ("file", "left"),
            ("size", "right"),
            ("in cache", "left"),
            ("to fetch", "right"),
        ):
            table.add_column(name, justify=justify)
        table.add_column("hash")
        for f in source.files:
            held = (
                "complete" if f.state == "cached" else f"partial {size_text(f.on_disk)}" if f.on_disk else "-"
            )
            size = size_text(f.size) if f.size is not None else "?"
            fetch = size_text(f.to_download) if f.to_download is not None else "?"
            table.add_row(
                f.path, size, held, fetch, "sha256" if f.sha256 else "git" if f.verified else "none"
            )
        console.print(table)
    console.print(
        f"{plan.files} files, {size_text(plan.total_bytes)}: {size_text(plan.cached_bytes)} on disk, "
        f"{size_text(plan.bytes_to_download)} to download"
    )


def _render(console: Console, report: FetchReport) -> None:
    from rich.table import Table

    for source in report.sources:
        where = (
            f"{source.repo_id}@{source.commit[:12]}"
            if source.kind == "hub" and source.commit
            else source.source
        )
        console.print(f"{where} -> {source.destination}", soft_wrap=True)
        table = Table(show_edge=False, box=None, pad_edge=False)
        for name, justify in (("file", "left"), ("status", "left"), ("size", "right"), ("fetched", "right")):
            table.add_column(name, justify=justify)
        table.add_column("sha256")
        for f in source.files:
            table.add_row(f.path, f.status, size_text(f.size), size_text(f.bytes_fetched), f.sha256[:16])
        console.print(table)
        for f in source.files:
            if len(f.origins) > 1:  # failover: which bytes came from where
                parts = ", ".join(f"{size_text(o.bytes)} from {o.endpoint}" for o in f.origins)
                console.print(f"{f.path}: {parts}", soft_wrap=True)
    console.print(
        f"{report.files} files: {size_text(report.bytes_fetched)} fetched, "
        f"{size_text(report.bytes_reused)} reused, {duration_text(report.duration_s)}"
    )
