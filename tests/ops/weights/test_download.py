"""The download engine against the real local Hub: resume, faults, hashes, atomic publish."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from autoglm_cli.errors import IntegrityError, NetworkError
from autoglm_cli.ops.weights.download import Cancelled, Downloader, partial_paths
from autoglm_cli.ops.weights.hashing import OverlappedHasher, hash_file
from autoglm_cli.ops.weights.http import HttpSettings, make_session
from autoglm_cli.ops.weights.sources import RemoteFile
from autoglm_cli.retry import RetryPolicy

from .conftest import FAKE_REPO, SHARD1

MiB = 1024 * 1024


def remote_for(server, path: str, *, repo: str = FAKE_REPO, size_known: bool = True) -> RemoteFile:
    f = server.repos[repo].files()[path]
    return RemoteFile(
        path=path,
        urls=(server.resolve_url(repo, path, server.repos[repo].commit),),
        size=f.size if size_known else None,
        sha256=f.sha256 if f.lfs or not size_known else None,
        git_oid=f.blob_id,
        lfs=f.lfs,
    )


@pytest.fixture
def engine(sleeps):
    session = make_session(HttpSettings(read_timeout=10), jobs=2, token=None)
    policy = RetryPolicy(tries=3, base=1.0, sleep=sleeps, random=lambda: 0.5)
    yield Downloader(session, timeout=10, policy=policy)
    session.close()


def test_fresh_download_is_verified_and_published(engine, fake_hub, fake_files, tmp_path):
    dest = tmp_path / "blob"
    outcome = engine.download(remote_for(fake_hub, SHARD1), dest)
    assert dest.read_bytes() == fake_files[SHARD1]
    assert outcome.status == "fetched" and outcome.sha256 == hashlib.sha256(fake_files[SHARD1]).hexdigest()
    assert not any(p.exists() for p in partial_paths(dest))  # no partial, no sidecar left behind


def test_small_git_file_is_checked_by_its_git_blob_sha1(engine, fake_hub, fake_files, tmp_path):
    remote = remote_for(fake_hub, "config.json")
    assert remote.sha256 is None and remote.git_oid  # the Hub gives small files no sha256
    engine.download(remote, tmp_path / "config.json")
    assert (tmp_path / "config.json").read_bytes() == fake_files["config.json"]


def test_drop_within_a_run_resumes_without_refetching(engine, fake_hub, fake_files, tmp_path, sleeps):
    size = len(fake_files[SHARD1])
    fake_hub.inject(SHARD1, drop_after=5 * MiB + 7)
    outcome = engine.download(remote_for(fake_hub, SHARD1), tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == fake_files[SHARD1]
    assert fake_hub.bytes_served(SHARD1) == size  # not one byte twice
    assert [r.range for r in fake_hub.requests_for(SHARD1, kind="content")] == [None, f"bytes={5 * MiB + 7}-"]
    assert outcome.bytes_fetched == size and len(sleeps) == 1


def test_resume_across_runs_transfers_only_missing_bytes(fake_hub, fake_files, tmp_path, sleeps):
    size = len(fake_files[SHARD1])
    dest = tmp_path / "blob"
    session = make_session(HttpSettings(), jobs=1, token=None)
    first = Downloader(session, timeout=10, policy=RetryPolicy(tries=1, sleep=sleeps))
    fake_hub.inject(SHARD1, drop_after=4 * MiB + 11)
    with pytest.raises(NetworkError, match="bytes are kept"):
        first.download(remote_for(fake_hub, SHARD1), dest)
    partial, sidecar = partial_paths(dest)
    assert not dest.exists() and partial.stat().st_size == 4 * MiB + 11
    assert json.loads(sidecar.read_text())["sha256"] == hashlib.sha256(fake_files[SHARD1]).hexdigest()

    fake_hub.reset_counters()
    second = Downloader(session, timeout=10, policy=RetryPolicy(sleep=sleeps))
    outcome = second.download(remote_for(fake_hub, SHARD1), dest)
    assert dest.read_bytes() == fake_files[SHARD1]
    assert fake_hub.bytes_served(SHARD1) == size - (4 * MiB + 11)
    assert outcome.status == "resumed" and outcome.bytes_reused == 4 * MiB + 11
    assert outcome.bytes_fetched == size - (4 * MiB + 11)


def test_server_ignoring_range_restarts_cleanly(fake_hub, fake_files, tmp_path, sleeps):
    dest = tmp_path / "blob"
    session = make_session(HttpSettings(), jobs=1, token=None)
    fake_hub.inject(SHARD1, drop_after=3 * MiB)
    with pytest.raises(NetworkError):
        Downloader(session, timeout=10, policy=RetryPolicy(tries=1, sleep=sleeps)).download(
            remote_for(fake_hub, SHARD1), dest
        )
    fake_hub.inject(SHARD1, ignore_range=True)
    outcome = Downloader(session, timeout=10, policy=RetryPolicy(sleep=sleeps)).download(
        remote_for(fake_hub, SHARD1), dest
    )
    assert dest.read_bytes() == fake_files[SHARD1]
    assert outcome.restarts == 1 and outcome.bytes_reused == 0
    # One request: the 200 answer to the Range request was used as the new body.
    assert len(fake_hub.requests_for(SHARD1, kind="content")) == 2


def test_416_on_a_complete_partial_means_done(fake_hub, fake_files, tmp_path, engine):
    # A URL whose size was unknown (no HEAD): the partial already holds every byte.
    remote = remote_for(fake_hub, SHARD1, size_known=False)
    dest = tmp_path / "blob"
    partial, sidecar = partial_paths(dest)
    partial.write_bytes(fake_files[SHARD1])
    sidecar.write_text(
        json.dumps({"format": 1, "size": None, "sha256": remote.sha256, "git_oid": remote.git_oid})
    )
    fake_hub.reset_counters()
    outcome = engine.download(remote, dest)
    assert dest.read_bytes() == fake_files[SHARD1] and outcome.status == "resumed"
    assert [r.status for r in fake_hub.requests_for(SHARD1, kind="content")] == [416]
    assert fake_hub.bytes_served(SHARD1) == 0


def test_416_on_a_too_long_partial_starts_over(fake_hub, fake_files, tmp_path, engine):
    remote = remote_for(fake_hub, SHARD1, size_known=False)
    dest = tmp_path / "blob"
    partial, sidecar = partial_paths(dest)
    partial.write_bytes(fake_files[SHARD1] + b"garbage")
    sidecar.write_text(
        json.dumps({"format": 1, "size": None, "sha256": remote.sha256, "git_oid": remote.git_oid})
    )
    outcome = engine.download(remote, dest)
    assert dest.read_bytes() == fake_files[SHARD1] and outcome.restarts == 1


def test_503_with_retry_after_is_honoured(engine, fake_hub, fake_files, tmp_path, sleeps):
    fake_hub.inject(SHARD1, status=503, retry_after=7, times=2)
    engine.download(remote_for(fake_hub, SHARD1), tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == fake_files[SHARD1]
    assert sleeps == [7, 7]  # the server's wait, not the 1 s / 2 s backoff


def test_backoff_grows_and_gives_up_after_the_tries(engine, fake_hub, tmp_path, sleeps):
    fake_hub.inject(SHARD1, status=500, times=None)
    with pytest.raises(NetworkError, match="HTTP 500"):
        engine.download(remote_for(fake_hub, SHARD1), tmp_path / "blob")
    assert sleeps == [1.0, 2.0]  # base 1 s doubled, with the (injected) jitter
    assert not (tmp_path / "blob").exists()


def test_corrupted_bytes_are_refetched_once_from_zero(engine, fake_hub, fake_files, tmp_path):
    fake_hub.inject(SHARD1, corrupt=True, times=1)
    outcome = engine.download(remote_for(fake_hub, SHARD1), tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == fake_files[SHARD1]
    assert outcome.restarts == 1


def test_always_corrupted_fails_with_both_hashes_and_no_file(engine, fake_hub, fake_files, tmp_path):
    fake_hub.inject(SHARD1, corrupt=True, times=None)
    dest = tmp_path / "blob"
    with pytest.raises(IntegrityError) as info:
        engine.download(remote_for(fake_hub, SHARD1), dest)
    good = hashlib.sha256(fake_files[SHARD1]).hexdigest()
    bad = bytearray(fake_files[SHARD1])
    bad[len(bad) // 2] ^= 0xFF
    assert good in info.value.message and hashlib.sha256(bad).hexdigest() in info.value.message
    assert not dest.exists() and not any(p.exists() for p in partial_paths(dest))
    assert len(fake_hub.requests_for(SHARD1, kind="content")) == 2  # one retry from zero, then stop


def test_a_partial_corrupted_on_disk_is_caught_and_replaced(fake_hub, fake_files, tmp_path, sleeps):
    dest = tmp_path / "blob"
    session = make_session(HttpSettings(), jobs=1, token=None)
    fake_hub.inject(SHARD1, drop_after=2 * MiB)
    with pytest.raises(NetworkError):
        Downloader(session, timeout=10, policy=RetryPolicy(tries=1, sleep=sleeps)).download(
            remote_for(fake_hub, SHARD1), dest
        )
    partial, _ = partial_paths(dest)
    with open(partial, "r+b") as fh:  # a bit flipped on disk between the runs
        fh.seek(1000)
        fh.write(b"\x00")
    outcome = Downloader(session, timeout=10, policy=RetryPolicy(sleep=sleeps)).download(
        remote_for(fake_hub, SHARD1), dest
    )
    assert dest.read_bytes() == fake_files[SHARD1] and outcome.restarts == 1


def test_a_stale_sidecar_discards_the_partial(engine, fake_hub, fake_files, tmp_path):
    dest = tmp_path / "blob"
    partial, sidecar = partial_paths(dest)
    partial.write_bytes(b"x" * 1000)
    sidecar.write_text(json.dumps({"format": 1, "size": 1000, "sha256": "0" * 64, "git_oid": None}))
    outcome = engine.download(remote_for(fake_hub, SHARD1), dest)
    assert dest.read_bytes() == fake_files[SHARD1] and outcome.bytes_reused == 0
    assert fake_hub.requests_for(SHARD1, kind="content")[0].range is None


def test_interrupt_keeps_the_partial_for_the_next_run(fake_hub, fake_files, tmp_path, sleeps):
    cancel = threading.Event()

    class StopHalfway:
        """A progress bar whose user presses Ctrl-C once half the file is there."""

        def task(self, description, total=None, *, transient=False, unit=None):
            return self

        def advance(self, amount=1):
            self.seen = getattr(self, "seen", 0) + amount
            if self.seen >= len(fake_files[SHARD1]) // 2:
                cancel.set()

        def update(self, **kwargs):
            pass

        def finish(self):
            pass

    session = make_session(HttpSettings(), jobs=1, token=None)
    dest = tmp_path / "blob"
    with pytest.raises(Cancelled):
        Downloader(session, timeout=10, cancel=cancel, policy=RetryPolicy(sleep=sleeps)).download(
            remote_for(fake_hub, SHARD1), dest, progress=StopHalfway()
        )
    kept = partial_paths(dest)[0].stat().st_size
    assert 0 < kept < len(fake_files[SHARD1]) and not dest.exists()
    fake_hub.reset_counters()
    Downloader(session, timeout=10, policy=RetryPolicy(sleep=sleeps)).download(
        remote_for(fake_hub, SHARD1), dest
    )
    assert dest.read_bytes() == fake_files[SHARD1]
    assert fake_hub.bytes_served(SHARD1) == len(fake_files[SHARD1]) - kept


def test_next_endpoint_is_tried_when_one_fails(fake_hub, fake_files, tmp_path, sleeps):
    good = remote_for(fake_hub, SHARD1)
    dead = f"{fake_hub.endpoint}/no-such-org/repo/resolve/main/{SHARD1}"  # answers 404
    remote = RemoteFile(SHARD1, (dead, *good.urls), good.size, good.sha256, good.git_oid, good.lfs)
    session = make_session(HttpSettings(), jobs=1, token=None)
    notes = []
    Downloader(session, timeout=10, policy=RetryPolicy(sleep=sleeps), on_note=notes.append).download(
        remote, tmp_path / "blob"
    )
    assert (tmp_path / "blob").read_bytes() == fake_files[SHARD1]
    assert any("next endpoint" in n for n in notes)


@pytest.mark.parametrize("sizes", [[1], [5, 4 * 1024 * 1024, 3], [0], [7 * 1024 * 1024 + 1]])
def test_overlapped_hasher_matches_hashlib(sizes, tmp_path):
    import os

    data = [os.urandom(n) for n in sizes]
    hasher = OverlappedHasher(git_size=sum(sizes), chunk_size=8 * 1024 * 1024)
    for piece in data:
        buf = hasher.buffer()
        buf[: len(piece)] = piece
        hasher.submit(buf, len(piece))
    digests = hasher.finish()
    joined = b"".join(data)
    assert digests.sha256 == hashlib.sha256(joined).hexdigest()
    assert digests.git_oid == hashlib.sha1(b"blob %d\0" % len(joined) + joined).hexdigest()
    (tmp_path / "f").write_bytes(joined)
    assert hash_file(tmp_path / "f", git=True) == digests


def test_two_downloads_of_one_blob_wait_for_each_other(engine, fake_hub, fake_files, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    fake_hub.inject(SHARD1, bytes_per_second=20 * MiB)  # slow enough for the second to find the lock taken
    dest, lock = tmp_path / "blob", tmp_path / ".locks" / "blob.lock"
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(
            pool.map(lambda _: engine.download(remote_for(fake_hub, SHARD1), dest, lock=lock), [1, 2])
        )
    assert dest.read_bytes() == fake_files[SHARD1]
    assert sorted(o.status for o in outcomes) == ["fetched", "reused"]
    assert fake_hub.bytes_served(SHARD1) == len(fake_files[SHARD1])  # downloaded once
