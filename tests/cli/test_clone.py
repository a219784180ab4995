"""`autoglm clone` end to end in-process: options, exit codes, JSON, human output, secrets."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_autoglm
from tests.fixtures.git_http import GitHttpServer, closed_port_url
from tests.fixtures.git_repos import build_org_move, git, isolated_env, make_checkout, snapshot


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch, tmp_path):
    for key, value in isolated_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AUTOGLM_RETRY__BASE", "0")  # real retries, no waiting
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def world(tmp_path):
    return build_org_move(tmp_path / "remotes")


@pytest.fixture
def config(tmp_path, world):
    path = tmp_path / "autoglm.yaml"
    path.write_text(yaml.safe_dump({"moves": world.moves}))
    return path


def test_fresh_clone_json_document(cli, world, tmp_path, config):
    dest = tmp_path / "GLM-4"
    result = cli("--config", config, "clone", world.old_url, dest, "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json
    assert (doc["schema"], doc["command"], doc["ok"], doc["exit_code"]) == ("autoglm/v1", "clone", True, 0)
    body = doc["result"]
    assert body["action"] == "clone" and body["branch"] == "main"
    assert body["changes"][0] == {
        "kind": "remote",
        "name": "origin",
        "old": world.old_url,
        "new": world.new_url,
        "status": "cloned",
        "proof": f"branch main at {world.project_newer[-1][:10]}",
        "verdict": None,
        "rule": next(iter(world.moves)),
    }
    assert git("config", "--get", "remote.origin.url", cwd=dest) == world.new_url


def test_repoint_human_output_and_warnings(cli, world, tmp_path, config):
    work = make_checkout(world, tmp_path / "work", push_url=world.old_url)
    result = cli("--config", config, "clone", "--repoint", work.path)
    assert result.exit_code == 0, result.stderr
    assert f"re-pointed {work.path}" in result.stdout
    assert "remote origin" in result.stdout and "submodule libs/glm-lib" in result.stdout
    assert "repointed" in result.stdout
    assert "tracking origin/main: 1 ahead, 2 behind" in result.stdout
    assert "warning: branch `experiment`" in result.stderr
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url


def test_dry_run_says_so_and_changes_nothing(cli, world, tmp_path, config):
    work = make_checkout(world, tmp_path / "work")
    before = snapshot(work.path)
    result = cli("--config", config, "clone", "--repoint", work.path, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "dry run: nothing changed" in result.stdout and "would re-point" in result.stdout
    assert snapshot(work.path) == before


def test_repoint_defaults_to_the_checkout_around_the_working_directory(
    cli, world, tmp_path, config, monkeypatch
):
    work = make_checkout(world, tmp_path / "work")
    monkeypatch.chdir(work.path)
    result = cli("--config", config, "--json", "clone", "--repoint")
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["directory"] == str(work.path)


def test_to_url_without_a_config(cli, world, tmp_path):
    work = make_checkout(world, tmp_path / "work")
    result = cli("clone", "--to", world.new_url, work.path, "--json")
    assert result.exit_code == 0, result.stderr
    assert git("config", "--get", "remote.origin.url", cwd=work.path) == world.new_url


def test_hijacked_old_name_exits_1(cli, world, tmp_path):
    work = make_checkout(world, tmp_path / "work")
    world.take_over_old_name()
    result = cli("--json", "clone", "--repoint", work.path)
    assert result.exit_code == 1
    doc = result.json
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert doc["result"]["changes"][0]["status"] == "hijacked"


def test_unrelated_new_remote_exits_1_with_a_remedy(cli, world, tmp_path):
    work = make_checkout(world, tmp_path / "work")
    result = cli("clone", "--repoint", work.path, "--to", world.url("squatter"))
    assert result.exit_code == 1
    assert "another project's history" in result.stderr and "hint:" in result.stderr


def test_branch_not_found_exits_2_and_lists_branches(cli, world, tmp_path):
    result = cli("clone", world.new_url, tmp_path / "x", "--branch", "nope")
    assert result.exit_code == 2
    assert "the remote has: dev, main, release/1.0" in result.stderr
    assert not (tmp_path / "x").exists()


def test_directory_not_empty_exits_2(cli, world, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("mine")
    result = cli("--json", "clone", world.new_url, tmp_path / "x")
    assert result.exit_code == 2
    assert result.json["error"]["type"] == "DirectoryNotEmptyError"


def test_dirty_gitmodules_exits_1(cli, world, tmp_path, config):
    work = make_checkout(world, tmp_path / "work")
    (work.path / ".gitmodules").write_text((work.path / ".gitmodules").read_text() + "\t# edit\n")
    result = cli("--config", config, "clone", "--repoint", work.path)
    assert result.exit_code == 1
    assert "uncommitted changes" in result.stderr and "git stash" in result.stderr


def test_unreachable_remote_exits_3_after_retries(cli, tmp_path):
    result = cli("clone", closed_port_url(), tmp_path / "x")
    assert result.exit_code == 3
    assert "after 3 tries" in result.stderr
    assert result.stderr.count("retrying in") == 2
    assert not (tmp_path / "x").exists()


def test_retry_tries_come_from_the_config(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGLM_RETRY__TRIES", "2")
    result = cli("clone", closed_port_url(), tmp_path / "x")
    assert result.exit_code == 3 and "after 2 tries" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["clone"], ["clone", "--repoint", "a", "b"], ["clone", "--depth", "0", "u"]],
)
def test_usage_errors_exit_2(cli, args):
    assert cli(*args).exit_code == 2


def test_a_token_is_never_printed_but_kept_in_git_config(cli, world, tmp_path):
    with GitHttpServer(world.root, credentials=("bob", "tok-s3cret-42")) as server:
        old = server.url("THUDM/GLM-4.git", user="bob", password="tok-s3cret-42")
        dest = tmp_path / "GLM-4"
        cfg = tmp_path / "http.yaml"
        cfg.write_text(yaml.safe_dump({"moves": {server.url("THUDM/"): server.url("zai-org/")}}))
        outputs = [
            cli("--config", cfg, "clone", old, dest),
            cli("--config", cfg, "clone", "--repoint", dest, "--dry-run"),
            cli("--config", cfg, "--json", "clone", "--repoint", dest),
            cli(
                "--config",
                cfg,
                "clone",
                "--repoint",
                dest,
                "--to",
                server.url("nowhere/x.git", user="bob", password="tok-s3cret-42"),
            ),
        ]
        new = server.url("zai-org/GLM-4.git", user="bob", password="tok-s3cret-42")
    assert [o.exit_code for o in outputs] == [0, 0, 0, 2]
    for out in outputs:
        assert "tok-s3cret-42" not in out.stdout + out.stderr
    assert "bob:***@127.0.0.1" in outputs[0].stdout
    assert git("config", "--get", "remote.origin.url", cwd=dest) == new


def test_as_a_real_process(world, tmp_path):
    result = run_autoglm("clone", world.new_url, tmp_path / "GLM-4", "--json", env={"HOME": str(tmp_path)})
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["commit"] == world.project_newer[-1]
