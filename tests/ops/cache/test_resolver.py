"""The resolver the runtime uses: new name first, old name as fallback, optional backfill."""

from __future__ import annotations

import os

from autoglm_cli.config import parse_config
from autoglm_cli.ops.cache.mapping import MappingRow, MappingTable
from autoglm_cli.ops.cache.resolver import CacheResolver
from tests.ops.cache.conftest import GLM, NEW_GLM, folder, repo_files

TABLE = MappingTable.build([MappingRow("THUDM/", "zai-org/{name}")])


def test_before_migration_the_old_folder_answers(old_hub_cache):
    resolver = CacheResolver(TABLE, hub_cache=old_hub_cache)
    for asked in (GLM, NEW_GLM):  # the runtime may ask with either name
        found = resolver.hub_file(asked, "config.json")
        assert found is not None and found.via == "old" and found.repo_id == GLM
        assert found.path.read_bytes() == repo_files(0)["config.json"]
    snap = resolver.snapshot(NEW_GLM)
    assert snap.via == "old" and sorted(os.listdir(snap.path)) == sorted(repo_files(0))
    assert resolver.hub_file(NEW_GLM, "no-such-file.json") is None
    assert not folder(old_hub_cache, NEW_GLM).exists()  # without backfill nothing is written


def test_after_migration_the_new_folder_answers_first(cli, old_hub_cache, state_dir):
    cli("migrate-cache", "--hub-cache", old_hub_cache, "--map", "THUDM/=zai-org/{name}", "--yes")
    found = CacheResolver(TABLE, hub_cache=old_hub_cache).hub_file(GLM, "model-00001-of-00002.safetensors")
    assert found.via == "new" and found.repo_id == NEW_GLM
    assert folder(old_hub_cache, NEW_GLM).name in str(found.path)


def test_backfill_builds_the_new_folder_from_hard_links(old_hub_cache, hub_server):
    from huggingface_hub import scan_cache_dir, snapshot_download

    resolver = CacheResolver(TABLE, hub_cache=old_hub_cache, backfill=True)
    found = resolver.hub_file(NEW_GLM, "model-00002-of-00002.safetensors")
    assert found.via == "new" and found.backfilled
    old = CacheResolver(TABLE, hub_cache=old_hub_cache).hub_file(GLM, "model-00002-of-00002.safetensors")
    assert found.path.stat().st_ino == old.path.resolve().stat().st_ino
    snapshot_download(NEW_GLM, cache_dir=old_hub_cache, local_files_only=True)
    assert scan_cache_dir(old_hub_cache).warnings == []
    assert hub_server.bytes_served() == 0


def test_directory_caches_resolve_new_first(tmp_path):
    root = tmp_path / "cache"
    (root / "user:7").mkdir(parents=True)
    (root / "user:7" / "a").write_text("A")
    table = MappingTable.build([MappingRow("user:", "profile/{id}", "dir")])
    plain = CacheResolver(table, root=root)
    assert plain.path("profile/7").via == "old"
    assert plain.path("profile/8") is None
    found = CacheResolver(table, root=root, backfill=True).path("user:7")
    assert found.via == "new" and found.backfilled
    assert (root / "profile" / "7" / "a").stat().st_ino == (root / "user:7" / "a").stat().st_ino
    assert plain.path("user:7").via == "new"


def test_from_config_reads_the_table_and_the_weights_cache(old_hub_cache):
    config = parse_config(
        f"weights: {{cache_dir: '{old_hub_cache}'}}\n"
        "cache_migrations:\n  - {old: 'THUDM/', new: 'zai-org/{name}'}\n"
    )
    found = CacheResolver.from_config(config).hub_file(NEW_GLM, "config.json")
    assert found.repo_id == GLM
