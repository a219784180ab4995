"""`autoglm verify-sha256` / `autoglm verify`: check files against a sha256sum manifest, or write one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import UsageError
from .context import Invocation, start
from .options import JobsOption, JsonOption
from .output import Mode, size_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.checksums import FileResult, GenerateReport, VerifyReport

HELP = (
    "Verify files against a sha256sum manifest (GNU or BSD lines), or write one with --generate DIR; "
    "--hf REPO checks a Hub snapshot against the Hub's hashes. "
    "Exit 0 all ok, 1 mismatch/missing/unreadable, 2 malformed manifest or usage error."
)
EXAMPLES = (
    "autoglm verify-sha256 --generate weights/ --output weights/SHA256SUMS",
    "autoglm verify weights/SHA256SUMS --quiet      # only the problems",
    "autoglm verify --hf zai-org/glm-4-9b-chat      # the cache against the Hub",
)

# sha256sum's --quiet: the failures are still printed (the shared --quiet prints nothing).
VerifyQuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the files that need attention, one line each.")
]

_STYLE = {
    "ok": "green",
    "mismatch": "bold red",
    "missing": "red",
    "unreadable": "red",
    "extra": "yellow",
    "malformed": "yellow",
}


def command(
    ctx: typer.Context,
    manifest: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="MANIFEST",
            help="Manifest to check (`-` reads stdin). Names are relative to the current directory "
            "(as with sha256sum -c), or to --root.",
            show_default=False,
        ),
    ] = None,
    generate: Annotated[
        Optional[Path],
        typer.Option(
            "--generate", metavar="DIR", help="Write a manifest of every file under DIR instead of checking."
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="With --generate: write the manifest here (default stdout).",
        ),
    ] = None,
    root: Annotated[
        Optional[Path],
        typer.Option(
            "--root",
            metavar="DIR",
            help="Directory the names are relative to (default: the current directory, as sha256sum -c).",
        ),
    ] = None,
    ignore_missing: Annotated[
        bool, typer.Option("--ignore-missing", help="Don't fail or report for files that are not there.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 2) on malformed manifest lines.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Print nothing; the exit code is the answer.")
    ] = False,
    fail_on_extra: Annotated[
        bool, typer.Option("--fail-on-extra", help="Fail if files under the root are not in the manifest.")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Don't re-read files whose size, mtime, ctime, inode and device are unchanged since "
            "this manifest last verified them (a record per manifest in the XDG state dir).",
        ),
    ] = False,
    jobs: JobsOption = None,
    hf: Annotated[
        Optional[str],
        typer.Option(
            "--hf",
            metavar="REPO",
            help="Check the local snapshot of this Hub repo against the Hub's hashes (LFS sha256, git sha1).",
        ),
    ] = None,
    revision: Annotated[
        Optional[str],
        typer.Option("--revision", metavar="REV", help="With --hf: branch, tag or commit (main)."),
    ] = None,
    write_manifest: Annotated[
        Optional[Path],
        typer.Option(
            "--write-manifest",
            metavar="FILE",
            help="With --hf: write a sha256sum manifest from the Hub's metadata instead of checking.",
        ),
    ] = None,
    endpoint: Annotated[
        Optional[str], typer.Option("--endpoint", metavar="URL", help="With --hf: the Hub endpoint to ask.")
    ] = None,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option("--cache-dir", metavar="DIR", help="With --hf: the HF cache holding the snapshot."),
    ] = None,
    json: JsonOption = False,
    quiet: VerifyQuietOption = False,
) -> int:
    # The name it was called by (`verify` or `verify-sha256`), for the JSON document.
    run = start(ctx, ctx.command_path.rsplit(" ", 1)[-1], json=json, quiet=quiet or status)
    if hf is not None:
        if manifest is not None or generate is not None or output is not None or strict:
            raise UsageError(
                "--hf REPO checks against the Hub: no MANIFEST, --generate, --output or --strict"
            )
        return _verify_hub(
            run,
            hf,
            revision,
            write_manifest,
            endpoint,
            cache_dir,
            root,
            jobs,
            ignore_missing,
            fail_on_extra,
            incremental,
            silent=status,
        )
    hub_only = {
        "--revision": revision,
        "--write-manifest": write_manifest,
        "--endpoint": endpoint,
        "--cache-dir": cache_dir,
    }
    if any(value is not None for value in hub_only.values()):
        used = ", ".join(name for name, value in hub_only.items() if value is not None)
        raise UsageError(f"{used} only apply with --hf REPO")
    if generate is not None:
        _refuse_with_generate(manifest, root, ignore_missing, strict, status, fail_on_extra, incremental)
        return _generate(run, generate, output, jobs)
    if manifest is None:
        raise UsageError("nothing to do: give a MANIFEST to check, or --generate DIR to write one")
    if output is not None:
        raise UsageError("--output only goes with --generate DIR")
    return _verify(
        run, manifest, root, jobs, strict, ignore_missing, fail_on_extra, incremental, silent=status
    )


def _refuse_with_generate(
    manifest: Path | None,
    root: Path | None,
    ignore_missing: bool,
    strict: bool,
    status: bool,
    fail_on_extra: bool,
    incremental: bool,
) -> None:
    if manifest is not None:
        raise UsageError("give either a MANIFEST to check or --generate DIR, not both")
    flags = {
        "--root": root is not None,
        "--ignore-missing": ignore_missing,
        "--strict": strict,
        "--status": status,
        "--fail-on-extra": fail_on_extra,
        "--incremental": incremental,
    }
    used = [name for name, on in flags.items() if on]
    if used:
        raise UsageError(f"{', '.join(used)} only apply when checking a manifest, not with --generate")


# --- checking ----------------------------------------------------------------


def _verify(
    run: Invocation,
    manifest: Path,
    root: Path | None,
    jobs: int | None,
    strict: bool,
    ignore_missing: bool,
    fail_on_extra: bool,
    incremental: bool,
    *,
    silent: bool,
) -> int:
    from ..ops import checksums

    stream = sys.stdin.buffer if str(manifest) == "-" else None
    with run.out.progress(bytes_=True) as progress:
        report = checksums.verify_manifest(
            manifest,
            root=root,
            stream=stream,
            jobs=jobs,
            strict=strict,
            ignore_missing=ignore_missing,
            fail_on_extra=fail_on_extra,
            incremental=incremental,
            progress=progress,
        )
    return _show(run, report, silent=silent)


def _verify_hub(
    run: Invocation,
    repo: str,
    revision: str | None,
    write_manifest: Path | None,
    endpoint: str | None,
    cache_dir: Path | None,
    root: Path | None,
    jobs: int | None,
    ignore_missing: bool,
    fail_on_extra: bool,
    incremental: bool,
    *,
    silent: bool,
) -> int:
    from ..ops.weights import hub_verify

    if write_manifest is not None:
        written = hub_verify.write_hub_manifest(
            repo, write_manifest, config=run.config, revision=revision or "main", endpoint=endpoint
        )
        return run.out.result(
            written,
            human=lambda console: run.out.note(
                f"wrote {written.manifest}: {written.files} files of {written.repo_id}@{written.commit[:12]} "
                f"from the Hub's metadata ({written.fetched_small_files} small files downloaded to hash them)"
            ),
        )
    with run.out.progress(bytes_=True) as progress:
        report = hub_verify.verify_hub(
            repo,
            config=run.config,
            revision=revision or "main",
            endpoint=endpoint,
            cache_dir=cache_dir,
            root=root,
            jobs=jobs,
            ignore_missing=ignore_missing,
            fail_on_extra=fail_on_extra,
            incremental=incremental,
            progress=progress,
        )
    return _show(run, report, silent=silent)


def _show(run: Invocation, report: VerifyReport, *, silent: bool) -> int:
    if run.out.mode is Mode.QUIET and not silent:
        # sha256sum --quiet: only the lines that need attention.
        lines = [f"{_label(r)}: {r.status.value.upper()} ({r.detail})\n" for r in report.failures]
        if lines:
            run.out.data("".join(lines))
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: _render(console, report))


# Above this many results the table becomes plain lines (as sha256sum prints): a rich table of
# 100k rows took a minute and 400 MB.
TABLE_ROWS = 2000


def _render(console: Console, report: VerifyReport) -> None:
    from rich.table import Table
    from rich.text import Text

    if len(report.files) > TABLE_ROWS:
        _render_lines(console, report)
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("status", no_wrap=True)
    # Names keep their width (up to 60 columns); the detail column folds first.
    longest = max((len(_label(r)) for r in report.files), default=4)
    table.add_column("file", overflow="fold", min_width=min(longest, 60))
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in report.files:
        if result.status.value == "missing" and report.ignore_missing:
            continue  # like sha256sum --ignore-missing: not worth a line; counted in the summary
        table.add_row(
            Text(result.status.value, style=_STYLE[result.status.value]),
            Text(_label(result)),
            size_text(result.size) if result.size is not None else "",
            Text(result.detail),
        )
    console.print(table)
    console.print(
        Text(
            f"{report.summary}; {size_text(report.bytes_hashed)} hashed in {report.seconds:.2f} s"
            f"{_rate(report)}",
            style="green" if report.exit_code == 0 else "bold red",
        )
    )


def _render_lines(console: Console, report: VerifyReport) -> None:
    """A large report: one plain line per file that needs attention, then the summary."""
    from rich.text import Text

    lines = [f"{_label(r)}: {r.status.value.upper()} ({r.detail})\n" for r in report.failures]
    console.file.write("".join(lines))
    console.file.flush()
    ok = report.counts["ok"]
    shown = f"{ok} ok files not listed; " if ok else ""
    console.print(
        Text(
            f"{shown}{report.summary}; {size_text(report.bytes_hashed)} hashed in {report.seconds:.2f} s"
            f"{_rate(report)}",
            style="green" if report.exit_code == 0 else "bold red",
        )
    )


def _label(result: FileResult) -> str:
    """The file name; a malformed line that names no usable file is shown by its line number."""
    if result.status.value == "malformed" and not result.unsafe:
        return f"line {result.line}: {result.name.strip()}" if result.name.strip() else f"line {result.line}"
    return result.name


def _rate(report: VerifyReport | GenerateReport) -> str:
    if report.seconds < 0.1:
        return f" ({report.jobs} threads)"
    return f" ({size_text(report.bytes_hashed / report.seconds)}/s, {report.jobs} threads)"


# --- writing -----------------------------------------------------------------


def _generate(run: Invocation, root: Path, output: Path | None, jobs: int | None) -> int:
    from ..ops import checksums

    to_stdout = output is None or str(output) == "-"
    with run.out.progress(bytes_=True) as progress:
        report, data = checksums.generate_manifest(
            root, output=None if to_stdout else output, jobs=jobs, progress=progress
        )
    for skipped in report.skipped:
        run.out.warn(f"skipped {skipped.name}: {skipped.reason}")
    if not report.files:
        run.out.warn(f"no files under {root}: the manifest is empty")
    if to_stdout and not run.out.is_json:
        # Bytes, not text: names that are not UTF-8 must reach the manifest unchanged.
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return run.out.result(report, human=lambda console: _render_generated(run, report))


def _render_generated(run: Invocation, report: GenerateReport) -> None:
    where = f"wrote {report.output}" if report.output else "manifest on stdout"
    run.out.note(
        f"{where}: {len(report.files)} files, {size_text(report.bytes_hashed)} hashed"
        f" in {report.seconds:.2f} s{_rate(report)}"
    )
