"""`verify --hf`: a fetched snapshot against the Hub's hashes; manifests for offline CI (real sha256sum)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from autoglm_cli.errors import ExitCode, IntegrityError
from autoglm_cli.ops.weights.fetch import FetchOptions, fetch_weights
from autoglm_cli.ops.weights.hub_verify import verify_hub, write_hub_manifest
from autoglm_cli.retry import RetryPolicy

from .conftest import FAKE_REPO, SHARD1, SHARD2


@pytest.fixture
def fetched(fake_hub, config, hf_cache, sleeps):
    options = FetchOptions(endpoint=fake_hub.endpoint, policy=RetryPolicy(sleep=sleeps))
    report = fetch_weights([(FAKE_REPO, None)], config=config, options=options)
    return report.sources[0].destination


def verify(hub, config, **kwargs):
    return verify_hub(FAKE_REPO, config=config, endpoint=hub.endpoint, **kwargs)


def test_a_fresh_snapshot_verifies_without_downloading(fake_hub, fetched, config):
    fake_hub.reset_counters()
    report = verify(fake_hub, config)
    assert report.exit_code == ExitCode.OK and report.root == str(fetched)
    assert report.counts["ok"] == 6 and report.source.startswith(f"hf://{FAKE_REPO}@")
    assert fake_hub.bytes_served() == 0  # small files matched their git sha1 locally


def test_mismatch_missing_and_extra_are_reported(fake_hub, fake_files, fetched, config):
    with open((fetched / SHARD1).resolve(), "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xfe")
    (fetched / "tokenizer.json").unlink()
    (fetched / "config.json").unlink()
    (fetched / "config.json").write_text("{}")  # a small file edited locally
    (fetched / "notes.txt").write_text("mine\n")
    report = verify(fake_hub, config, fail_on_extra=True)
    by_name = {r.name: r for r in report.files}
    assert by_name[SHARD1].status.value == "mismatch"
    assert by_name[SHARD1].expected == hashlib.sha256(fake_files[SHARD1]).hexdigest()
    assert by_name["tokenizer.json"].status.value == "missing"
    # The expected hash of a small file that differs is the Hub's own (downloaded to learn it).
    assert by_name["config.json"].status.value == "mismatch"
    assert by_name["config.json"].expected == hashlib.sha256(fake_files["config.json"]).hexdigest()
    assert by_name["notes.txt"].status.value == "extra"
    assert by_name[SHARD2].status.value == "ok"
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_local_dir_snapshot_ignores_huggingface_hub_bookkeeping(fake_hub, config, tmp_path, sleeps):
    options = FetchOptions(
        endpoint=fake_hub.endpoint, local_dir=tmp_path / "m", policy=RetryPolicy(sleep=sleeps)
    )
    fetch_weights([(FAKE_REPO, None)], config=config, options=options)
    report = verify(fake_hub, config, root=tmp_path / "m", fail_on_extra=True)
    assert report.exit_code == ExitCode.OK and report.counts["extra"] == 0


def test_manifest_from_hub_metadata_passes_real_sha256sum(fake_hub, fetched, config, tmp_path):
    manifest = tmp_path / "fake.sha256"
    report = write_hub_manifest(FAKE_REPO, manifest, config=config, endpoint=fake_hub.endpoint)
    assert report.files == 6 and report.fetched_small_files == 4  # the 4 git files were fetched to hash them
    check = subprocess.run(["sha256sum", "-c", str(manifest)], cwd=fetched, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 6
    with open((fetched / SHARD2).resolve(), "r+b") as fh:
        fh.write(b"bad")
    assert (
        subprocess.run(["sha256sum", "-c", str(manifest)], cwd=fetched, capture_output=True).returncode == 1
    )


def test_manifest_refuses_a_small_file_that_does_not_match_its_git_id(fake_hub, config, tmp_path):
    fake_hub.inject("config.json", corrupt=True, times=None)
    with pytest.raises(IntegrityError, match="git blob sha1"):
        write_hub_manifest(FAKE_REPO, tmp_path / "m.sha256", config=config, endpoint=fake_hub.endpoint)
    assert not (tmp_path / "m.sha256").exists()


def test_cli_verify_hf_and_write_manifest_round_trip(cli, fake_hub, fetched, hf_cache, tmp_path, fast_env):
    ok = cli("--json", "verify", "--hf", FAKE_REPO, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert ok.json["result"]["counts"]["ok"] == 6

    manifest = tmp_path / "ci.sha256"
    wrote = cli("verify", "--hf", FAKE_REPO, "--endpoint", fake_hub.endpoint, "--write-manifest", manifest)
    assert wrote.exit_code == 0 and manifest.is_file()
    offline = cli("--json", "verify", manifest, "--root", fetched)  # CI, later, without the Hub
    assert offline.exit_code == 0 and offline.json["result"]["counts"]["ok"] == 6

    with open((fetched / SHARD1).resolve(), "r+b") as fh:
        fh.write(b"x")
    bad = cli("verify", "--hf", FAKE_REPO, "--endpoint", fake_hub.endpoint, "--cache-dir", hf_cache)
    assert bad.exit_code == 1 and "mismatch" in bad.stdout
    assert cli("verify", manifest, "--root", fetched).exit_code == 1


def test_cli_hub_options_need_hf(cli, tmp_path):
    assert cli("verify", "--generate", tmp_path, "--revision", "v1").exit_code == 2
    assert cli("verify", "--hf", "org/x", "--generate", tmp_path).exit_code == 2


def test_incremental_trusts_unchanged_files_of_the_snapshot(fake_hub, fetched, config, monkeypatch, tmp_path):
    from autoglm_cli.ops.checksums import incremental

    monkeypatch.setenv("AUTOGLM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(incremental, "clock_ns", lambda: incremental.time.time_ns() + 60_000_000_000)
    first = verify(fake_hub, config, incremental=True)
    again = verify(fake_hub, config, incremental=True)
    assert (first.trusted, again.trusted, again.bytes_hashed) == (0, 6, 0)
    assert again.exit_code == ExitCode.OK
