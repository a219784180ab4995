"""Re-pointing an existing checkout after the org move: proven first, local work never touched.

The end state is read back with git itself.
"""

from __future__ import annotations

import json

import pytest

from autoglm_cli.errors import (
    DirtyWorkTreeError,
    NetworkError,
    RemoteNotFoundError,
    UnrelatedHistoryError,
    UsageError,
)
from autoglm_cli.jsonable import to_jsonable
from autoglm_cli.ops.repo import CloneRequest, clone
from autoglm_cli.ops.repo.proof import prove_history
from tests.fixtures.git_http import GitHttpServer, closed_port_url
from tests.fixtures.git_repos import SUBMODULE_PATH, commit, file_url, git, git_ok, make_checkout, snapshot

SUB = SUBMODULE_PATH


def repoint(directory, **kw):
    options = {k: kw.pop(k) for k in ("moves", "retry", "progress") if k in kw}
    return clone(CloneRequest(repoint=True, directory=directory, **kw), **options)


def test_moves_repoint_origin_push_url_and_submodules_and_keep_local_work(world, work, retry):
    before = snapshot(work.path)
    report = repoint(work.path, moves=world.moves, retry=retry)

    # Remotes: fetch and push URL at the new home, fetched from there.
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url
    assert git("config", "--get", "remote.origin.pushurl", cwd=work.path) == world.new_url
    assert git("rev-parse", "origin/main", cwd=work.path) == world.project_newer[-1]
    # Submodule: .gitmodules, .git/config and the submodule's own remote.
    lib_new = world.url("zai-org", "glm-lib")
    assert git("config", "-f", ".gitmodules", f"submodule.{SUB}.url", cwd=work.path) == lib_new
    assert git("config", f"submodule.{SUB}.url", cwd=work.path) == lib_new
    assert git("config", "--get", "remote.origin.url", cwd=work.path / SUB) == lib_new
    assert git("rev-parse", "origin/main", cwd=work.path / SUB) == world.library_newer[-1]
    assert git("submodule", "status", cwd=work.path).split()[0].lstrip("-+ ") == world.library_shared[-1]

    # The user's things: HEAD, branches, stash, uncommitted edit, untracked file.
    after = snapshot(work.path)
    assert after.local == before.local
    assert git("stash", "list", cwd=work.path) == "stash@{0}: On main: half-done idea"
    assert git("rev-parse", "stash@{0}", cwd=work.path) == work.stash
    status = git("status", "--porcelain", cwd=work.path).splitlines()
    assert sorted(status) == [" M .gitmodules", " M README.md", "?? notes.txt"]
    assert (work.path / "notes.txt").read_text() == "untracked notes\n"
    assert git("rev-parse", "main", cwd=work.path) == work.local_commit

    # The report.
    assert report.action == "repoint" and not report.dry_run and report.exit_code == 0
    rows = {(c.kind, c.name): c for c in report.changes}
    assert rows["remote", "origin"].status == "repointed"
    assert rows["remote", "origin"].verdict == "contains"
    assert rows["pushurl", "origin"].new == world.new_url
    assert rows["submodule", SUB].status == "repointed"
    assert (report.branch, report.commit, report.upstream) == ("main", work.local_commit, "origin/main")
    assert (report.ahead, report.behind) == (1, 2)  # our local commit; N1 and N2
    assert report.fetched == ("origin", f"{SUB} (origin)")
    assert any("`experiment`" in w for w in report.warnings)
    assert not any("feature/local" in w for w in report.warnings)


def test_dry_run_shows_the_plan_with_its_proofs_and_changes_nothing(world, work, retry):
    before = snapshot(work.path)
    sub_config = git("config", "--get-regexp", "remote", cwd=work.path / SUB)
    tracking = git("for-each-ref", cwd=work.path)
    report = repoint(work.path, moves=world.moves, retry=retry, dry_run=True)
    assert snapshot(work.path) == before
    assert git("config", "--get-regexp", "remote", cwd=work.path / SUB) == sub_config
    assert git("for-each-ref", cwd=work.path) == tracking  # not even fetched
    assert report.dry_run and report.fetched == ()
    origin = report.changes[0]
    assert (origin.old, origin.new, origin.status) == (world.old_url, world.new_url, "repointed")
    assert origin.proof.startswith(f"holds {world.project_shared[-1][:10]}")
    assert (report.ahead, report.behind) == (1, 0)


def test_the_proof_never_brings_objects_into_the_checkout(world, work, retry):
    repoint(work.path, moves=world.moves, retry=retry, dry_run=True)
    assert not git_ok("cat-file", "-e", world.project_newer[-1], cwd=work.path)
    assert not list((work.path / ".git").glob("autoglm*"))


def test_an_unrelated_new_remote_is_refused_and_nothing_changes(world, work, retry):
    before = snapshot(work.path)
    moves = {world.org_url("THUDM") + "/GLM-4": world.org_url("squatter") + "/GLM-4"}
    with pytest.raises(UnrelatedHistoryError) as err:
        repoint(work.path, moves=moves, retry=retry)
    assert err.value.exit_code == 1
    assert "another project's history" in err.value.message and "Nothing was changed" in err.value.message
    assert snapshot(work.path) == before
    assert not git_ok("cat-file", "-e", world.squatter_tip, cwd=work.path)


def test_a_new_location_where_nothing_answers_is_a_usage_error(world, work, retry, waits):
    before = snapshot(work.path)
    moves = {world.org_url("THUDM") + "/": world.org_url("nobody") + "/"}
    with pytest.raises(RemoteNotFoundError) as err:
        repoint(work.path, moves=moves, retry=retry)
    assert err.value.exit_code == 2
    assert "does not appear to be a git repository" in err.value.message
    assert waits == []
    assert snapshot(work.path) == before


def test_dry_run_of_an_unrelated_remote_is_a_failed_plan(world, work, retry):
    moves = {world.org_url("THUDM") + "/GLM-4": world.org_url("squatter") + "/GLM-4"}
    report = repoint(work.path, moves=moves, retry=retry, dry_run=True)
    origin = report.changes[0]
    assert origin.status == "unrelated" and origin.verdict == "unrelated"
    assert "none of the remote's" in origin.proof
    assert report.exit_code == 1


def test_a_hijacked_old_name_is_reported_and_not_fetched(world, work, retry):
    world.take_over_old_name()
    tracking = git("rev-parse", "origin/main", cwd=work.path)
    before = snapshot(work.path)
    report = repoint(work.path, moves={}, retry=retry)
    origin = report.changes[0]
    assert (origin.kind, origin.status, origin.old, origin.new) == (
        "remote",
        "hijacked",
        world.old_url,
        world.old_url,
    )
    assert report.exit_code == 1
    assert "origin" not in report.fetched
    assert any("another project's history" in w for w in report.warnings)
    assert git("rev-parse", "origin/main", cwd=work.path) == tracking
    assert not git_ok("cat-file", "-e", world.squatter_tip, cwd=work.path)
    assert snapshot(work.path) == before


def test_a_redirecting_old_name_is_fine_until_it_is_taken_over(world, tmp_path, retry):
    """GitHub's rename redirect hides the move; the day the old name is registered, we notice."""
    with GitHttpServer(world.root) as server:
        server.redirects["/THUDM/"] = "/zai-org/"
        dest = tmp_path / "via-redirect"
        git("clone", "--quiet", server.url("THUDM/GLM-4.git"), dest)
        report = repoint(dest, moves={}, retry=retry)
        assert [(c.kind, c.status, c.verdict) for c in report.changes] == [
            ("remote", "unchanged", "contains"),
            ("submodule", "unchanged", None),  # no `moves` entry: not probed
        ]
        assert report.fetched == ("origin",) and report.exit_code == 0

        server.redirects.clear()
        world.take_over_old_name()
        report = repoint(dest, moves={}, retry=retry)
    assert [c.status for c in report.changes] == ["hijacked", "unchanged"]
    assert report.exit_code == 1
    assert not git_ok("cat-file", "-e", world.squatter_tip, cwd=dest)


def test_a_rewritten_new_history_is_accepted_as_shared_history_with_a_warning(world, work, retry):
    world.rewrite_new_history()
    report = repoint(work.path, moves=world.moves, retry=retry)
    origin = report.changes[0]
    assert (origin.status, origin.verdict) == ("repointed", "shared-history")
    assert world.project_shared[1][:10] in origin.proof
    assert any("history was rewritten" in w for w in report.warnings)
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url


def test_to_url_repoints_the_remote_and_the_push_url_that_followed_it(world, work, retry):
    report = repoint(work.path, to=world.new_url, retry=retry)
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url
    assert git("config", "--get", "remote.origin.pushurl", cwd=work.path) == world.new_url
    # No moves: the submodule keeps its URL.
    assert git("config", "-f", ".gitmodules", f"submodule.{SUB}.url", cwd=work.path) == world.url(
        "THUDM", "glm-lib"
    )
    statuses = {(c.kind, c.status, c.rule) for c in report.changes}
    assert ("remote", "repointed", "--to") in statuses and ("submodule", "unchanged", None) in statuses


def test_to_url_for_another_remote(world, work, retry):
    git("remote", "add", "upstream", world.old_url, cwd=work.path)
    repoint(work.path, to=world.new_url, remote="upstream", retry=retry)
    assert git("config", "--get", "remote.upstream.url", cwd=work.path) == world.new_url
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.old_url


def test_to_names_a_remote_that_does_not_exist(world, work, retry):
    with pytest.raises(UsageError, match="no remote named `upstream`"):
        repoint(work.path, to=world.new_url, remote="upstream", retry=retry)


def test_clone_into_an_existing_checkout_repoints_it(world, work, retry):
    report = clone(CloneRequest(url=world.old_url, directory=work.path), moves=world.moves, retry=retry)
    assert report.action == "repoint"
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url


def test_uncommitted_gitmodules_changes_block_the_rewrite(world, work, retry):
    with (work.path / ".gitmodules").open("a") as f:
        f.write("\t# my note\n")
    before = snapshot(work.path)
    with pytest.raises(DirtyWorkTreeError) as err:
        repoint(work.path, moves=world.moves, retry=retry)
    assert ".gitmodules" in err.value.message and err.value.exit_code == 1
    assert "stash" in err.value.remedy
    assert snapshot(work.path) == before


def test_running_it_again_changes_nothing_more(world, work, retry):
    repoint(work.path, moves=world.moves, retry=retry)
    config = git("config", "--list", "--local", cwd=work.path)
    again = repoint(work.path, moves=world.moves, retry=retry)
    assert [c.status for c in again.changes] == ["unchanged", "unchanged", "unchanged"]
    assert not again.changed and again.exit_code == 0
    assert git("config", "--list", "--local", cwd=work.path) == config


def test_a_submodule_never_checked_out_is_rewritten_after_proof(world, tmp_path, retry):
    work = make_checkout(world, tmp_path / "bare-work", submodules=False)
    report = repoint(work.path, moves=world.moves, retry=retry)
    sub = [c for c in report.changes if c.kind == "submodule"][0]
    assert (sub.status, sub.verdict) == ("repointed", "contains")
    assert git("config", "-f", ".gitmodules", f"submodule.{SUB}.url", cwd=work.path) == world.url(
        "zai-org", "glm-lib"
    )
    assert not git_ok("config", f"submodule.{SUB}.url", cwd=work.path)  # still not initialised


def test_a_shallow_checkout_can_be_repointed(world, tmp_path, retry):
    dest = tmp_path / "shallow"
    git("clone", "--quiet", "--depth", "1", world.url("THUDM"), dest)
    report = repoint(dest, moves=world.moves, retry=retry)
    assert report.changes[0].status == "repointed"
    assert git("rev-parse", "origin/main", cwd=dest) == world.project_newer[-1]
    assert git("rev-parse", "--is-shallow-repository", cwd=dest) == "true"


def test_credentials_stay_in_git_config_and_out_of_every_report(world, tmp_path, retry):
    with GitHttpServer(world.root, credentials=("bob", "tok-s3cret-42")) as server:
        old = server.url("THUDM/GLM-4.git", user="bob", password="tok-s3cret-42")
        dest = tmp_path / "private"
        git("clone", "--quiet", old, dest)
        moves = {server.url("THUDM/"): server.url("zai-org/")}  # keys carry no credentials
        plan = repoint(dest, moves=moves, retry=retry, dry_run=True)
        report = repoint(dest, moves=moves, retry=retry)
    new = server.url("zai-org/GLM-4.git", user="bob", password="tok-s3cret-42")
    assert git("config", "--get", "remote.origin.url", cwd=dest) == new
    assert git("rev-parse", "origin/main", cwd=dest) == world.project_newer[-1]
    for shown in (plan, report):
        text = json.dumps(to_jsonable(shown))
        assert "tok-s3cret-42" not in text
        assert "bob:***@" in text


def test_an_unreachable_new_remote_fails_after_retries_and_changes_nothing(world, work, retry, waits):
    before = snapshot(work.path)
    dead = closed_port_url("zai-org/")
    with pytest.raises(NetworkError) as err:
        repoint(work.path, moves={world.org_url("THUDM") + "/": dead}, retry=retry)
    assert err.value.exit_code == 3 and "after 3 tries" in err.value.message
    assert waits == [1.0, 2.0]
    assert snapshot(work.path) == before


def test_a_push_url_elsewhere_that_cannot_be_reached_is_only_a_warning(world, work, retry):
    git("remote", "set-url", "--push", "origin", closed_port_url("mine/GLM-4.git"), cwd=work.path)
    report = repoint(work.path, moves=world.moves, retry=retry)
    rows = {(c.kind, c.status) for c in report.changes}
    assert ("pushurl", "unchecked") in rows and ("remote", "repointed") in rows
    assert report.exit_code == 0


def test_the_repoint_searches_up_from_the_working_directory(world, work, retry, monkeypatch):
    monkeypatch.chdir(work.path / "libs")
    report = repoint(None, moves=world.moves, retry=retry, dry_run=True)
    assert report.directory == str(work.path)


def test_prove_history_without_a_local_repository_needs_the_commit_itself(world, retry):
    held = prove_history(
        world.new_url, display_url="x", commit=world.project_shared[0], local_repo=None, retry=retry
    )
    assert (held.verdict, held.fetched) == ("contains", True)
    missing = prove_history(world.new_url, display_url="x", commit="0" * 40, local_repo=None, retry=retry)
    assert missing.verdict == "unrelated"


def test_an_empty_new_remote_is_unrelated(world, work, retry, tmp_path):
    empty = world.root / "empty-org" / "GLM-4.git"
    git("init", "--quiet", "--bare", empty)
    report = repoint(work.path, to=file_url(empty), retry=retry, dry_run=True)
    assert report.changes[0].status == "unrelated"
    assert "empty" in report.changes[0].proof


def test_a_checkout_without_remotes_is_reported_as_such(tmp_path, retry):
    repo = tmp_path / "lonely"
    git("init", "--quiet", repo)
    commit(repo, "first")
    report = repoint(repo, moves={}, retry=retry)
    assert report.changes == () and any("no remotes" in w for w in report.warnings)
