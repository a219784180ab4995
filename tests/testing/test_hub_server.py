"""The fake Hub speaks enough of the real API for huggingface_hub itself, and injects faults."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import requests

from autoglm_cli.testing.hub_server import HubServer, fake_model_files
from tests.fixtures.hub import TINY_OLD_REPO

SHARD = "model-00001-of-00002.safetensors"


@pytest.fixture
def fake_repo(hub_server):
    files = fake_model_files(shard_size=64 * 1024)
    hub_server.add_repo("org/fake", files)
    return hub_server, files


def test_snapshot_download_through_old_id_and_offline(tiny_hub, tiny_model_dir, hf_cache):
    from huggingface_hub import snapshot_download

    path = snapshot_download(TINY_OLD_REPO, cache_dir=hf_cache)
    for source in tiny_model_dir.iterdir():
        assert (hf_cache / path / source.name).read_bytes() == source.read_bytes()
    # The old id answered with redirects to the new one, as on the real Hub.
    assert any(r.status == 307 for r in tiny_hub.requests)
    assert snapshot_download(TINY_OLD_REPO, cache_dir=hf_cache, local_files_only=True) == path
    # The LFS shards came from the second ("CDN") listener, after a 302.
    assert {r.file for r in tiny_hub.requests_for(kind="content") if r.path.startswith("/lfs/")} == {
        SHARD,
        "model-00002-of-00002.safetensors",
    }


def test_metadata_matches_git_and_sha256(fake_repo, tmp_path):
    from huggingface_hub import HfApi

    server, files = fake_repo
    info = HfApi(endpoint=server.endpoint).model_info("org/fake", files_metadata=True)
    assert info.sha == server.repos["org/fake"].commit
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(files)
    assert siblings[SHARD].lfs.sha256 == hashlib.sha256(files[SHARD]).hexdigest()
    assert siblings[SHARD].lfs.size == len(files[SHARD])
    (tmp_path / "config.json").write_bytes(files["config.json"])
    git_oid = subprocess.run(
        ["git", "hash-object", str(tmp_path / "config.json")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert siblings["config.json"].blob_id == git_oid
    assert siblings["config.json"].lfs is None


def test_tree_listing_is_paginated(hub_server):
    from huggingface_hub import HfApi

    hub_server.page_size = 2
    files = fake_model_files(shard_size=1024) | {"sub/dir/extra.txt": b"x"}
    hub_server.add_repo("org/paged", files)
    listed = HfApi(endpoint=hub_server.endpoint).list_repo_tree("org/paged", recursive=True)
    paths = {f.path for f in listed if hasattr(f, "size")}
    assert paths == set(files)
    assert len(hub_server.requests_for(kind="api")) >= 4


def test_errors_map_to_huggingface_hub_exceptions(fake_repo, hf_cache):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    server, _ = fake_repo
    api = HfApi(endpoint=server.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/fake", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/fake", "nope.txt", endpoint=server.endpoint, cache_dir=hf_cache)


def test_range_requests_and_416(fake_repo):
    server, files = fake_repo
    url = server.resolve_url("org/fake", SHARD)
    whole = requests.get(url, timeout=10)
    assert whole.content == files[SHARD] and len(whole.history) == 1  # the 302 to the CDN
    part = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=10)
    assert part.status_code == 206 and part.content == files[SHARD][1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(files[SHARD]) - 1}/{len(files[SHARD])}"
    past = requests.get(url, headers={"Range": f"bytes={len(files[SHARD])}-"}, timeout=10)
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{len(files[SHARD])}"
    head = requests.head(url, timeout=10, allow_redirects=False)
    assert head.status_code == 302
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(files[SHARD]).hexdigest()}"'
    assert head.headers["X-Linked-Size"] == str(len(files[SHARD]))
    assert head.headers["X-Repo-Commit"] == server.repos["org/fake"].commit


def test_drop_counts_only_bytes_sent(fake_repo):
    server, files = fake_repo
    server.reset_counters()
    server.inject(SHARD, drop_after=5000)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.resolve_url("org/fake", SHARD), timeout=10).content  # noqa: B018
    assert server.bytes_served(SHARD) == 5000
    # The fault was used up: the next request gets the whole file.
    assert requests.get(server.resolve_url("org/fake", SHARD), timeout=10).content == files[SHARD]
    assert server.bytes_served(SHARD) == 5000 + len(files[SHARD])


def test_status_then_success_ignore_range_and_corrupt(fake_repo):
    server, files = fake_repo
    url = server.resolve_url("org/fake", SHARD)
    server.inject(SHARD, status=503, retry_after=2, times=2)
    first, second, third = (requests.get(url, timeout=10) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"], second.status_code) == (503, "2", 503)
    assert third.content == files[SHARD]

    server.inject(SHARD, ignore_range=True)
    ignored = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
    assert ignored.status_code == 200 and ignored.content == files[SHARD]

    server.inject(SHARD, corrupt=True, corrupt_at=7)
    bad = requests.get(url, timeout=10).content
    assert len(bad) == len(files[SHARD]) and bad != files[SHARD]
    assert [i for i, (a, b) in enumerate(zip(bad, files[SHARD], strict=True)) if a != b] == [7]


def test_slow_fault_still_serves_the_right_bytes(fake_repo):
    server, files = fake_repo
    server.inject("config.json", bytes_per_second=50_000)
    assert (
        requests.get(server.resolve_url("org/fake", "config.json"), timeout=10).content
        == files["config.json"]
    )


def test_private_repo_needs_the_token():
    server = HubServer(token="hf_secretsecretsecret")
    server.add_repo("org/private", {"a.txt": b"hello"}, private=True)
    with server:
        url = server.resolve_url("org/private", "a.txt")
        assert requests.get(url, timeout=10).status_code == 401
        ok = requests.get(url, headers={"Authorization": "Bearer hf_secretsecretsecret"}, timeout=10)
        assert ok.content == b"hello"


def test_static_files_and_counters(hub_server):
    url = hub_server.add_file("resnet50.pth", b"weights" * 100)
    assert requests.get(url, timeout=10).content == b"weights" * 100
    assert hub_server.bytes_served("resnet50.pth") == 700


def test_lfs_files_can_be_served_without_the_cdn_redirect(hf_cache):
    from huggingface_hub import hf_hub_download

    files = fake_model_files(shard_size=10_000)
    server = HubServer(lfs_via_cdn=False)
    server.add_repo("org/direct", files)
    with server:
        head = requests.head(server.resolve_url("org/direct", SHARD), timeout=10)
        assert head.status_code == 200 and head.headers["X-Linked-Size"] == str(len(files[SHARD]))
        path = hf_hub_download("org/direct", SHARD, endpoint=server.endpoint, cache_dir=hf_cache)
        assert Path(path).read_bytes() == files[SHARD]
