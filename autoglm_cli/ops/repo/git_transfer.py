"""git transfers (clone, fetch) with git's own progress lines driving a `Progress`.

The only module of `ops/repo` that imports gitpython, which parses git's progress
lines ("Receiving objects: 45% (450/1000)"); imported where a transfer starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# Without a git binary gitpython refuses to import; let it, so we can say so with a remedy.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from git import RemoteProgress  # noqa: E402

from ...progress import NULL_PROGRESS, Progress, ProgressTask  # noqa: E402
from .gitcmd import GIT_ENV, GitFailure  # noqa: E402


class GitProgress(RemoteProgress):
    """Feeds git's progress lines (parsed by gitpython) into a `Progress`, one task per stage."""

    _STAGES = {
        RemoteProgress.COUNTING: "counting objects",
        RemoteProgress.COMPRESSING: "compressing objects",
        RemoteProgress.WRITING: "writing objects",
        RemoteProgress.RECEIVING: "receiving objects",
        RemoteProgress.RESOLVING: "resolving deltas",
        RemoteProgress.FINDING_SOURCES: "finding sources",
        RemoteProgress.CHECKING_OUT: "checking out files",
    }

    def __init__(self, progress: Progress = NULL_PROGRESS, label: str = "git") -> None:
        super().__init__()
        self._progress = progress
        self._label = label
        self._tasks: dict[int, ProgressTask] = {}
        self._done: dict[int, float] = {}
        self._totals: dict[int, float | None] = {}

    def update(self, op_code: int, cur_count, max_count=None, message: str = "") -> None:  # noqa: ANN001
        stage = op_code & self.OP_MASK
        total = float(max_count) if max_count else None
        task = self._tasks.get(stage)
        if task is None:
            name = self._STAGES.get(stage, "working")
            task = self._progress.task(f"{self._label}: {name}", total=total, transient=True)
            self._tasks[stage], self._done[stage], self._totals[stage] = task, 0.0, total
        elif total != self._totals[stage]:
            task.update(total=total)
            self._totals[stage] = total
        current = float(cur_count or 0)
        if current > self._done[stage]:
            task.advance(current - self._done[stage])
            self._done[stage] = current
        if op_code & self.END:
            task.finish()

    @property
    def stderr_text(self) -> str:
        """git's non-progress output (errors included), for classifying a failure."""
        return "\n".join([*self.other_lines, *self.error_lines])


def run_with_progress(args: Sequence[str], cwd: Path, progress: GitProgress) -> None:
    """`git ARGS --progress` in `cwd` with git's progress lines fed into `progress`."""
    from git import Git
    from git.cmd import handle_process_output
    from git.exc import GitCommandError
    from git.util import finalize_process

    runner = Git(str(cwd))
    runner.update_environment(**GIT_ENV)
    proc = runner.execute(
        ["git", *args[:1], "--progress", *args[1:]],
        as_process=True,
        universal_newlines=True,
        with_stdout=False,
    )
    try:
        handle_process_output(
            proc, None, progress.new_message_handler(), finalize_process, decode_streams=False
        )
    except GitCommandError as exc:
        raise _failure(args, exc, progress) from None


def clone_with_progress(url: str, destination: Path, progress: GitProgress, **options) -> None:
    """`git clone URL DESTINATION` (gitpython's `Repo.clone_from` options) with git's progress
    lines fed into `progress`."""
    from git import Repo
    from git.exc import GitCommandError

    try:
        Repo.clone_from(url, destination, progress=progress, env=GIT_ENV, **options)
    except GitCommandError as exc:
        raise _failure(["clone"], exc, progress) from None


def _failure(args: Sequence[str], exc, progress: GitProgress) -> GitFailure:
    stderr = progress.stderr_text or _text(exc.stderr)
    return GitFailure(args, exc.status if isinstance(exc.status, int) else 1, stderr)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")
