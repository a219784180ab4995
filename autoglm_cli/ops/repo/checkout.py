"""Reading a checkout's state with git itself: remotes, submodules, branch, upstream.

Nothing here writes; `repoint.py` does the writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from .gitcmd import GitFailure, run_git


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    urls: tuple[str, ...]  # remote.NAME.url values (usually one)
    pushurls: tuple[str, ...]  # remote.NAME.pushurl values (often none)


@dataclass(frozen=True)
class SubmoduleConfig:
    name: str
    path: str
    gitmodules_url: str | None  # as written in .gitmodules (may be relative: ../lib.git)
    config_url: str | None  # submodule.NAME.url in .git/config (set by `git submodule init`)
    recorded_commit: str | None  # the gitlink the superproject's index records
    checkout: Path | None  # the submodule's work tree, when it is checked out


@dataclass(frozen=True)
class Upstream:
    remote: str
    ref: str  # e.g. refs/remotes/origin/main
    short: str  # e.g. origin/main
    commit: str


def is_checkout(path: Path) -> bool:
    """Whether `path` is the top of a git work tree (a `.git` dir or file inside)."""
    return (path / ".git").exists()


def toplevel(path: Path, *, search_parents: bool) -> Path:
    """The work tree `path` belongs to; a usage error when it is not in one."""
    if not path.exists():
        raise UsageError(f"{path} does not exist", remedy="Pass the directory of an existing checkout.")
    if not search_parents and not is_checkout(path):
        raise UsageError(f"{path} is not a git checkout", remedy="Pass the top directory of a checkout.")
    try:
        top = run_git(["rev-parse", "--show-toplevel"], path).strip()
    except GitFailure:
        raise UsageError(
            f"{path} is not inside a git checkout", remedy="Pass a checkout's directory."
        ) from None
    return Path(top)


def git_common_dir(checkout: Path) -> Path:
    return Path(run_git(["rev-parse", "--path-format=absolute", "--git-common-dir"], checkout).strip())


def is_shallow(checkout: Path) -> bool:
    return run_git(["rev-parse", "--is-shallow-repository"], checkout).strip() == "true"


def remotes(checkout: Path) -> list[RemoteConfig]:
    names = run_git(["remote"], checkout).split()
    found = []
    for name in names:
        urls = _config_all(checkout, f"remote.{name}.url")
        pushurls = _config_all(checkout, f"remote.{name}.pushurl")
        found.append(RemoteConfig(name, tuple(urls), tuple(pushurls)))
    return found


def submodules(checkout: Path) -> list[SubmoduleConfig]:
    gitmodules = checkout / ".gitmodules"
    if not gitmodules.is_file():
        return []
    entries: dict[str, dict[str, str]] = {}
    out = run_git(
        ["config", "-f", ".gitmodules", "-z", "--get-regexp", r"^submodule\..*\.(path|url)$"], checkout
    )
    for record in filter(None, out.split("\0")):
        key, _, value = record.partition("\n")
        name, _, attr = key[len("submodule.") :].rpartition(".")
        entries.setdefault(name, {})[attr] = value
    found = []
    for name, attrs in entries.items():
        path = attrs.get("path")
        if not path:
            continue
        work_tree = checkout / path
        found.append(
            SubmoduleConfig(
                name=name,
                path=path,
                gitmodules_url=attrs.get("url"),
                config_url=_config_one(checkout, f"submodule.{name}.url"),
                recorded_commit=_gitlink(checkout, path),
                checkout=work_tree if is_checkout(work_tree) else None,
            )
        )
    return found


def current_branch(checkout: Path) -> str | None:
    out = run_git(["symbolic-ref", "-q", "--short", "HEAD"], checkout, check=False).strip()
    return out or None


def head_commit(checkout: Path) -> str | None:
    out = run_git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], checkout, check=False).strip()
    return out or None


def upstream(checkout: Path) -> Upstream | None:
    """The current branch's upstream, when it has one that exists locally."""
    branch = current_branch(checkout)
    if branch is None:
        return None
    remote = _config_one(checkout, f"branch.{branch}.remote")
    ref = run_git(["rev-parse", "-q", "--symbolic-full-name", "@{upstream}"], checkout, check=False).strip()
    if not remote or not ref:
        return None
    commit = run_git(["rev-parse", "-q", "--verify", f"{ref}^{{commit}}"], checkout, check=False).strip()
    if not commit:
        return None
    short = ref.removeprefix("refs/remotes/")
    return Upstream(remote, ref, short, commit)


def ahead_behind(checkout: Path) -> tuple[int, int] | None:
    """(commits only on HEAD, commits only on its upstream), or None without an upstream."""
    out = run_git(
        ["rev-list", "--left-right", "--count", "HEAD...@{upstream}"], checkout, check=False
    ).split()
    if len(out) != 2:
        return None
    return int(out[0]), int(out[1])


def tracking_tip(checkout: Path, remote: str) -> str | None:
    """The newest commit among `refs/remotes/REMOTE/*`: what we last saw of that remote."""
    out = run_git(
        [
            "for-each-ref",
            "--sort=-committerdate",
            "--count=1",
            "--format=%(objectname)",
            f"refs/remotes/{remote}/",
        ],
        checkout,
    ).strip()
    if not out:
        return None
    return run_git(["rev-parse", f"{out}^{{commit}}"], checkout, check=False).strip() or None


def evidence_commit(checkout: Path, remote: str) -> str | None:
    """The commit a remote named `remote` must hold: the upstream's, else what we last fetched, else HEAD."""
    up = upstream(checkout)
    if up is not None and up.remote == remote:
        return up.commit
    return tracking_tip(checkout, remote) or head_commit(checkout)


def local_branches(checkout: Path) -> list[str]:
    out = run_git(["for-each-ref", "--format=%(refname:short)", "refs/heads/"], checkout)
    return [line for line in out.splitlines() if line]


def has_changes(checkout: Path, path: str) -> bool:
    """Whether `path` differs from HEAD, staged or not."""
    return bool(run_git(["status", "--porcelain", "--", path], checkout).strip())


def _config_all(checkout: Path, key: str) -> list[str]:
    out = run_git(["config", "-z", "--get-all", key], checkout, check=False)
    return [v for v in out.split("\0") if v]


def _config_one(checkout: Path, key: str) -> str | None:
    values = _config_all(checkout, key)
    return values[-1] if values else None


def _gitlink(checkout: Path, path: str) -> str | None:
    out = run_git(["ls-files", "--stage", "-z", "--", path], checkout).split("\0")[0]
    mode, _, rest = out.partition(" ")
    if mode != "160000":
        return None
    return rest.split(" ", 1)[0]
