"""`fetch-weights` end to end: the real CLI, the real local Hub, huggingface_hub reading the result."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from autoglm_cli.hf_paths import repo_folder_name
from autoglm_cli.ops.weights import fetch as fetch_mod
from tests.fixtures.hub import TINY_OLD_REPO, TINY_REPO

from .conftest import FAKE_REPO, SHARD1, SHARD2


def fetch(cli, hub, *args):
    return cli("--json", "fetch-weights", *args, "--endpoint", hub.endpoint)


def test_old_id_lands_in_the_cache_under_the_new_one_and_huggingface_hub_finds_it(
    cli, tiny_hub, tiny_model_dir, hf_cache, fast_env
):
    from huggingface_hub import snapshot_download

    result = fetch(cli, tiny_hub, TINY_OLD_REPO, "--cache-dir", hf_cache)
    assert result.exit_code == 0, result.stderr
    doc = result.json["result"]
    source = doc["sources"][0]
    assert source["repo_id"] == TINY_REPO and source["renamed_from"] == TINY_OLD_REPO
    assert "now" in result.stderr  # the warning about the rename
    assert doc["files"] == len(list(tiny_model_dir.iterdir()))
    assert doc["bytes_fetched"] == sum(p.stat().st_size for p in tiny_model_dir.iterdir())

    snapshot = snapshot_download(TINY_REPO, cache_dir=hf_cache, local_files_only=True)
    assert snapshot == source["destination"]
    for path in tiny_model_dir.iterdir():
        cached = os.path.join(snapshot, path.name)
        assert os.path.islink(cached) and not os.path.isabs(os.readlink(cached))
        assert Path(cached).read_bytes() == path.read_bytes()
    assert (hf_cache / repo_folder_name(TINY_REPO) / "refs" / "main").read_text() == source["commit"]
    blob = hashlib.sha256((tiny_model_dir / SHARD1).read_bytes()).hexdigest()
    assert (hf_cache / repo_folder_name(TINY_REPO) / "blobs" / blob).is_file()


@pytest.mark.transformers
def test_the_model_loads_and_generates_from_the_fetched_cache(cli, tiny_hub, hf_cache, fast_env, monkeypatch):
    pytest.importorskip("transformers")
    assert fetch(cli, tiny_hub, TINY_REPO, "--cache-dir", hf_cache).exit_code == 0
    tiny_hub.stop()  # nothing may come from the network now
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_REPO, cache_dir=hf_cache, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(TINY_REPO, cache_dir=hf_cache, local_files_only=True)
    inputs = tokenizer("Hello, how can I help", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8


def test_second_run_reuses_everything_and_transfers_nothing(cli, fake_hub, fake_files, hf_cache, fast_env):
    assert fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache).exit_code == 0
    fake_hub.reset_counters()
    again = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    assert again.exit_code == 0
    assert again.json["result"]["bytes_fetched"] == 0
    assert again.json["result"]["bytes_reused"] == sum(len(v) for v in fake_files.values())
    assert {f["status"] for f in again.json["result"]["sources"][0]["files"]} == {"reused"}
    assert fake_hub.bytes_served() == 0


def test_a_corrupted_blob_in_the_cache_is_fetched_again(cli, fake_hub, fake_files, hf_cache, fast_env):
    first = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    blob = next(f["destination"] for f in first.json["result"]["sources"][0]["files"] if f["path"] == SHARD2)
    with open(blob, "r+b") as fh:
        fh.write(b"rot")
    fake_hub.reset_counters()
    again = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    assert again.exit_code == 0
    assert Path(blob).read_bytes() == fake_files[SHARD2]
    assert fake_hub.bytes_served() == len(fake_files[SHARD2])


def test_interrupted_run_resumes_with_only_the_missing_bytes(
    cli, fake_hub, fake_files, hf_cache, monkeypatch
):
    monkeypatch.setenv("AUTOGLM_RETRY__TRIES", "1")  # the first run gives up at the first drop
    fake_hub.inject(SHARD1, drop_after=6 * 1024 * 1024)
    failed = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    assert failed.exit_code == 3 and failed.json["error"]["type"] == "NetworkError"
    snapshot_link = hf_cache / repo_folder_name(FAKE_REPO) / "snapshots"
    assert not any(p.name == SHARD1 for p in snapshot_link.rglob("*"))  # nothing half-written is linked

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError

    with pytest.raises(IncompleteSnapshotError):  # huggingface_hub itself knows the snapshot is not complete
        snapshot_download(FAKE_REPO, cache_dir=hf_cache, local_files_only=True)

    fake_hub.reset_counters()
    resumed = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    assert resumed.exit_code == 0
    assert fake_hub.bytes_served(SHARD1) == len(fake_files[SHARD1]) - 6 * 1024 * 1024
    shard = next(f for f in resumed.json["result"]["sources"][0]["files"] if f["path"] == SHARD1)
    assert shard["status"] == "resumed" and shard["bytes_reused"] == 6 * 1024 * 1024
    snapshot_download(FAKE_REPO, cache_dir=hf_cache, local_files_only=True)


def test_include_and_exclude_select_files(cli, fake_hub, hf_cache, fast_env):
    from huggingface_hub import snapshot_download

    result = fetch(
        cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache, "--include", "*.json", "--exclude", "tok*"
    )
    assert result.exit_code == 0
    names = sorted(f["path"] for f in result.json["result"]["sources"][0]["files"])
    assert names == ["config.json", "model.safetensors.index.json"]
    assert fake_hub.bytes_served(SHARD1) == 0
    path = snapshot_download(
        FAKE_REPO, cache_dir=hf_cache, local_files_only=True, allow_patterns="*.json", ignore_patterns="tok*"
    )
    assert sorted(os.listdir(path)) == names
    nothing = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache, "--include", "*.gguf")
    assert nothing.exit_code == 2


def test_local_dir_is_recognised_by_huggingface_hub(cli, fake_hub, fake_files, tmp_path, hf_cache, fast_env):
    from huggingface_hub import snapshot_download

    target = tmp_path / "model"
    assert fetch(cli, fake_hub, FAKE_REPO, "--local-dir", target).exit_code == 0
    for name, data in fake_files.items():
        assert (target / name).read_bytes() == data
    fake_hub.reset_counters()
    # huggingface_hub, online, sees the files as up to date and downloads nothing.
    snapshot_download(FAKE_REPO, local_dir=target, endpoint=fake_hub.endpoint)
    assert fake_hub.bytes_served() == 0


def test_not_enough_disk_space_fails_with_both_numbers_unless_forced(
    cli, fake_hub, fake_files, hf_cache, fast_env, monkeypatch
):
    real = fetch_mod.shutil.disk_usage

    def tiny_disk(path):
        usage = real(path)
        return usage._replace(free=1000)

    monkeypatch.setattr(fetch_mod.shutil, "disk_usage", tiny_disk)
    refused = fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache)
    assert refused.exit_code == 3
    needed = sum(len(v) for v in fake_files.values())
    assert f"{needed} > 1000 bytes" in refused.json["error"]["message"]
    assert fake_hub.bytes_served() == 0
    assert fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache, "--force").exit_code == 0


def test_private_repo_uses_hf_token_and_never_prints_it(cli, hub_server, fake_files, hf_cache, monkeypatch):
    token = "hf_ThisIsASecretTokenValue123"
    hub_server.token = token
    hub_server.add_repo("org/private", fake_files, private=True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_cache.parent / "no-token-here"))
    denied = cli("fetch-weights", "org/private", "--endpoint", hub_server.endpoint, "--cache-dir", hf_cache)
    assert denied.exit_code == 2 and "private" in denied.stderr

    monkeypatch.setenv("HF_TOKEN", token)
    hub_server.reset_counters()
    for args in (["--json"], ["--verbose"]):
        result = cli(
            *args, "fetch-weights", "org/private", "--endpoint", hub_server.endpoint, "--cache-dir", hf_cache
        )
        assert result.exit_code == 0, result.stderr
        assert token not in result.stdout + result.stderr
    # The token went to the Hub, never to the CDN that serves the LFS files.
    cdn = [r for r in hub_server.requests if r.path.startswith("/lfs/")]
    assert cdn and not any(r.authorization for r in cdn)
    assert all(r.authorization for r in hub_server.requests if r.kind == "api")


def test_configured_endpoints_are_tried_in_order(cli, fake_hub, hf_cache, fast_env, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    (tmp_path / "autoglm.yaml").write_text(
        f"weights:\n  endpoints: ['{dead}', '{fake_hub.endpoint}']\nretry: {{tries: 1}}\n"
    )
    result = cli("fetch-weights", FAKE_REPO, "--cache-dir", hf_cache)
    assert result.exit_code == 0, result.stderr
    assert "trying the next endpoint" in " ".join(result.stderr.split())


def test_moves_map_renames_before_asking(cli, fake_hub, hf_cache, fast_env, tmp_path):
    (tmp_path / "autoglm.yaml").write_text("moves:\n  THUDM: zai-org\n")
    result = fetch(cli, fake_hub, "THUDM/fake-glm", "--cache-dir", hf_cache)
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["sources"][0]["repo_id"] == FAKE_REPO
    assert (hf_cache / repo_folder_name(FAKE_REPO)).is_dir()
    assert not (hf_cache / repo_folder_name("THUDM/fake-glm")).exists()


def test_default_and_backup_models_from_config(cli, fake_hub, hub_server, hf_cache, fast_env, tmp_path):
    hub_server.add_repo("zai-org/backup-glm", {"config.json": b"{}"})
    (tmp_path / "autoglm.yaml").write_text(
        "model_pool: {default: glm, backup: backup}\n"
        "models:\n"
        f"  glm: {{source: {FAKE_REPO}}}\n"
        "  backup: {source: zai-org/backup-glm}\n"
    )
    result = fetch(cli, fake_hub)
    assert result.exit_code == 0, result.stderr
    assert [s["repo_id"] for s in result.json["result"]["sources"]] == [FAKE_REPO, "zai-org/backup-glm"]
    unknown = cli("--config", os.devnull, "fetch-weights")  # default model chatglm3-6b has no source
    assert unknown.exit_code == 2 and "models.chatglm3-6b.source" in unknown.stderr


def test_unknown_repo_and_revision_are_usage_errors(cli, fake_hub, hf_cache, fast_env):
    missing = fetch(cli, fake_hub, "zai-org/nope", "--cache-dir", hf_cache)
    assert missing.exit_code == 2 and "not found" in missing.json["error"]["message"]
    bad_rev = fetch(cli, fake_hub, FAKE_REPO, "--revision", "v9", "--cache-dir", hf_cache)
    assert bad_rev.exit_code == 2 and "v9" in bad_rev.json["error"]["message"]
    not_an_id = fetch(cli, fake_hub, "just a name", "--cache-dir", hf_cache)
    assert not_an_id.exit_code == 2


def test_plain_url_with_sha256_manifest(cli, hub_server, tmp_path, fast_env):
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    url = hub_server.add_file("resnet50.pth", data)
    hub_server.add_file("resnet50.pth.sha256", f"{digest}  /build/out/resnet50.pth\n".encode())
    result = cli("--json", "fetch-weights", url, "--local-dir", tmp_path / "w")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "w" / "resnet50.pth").read_bytes() == data
    assert result.json["result"]["sources"][0]["files"][0]["sha256"] == digest


def test_plain_url_with_a_wrong_sha256_never_reaches_its_path(cli, hub_server, tmp_path, fast_env):
    url = hub_server.add_file("model.bin", os.urandom(50_000))
    result = cli("--json", "fetch-weights", url, "--sha256", "a" * 64, "--local-dir", tmp_path)
    assert result.exit_code == 1
    assert "a" * 64 in result.json["error"]["message"]
    assert not (tmp_path / "model.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_plain_url_without_any_sha256_is_refused(cli, hub_server, tmp_path, fast_env):
    url = hub_server.add_file("weights.bin", b"x" * 10)
    result = cli("fetch-weights", url, "--local-dir", tmp_path)
    assert result.exit_code == 2 and "--sha256" in result.stderr
    assert hub_server.bytes_served("weights.bin") == 0


def test_human_output_has_a_table_and_a_summary(cli, fake_hub, hf_cache, fast_env):
    result = cli("fetch-weights", FAKE_REPO, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache)
    assert result.exit_code == 0
    assert SHARD1[:20] in result.stdout and "6 files" in result.stdout and "fetched" in result.stdout


def test_blobs_under_the_old_repo_id_are_reused_not_downloaded(
    cli, hub_server, fake_files, hf_cache, fast_env
):
    # An old cache, filled when the repo was still THUDM/... (huggingface_hub wrote it).
    from huggingface_hub import snapshot_download

    hub_server.add_repo("THUDM/fake-glm", fake_files)
    snapshot_download("THUDM/fake-glm", cache_dir=hf_cache, endpoint=hub_server.endpoint)
    old_blob = (
        hf_cache
        / repo_folder_name("THUDM/fake-glm")
        / "blobs"
        / hashlib.sha256(fake_files[SHARD1]).hexdigest()
    )
    with open(old_blob, "r+b") as fh:  # one old blob went bad on disk: that one is fetched, not adopted
        fh.write(b"bad")
    hub_server.add_repo(FAKE_REPO, fake_files)
    hub_server.reset_counters()

    result = fetch(cli, hub_server, FAKE_REPO, "--cache-dir", hf_cache)
    assert result.exit_code == 0, result.stderr
    statuses = {f["path"]: f["status"] for f in result.json["result"]["sources"][0]["files"]}
    assert statuses[SHARD1] == "fetched" and statuses[SHARD2] == "reused"
    assert hub_server.bytes_served() == len(fake_files[SHARD1])
    new_blob = (
        hf_cache / repo_folder_name(FAKE_REPO) / "blobs" / hashlib.sha256(fake_files[SHARD2]).hexdigest()
    )
    old_twin = hf_cache / repo_folder_name("THUDM/fake-glm") / "blobs" / new_blob.name
    assert new_blob.stat().st_ino == old_twin.stat().st_ino  # a hard link: no second copy on disk
    assert Path(result.json["result"]["sources"][0]["destination"], SHARD2).read_bytes() == fake_files[SHARD2]


def test_hf_hub_offline_checks_the_cache_without_the_network(
    cli, fake_hub, fake_files, hf_cache, fast_env, monkeypatch
):
    assert fetch(cli, fake_hub, FAKE_REPO, "--cache-dir", hf_cache).exit_code == 0
    fake_hub.stop()  # no network from here on
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ok = cli("--json", "fetch-weights", FAKE_REPO, "--cache-dir", hf_cache)
    assert ok.exit_code == 0, ok.stdout
    assert ok.json["result"]["bytes_reused"] == sum(len(v) for v in fake_files.values())

    blob = hf_cache / repo_folder_name(FAKE_REPO) / "blobs" / hashlib.sha256(fake_files[SHARD2]).hexdigest()
    with open(blob, "r+b") as fh:
        fh.write(b"rot")
    damaged = cli("--json", "fetch-weights", FAKE_REPO, "--cache-dir", hf_cache)
    assert damaged.exit_code == 3 and SHARD2 in damaged.json["error"]["message"]
    unknown = cli("--json", "fetch-weights", "zai-org/never-fetched", "--cache-dir", hf_cache)
    assert unknown.exit_code == 2 and "HF_HUB_OFFLINE" in unknown.json["error"]["message"]
