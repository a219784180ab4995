"""`verify --hf` (library part): a fetched snapshot against the Hub's hashes; manifests for offline CI."""

from __future__ import annotations

import subprocess

import pytest

from autoglm_cli.errors import ExitCode, IntegrityError
from autoglm_cli.ops.weights.fetch import FetchOptions, fetch_weights
from autoglm_cli.ops.weights.hub_verify import manifest_line, verify_hub, write_hub_manifest
from autoglm_cli.retry import RetryPolicy

from .conftest import FAKE_REPO, SHARD1, SHARD2


@pytest.fixture
def fetched(fake_hub, config, hf_cache, sleeps):
    report = fetch_weights(
        [(FAKE_REPO, None)],
        config=config,
        options=FetchOptions(endpoint=fake_hub.endpoint, policy=RetryPolicy(sleep=sleeps)),
    )
    return report.sources[0].destination


def verify(hub, config, **kwargs):
    return verify_hub(FAKE_REPO, config=config, endpoint=hub.endpoint, **kwargs)


def test_a_fresh_snapshot_verifies(fake_hub, fetched, config):
    report = verify(fake_hub, config)
    assert report.exit_code == ExitCode.OK and report.root == fetched
    assert report.counts == {"ok": 6}
    algorithms = {r.path: r.algorithm for r in report.results}
    assert algorithms[SHARD1] == "sha256" and algorithms["config.json"] == "git-sha1"


def test_mismatch_missing_and_extra_are_reported(fake_hub, fetched, config):
    blob = (fetched / SHARD1).resolve()
    with open(blob, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xfe")
    (fetched / "tokenizer.json").unlink()
    (fetched / "notes.txt").write_text("mine\n")
    report = verify(fake_hub, config)
    by_path = {r.path: r for r in report.results}
    assert by_path[SHARD1].status == "mismatch" and by_path[SHARD1].expected in by_path[SHARD1].message
    assert by_path["tokenizer.json"].status == "missing"
    assert by_path["notes.txt"].status == "extra"
    assert by_path[SHARD2].status == "ok"
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_extra_files_fail_only_when_asked(fake_hub, fetched, config):
    (fetched / "notes.txt").write_text("mine\n")
    assert verify(fake_hub, config).exit_code == ExitCode.OK
    assert verify(fake_hub, config, fail_on_extra=True).exit_code == ExitCode.CHECK_FAILED


def test_local_dir_snapshot(fake_hub, config, tmp_path, sleeps):
    options = FetchOptions(
        endpoint=fake_hub.endpoint, local_dir=tmp_path / "m", policy=RetryPolicy(sleep=sleeps)
    )
    fetch_weights([(FAKE_REPO, None)], config=config, options=options)
    report = verify(fake_hub, config, local_dir=tmp_path / "m")
    assert report.counts == {"ok": 6}  # huggingface_hub's .cache/ bookkeeping is not "extra"


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


def test_manifest_line_escapes_like_coreutils(tmp_path):
    name = "we\\ird\nname"
    (tmp_path / name).write_bytes(b"x")
    expected = subprocess.run(["sha256sum", name], cwd=tmp_path, capture_output=True, text=True).stdout
    import hashlib

    assert manifest_line(hashlib.sha256(b"x").hexdigest(), name) == expected
