"""Mirrors with less metadata, `--allow-unverified`, `--dry-run`, repeated `--endpoint`: the real CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autoglm_cli.hf_paths import repo_folder_name
from autoglm_cli.testing.hub_server import HubServer

from .conftest import FAKE_REPO, SHARD1, SHARD2


def serve(fake_files, **mode) -> HubServer:
    server = HubServer(**mode)
    server.add_repo(FAKE_REPO, fake_files)
    return server


def fetch(cli, *args):
    return cli("--json", "fetch-weights", FAKE_REPO, *args)


@pytest.mark.parametrize(
    "mode",
    [{"names_only": True}, {"names_only": True, "tree_api": False}],
    ids=["tree-api", "head-only"],
)
def test_a_mirror_with_names_only_is_verified_through_the_tree_or_the_heads(
    cli, fake_files, hf_cache, fast_env, mode
):
    from huggingface_hub import snapshot_download

    with serve(fake_files, **mode) as endpoint:
        result = fetch(cli, "--endpoint", endpoint, "--cache-dir", hf_cache, "--connections", "4")
    assert result.exit_code == 0, result.stderr
    files = {f["path"]: f for f in result.json["result"]["sources"][0]["files"]}
    assert files[SHARD1]["sha256"] == hashlib.sha256(fake_files[SHARD1]).hexdigest()
    assert files[SHARD1]["connections"] == 4  # the size came from the tree or the HEAD: ranges
    assert all(f["verified"] for f in files.values())
    blobs = hf_cache / repo_folder_name(FAKE_REPO) / "blobs"
    assert (blobs / hashlib.sha256(fake_files[SHARD2]).hexdigest()).is_file()  # named by the sha256
    if mode.get("tree_api", True):  # a full listing: huggingface_hub trusts the snapshot offline
        snapshot = snapshot_download(FAKE_REPO, cache_dir=hf_cache, local_files_only=True)
        assert Path(snapshot, SHARD1).read_bytes() == fake_files[SHARD1]


def test_the_head_path_asks_each_file_once(cli, fake_files, hf_cache, fast_env):
    server = serve(fake_files, names_only=True, tree_api=False)
    with server as endpoint:
        assert fetch(cli, "--endpoint", endpoint, "--cache-dir", hf_cache).exit_code == 0
        heads = server.requests_for(kind="head")
    assert sorted(r.file for r in heads) == sorted(fake_files)


def test_no_hash_anywhere_is_refused_with_exit_1_unless_allowed(cli, fake_files, hf_cache, fast_env):
    with serve(fake_files, names_only=True, tree_api=False, hash_headers=False) as endpoint:
        refused = fetch(cli, "--endpoint", endpoint, "--cache-dir", hf_cache)
        assert refused.exit_code == 1
        error = refused.json["error"]
        assert "no hash is known" in error["message"] and "--allow-unverified" in error["remedy"]
        assert "Traceback" not in refused.stdout + refused.stderr
        assert not list(hf_cache.rglob("blobs/*"))  # nothing downloaded

        allowed = fetch(cli, "--endpoint", endpoint, "--cache-dir", hf_cache, "--allow-unverified")
    assert allowed.exit_code == 0, allowed.stderr
    files = {f["path"]: f for f in allowed.json["result"]["sources"][0]["files"]}
    assert not files[SHARD1]["verified"]
    snapshot = Path(allowed.json["result"]["sources"][0]["destination"])
    assert (snapshot / SHARD1).read_bytes() == fake_files[SHARD1]


def test_dry_run_lists_sizes_cache_state_and_bytes_to_download_and_writes_nothing(
    cli, fake_hub, fake_files, hf_cache, fast_env
):
    before = fetch(cli, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache, "--dry-run")
    assert before.exit_code == 0, before.stderr
    plan = before.json["result"]
    assert plan["dry_run"] and plan["bytes_to_download"] == sum(len(v) for v in fake_files.values())
    assert {f["path"]: f["size"] for f in plan["sources"][0]["files"]} == {
        k: len(v) for k, v in fake_files.items()
    }
    assert {f["state"] for f in plan["sources"][0]["files"]} == {"missing"}
    assert not list(hf_cache.iterdir())
    assert fake_hub.bytes_served() == 0

    assert (
        fetch(cli, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache, "--include", SHARD1).exit_code
        == 0
    )
    after = fetch(cli, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache, "--dry-run")
    files = {f["path"]: f for f in after.json["result"]["sources"][0]["files"]}
    assert files[SHARD1]["state"] == "cached" and files[SHARD1]["to_download"] == 0
    assert after.json["result"]["bytes_to_download"] == sum(
        len(v) for k, v in fake_files.items() if k != SHARD1
    )

    human = cli(
        "fetch-weights", FAKE_REPO, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache, "--dry-run"
    )
    assert human.exit_code == 0 and "to download" in human.stdout and "dry run" in human.stdout


def test_repeated_endpoint_skips_a_dead_one_and_reports_the_origin(cli, fake_files, hf_cache, fast_env):
    from autoglm_cli.testing.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with serve(fake_files) as endpoint:
        result = fetch(
            cli, "--endpoint", dead, "--endpoint", endpoint, "--cache-dir", hf_cache, "--connections", "2"
        )
    assert result.exit_code == 0, result.stderr
    shard = next(f for f in result.json["result"]["sources"][0]["files"] if f["path"] == SHARD1)
    assert shard["connections"] == 2 and [o["endpoint"] for o in shard["origins"]] == [endpoint]


def test_hf_endpoint_still_names_the_mirror(cli, fake_hub, fake_files, hf_cache, fast_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    result = cli("--json", "fetch-weights", FAKE_REPO, "--cache-dir", hf_cache)
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["sources"][0]["endpoint"] == fake_hub.endpoint


def test_hub_server_range_checks(fake_hub, fake_files):
    import requests

    url = fake_hub.resolve_url(FAKE_REPO, "config.json")
    size = len(fake_files["config.json"])
    assert (
        requests.get(url, headers={"Range": "bytes=2-5"}, timeout=10).content
        == fake_files["config.json"][2:6]
    )
    assert (
        requests.get(url, headers={"Range": "bytes=-3"}, timeout=10).content == fake_files["config.json"][-3:]
    )
    for bad in ("bytes=5-2", f"bytes={size}-", "bytes=x-", "bytes=0-1,4-5", "items=0-1"):
        assert requests.get(url, headers={"Range": bad}, timeout=10).status_code == 416, bad


def test_a_stall_on_the_only_endpoint_is_retried_from_that_byte(
    cli, fake_files, hf_cache, fast_env, monkeypatch
):
    monkeypatch.setenv("AUTOGLM_WEIGHTS__STALL_TIMEOUT", "0.5")
    server = serve(fake_files)
    size = len(fake_files[SHARD1])
    with server as endpoint:
        server.inject(SHARD1, times=None, stall_at=size // 2, stall_s=30)
        result = cli("fetch-weights", FAKE_REPO, "--endpoint", endpoint, "--cache-dir", hf_cache,
                     "--connections", "4", "--include", SHARD1)  # fmt: skip
        served = server.bytes_served(SHARD1)
        server.stopping.set()  # release the stalled handler
    assert result.exit_code == 0, result.stderr
    assert "no byte for 0.5s" in result.stderr
    assert served == size  # the retry asked for the bytes after the stall only


def test_the_only_endpoint_going_down_is_exit_3_and_the_next_run_resumes(cli, fake_files, hf_cache, fast_env):
    server = serve(fake_files)
    size = len(fake_files[SHARD1])
    with server as endpoint:
        fault = server.inject(SHARD1, times=None, down_after=size // 2)
        args = ("--endpoint", endpoint, "--cache-dir", hf_cache, "--connections", "4", "--include", SHARD1)
        failed = fetch(cli, *args)
        assert failed.exit_code == 3, failed.stdout
        assert (
            "resumes" in failed.json["error"]["remedy"] and "Traceback" not in failed.stdout + failed.stderr
        )
        assert list(hf_cache.rglob("*.partial")) and not list(hf_cache.rglob("snapshots/*/" + SHARD1))
        server.faults.remove(fault)
        first = server.bytes_served(SHARD1)
        again = fetch(cli, *args)
    assert again.exit_code == 0, again.stdout
    shard = again.json["result"]["sources"][0]["files"][0]
    assert shard["status"] == "resumed" and shard["bytes_reused"] + shard["bytes_fetched"] == size
    assert first + shard["bytes_fetched"] <= size + 4 * 1024 * 1024  # only the sockets' contents twice
