"""Re-point an existing checkout after its repository moved: plan (read-only), then apply.

`plan_repoint` reads the checkout, rewrites every remote and submodule URL through
the `moves` map (or `--to`), and proves each URL it would keep or set against the
checkout's history (`proof.py`) before anything is written. The plan holds the
exact config writes; `apply_repoint` performs them and fetches.

What is written: `remote.*.url` / `remote.*.pushurl`, `submodule.*.url` in
`.gitmodules` and in `.git/config`, and the URLs of checked-out submodules' own
remotes (what `git submodule sync` would do). Nothing else: local branches, the
index, uncommitted edits, untracked files and stashes are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import AutoglmError, DirtyWorkTreeError, UnrelatedHistoryError, UsageError
from ...progress import NULL_PROGRESS, Progress
from ...retry import RetryPolicy
from . import checkout as co
from .conventions import DEFAULT_CONVENTIONS, branch_warnings
from .gitcmd import GitFailure, remote_error, run_git, with_retry
from .proof import Proof, prove_history
from .report import CloneReport, RowKind, RowStatus, UrlChange
from .urls import GitUrl, Rewrite, apply_moves, carry_credentials, display, same_repository


@dataclass(frozen=True)
class ConfigWrite:
    """One git config write. Holds raw URLs (tokens included): never rendered."""

    repo: Path
    key: str
    values: tuple[str, ...]
    file: str | None = None  # None: the repository's own config; else a file in the work tree


@dataclass(frozen=True)
class Fetch:
    repo: Path
    remote: str
    label: str  # how the report names it: "origin", "libs/lib (origin)"


@dataclass(frozen=True)
class RepointPlan:
    checkout: Path
    report: CloneReport  # what applying would do (dry_run=True): safe to render
    writes: tuple[ConfigWrite, ...] = field(repr=False)
    fetches: tuple[Fetch, ...] = ()

    @property
    def refused(self) -> tuple[UrlChange, ...]:
        return tuple(c for c in self.report.changes if c.status == "unrelated")


class _Prover:
    """Proves URLs once each (a push URL equal to the fetch URL is not probed twice)."""

    def __init__(self, retry: RetryPolicy, progress: Progress, total: int) -> None:
        self._retry = retry
        self._progress = progress
        self._cache: dict[tuple[str, str | None], Proof] = {}
        self._task = progress.task("checking remotes", total=total or None, transient=True)

    def prove(self, url: str, *, commit: str | None, local_repo: Path | None) -> Proof:
        key = (GitUrl.parse(url).bare.rstrip("/").removesuffix(".git"), commit)
        if key not in self._cache:
            self._cache[key] = prove_history(
                url,
                display_url=display(url),
                commit=commit,
                local_repo=local_repo,
                retry=self._retry,
                progress=self._progress,
            )
            self._task.advance()
        return self._cache[key]

    def done(self) -> None:
        self._task.finish()


def plan_repoint(
    directory: Path,
    *,
    moves: Mapping[str, str],
    to: str | None = None,
    remote: str = "origin",
    branch: str | None = None,
    depth: int | None = None,
    search_parents: bool = False,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
    retry: RetryPolicy,
    progress: Progress = NULL_PROGRESS,
) -> RepointPlan:
    """What re-pointing `directory` would change, each URL proven; writes nothing."""
    top = co.toplevel(directory, search_parents=search_parents)
    remotes = co.remotes(top)
    names = [r.name for r in remotes]
    if to is not None and remote not in names:
        known = ", ".join(names) or "none"
        raise UsageError(
            f"the checkout at {top} has no remote named `{remote}` (its remotes: {known})",
            remedy=f"Pass --remote NAME, or add it first: git -C {top} remote add {remote} URL",
        )
    submodules = co.submodules(top)
    warnings: list[str] = []

    # 1. Rewrites: pure string work, before any network.
    remote_plans = [_plan_remote(r, moves, to if r.name == remote else None) for r in remotes]
    sub_plans = [_plan_submodule(s, moves) for s in submodules]
    for rw in [*_all_rewrites(remote_plans), *_all_rewrites(sub_plans)]:
        if rw.credentials_dropped:
            warnings.append(
                f"the credentials in {display(rw.old)} were not carried to another host ({display(rw.new)}); "
                "configure them for the new host"
            )
    gitmodules_edits = [p for p in sub_plans if p.gitmodules_rewrite is not None]
    if gitmodules_edits and co.has_changes(top, ".gitmodules"):
        paths = ", ".join(p.sub.path for p in gitmodules_edits)
        raise DirtyWorkTreeError(
            f"{top / '.gitmodules'} has uncommitted changes, and the submodule URL(s) of {paths} must be "
            "rewritten in it"
        )

    # 2. Proofs: every URL we would keep or set, against the checkout's own history.
    probes = sum(len(p.remote.urls) + len(p.remote.pushurls) for p in remote_plans)
    probes += sum(1 for p in sub_plans if p.changes)
    prover = _Prover(retry, progress, probes)
    rows: list[UrlChange] = []
    writes: list[ConfigWrite] = []
    fetches: list[Fetch] = []
    try:
        for rp in remote_plans:
            remote_rows = _prove_remote(top, rp, prover, warnings)
            rows += remote_rows
            writes += rp.writes(top)
            if not any(r.failed for r in remote_rows) and rp.remote.urls:
                fetches.append(Fetch(top, rp.remote.name, rp.remote.name))
        for sp in sub_plans:
            row = _prove_submodule(sp, prover, warnings)
            rows.append(row)
            if sp.changes and not row.failed:
                writes += sp.writes(top)
                fetches += [
                    Fetch(sp.sub.checkout, name, f"{sp.sub.path} ({name})") for name in sp.remote_names()
                ]
    finally:
        prover.done()

    # 3. The checkout's state, and what the command line asked that does not apply here.
    current = co.current_branch(top)
    if branch is not None and branch != current:
        warnings.append(
            f"the checkout is on {current or 'a detached HEAD'}, not `{branch}`: "
            f"an existing checkout keeps its branch (switch with `git switch {branch}`)"
        )
    if depth is not None:
        warnings.append("--depth applies to fresh clones only; the existing checkout keeps its history")
    warnings += branch_warnings(co.local_branches(top), conventions)
    if not remotes:
        warnings.append("the checkout has no remotes: nothing to re-point")

    report = _report(top, rows, warnings, dry_run=True, fetched=())
    return RepointPlan(top, report, tuple(writes), tuple(fetches))


def apply_repoint(
    plan: RepointPlan, *, retry: RetryPolicy, progress: Progress = NULL_PROGRESS
) -> CloneReport:
    """Perform a plan: refuse if any new URL is unrelated, write the URLs, fetch."""
    if plan.refused:
        lines = "; ".join(f"{c.kind} {c.name}: {c.new} ({c.proof})" for c in plan.refused)
        raise UnrelatedHistoryError(
            f"refusing to re-point {plan.checkout}: the new URL holds another project's history: {lines}. "
            "Nothing was changed.",
            remedy="Check the `moves` entry or --to URL: it must name the same project at its new location.",
        )
    for write in plan.writes:
        _write(write)
    fetched: list[str] = []
    if plan.fetches:
        from .git_transfer import GitProgress, run_with_progress
    for fetch in plan.fetches:
        args = ["fetch", "--no-recurse-submodules", "--", fetch.remote]
        watcher = GitProgress(progress, f"fetching {fetch.label}")
        try:
            with_retry(lambda a=args, w=watcher, f=fetch: run_with_progress(a, f.repo, w), retry=retry)
        except GitFailure as failure:
            err = remote_error(failure, fetch.label, tries=retry.tries, doing="fetching")
            raise type(err)(
                f"{err.message} (the URLs were already re-pointed; run `git fetch` later)", remedy=err.remedy
            ) from None
        fetched.append(fetch.label)
    return _report(
        plan.checkout, list(plan.report.changes), list(plan.report.warnings), False, tuple(fetched)
    )


# --- per remote --------------------------------------------------------------


@dataclass
class _RemotePlan:
    remote: co.RemoteConfig
    url_rewrites: list[Rewrite | None]
    push_rewrites: list[Rewrite | None]

    @property
    def rewrites(self) -> list[Rewrite]:
        return [r for r in [*self.url_rewrites, *self.push_rewrites] if r is not None]

    def writes(self, top: Path) -> list[ConfigWrite]:
        out = []
        name = self.remote.name
        for key, olds, rewrites in (
            (f"remote.{name}.url", self.remote.urls, self.url_rewrites),
            (f"remote.{name}.pushurl", self.remote.pushurls, self.push_rewrites),
        ):
            if any(rewrites):
                values = tuple(rw.new if rw else old for old, rw in zip(olds, rewrites, strict=True))
                out.append(ConfigWrite(top, key, values))
        return out


def _plan_remote(remote: co.RemoteConfig, moves: Mapping[str, str], to: str | None) -> _RemotePlan:
    urls: list[Rewrite | None] = []
    for index, url in enumerate(remote.urls):
        if to is not None and index == 0:
            urls.append(None if same_repository(url, to) else carry_credentials(url, to, rule="--to"))
        else:
            urls.append(_moved(url, moves))
    pushes: list[Rewrite | None] = []
    for url in remote.pushurls:
        rewrite = _moved(url, moves)
        if rewrite is None and urls and urls[0] is not None and same_repository(url, remote.urls[0]):
            # The push URL named the old fetch URL: it follows it to the new one.
            rewrite = carry_credentials(url, GitUrl.parse(urls[0].new).bare, rule=urls[0].rule)
        pushes.append(rewrite)
    return _RemotePlan(remote, urls, pushes)


def _moved(url: str, moves: Mapping[str, str]) -> Rewrite | None:
    rewrite = apply_moves(url, moves)
    if rewrite is None or same_repository(rewrite.new, url):
        return None
    return rewrite


def _prove_remote(top: Path, plan: _RemotePlan, prover: _Prover, warnings: list[str]) -> list[UrlChange]:
    remote = plan.remote
    commit = co.evidence_commit(top, remote.name)
    rows: list[UrlChange] = []
    for kind, olds, rewrites in (
        ("remote", remote.urls, plan.url_rewrites),
        ("pushurl", remote.pushurls, plan.push_rewrites),
    ):
        for old, rewrite in zip(olds, rewrites, strict=True):
            target = rewrite.new if rewrite else old
            if (
                kind == "pushurl"
                and rewrite is None
                and not any(same_repository(old, u) for u in remote.urls)
            ):
                rows.append(_best_effort_push_row(remote.name, old, commit, top, prover, warnings))
                continue
            proof = prover.prove(target, commit=commit, local_repo=top)
            rows.append(_row(kind, remote.name, old, target, rewrite, proof, warnings))
    return rows


def _best_effort_push_row(
    name: str, url: str, commit: str | None, top: Path, prover: _Prover, warnings: list[str]
) -> UrlChange:
    """A push-only URL we keep: checked when it answers, never a reason to stop."""
    try:
        proof = prover.prove(url, commit=commit, local_repo=top)
    except AutoglmError as err:
        warnings.append(f"push URL of {name} could not be checked: {err.message}")
        return UrlChange("pushurl", name, display(url), display(url), "unchecked", "not reachable from here")
    return _row("pushurl", name, url, url, None, proof, warnings)


def _row(
    kind: RowKind, name: str, old: str, new: str, rewrite: Rewrite | None, proof: Proof, warnings: list[str]
) -> UrlChange:
    status: RowStatus
    if rewrite is not None:
        status = "repointed" if proof.ok else "unrelated"
    else:
        status = "unchanged" if proof.ok else "hijacked"
    if proof.verdict == "shared-history":
        warnings.append(
            f"{kind} {name}: {display(new)} {proof.describe()}; its history was rewritten, or your "
            "upstream has commits it lacks"
        )
    if status == "hijacked":
        warnings.append(
            f"{kind} {name}: {display(old)} answers, but with another project's history "
            "(the old name was taken over?): it was not fetched"
        )
    rule = rewrite.rule if rewrite else None
    return UrlChange(kind, name, display(old), display(new), status, proof.describe(), proof.verdict, rule)


# --- per submodule -----------------------------------------------------------


@dataclass
class _SubmodulePlan:
    sub: co.SubmoduleConfig
    gitmodules_rewrite: Rewrite | None
    config_rewrite: Rewrite | None
    remote_rewrites: list[tuple[str, co.RemoteConfig, list[Rewrite | None]]]

    @property
    def rewrites(self) -> list[Rewrite]:
        found = [r for r in (self.gitmodules_rewrite, self.config_rewrite) if r is not None]
        for _, _, rws in self.remote_rewrites:
            found += [r for r in rws if r is not None]
        return found

    @property
    def changes(self) -> bool:
        return bool(self.rewrites)

    def target(self) -> tuple[str, Rewrite] | None:
        """The URL to prove: what `git submodule update` would fetch from after the change."""
        for rw in (self.config_rewrite, self.gitmodules_rewrite, *self.rewrites):
            if rw is not None:
                return rw.new, rw
        return None

    def remote_names(self) -> list[str]:
        return [name for name, _, rws in self.remote_rewrites if any(rws)]

    def writes(self, top: Path) -> list[ConfigWrite]:
        out = []
        key = f"submodule.{self.sub.name}.url"
        if self.gitmodules_rewrite is not None:
            out.append(ConfigWrite(top, key, (self.gitmodules_rewrite.new,), file=".gitmodules"))
        if self.config_rewrite is not None:
            out.append(ConfigWrite(top, key, (self.config_rewrite.new,)))
        for name, remote, rws in self.remote_rewrites:
            if any(rws) and self.sub.checkout is not None:
                values = tuple(rw.new if rw else old for old, rw in zip(remote.urls, rws, strict=True))
                out.append(ConfigWrite(self.sub.checkout, f"remote.{name}.url", values))
        return out


def _plan_submodule(sub: co.SubmoduleConfig, moves: Mapping[str, str]) -> _SubmodulePlan:
    gitmodules = None
    if sub.gitmodules_url and not sub.gitmodules_url.startswith(("./", "../")):
        gitmodules = _moved(sub.gitmodules_url, moves)  # relative URLs follow the superproject
    config = _moved(sub.config_url, moves) if sub.config_url else None
    remotes = []
    if sub.checkout is not None:
        for remote in co.remotes(sub.checkout):
            remotes.append((remote.name, remote, [_moved(u, moves) for u in remote.urls]))
    return _SubmodulePlan(sub, gitmodules, config, remotes)


def _prove_submodule(plan: _SubmodulePlan, prover: _Prover, warnings: list[str]) -> UrlChange:
    sub = plan.sub
    old = sub.config_url or sub.gitmodules_url or ""
    target = plan.target()
    if target is None:
        return UrlChange(
            "submodule", sub.path, display(old), display(old), "unchanged", "no `moves` entry applies"
        )
    new, rewrite = target
    commit = sub.recorded_commit
    if commit is None and sub.checkout is not None:
        commit = co.head_commit(sub.checkout)
    proof = prover.prove(new, commit=commit, local_repo=sub.checkout)
    shown_old = rewrite.old
    return _row("submodule", sub.path, shown_old, new, rewrite, proof, warnings)


def _all_rewrites(plans: Sequence[_RemotePlan | _SubmodulePlan]) -> list[Rewrite]:
    return [rw for plan in plans for rw in plan.rewrites]


# --- writing and reporting ----------------------------------------------------


def _write(write: ConfigWrite) -> None:
    """Set a (possibly multi-valued) key; git writes config files atomically (lock + rename)."""
    target = ["-f", write.file] if write.file else []
    first, *rest = write.values
    run_git(["config", *target, "--replace-all", write.key, first], write.repo)
    for value in rest:
        run_git(["config", *target, "--add", write.key, value], write.repo)


def _report(
    top: Path, rows: list[UrlChange], warnings: list[str], dry_run: bool, fetched: tuple[str, ...]
) -> CloneReport:
    up = co.upstream(top)
    counts = co.ahead_behind(top) if up else None
    return CloneReport(
        action="repoint",
        directory=str(top),
        dry_run=dry_run,
        changes=tuple(rows),
        branch=co.current_branch(top),
        commit=co.head_commit(top),
        upstream=up.short if up else None,
        ahead=counts[0] if counts else None,
        behind=counts[1] if counts else None,
        fetched=fetched,
        warnings=tuple(dict.fromkeys(warnings)),  # once each, in order
    )
