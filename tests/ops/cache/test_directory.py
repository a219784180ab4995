"""Plain directory caches under --root: renames with compat symlinks, per-file links, merges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoglm_cli.ops.cache import Locations, MappingTable, engine
from autoglm_cli.ops.cache.mapping import MappingRow
from tests.ops.cache.conftest import snapshot_tree


@pytest.fixture
def app_cache(tmp_path) -> Path:
    """An application cache keyed by repo prefix and by user id."""
    root = tmp_path / "app-cache"
    (root / "THUDM" / "glm-4" / "tokenizer").mkdir(parents=True)
    (root / "THUDM" / "glm-4" / "prompt.bin").write_bytes(b"p" * 1000)
    (root / "THUDM" / "glm-4" / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / "THUDM" / "glm-4" / "latest").symlink_to("prompt.bin")  # relative, inside the entry
    (root / "THUDM" / "chatglm3-6b.json").write_text('{"k": 1}')
    (root / "user:42").write_text("profile of 42")
    (root / "user:43").mkdir()
    (root / "user:43" / "history.jsonl").write_text("{}\n")
    (root / "other").write_text("untouched")
    return root


def run(cli, root: Path, *args: str):
    return cli(
        "migrate-cache",
        "--root",
        root,
        "--map",
        "THUDM/=zai-org/{name}",
        "--map",
        "user:=profile/{id}",
        *args,
    )


def test_directories_move_by_rename_and_the_old_path_still_resolves(cli, app_cache, state_dir):
    before = snapshot_tree(app_cache)
    glm_inode = (app_cache / "THUDM" / "glm-4").stat().st_ino

    plan = run(cli, app_cache, "--dry-run", "--json")
    methods = {e["old"]: e["method"] for r in plan.json["result"]["rows"] for e in r["entries"]}
    assert methods == {
        "THUDM/glm-4": "rename",
        "THUDM/chatglm3-6b.json": "link",
        "user:42": "link",
        "user:43": "rename",
    }

    result = run(cli, app_cache, "--yes")
    assert result.exit_code == 0, result.stderr
    new_glm = app_cache / "zai-org" / "glm-4"
    assert new_glm.stat().st_ino == glm_inode and not new_glm.is_symlink()  # moved, not copied
    assert os.readlink(app_cache / "THUDM" / "glm-4") == "../zai-org/glm-4"
    assert (app_cache / "THUDM" / "glm-4" / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"  # dual read
    assert (new_glm / "latest").read_bytes() == b"p" * 1000
    assert (app_cache / "profile" / "42").read_text() == "profile of 42"
    assert (app_cache / "profile" / "42").stat().st_ino == (app_cache / "user:42").stat().st_ino
    assert (app_cache / "profile" / "43" / "history.jsonl").read_text() == "{}\n"
    assert (app_cache / "user:43" / "history.jsonl").read_text() == "{}\n"
    assert (app_cache / "zai-org" / "chatglm3-6b.json").read_text() == '{"k": 1}'
    assert (app_cache / "other").read_text() == "untouched"
    # everything old still reads the same through the old paths
    for rel, (kind, value) in before.items():
        path = app_cache / rel
        if kind == "file":
            assert snapshot_tree(path.parent)[path.name] == (kind, value)

    again = run(cli, app_cache, "--dry-run", "--json")
    assert {e["method"] for r in again.json["result"]["rows"] for e in r["entries"]} == {"done"}


def test_prune_old_removes_compat_links_and_old_files_only(cli, app_cache, state_dir):
    assert run(cli, app_cache, "--yes").exit_code == 0
    result = run(cli, app_cache, "--yes", "--prune-old")
    assert result.exit_code == 0, result.stderr
    assert not os.path.lexists(app_cache / "THUDM" / "glm-4")
    assert not os.path.lexists(app_cache / "user:42")
    assert not os.path.lexists(app_cache / "user:43")
    assert (app_cache / "zai-org" / "glm-4" / "prompt.bin").read_bytes() == b"p" * 1000
    assert (app_cache / "profile" / "42").read_text() == "profile of 42"
    assert (app_cache / "other").read_text() == "untouched"


def test_merging_into_an_existing_directory_keeps_equal_files_and_links_the_rest(cli, app_cache, state_dir):
    new = app_cache / "zai-org" / "glm-4"
    (new / "tokenizer").mkdir(parents=True)
    (new / "tokenizer" / "vocab.txt").write_text("a\nb\n")  # the app already re-created this one
    kept_inode = (new / "tokenizer" / "vocab.txt").stat().st_ino

    result = run(cli, app_cache, "--yes")
    assert result.exit_code == 0, result.stderr
    assert (new / "tokenizer" / "vocab.txt").stat().st_ino == kept_inode
    assert (new / "prompt.bin").stat().st_ino == (app_cache / "THUDM" / "glm-4" / "prompt.bin").stat().st_ino
    assert os.readlink(new / "latest") == "prompt.bin"
    assert not (app_cache / "THUDM" / "glm-4").is_symlink()  # merged file by file: old tree kept as is


def test_a_target_with_other_content_is_refused(cli, app_cache, state_dir):
    (app_cache / "profile").mkdir()
    (app_cache / "profile" / "42").write_text("someone else")
    before = snapshot_tree(app_cache)
    result = run(cli, app_cache, "--yes")
    assert result.exit_code == 2
    assert "already exists with other content" in result.stderr
    assert snapshot_tree(app_cache) == before


def test_a_symlink_out_of_the_root_is_refused(cli, app_cache, tmp_path, state_dir):
    (tmp_path / "secret").write_text("x")
    (app_cache / "THUDM" / "glm-4" / "escape").symlink_to(tmp_path / "secret")
    before = snapshot_tree(app_cache)
    result = run(cli, app_cache, "--yes")
    assert result.exit_code == 2
    assert "points out of the cache root" in result.stderr
    assert snapshot_tree(app_cache) == before


def test_copy_mode_leaves_the_old_tree_alone(cli, app_cache, state_dir):
    before = snapshot_tree(app_cache)
    result = run(cli, app_cache, "--yes", "--copy")
    assert result.exit_code == 0, result.stderr
    after = snapshot_tree(app_cache)
    assert {k: v for k, v in after.items() if k in before} == before
    new_file = app_cache / "zai-org" / "glm-4" / "prompt.bin"
    assert new_file.read_bytes() == b"p" * 1000
    assert new_file.stat().st_ino != (app_cache / "THUDM" / "glm-4" / "prompt.bin").stat().st_ino


def test_a_crash_between_rename_and_compat_link_is_finished_by_the_next_run(app_cache, tmp_path, monkeypatch):
    """Fault injection: the process dies right after the rename (before the compat symlink)."""
    from autoglm_cli.ops.cache import actions

    journal = tmp_path / "journal.jsonl"
    table = MappingTable.build([MappingRow("THUDM/", "zai-org/{name}", kind="dir")])
    locations = Locations.resolve(hub_cache=tmp_path / "none", root=app_cache)

    def die(source, target):
        raise KeyboardInterrupt  # what the engine sees of a kill at this point: nothing after it runs

    monkeypatch.setattr(actions, "compat_symlink", die)
    with pytest.raises(KeyboardInterrupt):
        engine.migrate(table, locations, journal_path=journal, apply=True)
    assert not os.path.lexists(app_cache / "THUDM" / "glm-4")  # moved, old path not back yet
    monkeypatch.undo()

    report = engine.migrate(table, locations, journal_path=journal, apply=True)
    assert report.recovered_steps == 1
    assert (app_cache / "THUDM" / "glm-4" / "prompt.bin").read_bytes() == b"p" * 1000
    assert os.readlink(app_cache / "THUDM" / "glm-4") == "../zai-org/glm-4"
    assert [r.status for r in report.rows] == ["completed"]


def test_across_filesystems_entries_are_copied_and_verified(cli, app_cache, state_dir):
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(app_cache).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than tmp_path")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        result = run(cli, app_cache, "--to-root", other, "--yes", "--json")
        assert result.exit_code == 0, result.stderr
        methods = {e["method"] for r in result.json["result"]["rows"] for e in r["entries"]}
        assert methods == {"copy"}
        assert (Path(other) / "zai-org" / "glm-4" / "prompt.bin").read_bytes() == b"p" * 1000
        assert (app_cache / "THUDM" / "glm-4" / "prompt.bin").read_bytes() == b"p" * 1000
