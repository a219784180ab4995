"""Several byte ranges per file: in-place writes, in-order hash, resume after a kill, mirrors.

Real HTTP against the project's hub server (one per mirror), real files, a real
`autoglm` subprocess for the kill. Assertions are on bytes (served, on disk,
re-read), never on time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autoglm_cli.config import Config, Retry, Weights
from autoglm_cli.errors import NetworkError
from autoglm_cli.hf_paths import repo_folder_name
from autoglm_cli.ops.weights import resumable_hash
from autoglm_cli.ops.weights.fetch import FetchOptions, fetch_weights
from autoglm_cli.ops.weights.partial_state import Intervals, journal_path, partial_paths, read_journal
from autoglm_cli.ops.weights.ranged import WRITE_CHUNK, connections_for, piece_size
from autoglm_cli.ops.weights.sources import RemoteFile
from autoglm_cli.testing.hub_server import HubServer

from .conftest import FAKE_REPO, SHARD1, SHARD2

ROOT = Path(__file__).resolve().parents[3]


def run_fetch(config, cache, endpoints, *, connections=4, notes=None, **extra):
    return fetch_weights(
        [(FAKE_REPO, None)],
        config=config,
        options=FetchOptions(endpoints=endpoints, cache_dir=cache, connections=connections, **extra),
        note=(notes.append if notes is not None else lambda m: None),
    )


def outcome(report, path=SHARD1):
    return next(f for f in report.sources[0].files if f.path == path)


def blob(cache: Path, data: bytes) -> Path:
    return cache / repo_folder_name(FAKE_REPO) / "blobs" / hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(fake_files):
    """A second hub server with the same repo (same commit: the same files)."""
    server = HubServer()
    server.add_repo(FAKE_REPO, fake_files)
    with server:
        yield server


def test_several_ranges_of_one_file_are_fetched_and_verified(fake_hub, fake_files, config, tmp_path):
    report = run_fetch(config, tmp_path / "c", [fake_hub.endpoint])
    shard = outcome(report)
    assert shard.connections == 4 and shard.status == "fetched"
    assert blob(tmp_path / "c", fake_files[SHARD1]).read_bytes() == fake_files[SHARD1]
    ranges = [r.range for r in fake_hub.requests_for(SHARD1, kind="content")]
    assert len(ranges) >= 4 and all(r and r.startswith("bytes=") for r in ranges)
    assert fake_hub.bytes_served(SHARD1) == len(fake_files[SHARD1])  # every byte once
    (origin,) = shard.origins
    assert origin.endpoint == fake_hub.endpoint and origin.ranges == ((0, len(fake_files[SHARD1])),)
    assert not list((tmp_path / "c").rglob("*.partial*"))


def test_small_files_and_unknown_sizes_use_one_connection():
    assert connections_for(None, 8) == 1
    assert connections_for(100_000, 8) == 1
    assert connections_for(200 * 1024 * 1024, None) == 8  # the default above 64 MiB
    assert connections_for(32 * 1024 * 1024, None) == 1
    assert connections_for(3 * 1024 * 1024, 8) == 3  # never more than its pieces
    assert piece_size(256 * 1024 * 1024, 8) == 8 * 1024 * 1024


def test_a_dead_mirror_mid_file_hands_the_rest_to_the_next_byte_exact(
    fake_hub, mirror, fake_files, config, tmp_path
):
    size = len(fake_files[SHARD1])
    fake_hub.inject(SHARD1, times=None, down_after=int(size * 0.4))
    notes: list[str] = []
    report = run_fetch(config, tmp_path / "c", [fake_hub.endpoint, mirror.endpoint], notes=notes)
    shard = outcome(report)
    assert blob(tmp_path / "c", fake_files[SHARD1]).read_bytes() == fake_files[SHARD1]
    by_endpoint = {o.endpoint: o for o in shard.origins}
    assert set(by_endpoint) == {fake_hub.endpoint, mirror.endpoint}
    spans = Intervals([r for o in shard.origins for r in o.ranges])
    assert spans.as_list() == [(0, size)]  # together the origins cover the file exactly once
    assert sum(o.bytes for o in shard.origins) == size
    first = fake_hub.bytes_served(SHARD1)
    assert first >= int(size * 0.4) and by_endpoint[fake_hub.endpoint].bytes <= first
    assert first + mirror.bytes_served(SHARD1) <= size + 4 * WRITE_CHUNK  # at most the buffers in flight
    assert any("the rest from" in n for n in notes)


def test_a_stalled_endpoint_is_left_after_the_stall_timeout(fake_hub, mirror, fake_files, tmp_path):
    config = Config(weights=Weights(jobs=1, stall_timeout=1), retry=Retry(tries=3, base=0.01))
    fake_hub.inject(SHARD1, times=None, stall_at=len(fake_files[SHARD1]) // 3, stall_s=60)
    notes: list[str] = []
    report = run_fetch(config, tmp_path / "c", [fake_hub.endpoint, mirror.endpoint], notes=notes)
    assert blob(tmp_path / "c", fake_files[SHARD1]).read_bytes() == fake_files[SHARD1]
    assert {o.endpoint for o in outcome(report).origins} == {fake_hub.endpoint, mirror.endpoint}
    assert any("no byte for 1s" in n for n in notes)
    fake_hub.stopping.set()  # release the stalled handler


def test_a_server_ignoring_range_falls_back_to_one_stream_over_a_partial_with_holes(
    fake_files, config, tmp_path, sleeps
):
    cache = tmp_path / "c"
    dying = HubServer()
    dying.add_repo(FAKE_REPO, fake_files)
    size = len(fake_files[SHARD1])
    with dying:
        dying.inject(SHARD1, times=None, down_after=size // 2)
        with pytest.raises(NetworkError):
            run_fetch(config, cache, [dying.endpoint], include=[SHARD1])
    dest = blob(cache, fake_files[SHARD1])
    sidecar = json.loads(partial_paths(dest)[1].read_text())
    held = Intervals([*sidecar["done"], *read_journal(journal_path(dest))])
    assert sidecar["format"] == 2 and 0 < held.total() < size  # ranges with holes, recorded

    plain = HubServer(ignore_range=True)
    plain.add_repo(FAKE_REPO, fake_files)
    notes: list[str] = []
    with plain:
        report = run_fetch(config, cache, [plain.endpoint], include=[SHARD1], notes=notes)
    assert dest.read_bytes() == fake_files[SHARD1]
    assert outcome(report).connections == 1
    assert any("ignores Range" in n for n in notes)


def test_resume_after_a_killed_process_rereads_only_what_the_saved_hash_state_does_not_cover(
    fake_files, tmp_path, cli, fast_env
):
    files = {"model.safetensors": os.urandom(12 * 1024 * 1024 + 5), "config.json": b"{}"}
    size = len(files["model.safetensors"])
    server = HubServer(bytes_per_second=1024 * 1024)  # 4 connections: about 4 MiB/s
    server.add_repo(FAKE_REPO, files)
    cache = tmp_path / "cache"
    with server:
        env = dict(os.environ, PYTHONPATH=str(ROOT), AUTOGLM_RETRY__BASE="0.01")
        env.pop("AUTOGLM_CONFIG", None)
        child = subprocess.Popen(
            [sys.executable, "-m", "autoglm_cli", "--quiet", "fetch-weights", FAKE_REPO,
             "--endpoint", server.endpoint, "--cache-dir", str(cache), "--connections", "4"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        sidecar_state = _wait_for_checkpoint(cache, child)
        child.send_signal(signal.SIGKILL)
        child.wait()
        dest = blob(cache, files["model.safetensors"])
        partial, sidecar = partial_paths(dest)
        assert partial.is_file() and not dest.exists()  # nothing unverified at the final path
        served_before = server.bytes_served("model.safetensors")
        server.reset_counters()

        result = cli("--json", "fetch-weights", FAKE_REPO, "--endpoint", server.endpoint,
                     "--cache-dir", cache, "--connections", "4")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    shard = next(f for f in result.json["result"]["sources"][0]["files"] if f["path"] == "model.safetensors")
    assert shard["status"] == "resumed" and dest.read_bytes() == files["model.safetensors"]
    assert 0 < shard["bytes_reused"] < size
    # No full re-read: the bytes the saved state covers are not read again.
    assert sidecar_state["hashed"] > 0
    assert shard["bytes_rehashed"] <= shard["bytes_reused"] - sidecar_state["hashed"]
    # Only what was in flight at the kill is sent twice.
    resent = served_before + server.bytes_served("model.safetensors") - size
    assert 0 <= resent <= 4 * WRITE_CHUNK + 4 * 1024 * 1024 // 20 * 4


def _wait_for_checkpoint(cache: Path, child: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, "the download ended before it could be killed"
        for sidecar in cache.rglob("*.partial.json"):
            try:
                data = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                continue
            if data.get("format") == 2 and data.get("hashed", 0) > 0:
                return data
        time.sleep(0.05)
    raise AssertionError("no checkpoint within 60 s")


def test_resumable_hash_state_round_trips_and_matches_hashlib():
    if not resumable_hash.available():
        pytest.skip("libcrypto is not loadable here (the engine falls back to re-reading)")
    data = os.urandom(3 * 1024 * 1024 + 7)
    h = resumable_hash.ResumableHash("sha256")
    h.update(bytearray(data[:1000001]))
    saved = h.state_text()
    again = resumable_hash.ResumableHash.from_text("sha256", saved)
    again.update(memoryview(bytearray(data[1000001:])))
    assert again.hexdigest() == hashlib.sha256(data).hexdigest()
    git = resumable_hash.ResumableHash("sha1", prefix=b"blob %d\0" % len(data))
    git.update(data)
    assert git.hexdigest() == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324


def test_intervals_merge_and_report_gaps():
    spans = Intervals([(10, 20), (0, 5), (5, 10), (30, 40)])
    assert spans.as_list() == [(0, 20), (30, 40)]
    assert spans.prefix() == 20 and spans.total() == 30
    assert spans.gaps(50) == [(20, 30), (40, 50)]
    spans.add(15, 35)
    assert spans.as_list() == [(0, 40)] and spans.overlap(35, 100) == 5


def test_both_shards_and_huggingface_hub_reads_the_result(fake_hub, fake_files, config, hf_cache):
    from huggingface_hub import snapshot_download

    run_fetch(config, hf_cache, [fake_hub.endpoint])
    snapshot = snapshot_download(FAKE_REPO, cache_dir=hf_cache, local_files_only=True)
    for name in (SHARD1, SHARD2):
        assert Path(snapshot, name).read_bytes() == fake_files[name]


def test_a_connection_dropped_mid_piece_continues_from_that_byte(fake_hub, fake_files, config, tmp_path):
    size = len(fake_files[SHARD1])
    fake_hub.inject(SHARD1, times=None, drop_at=size // 2 + 12345)
    report = run_fetch(config, tmp_path / "c", [fake_hub.endpoint], include=[SHARD1])
    assert blob(tmp_path / "c", fake_files[SHARD1]).read_bytes() == fake_files[SHARD1]
    assert outcome(report).bytes_fetched == size
    assert fake_hub.bytes_served(SHARD1) == size  # the retry asked only for what was missing
    assert any(r.range and r.range.startswith(f"bytes={size // 2 + 12345}-") for r in fake_hub.requests)


def test_ctrl_c_keeps_the_ranges_and_the_hash_state_for_the_next_run(fake_files, config, tmp_path):
    from autoglm_cli.ops.weights.download import Cancelled, Downloader
    from autoglm_cli.ops.weights.http import HttpSettings, make_session
    from autoglm_cli.retry import RetryPolicy

    server = HubServer(bytes_per_second=2 * 1024 * 1024)
    server.add_repo(FAKE_REPO, fake_files)
    size = len(fake_files[SHARD1])
    remote = RemoteFile(SHARD1, (), size, hashlib.sha256(fake_files[SHARD1]).hexdigest(), lfs=True)
    cancel = threading.Event()

    class StopAtAThird:
        def task(self, description, total=None, *, transient=False, unit=None):
            return self

        def advance(self, amount=1):
            self.seen = getattr(self, "seen", 0) + amount
            if self.seen >= size // 3:
                cancel.set()

        def update(self, **kwargs):
            pass

        def finish(self):
            pass

    dest = tmp_path / "blob"
    with server:
        remote = dataclasses.replace(remote, urls=(server.resolve_url(FAKE_REPO, SHARD1),))
        session = make_session(HttpSettings(), jobs=4, token=None)
        engine = Downloader(
            session, timeout=10, cancel=cancel, connections=4, policy=RetryPolicy(tries=2, base=0.01)
        )
        with pytest.raises(Cancelled):
            engine.download(remote, dest, progress=StopAtAThird())
        sidecar = json.loads(partial_paths(dest)[1].read_text())
        held = Intervals([*sidecar["done"], *read_journal(journal_path(dest))]).total()
        assert sidecar["format"] == 2 and 0 < held < size and not dest.exists()
        served = server.bytes_served(SHARD1)
        resumed = Downloader(session, timeout=10, connections=4).download(remote, dest)
    assert dest.read_bytes() == fake_files[SHARD1]
    assert resumed.status == "resumed" and resumed.bytes_reused == held
    assert resumed.bytes_fetched == size - held  # nothing that was kept is asked again
    assert served + resumed.bytes_fetched <= size + 4 * WRITE_CHUNK


def test_an_idle_connection_takes_half_of_a_slow_piece(fake_hub, fake_files, config, tmp_path, monkeypatch):
    from autoglm_cli.ops.weights import ranged

    monkeypatch.setattr(ranged, "STEAL_MIN", 128 * 1024)  # the test file's pieces are 1 MiB
    size = len(fake_files[SHARD1])
    fake_hub.inject(SHARD1, times=1, bytes_per_second=128 * 1024)  # the first piece crawls
    report = run_fetch(config, tmp_path / "c", [fake_hub.endpoint], include=[SHARD1], connections=2)
    assert blob(tmp_path / "c", fake_files[SHARD1]).read_bytes() == fake_files[SHARD1]
    ranges = [r.range for r in fake_hub.requests_for(SHARD1, kind="content")]
    piece = ranged.piece_size(size, 2)
    starts = [int(r.split("=")[1].split("-")[0]) for r in ranges]
    assert any(start % piece for start in starts)  # one began inside a piece: the slow one's second half
    assert outcome(report).bytes_fetched <= size + 2 * ranged.WRITE_CHUNK
