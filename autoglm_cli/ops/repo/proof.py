"""Prove that a remote holds the history a checkout expects, without fetching into it.

The proof, cheapest first:

1. `git ls-remote`: the checkout's commit is the tip of one of the remote's refs.
2. Otherwise fetch the remote's branches and tags into a *quarantine*: a throwaway
   bare repository that borrows the checkout's objects through
   `objects/info/alternates`. Only the objects the checkout lacks travel, and none
   of them ever lands in the checkout, so an unrelated (or hostile) history is
   looked at and thrown away. Then ask git:
   - `for-each-ref --contains COMMIT`: the remote *contains* the commit;
   - `merge-base COMMIT TIP`: the remote *shares history* with it (it was
     rewritten, or the checkout's upstream is ahead of it);
   - neither: the history is *unrelated*.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...progress import NULL_PROGRESS, Progress
from ...retry import RetryPolicy
from .checkout import git_common_dir, is_shallow
from .gitcmd import (
    GitFailure,
    RemoteRefs,
    git_ok,
    ls_remote,
    remote_error,
    run_git,
    with_retry,
)

Verdict = Literal["contains", "shared-history", "unrelated"]

_PROBE_NS = "refs/autoglm-probe/"


@dataclass(frozen=True)
class Proof:
    verdict: Verdict
    commit: str | None  # the checkout's commit the remote was asked about
    remote_ref: str | None = None  # where the remote holds it (or shares history with it)
    merge_base: str | None = None  # for shared-history: the newest common commit
    fetched: bool = False  # whether a quarantine fetch was needed
    detail: str = ""  # why, when unrelated

    @property
    def ok(self) -> bool:
        return self.verdict != "unrelated"

    def describe(self) -> str:
        short = (self.commit or "")[:10]
        ref = _short_ref(self.remote_ref)
        if self.verdict == "contains":
            where = f"tip of {ref}" if not self.fetched else f"in the history of {ref}"
            return f"holds {short} ({where})"
        if self.verdict == "shared-history":
            base = (self.merge_base or "")[:10]
            return f"shares history up to {base} with {ref}, but lacks {short}"
        return self.detail or f"unrelated history: nothing in common with {short}"


def prove_history(
    url: str,
    *,
    display_url: str,
    commit: str | None,
    local_repo: Path | None,
    retry: RetryPolicy,
    progress: Progress = NULL_PROGRESS,
) -> Proof:
    """How the repository at `url` relates to `commit` (an object of `local_repo`).

    `local_repo` may be None (a submodule never checked out): then only
    containment can be proven, after fetching everything into the quarantine.
    Raises the domain error (network, not found, access) when the remote cannot
    be read after retries.
    """
    refs = ls_remote(url, retry=retry, display_url=display_url)
    if refs.is_empty:
        return Proof("unrelated", commit, detail="the remote is empty: it has no branches or tags")
    if commit is None:
        return Proof("unrelated", None, detail="the checkout has no commit to compare with the remote")
    advertised = refs.ref_of(commit)
    if advertised:
        return Proof("contains", commit, remote_ref=advertised)

    quarantine = Path(tempfile.mkdtemp(prefix="autoglm-probe-"))
    try:
        _make_quarantine(quarantine, local_repo)
        from .git_transfer import GitProgress, run_with_progress

        task_progress = GitProgress(progress, f"probing {display_url}")
        fetch = [
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            url,
            f"+refs/heads/*:{_PROBE_NS}heads/*",
            f"+refs/tags/*:{_PROBE_NS}tags/*",
        ]
        try:
            with_retry(lambda: run_with_progress(fetch, quarantine, task_progress), retry=retry)
        except GitFailure as failure:
            raise remote_error(failure, display_url, tries=retry.tries, doing="probing its history") from None
        return _judge(quarantine, commit, refs)
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)


def _make_quarantine(path: Path, local_repo: Path | None) -> None:
    run_git(["init", "--quiet", "--bare", str(path)])
    if local_repo is None:
        return
    common = git_common_dir(local_repo)
    (path / "objects" / "info" / "alternates").write_text(f"{common / 'objects'}\n")
    if is_shallow(local_repo):
        # A shallow checkout's history stops at these commits; the quarantine must know.
        shutil.copyfile(common / "shallow", path / "shallow")


def _judge(quarantine: Path, commit: str, refs: RemoteRefs) -> Proof:
    if not git_ok(["cat-file", "-e", f"{commit}^{{commit}}"], quarantine):
        # Only possible without a local repository: the remote never had the commit.
        return Proof(
            "unrelated", commit, fetched=True, detail=f"the remote does not hold commit {commit[:10]}"
        )
    holding = run_git(["for-each-ref", "--contains", commit, "--format=%(refname)", _PROBE_NS], quarantine)
    if holding.strip():
        named = refs.preferred([_remote_name(r) for r in holding.split()])
        return Proof("contains", commit, remote_ref=named, fetched=True)
    tips = run_git(["for-each-ref", "--format=%(objectname) %(refname)", _PROBE_NS], quarantine)
    seen: set[str] = set()
    for line in tips.splitlines():
        sha, _, ref = line.partition(" ")
        if sha in seen:
            continue
        seen.add(sha)
        base = run_git(["merge-base", commit, sha], quarantine, check=False).strip()
        if base:
            return Proof(
                "shared-history", commit, remote_ref=_remote_name(ref), merge_base=base, fetched=True
            )
    return Proof(
        "unrelated",
        commit,
        fetched=True,
        detail=f"unrelated history: none of the remote's {len(seen)} ref tip(s) "
        f"shares a commit with {commit[:10]}",
    )


def _remote_name(probe_ref: str) -> str:
    """refs/autoglm-probe/heads/main -> refs/heads/main."""
    return "refs/" + probe_ref.removeprefix(_PROBE_NS)


def _short_ref(ref: str | None) -> str:
    if not ref:
        return "the remote"
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
