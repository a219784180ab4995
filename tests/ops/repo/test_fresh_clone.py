"""Fresh clones: one branch, into a temporary sibling, renamed into place only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoglm_cli.errors import (
    BranchNotFoundError,
    DirectoryNotEmptyError,
    EnvironmentFailure,
    NetworkError,
    RemoteNotFoundError,
)
from autoglm_cli.jsonable import to_jsonable
from autoglm_cli.ops.repo import CloneRequest, clone
from autoglm_cli.ops.repo.git_transfer import GitProgress
from autoglm_cli.ops.repo.report import CloneReport
from tests.fixtures.git_http import GitHttpServer, closed_port_url
from tests.fixtures.git_repos import git


class RecordingProgress:
    """A Progress that remembers what it was told (the UI is not under test; git's feed is)."""

    def __init__(self) -> None:
        self.tasks: list[RecordingTask] = []

    def task(self, description, total=None, *, transient=False, unit=None):
        task = RecordingTask(description, total)
        self.tasks.append(task)
        return task


class RecordingTask:
    def __init__(self, description, total) -> None:
        self.description, self.total, self.done, self.finished = description, total, 0.0, False

    def advance(self, amount=1):
        self.done += amount

    def update(self, *, total=None, description=None):
        if total is not None:
            self.total = total

    def finish(self):
        self.finished = True


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if "autoglm-clone" in p.name]


def test_clones_one_branch_only(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    report = clone(CloneRequest(url=world.new_url, directory=dest, branch="release/1.0"), retry=retry)
    assert git("rev-parse", "HEAD", cwd=dest) == world.project_shared[1]
    assert git("branch", "--show-current", cwd=dest) == "release/1.0"
    assert git("branch", "-r", cwd=dest).split() == ["origin/release/1.0"]
    assert git("config", "--get-all", "remote.origin.fetch", cwd=dest) == (
        "+refs/heads/release/1.0:refs/remotes/origin/release/1.0"
    )
    assert report.action == "clone" and report.exit_code == 0
    assert (report.branch, report.commit, report.upstream) == (
        "release/1.0",
        world.project_shared[1],
        "origin/release/1.0",
    )
    assert (report.ahead, report.behind) == (0, 0)
    assert leftovers(tmp_path) == []


def test_default_branch_and_directory_name_come_from_the_remote(world, tmp_path, monkeypatch, retry):
    monkeypatch.chdir(tmp_path)
    report = clone(CloneRequest(url=world.new_url), retry=retry)
    assert report.directory == str(tmp_path / "GLM-4")
    assert git("branch", "--show-current", cwd=tmp_path / "GLM-4") == "main"
    assert git("rev-parse", "HEAD", cwd=tmp_path / "GLM-4") == world.project_newer[-1]


def test_the_moves_map_applies_to_the_url_before_cloning(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    report = clone(CloneRequest(url=world.old_url, directory=dest), moves=world.moves, retry=retry)
    assert git("config", "--get", "remote.origin.url", cwd=dest) == world.new_url
    assert git("rev-parse", "HEAD", cwd=dest) == world.project_newer[-1]
    row = report.changes[0]
    assert (row.old, row.new, row.status, row.rule) == (
        world.old_url,
        world.new_url,
        "cloned",
        next(iter(world.moves)),
    )


def test_a_submodule_still_at_the_old_name_is_reported_stale(world, tmp_path, retry):
    report = clone(
        CloneRequest(url=world.new_url, directory=tmp_path / "GLM-4"), moves=world.moves, retry=retry
    )
    stale = [c for c in report.changes if c.kind == "submodule"]
    assert [(c.name, c.status, c.new) for c in stale] == [
        ("libs/glm-lib", "stale", world.url("zai-org", "glm-lib"))
    ]
    assert any("--repoint" in w for w in report.warnings)
    assert report.exit_code == 0


def test_depth_makes_a_shallow_clone(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    clone(CloneRequest(url=world.new_url, directory=dest, depth=1), retry=retry)
    assert git("rev-parse", "--is-shallow-repository", cwd=dest) == "true"
    assert git("rev-list", "--count", "HEAD", cwd=dest) == "1"


def test_git_progress_feeds_the_progress_bar(world, tmp_path, retry):
    progress = RecordingProgress()
    clone(CloneRequest(url=world.new_url, directory=tmp_path / "GLM-4"), retry=retry, progress=progress)
    receiving = [t for t in progress.tasks if t.description.endswith("receiving objects")]
    assert receiving, [t.description for t in progress.tasks]
    task = receiving[0]
    assert task.total and task.done == task.total and task.finished
    assert task.description.startswith(f"cloning {world.new_url}")


def test_progress_adapter_tracks_totals_per_stage():
    progress = RecordingProgress()
    adapter = GitProgress(progress, "x")
    for line in (
        "Receiving objects:  50% (5/10)",
        "Receiving objects: 100% (10/10), done.",
        "Resolving deltas: 100% (2/2), done.",
    ):
        adapter._parse_progress_line(line)
    assert [(t.description, t.total, t.done, t.finished) for t in progress.tasks] == [
        ("x: receiving objects", 10.0, 10.0, True),
        ("x: resolving deltas", 2.0, 2.0, True),
    ]


def test_dry_run_checks_the_remote_and_creates_nothing(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    report = clone(
        CloneRequest(url=world.old_url, directory=dest, dry_run=True), moves=world.moves, retry=retry
    )
    assert not dest.exists()
    assert report.dry_run and report.commit == world.project_newer[-1]
    assert report.changes[0].new == world.new_url


def test_unknown_branch_lists_the_remotes_branches_and_leaves_nothing(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    with pytest.raises(BranchNotFoundError) as err:
        clone(CloneRequest(url=world.new_url, directory=dest, branch="mian"), retry=retry)
    assert "`mian` not found" in err.value.message
    assert "dev, main, release/1.0" in err.value.message
    assert err.value.exit_code == 2
    assert not dest.exists() and leftovers(tmp_path) == []


def test_a_non_empty_directory_that_is_no_checkout_is_refused(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me\n")
    with pytest.raises(DirectoryNotEmptyError) as err:
        clone(CloneRequest(url=world.new_url, directory=dest), retry=retry)
    assert err.value.exit_code == 2
    assert [p.name for p in dest.iterdir()] == ["precious.txt"]
    assert (dest / "precious.txt").read_text() == "keep me\n"


def test_an_empty_directory_is_used(world, tmp_path, retry):
    dest = tmp_path / "GLM-4"
    dest.mkdir()
    clone(CloneRequest(url=world.new_url, directory=dest), retry=retry)
    assert git("rev-parse", "HEAD", cwd=dest) == world.project_newer[-1]


def test_a_missing_repository_is_not_retried(world, tmp_path, retry, waits):
    with pytest.raises(RemoteNotFoundError) as err:
        clone(CloneRequest(url=world.url("zai-org", "nope"), directory=tmp_path / "x"), retry=retry)
    assert "moves" in err.value.remedy
    assert waits == []
    assert not (tmp_path / "x").exists()


def test_an_unreachable_remote_fails_after_three_tries_with_backoff(tmp_path, retry, waits):
    url = closed_port_url()
    with pytest.raises(NetworkError) as err:
        clone(CloneRequest(url=url, directory=tmp_path / "GLM-4"), retry=retry)
    assert "after 3 tries" in err.value.message and "127.0.0.1" in err.value.message
    assert err.value.exit_code == 3
    assert waits == [1.0, 2.0]
    assert not (tmp_path / "GLM-4").exists()


def test_transient_server_errors_are_retried_until_the_clone_succeeds(world, tmp_path, retry, waits):
    with GitHttpServer(world.root) as server:
        server.fail_next(2, status=503)
        dest = tmp_path / "GLM-4"
        clone(CloneRequest(url=server.url("zai-org/GLM-4.git"), directory=dest), retry=retry)
    assert waits == [1.0, 2.0]
    assert [r.status for r in server.requests[:2]] == [503, 503]
    assert git("rev-parse", "HEAD", cwd=dest) == world.project_newer[-1]


def test_a_clone_that_fails_half_way_leaves_nothing_behind(world, tmp_path, retry, waits):
    with GitHttpServer(world.root) as server:
        server.fail_packs(3, status=500)  # refs listed fine, every pack transfer dies
        dest = tmp_path / "GLM-4"
        with pytest.raises(NetworkError):
            clone(CloneRequest(url=server.url("zai-org/GLM-4.git"), directory=dest), retry=retry)
    assert any(r.method == "POST" and r.status == 500 for r in server.requests)
    assert len(waits) == 2
    assert not dest.exists()
    assert leftovers(tmp_path) == []


def test_a_token_in_the_url_stays_in_git_config_and_out_of_the_report(world, tmp_path, retry):
    with GitHttpServer(world.root, credentials=("bob", "tok-s3cret-42")) as server:
        url = server.url("zai-org/GLM-4.git", user="bob", password="tok-s3cret-42")
        dest = tmp_path / "GLM-4"
        report = clone(CloneRequest(url=url, directory=dest), retry=retry)
    assert git("config", "--get", "remote.origin.url", cwd=dest) == url
    text = json.dumps(to_jsonable(report))
    assert "tok-s3cret-42" not in text
    assert "bob:***@127.0.0.1" in text


def test_wrong_credentials_are_an_access_error_not_retried(world, tmp_path, retry, waits):
    with GitHttpServer(world.root, credentials=("bob", "right")) as server:
        url = server.url("zai-org/GLM-4.git", user="bob", password="wrong")
        with pytest.raises(RemoteNotFoundError) as err:
            clone(CloneRequest(url=url, directory=tmp_path / "GLM-4"), retry=retry)
    assert "refused access" in err.value.message and "wrong" not in err.value.message
    assert waits == []


def test_a_branch_outside_the_convention_is_a_warning(world, tmp_path, retry):
    report: CloneReport = clone(
        CloneRequest(url=world.new_url, directory=tmp_path / "d", branch="dev"), retry=retry
    )
    assert report.exit_code == 0
    assert any("`dev`" in w for w in report.warnings)


def test_without_git_the_error_says_what_to_install(tmp_path, monkeypatch, retry):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git here
    with pytest.raises(EnvironmentFailure, match="git is not installed") as err:
        clone(CloneRequest(url="https://example.com/x.git", directory=tmp_path / "x"), retry=retry)
    assert "apt-get install git" in err.value.remedy
