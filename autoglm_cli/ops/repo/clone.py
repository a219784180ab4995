"""`autoglm clone` as one library call: a fresh clone, or a re-point of an existing checkout.

    clone(CloneRequest(url="https://github.com/THUDM/GLM-4", directory=Path("GLM-4")), ...)

- `repoint=False` and DIR missing or empty: a fresh clone (`fresh.py`), with the
  `moves` map applied to the URL first.
- `repoint=False` and DIR already a checkout: re-point it to the URL (after
  `moves`), as if `--to URL` had been given.
- `repoint=True`: re-point DIR (default: the checkout around the working
  directory) through `moves`, or to `to` for the remote named `remote`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...progress import NULL_PROGRESS, Progress
from ...retry import DEFAULT_RETRY, RetryPolicy
from . import checkout as co
from .conventions import DEFAULT_CONVENTIONS
from .fresh import clone_fresh, dry_run_report, plan_clone
from .repoint import apply_repoint, plan_repoint
from .report import CloneReport
from .urls import apply_moves, repository_name


@dataclass(frozen=True)
class CloneRequest:
    url: str | None = None
    directory: Path | None = None
    branch: str | None = None
    depth: int | None = None
    repoint: bool = False
    to: str | None = None
    remote: str = "origin"
    dry_run: bool = False


def clone(
    request: CloneRequest,
    *,
    moves: Mapping[str, str] | None = None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
    retry: RetryPolicy = DEFAULT_RETRY,
    progress: Progress = NULL_PROGRESS,
) -> CloneReport:
    moves = dict(moves or {})
    if request.repoint or request.to is not None:
        directory = request.directory or Path.cwd()
        return _repoint(request, directory, request.to, moves, conventions, retry, progress, search=True)
    if not request.url:
        raise UsageError("give a URL to clone, or --repoint [DIR] to re-point an existing checkout")
    directory = request.directory or Path(repository_name(_moved(request.url, moves)))
    if co.is_checkout(directory):
        # An existing checkout of (we expect) this project: point its remote at the URL.
        return _repoint(request, directory, _moved(request.url, moves), moves, conventions, retry, progress)
    plan = plan_clone(
        request.url, directory, branch=request.branch, depth=request.depth, moves=moves, retry=retry
    )
    if request.dry_run:
        return dry_run_report(plan)
    return clone_fresh(plan, conventions=conventions, moves=moves, retry=retry, progress=progress)


def _repoint(
    request: CloneRequest,
    directory: Path,
    to: str | None,
    moves: dict[str, str],
    conventions: Sequence[str],
    retry: RetryPolicy,
    progress: Progress,
    *,
    search: bool = False,
) -> CloneReport:
    plan = plan_repoint(
        directory,
        moves=moves,
        to=to,
        remote=request.remote,
        branch=request.branch,
        depth=request.depth,
        search_parents=search and request.directory is None,
        conventions=conventions,
        retry=retry,
        progress=progress,
    )
    if request.dry_run:
        return plan.report
    return apply_repoint(plan, retry=retry, progress=progress)


def _moved(url: str, moves: Mapping[str, str]) -> str:
    rewrite = apply_moves(url, moves)
    return rewrite.new if rewrite else url
