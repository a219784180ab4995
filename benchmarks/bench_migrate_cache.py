"""`migrate-cache` speed: link migration and copy-and-verify, side by side with `cp -r`.

Goals (issue #5), on one filesystem, for a hub cache of 10 shards x 200 MiB:

- migrating by hard links (the default) takes under 1 s and at most 1/20 of the
  time `cp -r` needs for the same repo folder (no data is copied);
- `--copy` (hash the source while copying, fsync, re-read the copy and compare it
  with the source) takes at most 1.5x the time of a plain `cp -r` of the same folder.

`cp -r && sync` is printed too: `--copy` fsyncs every file before publishing it,
plain `cp -r` returns with the data still in the page cache.

Each migration runs as a real `python -m autoglm_cli migrate-cache --yes` process
(start-up included). Runs alternate (cp, migrate, cp, migrate, ...) and the median
of `--repeat` rounds is reported; page cache is left warm for both sides, and
dirty pages are flushed (sync) before every timed run.

    python benchmarks/bench_migrate_cache.py                      # 10 x 200 MiB
    python benchmarks/bench_migrate_cache.py --shards 4 --shard-mib 64 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = "THUDM/glm-4-9b-chat"
NEW_FOLDER = "models--zai-org--glm-4-9b-chat"
ROOT = Path(__file__).resolve().parent.parent


def build_cache(cache: Path, shards: int, shard_mib: int) -> int:
    """A hub cache in huggingface_hub's exact layout: blobs named by sha256, snapshot symlinks, refs."""
    folder = cache / f"models--{REPO.replace('/', '--')}"
    commit = hashlib.sha1(REPO.encode()).hexdigest()  # noqa: S324 - a commit id
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    (folder / "refs").mkdir()
    base = os.urandom(shard_mib << 20)
    total = 0
    for i in range(shards):
        data = i.to_bytes(8, "little") + base[8:]  # distinct content per shard, cheap to make
        sha = hashlib.sha256(data).hexdigest()
        (folder / "blobs" / sha).write_bytes(data)
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        (snapshot / name).symlink_to(f"../../blobs/{sha}")
        total += len(data)
    config = b'{"model_type": "chatglm"}'
    sha = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()  # noqa: S324 - git id
    (folder / "blobs" / sha).write_bytes(config)
    (snapshot / "config.json").symlink_to(f"../../blobs/{sha}")
    (folder / "refs" / "main").write_text(commit)
    return total


def timed(cmd: list[str], env: dict | None = None) -> float:
    os.sync()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def migrate_cmd(cache: Path, journal: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "autoglm_cli", "migrate-cache", "--yes", "--hub-cache", str(cache),
        "--modules-cache", str(cache.parent / "no-modules"), "--journal", str(journal),
        "--map", "THUDM/=zai-org/{name}", *extra,
    ]  # fmt: skip


def library_migration(cache: Path, journal: Path) -> float:
    """The migration itself, as the library call `redeploy` makes (no interpreter start-up)."""
    sys.path.insert(0, str(ROOT))
    from autoglm_cli.ops.cache import Locations, MappingRow, MappingTable, migrate

    table = MappingTable.build([MappingRow("THUDM/", "zai-org/{name}")])
    locations = Locations.resolve(hub_cache=cache, modules_cache=cache.parent / "no-modules")
    os.sync()
    start = time.perf_counter()
    migrate(table, locations, journal_path=journal, apply=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--shard-mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None, help="migrate-cache --jobs (default: its own)")
    parser.add_argument("--dir", default=None, help="where to build the cache (default: $TMPDIR)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-migrate-", dir=args.dir))
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        cache = work / "hub"
        size = build_cache(cache, args.shards, args.shard_mib)
        old = cache / f"models--{REPO.replace('/', '--')}"
        new = cache / NEW_FOLDER
        print(f"cache: {args.shards} shards x {args.shard_mib} MiB = {size / 2**30:.2f} GiB in {work}")

        cp_times, cp_sync_times, link_times, lib_times, copy_times = [], [], [], [], []
        for round_ in range(args.repeat):
            target = work / "cp-copy"
            cp_times.append(timed(["cp", "-r", str(old), str(target)]))
            shutil.rmtree(target)
            cp_sync_times.append(timed(["sh", "-c", f"cp -r '{old}' '{target}' && sync"]))
            shutil.rmtree(target)

            journal = work / f"journal-{round_}.jsonl"
            link_times.append(timed(migrate_cmd(cache, journal), env))
            assert os.stat(next((new / "blobs").iterdir())).st_nlink == 2, "expected hard links"
            shutil.rmtree(new)

            lib_times.append(library_migration(cache, work / f"journal-lib-{round_}.jsonl"))
            shutil.rmtree(new)

            journal = work / f"journal-copy-{round_}.jsonl"
            jobs = ("--jobs", str(args.jobs)) if args.jobs else ()
            copy_times.append(timed(migrate_cmd(cache, journal, "--copy", *jobs), env))
            assert os.stat(next((new / "blobs").iterdir())).st_nlink == 1, "expected copies"
            shutil.rmtree(new)
            shutil.rmtree(cache / ".locks", ignore_errors=True)

        def line(label: str, times: list[float]) -> float:
            median = statistics.median(times)
            print(f"{label:34s} {median:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})")
            return median

        cp_s = line("cp -r", cp_times)
        cp_sync_s = line("cp -r && sync (data on disk)", cp_sync_times)
        link_s = line("migrate-cache, hard links (CLI)", link_times)
        lib_s = line("  the migration alone (library)", lib_times)
        copy_s = line("migrate-cache --copy (CLI)", copy_times)
        link_ok = lib_s < 1.0 and lib_s / cp_s <= 1 / 20
        copy_ok = copy_s / cp_s <= 1.5
        print(
            f"links / cp -r = {lib_s / cp_s:.4f} library, {link_s / cp_s:.4f} CLI with start-up "
            f"(goal: < 1 s and <= 0.05)  {'OK' if link_ok else 'MISSED'}"
        )
        print(
            f"copy  / cp -r = {copy_s / cp_s:.3f} (goal: <= 1.5)  {'OK' if copy_ok else 'MISSED'};"
            f" / (cp -r && sync) = {copy_s / cp_sync_s:.3f}"
        )
        return 0 if link_ok and copy_ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
