"""Parallel hashing of real files: digests, order, progress, unreadable files, Ctrl-C."""

from __future__ import annotations

import os
import threading

import pytest

from autoglm_cli.ops.checksums import BLOCK_SIZE, NotRegularFileError, hash_file, hash_files
from tests.fixtures.checksum_tree import sha256

SIZES = [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17]


class RecordingProgress:
    """Counts what the hashing reports, as the CLI's progress bar would see it."""

    def __init__(self) -> None:
        self.totals: list[float | None] = []
        self.advanced = 0
        self.finished = 0
        self._lock = threading.Lock()

    def task(self, description, total=None, *, transient=False, unit=None):
        self.totals.append(total)
        return self

    def advance(self, amount=1):
        with self._lock:
            self.advanced += amount

    def update(self, *, total=None, description=None):
        pass

    def finish(self):
        self.finished += 1


@pytest.mark.parametrize("size", SIZES)
def test_hash_file_matches_hashlib_on_block_boundaries(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(path) == sha256(data)


def test_hash_files_keeps_the_order_and_counts_bytes(tmp_path):
    files = []
    for i, size in enumerate(SIZES):
        path = tmp_path / f"f{i}"
        path.write_bytes(os.urandom(size))
        files.append(path)
    progress = RecordingProgress()

    results = hash_files(files, jobs=3, progress=progress)

    assert [r.path for r in results] == files
    assert [r.sha256 for r in results] == [sha256(p.read_bytes()) for p in files]
    assert [r.size for r in results] == SIZES
    assert progress.totals == [sum(SIZES)]
    assert progress.advanced == sum(SIZES)
    assert progress.finished == 1


def test_unreadable_paths_become_results_not_exceptions(tmp_path):
    (tmp_path / "a-directory").mkdir()
    os.mkfifo(tmp_path / "a-fifo")  # nobody ever writes: opening it normally would block forever
    (tmp_path / "fine").write_bytes(b"fine")

    results = hash_files(
        [tmp_path / "a-directory", tmp_path / "a-fifo", tmp_path / "gone", tmp_path / "fine"]
    )

    assert [r.ok for r in results] == [False, False, False, True]
    assert results[0].error == "not a regular file (a directory)"
    assert results[1].error == "not a regular file (a FIFO)"
    assert results[2].error == "No such file or directory"
    assert results[3].sha256 == sha256(b"fine")


def test_hash_file_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegularFileError):
        hash_file(tmp_path / "fifo")


def test_an_interrupt_stops_the_threads_and_propagates(tmp_path):
    files = []
    for i in range(4):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * (4 * BLOCK_SIZE))
        files.append(path)

    class InterruptingProgress(RecordingProgress):
        def advance(self, amount=1):
            super().advance(amount)
            raise KeyboardInterrupt  # what Ctrl-C looks like once it reaches a worker's callback

    progress = InterruptingProgress()
    with pytest.raises(KeyboardInterrupt):
        hash_files(files, jobs=2, progress=progress)
    # Each thread stopped after its first block instead of hashing all 16 MiB.
    assert progress.advanced < 4 * 4 * BLOCK_SIZE
    assert progress.finished == 1
