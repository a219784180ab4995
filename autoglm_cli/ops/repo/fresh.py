"""A fresh clone: one branch, into a temporary sibling, renamed into place only when complete.

`plan_clone` asks the remote what it has (`git ls-remote`), so a wrong branch is
an error that lists the remote's branches before anything is downloaded.
`clone_fresh` clones with `--single-branch` through gitpython, git's progress
lines driving the progress bar, into `.DIR.autoglm-clone-XXXX` next to DIR; a
failed or interrupted clone removes that sibling and leaves DIR as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...atomic import fsync_directory
from ...errors import BranchNotFoundError, DirectoryNotEmptyError, EnvironmentFailure
from ...progress import NULL_PROGRESS, Progress
from ...retry import RetryPolicy
from . import checkout as co
from .conventions import DEFAULT_CONVENTIONS, branch_warnings
from .gitcmd import GitFailure, RemoteRefs, ls_remote, remote_error, with_retry
from .report import CloneReport, RowStatus, UrlChange
from .urls import Rewrite, apply_moves, display

_LISTED_BRANCHES = 20


@dataclass(frozen=True)
class ClonePlan:
    requested_url: str  # raw, as given
    url: str  # raw, after `moves`
    rewrite: Rewrite | None
    directory: Path
    branch: str
    depth: int | None
    refs: RemoteRefs

    @property
    def commit(self) -> str | None:
        return self.refs.branches.get(self.branch) or self.refs.tags.get(self.branch)


def plan_clone(
    url: str,
    directory: Path,
    *,
    branch: str | None,
    depth: int | None,
    moves: Mapping[str, str],
    retry: RetryPolicy,
) -> ClonePlan:
    """Check the target and the remote; decide the branch. Reads only."""
    rewrite = apply_moves(url, moves)
    effective = rewrite.new if rewrite else url
    check_target(directory)
    refs = ls_remote(effective, retry=retry, display_url=display(effective))
    if refs.is_empty:
        raise BranchNotFoundError(
            f"{display(effective)} is an empty repository: there is no branch to clone",
            remedy="Push a branch to it first, or clone another URL.",
        )
    if branch is None:
        chosen = refs.head_branch or _fallback_branch(refs)
    elif branch in refs.branches or branch in refs.tags:
        chosen = branch
    else:
        raise BranchNotFoundError(
            f"branch `{branch}` not found at {display(effective)}; {_branch_list(refs)}"
        )
    return ClonePlan(url, effective, rewrite, directory, chosen, depth, refs)


def check_target(directory: Path) -> None:
    """DIR may be missing or an empty directory; anything else is refused."""
    if directory.is_dir():
        if any(directory.iterdir()):
            raise DirectoryNotEmptyError(f"{directory} is not empty and is not a git checkout")
    elif directory.exists():
        raise DirectoryNotEmptyError(f"{directory} exists and is not a directory")


def clone_fresh(
    plan: ClonePlan,
    *,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
    moves: Mapping[str, str] | None = None,
    retry: RetryPolicy,
    progress: Progress = NULL_PROGRESS,
) -> CloneReport:
    """Clone `plan.url` into `plan.directory` (all or nothing)."""
    from .git_transfer import GitProgress, clone_with_progress

    target = plan.directory
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.autoglm-clone-{secrets.token_hex(4)}"
    options: dict[str, object] = {"branch": plan.branch, "single_branch": True}
    if plan.depth:
        options["depth"] = plan.depth

    def attempt() -> None:
        shutil.rmtree(staging, ignore_errors=True)  # what a failed attempt left
        clone_with_progress(
            plan.url, staging, GitProgress(progress, f"cloning {display(plan.url)}"), **options
        )

    try:
        try:
            with_retry(attempt, retry=retry)
        except GitFailure as failure:
            raise remote_error(failure, display(plan.url), tries=retry.tries, doing="cloning") from None
        check_target(target)  # still free? (someone may have written there meanwhile)
        try:
            os.rename(staging, target)  # atomic; replaces an empty directory
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot move the finished clone into {target}: {exc.strerror}"
            ) from None
        fsync_directory(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _report(plan, target, conventions, moves or {}, dry_run=False)


def dry_run_report(plan: ClonePlan) -> CloneReport:
    row = _origin_row(plan, "cloned")
    return CloneReport(
        action="clone",
        directory=str(plan.directory.resolve()),
        dry_run=True,
        changes=(row,),
        branch=plan.branch,
        commit=plan.commit,
        upstream=f"origin/{plan.branch}" if plan.branch in plan.refs.branches else None,
        ahead=None,
        behind=None,
        fetched=(),
        warnings=(),
    )


def _report(
    plan: ClonePlan, target: Path, conventions: Sequence[str], moves: Mapping[str, str], *, dry_run: bool
) -> CloneReport:
    rows = [_origin_row(plan, "cloned")]
    warnings = list(branch_warnings(co.local_branches(target), conventions))
    for sub in co.submodules(target):
        rewrite = apply_moves(sub.gitmodules_url, moves) if sub.gitmodules_url else None
        if rewrite is not None:
            rows.append(
                UrlChange(
                    "submodule",
                    sub.path,
                    display(rewrite.old),
                    display(rewrite.new),
                    "stale",
                    "a `moves` entry applies; not rewritten in a fresh clone",
                    rule=rewrite.rule,
                )
            )
            warnings.append(
                f"submodule {sub.path} still points to {display(rewrite.old)}; "
                f"run `autoglm clone --repoint {target}` before `git submodule update --init`"
            )
    up = co.upstream(target)
    return CloneReport(
        action="clone",
        directory=str(target.resolve()),
        dry_run=dry_run,
        changes=tuple(rows),
        branch=co.current_branch(target),
        commit=co.head_commit(target),
        upstream=up.short if up else None,
        ahead=0 if up else None,
        behind=0 if up else None,
        fetched=("origin",),
        warnings=tuple(warnings),
    )


def _origin_row(plan: ClonePlan, status: RowStatus) -> UrlChange:
    return UrlChange(
        "remote",
        "origin",
        display(plan.requested_url),
        display(plan.url),
        status,
        f"branch {plan.branch} at {(plan.commit or '')[:10]}",
        rule=plan.rewrite.rule if plan.rewrite else None,
    )


def _fallback_branch(refs: RemoteRefs) -> str:
    for name in ("main", "master"):
        if name in refs.branches:
            return name
    return sorted(refs.branches)[0] if refs.branches else sorted(refs.tags)[0]


def _branch_list(refs: RemoteRefs) -> str:
    names = sorted(refs.branches)
    if not names:
        return "the remote has no branches"
    shown = ", ".join(names[:_LISTED_BRANCHES])
    more = f" and {len(names) - _LISTED_BRANCHES} more" if len(names) > _LISTED_BRANCHES else ""
    default = f" (default: {refs.head_branch})" if refs.head_branch else ""
    return f"the remote has: {shown}{more}{default}"
