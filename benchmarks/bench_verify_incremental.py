"""`verify --incremental` re-verifying unchanged files, against a full verify of the same files.

Goal (issue 18): re-verifying unchanged files with `--incremental` takes <= 0.1x the
time of a full verify (the anchor: the same command without `--incremental`, which
reads and hashes every byte). Both run in one script on the same files, each round
running every measurement once so background load hits them alike; best of
`--repeat` rounds is compared, medians printed too.

Two views: the engine in process (`verify_manifest`), and the real CLI process
(`autoglm verify SUMS --status`, start-up included). Files are read once before
timing, so the full verify hashes from the page cache: the most favourable case for
the anchor (a cold cache would make it slower still).

    python benchmarks/bench_verify_incremental.py                  # 8 x 256 MiB (2 GiB)
    python benchmarks/bench_verify_incremental.py --size-mib 64    # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autoglm_cli.ops.checksums import generate_manifest, verify_manifest  # noqa: E402
from autoglm_cli.ops.checksums.incremental import RACY_NS  # noqa: E402


def main() -> int:
    args = _parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-verify-incr-", dir=args.dir))
    env = {**os.environ, "AUTOGLM_STATE_DIR": str(work / "state"), "PYTHONPATH": str(REPO)}
    os.environ["AUTOGLM_STATE_DIR"] = env["AUTOGLM_STATE_DIR"]
    times: dict[str, list[float]] = {k: [] for k in ("full", "incremental", "cli-full", "cli-incremental")}
    load = os.getloadavg()[0]
    try:
        tree = work / "weights"
        tree.mkdir()
        block = os.urandom(1 << 20)
        for i in range(args.files):
            with open(tree / f"model-{i:05d}.safetensors", "wb") as out:
                for _ in range(args.size_mib):
                    out.write(block)
        written = time.time_ns()
        manifest = tree / "SHA256SUMS"
        generate_manifest(tree, output=manifest)
        # Files younger than RACY_NS are "racily clean" and never trusted; wait them out once.
        time.sleep(max(0.0, (written + RACY_NS - time.time_ns()) / 1e9 + 0.1))
        prime = verify_manifest(manifest, root=tree, incremental=True)  # writes the record
        assert prime.exit_code == 0, prime.summary
        cli = [sys.executable, "-m", "autoglm_cli", "verify", str(manifest), "--root", str(tree), "--status"]
        subprocess.run([*cli, "--incremental"], env=env, check=True)
        for _ in range(args.repeat):
            times["full"].append(_timed(lambda: verify_manifest(manifest, root=tree)))
            times["incremental"].append(
                _timed(lambda: _trusted_all(verify_manifest(manifest, root=tree, incremental=True)))
            )
            times["cli-full"].append(_timed(lambda: subprocess.run(cli, env=env, check=True)))
            times["cli-incremental"].append(
                _timed(lambda: subprocess.run([*cli, "--incremental"], env=env, check=True))
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = args.files * args.size_mib
    print(f"{args.files} x {args.size_mib} MiB = {total} MiB, {args.repeat} rounds, load avg {load:.1f}")
    for key, values in times.items():
        print(f"  {key:16s} best {min(values):8.3f} s   median {statistics.median(values):8.3f} s")
    engine = min(times["incremental"]) / min(times["full"])
    process = min(times["cli-incremental"]) / min(times["cli-full"])
    print(f"incremental / full, engine:  {engine:.4f}x  (goal <= 0.1x) {'ok' if engine <= 0.1 else 'MISSED'}")
    print(f"incremental / full, process: {process:.4f}x  (start-up included in both)")
    return 0 if engine <= 0.1 else 1


def _trusted_all(report) -> None:
    assert report.exit_code == 0 and report.bytes_hashed == 0, report.summary


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write the files (default: the temp dir)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
