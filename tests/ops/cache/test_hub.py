"""Hub cache migration, checked with huggingface_hub itself on caches it downloaded."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from tests.ops.cache.conftest import (
    CHATGLM,
    GLM,
    NEW_CHATGLM,
    NEW_GLM,
    folder,
    repo_files,
    snapshot_tree,
)

MAP = "THUDM/=zai-org/{name}"


def migrate(cli, cache: Path, *args: str):
    return cli("migrate-cache", "--hub-cache", cache, "--modules-cache", cache.parent / "modules", *args)


def assert_scan_clean(cache: Path, expected: set[str]) -> None:
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    assert info.warnings == []
    assert {r.repo_id for r in info.repos} == expected
    by_id = {r.repo_id: r for r in info.repos}
    for repo in expected:
        assert by_id[repo].nb_files >= 5


def test_new_id_resolves_offline_with_zero_bytes_fetched(cli, old_hub_cache, hub_server, state_dir):
    from huggingface_hub import hf_hub_download, snapshot_download

    cache = old_hub_cache
    before = snapshot_tree(cache)

    result = migrate(cli, cache, "--map", MAP, "--yes")
    assert result.exit_code == 0, result.stderr

    assert_scan_clean(cache, {GLM, CHATGLM, NEW_GLM, NEW_CHATGLM})
    for old, new in ((GLM, NEW_GLM), (CHATGLM, NEW_CHATGLM)):
        path = hf_hub_download(
            new, "model-00001-of-00002.safetensors", cache_dir=cache, local_files_only=True
        )
        assert folder(cache, new).name in path
        assert (
            Path(path).read_bytes() == repo_files(0 if old == GLM else 1)["model-00001-of-00002.safetensors"]
        )
        snap = snapshot_download(new, cache_dir=cache, local_files_only=True)
        assert sorted(os.listdir(snap)) == sorted(repo_files(0))
        # the old id still resolves, to the same bytes (the same inode: hard links)
        old_path = hf_hub_download(
            old, "model-00001-of-00002.safetensors", cache_dir=cache, local_files_only=True
        )
        assert os.stat(old_path).st_ino == os.stat(path).st_ino
    # no request at all (the fixture's own 404 for the missing file may be logged late)
    assert [r for r in hub_server.requests if r.file != "generation_config.json"] == []
    assert hub_server.bytes_served() == 0
    # the old folders are byte for byte what they were
    after = snapshot_tree(cache)
    assert {k: v for k, v in after.items() if k in before} == before


def test_no_exist_markers_refs_and_tree_listings_move_too(cli, old_hub_cache, state_dir):
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.file_download import _CACHED_NO_EXIST

    assert migrate(cli, old_hub_cache, "--map", MAP, "--yes").exit_code == 0
    old, new = folder(old_hub_cache, GLM), folder(old_hub_cache, NEW_GLM)
    assert (new / "refs" / "main").read_text() == (old / "refs" / "main").read_text()
    assert sorted(os.listdir(new / "trees")) == sorted(os.listdir(old / "trees"))
    missing = try_to_load_from_cache(NEW_GLM, "generation_config.json", cache_dir=old_hub_cache)
    assert missing is _CACHED_NO_EXIST  # "known not to exist" survives: no request to ask again
    assert (old_hub_cache / ".locks" / new.name).is_dir()


def test_blobs_already_in_the_new_folder_are_kept(cli, old_hub_cache, hub_server, state_dir):
    """A partial re-download under the new id: its blob stays, the rest is added."""
    from huggingface_hub import hf_hub_download

    hub_server.aliases[NEW_GLM] = (GLM, False)  # the renamed repo: same history, new id
    kept = hf_hub_download(NEW_GLM, "model-00002-of-00002.safetensors", cache_dir=old_hub_cache)
    kept_inode = os.stat(kept).st_ino

    plan = migrate(cli, old_hub_cache, "--map", MAP, "--dry-run", "--json")
    entry = next(e for r in plan.json["result"]["rows"] for e in r["entries"] if e["new"] == NEW_GLM)
    kept_items = [i["target"] for i in entry["item_list"] if i["action"] == "keep"]
    assert os.path.realpath(kept) in kept_items
    assert [t for t in kept_items if "/blobs/" in t] == [os.path.realpath(kept)]

    assert migrate(cli, old_hub_cache, "--map", MAP, "--yes").exit_code == 0
    assert os.stat(kept).st_ino == kept_inode
    hub_server.reset_counters()
    path = hf_hub_download(
        NEW_GLM, "model-00001-of-00002.safetensors", cache_dir=old_hub_cache, local_files_only=True
    )
    assert Path(path).read_bytes() == repo_files(0)["model-00001-of-00002.safetensors"]
    assert_scan_clean(old_hub_cache, {GLM, CHATGLM, NEW_GLM, NEW_CHATGLM})
    assert hub_server.bytes_served() == 0


def test_copy_mode_copies_and_records_each_hash(cli, old_hub_cache, state_dir):
    from huggingface_hub import hf_hub_download

    result = migrate(cli, old_hub_cache, "--map", MAP, "--yes", "--copy")
    assert result.exit_code == 0, result.stderr
    new_blobs = folder(old_hub_cache, NEW_GLM) / "blobs"
    old_blobs = folder(old_hub_cache, GLM) / "blobs"
    for blob in new_blobs.iterdir():
        assert os.stat(blob).st_ino != os.stat(old_blobs / blob.name).st_ino
        assert blob.read_bytes() == (old_blobs / blob.name).read_bytes()
    journal = [json.loads(line) for line in (state_dir / "migrate-cache.jsonl").read_text().splitlines()]
    copied = {r["target"]: r["sha256"] for r in journal if r["t"] == "copied"}
    shard = new_blobs / next(n for n in os.listdir(new_blobs) if len(n) == 64)
    assert copied[str(shard)] == shard.name  # LFS blobs are named by their sha256
    hf_hub_download(NEW_GLM, "config.json", cache_dir=old_hub_cache, local_files_only=True)
    assert_scan_clean(old_hub_cache, {GLM, CHATGLM, NEW_GLM, NEW_CHATGLM})


def test_into_a_cache_on_another_filesystem_copies_and_verifies(cli, old_hub_cache, state_dir):
    from huggingface_hub import hf_hub_download, snapshot_download

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(old_hub_cache).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than tmp_path")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as other:
        target = Path(other) / "hub"
        plan = migrate(cli, old_hub_cache, "--map", MAP, "--to-hub-cache", target, "--dry-run", "--json")
        assert {e["method"] for r in plan.json["result"]["rows"] for e in r["entries"]} == {"copy"}
        result = migrate(cli, old_hub_cache, "--map", MAP, "--to-hub-cache", target, "--yes")
        assert result.exit_code == 0, result.stderr
        path = hf_hub_download(
            NEW_GLM, "model-00001-of-00002.safetensors", cache_dir=target, local_files_only=True
        )
        assert Path(path).read_bytes() == repo_files(0)["model-00001-of-00002.safetensors"]
        snapshot_download(NEW_CHATGLM, cache_dir=target, local_files_only=True)
        assert_scan_clean(target, {NEW_GLM, NEW_CHATGLM})
        assert_scan_clean(old_hub_cache, {GLM, CHATGLM})  # the source cache is left as it was


def test_two_old_ids_onto_one_new_id_with_other_content_are_refused(
    cli, old_hub_cache, hub_server, state_dir
):
    from huggingface_hub import snapshot_download

    hub_server.add_repo("THUDM-legacy/glm-4-9b-chat", repo_files(7))  # same names, other bytes
    snapshot_download("THUDM-legacy/glm-4-9b-chat", cache_dir=old_hub_cache)
    before = snapshot_tree(old_hub_cache)

    result = migrate(cli, old_hub_cache, "--map", MAP, "--map", "THUDM-legacy/=zai-org/{name}", "--yes")
    assert result.exit_code == 2
    assert "map here, with different content" in result.stderr
    assert snapshot_tree(old_hub_cache) == before  # nothing touched


def test_two_old_ids_with_the_same_content_merge(cli, old_hub_cache, hub_server, state_dir):
    from huggingface_hub import snapshot_download

    hub_server.aliases["THUDM-legacy/glm-4-9b-chat"] = (GLM, False)  # the very same repo, another old id
    snapshot_download("THUDM-legacy/glm-4-9b-chat", cache_dir=old_hub_cache)
    result = migrate(cli, old_hub_cache, "--map", MAP, "--map", "THUDM-legacy/=zai-org/{name}", "--yes")
    assert result.exit_code == 0, result.stderr
    snapshot_download(NEW_GLM, cache_dir=old_hub_cache, local_files_only=True)
    assert_scan_clean(old_hub_cache, {GLM, CHATGLM, "THUDM-legacy/glm-4-9b-chat", NEW_GLM, NEW_CHATGLM})


def test_symlinks_out_of_the_cache_root_are_refused(cli, old_hub_cache, tmp_path, state_dir):
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    snapshot = next((folder(old_hub_cache, GLM) / "snapshots").iterdir())
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(outside)

    result = migrate(cli, old_hub_cache, "--map", MAP, "--yes", "--json")
    assert result.exit_code == 2
    assert "points out of the cache root" in result.json["error"]["message"]
    assert not folder(old_hub_cache, NEW_GLM).exists()
    assert not folder(old_hub_cache, NEW_CHATGLM).exists()  # the whole run is refused


def test_a_download_in_progress_is_refused(cli, old_hub_cache, state_dir):
    lock = next((old_hub_cache / ".locks" / folder(old_hub_cache, GLM).name).iterdir())
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what huggingface_hub holds while it downloads
        result = migrate(cli, old_hub_cache, "--map", MAP, "--yes")
    finally:
        os.close(fd)
    assert result.exit_code == 2
    assert "in progress" in result.stderr
    assert not folder(old_hub_cache, NEW_GLM).exists()


def test_prune_old_removes_old_entries_after_verifying(cli, old_hub_cache, hub_server, state_dir):
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    result = migrate(cli, old_hub_cache, "--map", MAP, "--yes", "--prune-old")
    assert result.exit_code == 0, result.stderr
    assert not folder(old_hub_cache, GLM).exists()
    assert not (old_hub_cache / ".locks" / folder(old_hub_cache, GLM).name).exists()
    assert_scan_clean(old_hub_cache, {NEW_GLM, NEW_CHATGLM})
    snapshot_download(NEW_GLM, cache_dir=old_hub_cache, local_files_only=True)
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(GLM, "config.json", cache_dir=old_hub_cache, local_files_only=True)
    for blob in (folder(old_hub_cache, NEW_GLM) / "blobs").iterdir():
        assert blob.stat().st_nlink == 1  # the old names are gone, the bytes are not
    assert hub_server.bytes_served() == 0


def test_prune_keeps_the_old_entries_when_a_copy_no_longer_verifies(cli, old_hub_cache, state_dir):
    assert migrate(cli, old_hub_cache, "--map", MAP, "--yes", "--copy").exit_code == 0
    blobs = folder(old_hub_cache, NEW_GLM) / "blobs"
    shard = blobs / next(n for n in os.listdir(blobs) if len(n) == 64)
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # bit rot: same size, same mtime, other bytes; only a hash notices
    stat = shard.stat()
    os.chmod(shard, 0o644)
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    result = migrate(cli, old_hub_cache, "--map", MAP, "--yes", "--copy", "--prune-old")
    assert result.exit_code == 1
    assert "sha256" in result.stdout + result.stderr
    assert folder(old_hub_cache, GLM).is_dir()
    assert folder(old_hub_cache, CHATGLM).is_dir()  # nothing pruned at all


def test_blobs_in_the_shared_store_stay_shared(cli, old_hub_cache, state_dir):
    """hf >= 2.x may keep a repo's blob as a symlink into <cache>/blobs/<xx>/<hash>."""
    from huggingface_hub import hf_hub_download, scan_cache_dir

    store = old_hub_cache / "blobs"
    store.mkdir()
    (store / ".huggingface-shared-blobs").write_text("1\n")
    old_blobs = folder(old_hub_cache, GLM) / "blobs"
    name = next(n for n in os.listdir(old_blobs) if len(n) == 64)
    xet = "ab" + "c" * 62
    (store / "ab").mkdir()
    os.replace(old_blobs / name, store / "ab" / xet)
    (old_blobs / name).symlink_to(os.path.relpath(store / "ab" / xet, old_blobs))
    (store / "ab" / f"{xet}.refs").write_text(f"{folder(old_hub_cache, GLM).name}/blobs/{name}\n")

    assert migrate(cli, old_hub_cache, "--map", MAP, "--yes").exit_code == 0
    new_blob = folder(old_hub_cache, NEW_GLM) / "blobs" / name
    assert new_blob.is_symlink() and os.path.realpath(new_blob) == str((store / "ab" / xet).resolve())
    refs = (store / "ab" / f"{xet}.refs").read_text().splitlines()
    assert f"{folder(old_hub_cache, NEW_GLM).name}/blobs/{name}" in refs
    assert scan_cache_dir(old_hub_cache).warnings == []
    snapshot = next((folder(old_hub_cache, GLM) / "snapshots").iterdir())
    shard = next(p.name for p in snapshot.iterdir() if os.path.basename(os.readlink(p)) == name)
    path = hf_hub_download(NEW_GLM, shard, cache_dir=old_hub_cache, local_files_only=True)
    assert os.readlink(path) == f"../../blobs/{name}"  # the same layout hf writes: snapshot -> repo blob


def test_dataset_folders_and_unfinished_downloads(cli, hf_cache, state_dir):
    """datasets-- folders move like models--; an *.incomplete partial download comes along."""
    from huggingface_hub import hf_hub_download, scan_cache_dir

    repo = hf_cache / "datasets--THUDM--LongBench"
    commit = "a" * 40
    blob = repo / "blobs" / ("b" * 40)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"rows\n")
    (repo / "blobs" / ("c" * 64 + ".incomplete")).write_bytes(b"half")
    link = repo / "snapshots" / commit / "data.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    assert migrate(cli, hf_cache, "--map", MAP, "--yes").exit_code == 0
    path = hf_hub_download(
        "zai-org/LongBench", "data.jsonl", repo_type="dataset", cache_dir=hf_cache, local_files_only=True
    )
    assert Path(path).read_bytes() == b"rows\n"
    new = hf_cache / "datasets--zai-org--LongBench"
    assert (new / "blobs" / ("c" * 64 + ".incomplete")).read_bytes() == b"half"
    assert scan_cache_dir(hf_cache).warnings == []


def test_an_unrelated_existing_target_is_refused_not_merged(cli, old_hub_cache, hub_server, state_dir):
    """`--map THUDM/glm-4-9b-chat=org/big` onto another repo's folder: exit 2, nothing touched."""
    from huggingface_hub import snapshot_download

    hub_server.add_repo("org/big", repo_files(9))
    snapshot_download("org/big", cache_dir=old_hub_cache)
    before = snapshot_tree(old_hub_cache)

    result = migrate(cli, old_hub_cache, "--map", f"{GLM}=org/big", "--yes")

    assert result.exit_code == 2, result.stdout + result.stderr
    assert "already exists with other content" in " ".join(result.stderr.split())
    assert snapshot_tree(old_hub_cache) == before
