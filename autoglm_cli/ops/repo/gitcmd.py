"""Running git: one environment, failures classified, progress fed to a `Progress`.

Plumbing calls go through `run_git` (plain subprocess, exact arguments); the
long-running transfers (clone, fetch) are in `git_transfer.py`, the one module that
imports gitpython (~40 ms), so plans, dry runs and failures before a transfer skip it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from ...errors import AutoglmError, EnvironmentFailure, NetworkError, RemoteNotFoundError
from ...redact import redact
from ...retry import RetryPolicy, call_with_retry

T = TypeVar("T")

# Never prompt (a CLI in CI would hang), and English messages so failures can be classified.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C", "LANGUAGE": "C"}

FailureKind = Literal["unreachable", "not-found", "auth", "other"]

# Substrings of git's messages (lower-cased), most specific first.
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "returned error: 401",
    "returned error: 403",
    "permission denied (publickey",
    "access denied",
)
_NOT_FOUND = (
    "repository not found",
    "' not found",
    "does not appear to be a git repository",
    "returned error: 404",
    "no such repository",
)
_UNREACHABLE = (
    "could not resolve host",
    "failed to connect",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "timed out",
    "network is unreachable",
    "no route to host",
    "temporary failure in name resolution",
    "connection reset",
    "early eof",
    "the remote end hung up",
    "unexpected disconnect",
    "rpc failed",
    "returned error: 5",
    "returned error: 429",
    "ssl",
    "gnutls",
    "http/2 stream",
    "transfer closed",
    "empty reply from server",
)


class GitFailure(Exception):
    """A git command that failed; `kind` says whether trying again can help."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.git_args = list(args)
        self.returncode = returncode
        self.stderr = stderr
        self.kind: FailureKind = classify(stderr)
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """git's own explanation: its first `fatal:`/`error:` line, secrets masked.

        The first one is the specific one ("'x' does not appear to be a git
        repository"); git follows it with generic ones ("Could not read from remote").
        """
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        fallback = lines[-1] if lines else f"git exited with status {self.returncode}"
        picked = errors[0] if errors else fallback
        for prefix in ("fatal: ", "error: "):
            picked = picked.removeprefix(prefix)
        return redact(picked)

    @property
    def transient(self) -> bool:
        return self.kind == "unreachable"


def classify(stderr: str) -> FailureKind:
    text = stderr.lower()
    for kind, needles in (("auth", _AUTH), ("not-found", _NOT_FOUND), ("unreachable", _UNREACHABLE)):
        if any(n in text for n in needles):
            return kind  # type: ignore[return-value]
    return "other"


def git_env() -> dict[str, str]:
    return {**os.environ, **GIT_ENV}


def git_missing() -> EnvironmentFailure:
    return EnvironmentFailure(
        "git is not installed (no `git` on PATH)",
        remedy="Install git (Debian/Ubuntu: apt-get install git) and run the command again.",
    )


def run_git(args: Sequence[str], cwd: Path | str | None = None, *, check: bool = True) -> str:
    """`git ARGS` in `cwd`; stdout as text. Raises `GitFailure` when git fails (and `check`)."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        if cwd is not None and not Path(cwd).is_dir():
            raise
        raise git_missing() from None
    if check and proc.returncode != 0:
        raise GitFailure(args, proc.returncode, proc.stderr)
    return proc.stdout


def git_ok(args: Sequence[str], cwd: Path | str | None = None) -> bool:
    """Whether `git ARGS` exits 0 (for questions like `merge-base --is-ancestor`)."""
    return (
        subprocess.run(
            ["git", *args], cwd=cwd, env=git_env(), stdin=subprocess.DEVNULL, capture_output=True
        ).returncode
        == 0
    )


def with_retry(fn: Callable[[], T], *, retry: RetryPolicy) -> T:
    """Call a network git operation, retrying only failures that look transient."""
    return call_with_retry(
        fn, policy=retry, retry_if=lambda exc: isinstance(exc, GitFailure) and exc.transient
    )


def remote_error(failure: GitFailure, url: str, *, tries: int, doing: str) -> AutoglmError:
    """The domain error, with its remedy, for a network git operation that failed for good."""
    where = url  # the caller passes a display (redacted) URL
    if failure.kind == "unreachable":
        times = f" after {tries} tries" if tries > 1 else ""
        return NetworkError(
            f"cannot reach {where} while {doing}{times}: {failure.reason}",
            remedy="Check the network and the host name (proxy, VPN, DNS), then run the command again; "
            "the `retry` section of the config sets tries and backoff.",
        )
    if failure.kind == "auth":
        return RemoteNotFoundError(
            f"{where} refused access while {doing}: {failure.reason}",
            remedy="Check the credentials for this host (a token in the URL, a credential helper or an "
            "ssh key); if the project moved, add a `moves` entry or pass --to NEW_URL.",
        )
    if failure.kind == "not-found":
        return RemoteNotFoundError(f"no repository at {where} ({doing}): {failure.reason}")
    return EnvironmentFailure(f"git failed while {doing} ({where}): {failure.reason}")


# --- ls-remote --------------------------------------------------------------


@dataclass(frozen=True)
class RemoteRefs:
    """What `git ls-remote` says a remote holds."""

    head_branch: str | None  # the default branch (HEAD's target), when advertised
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit
    tags: dict[str, str] = field(default_factory=dict)  # name -> commit (peeled)

    @property
    def is_empty(self) -> bool:
        return not self.branches and not self.tags

    def ref_of(self, commit: str) -> str | None:
        """A ref whose tip is `commit` (the default branch first), as `refs/heads/x` or `refs/tags/x`."""
        names = [f"refs/heads/{n}" for n, sha in self.branches.items() if sha == commit]
        names += [f"refs/tags/{n}" for n, sha in self.tags.items() if sha == commit]
        return self.preferred(names)

    def preferred(self, refs: list[str]) -> str | None:
        """Of several refs, the one to name: the default branch, then `main`, then the first."""
        for wanted in (f"refs/heads/{self.head_branch}", "refs/heads/main"):
            if wanted in refs:
                return wanted
        return refs[0] if refs else None


def parse_ls_remote(text: str) -> RemoteRefs:
    head: str | None = None
    branches: dict[str, str] = {}
    tags: dict[str, str] = {}
    for line in text.splitlines():
        left, _, ref = line.partition("\t")
        if left.startswith("ref: ") and ref == "HEAD":
            head = left[5:].removeprefix("refs/heads/")
        elif ref.startswith("refs/heads/"):
            branches[ref[len("refs/heads/") :]] = left
        elif ref.startswith("refs/tags/"):
            name = ref[len("refs/tags/") :]
            if name.endswith("^{}"):
                tags[name[:-3]] = left  # the peeled commit wins over the tag object
            else:
                tags.setdefault(name, left)
    return RemoteRefs(head, branches, tags)


def ls_remote(url: str, *, retry: RetryPolicy, display_url: str, cwd: Path | None = None) -> RemoteRefs:
    """The refs `url` advertises, with retries on transient failures."""
    try:
        out = with_retry(lambda: run_git(["ls-remote", "--symref", "--", url], cwd), retry=retry)
    except GitFailure as failure:
        raise remote_error(failure, display_url, tries=retry.tries, doing="listing its refs") from None
    return parse_ls_remote(out)


# --- progress ---------------------------------------------------------------
