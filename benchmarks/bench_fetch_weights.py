"""fetch-weights: download + verify vs a plain download, vs download-then-sha256sum; resume at 50%.

Serves one LFS file (1 GiB by default) from the local fake Hub
(`autoglm_cli.testing.hub_server`, kernel `sendfile`, 302 to its "CDN" listener)
and measures, interleaved, `--reps` times each (median reported):

  plain        requests streaming download (4 MiB chunks) to a file, fsync'd
  plain-nosync the same without the fsync (what most download scripts do)
  fetch        `fetch_weights` into a fresh HF cache: metadata, download, sha256
               while streaming, fsync, verify, rename, snapshot link
  then-sha256  `plain`, then the real `sha256sum` on the file, in sequence

Goals (issue #4): fetch <= 1.15 x plain; fetch >= 1.5 x faster than then-sha256;
a run resumed after an interruption at 50% transfers <= 55% of the file's bytes
(counted at the server).

    .venv/bin/python benchmarks/bench_fetch_weights.py [--size-mib 1024] [--reps 3] [--dir D] [--rate-mib-s R]

On the loopback the server is faster than sha256 on one core, so the goal needs a
free core for the hashing thread; `--rate-mib-s 120` shows a 1 Gbit/s link.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoglm_cli.config import Config, Retry, Weights  # noqa: E402
from autoglm_cli.errors import NetworkError  # noqa: E402
from autoglm_cli.ops.weights.fetch import FetchOptions, fetch_weights  # noqa: E402
from autoglm_cli.testing.hub_server import HubServer  # noqa: E402

REPO = "bench/weights"
NAME = "model.safetensors"
CHUNK = 4 * 1024 * 1024


def make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            piece = block[: min(CHUNK, size - written)]
            # Vary the blocks so nothing downstream can shortcut on repetition.
            piece = written.to_bytes(8, "little") + piece[8:] if len(piece) >= 8 else piece
            fh.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def plain_download(url: str, dest: Path, *, fsync: bool) -> None:
    import requests

    with requests.get(url, stream=True, timeout=60) as response, open(dest, "wb") as fh:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            fh.write(chunk)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def run_fetch(server: HubServer, cache: Path, *, retries: int = 3) -> None:
    config = Config(weights=Weights(jobs=1), retry=Retry(tries=retries, base=0.01))
    fetch_weights(
        [(REPO, None)], config=config, options=FetchOptions(endpoint=server.endpoint, cache_dir=cache)
    )


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir on disk)")
    parser.add_argument(
        "--rate-mib-s", type=float, default=0, help="throttle the server like a real link (default: no limit)"
    )
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-fetch-", dir=args.dir))
    try:
        source = work / "source.bin"
        print(f"making a {args.size_mib} MiB source file in {work} ...", flush=True)
        sha256 = make_source(source, size)
        server = HubServer()
        server.add_repo(REPO, {NAME: source}, sha256s={NAME: sha256})
        with server:
            url = server.resolve_url(REPO, NAME)
            if args.rate_mib_s:
                server.inject(NAME, times=None, bytes_per_second=args.rate_mib_s * 1024 * 1024)
            times: dict[str, list[float]] = {"plain": [], "plain-nosync": [], "fetch": [], "then-sha256": []}
            out, cache = work / "out.bin", work / "cache"

            def then_sha256() -> None:
                plain_download(url, out, fsync=True)
                got = subprocess.run(["sha256sum", str(out)], capture_output=True, text=True, check=True)
                assert got.stdout.split()[0] == sha256

            runs = {
                "plain": lambda: plain_download(url, out, fsync=True),
                "plain-nosync": lambda: plain_download(url, out, fsync=False),
                "fetch": lambda: run_fetch(server, cache),
                "then-sha256": then_sha256,
            }
            for rep in range(args.reps + 1):  # round 0 warms up the page cache and the server
                t = {}
                order = list(runs)
                order = order[rep % len(order) :] + order[: rep % len(order)]  # rotate: no fixed neighbours
                for name in order:
                    t[name] = timed(runs[name])
                    out.unlink(missing_ok=True)
                    shutil.rmtree(cache, ignore_errors=True)
                t = {name: t[name] for name in runs}
                if rep:
                    for key, value in t.items():
                        times[key].append(value)
                label = " (warm-up)" if not rep else ""
                print(f"round {rep}{label}: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()), flush=True)

            # Resume: the first run loses the connection at 50% and gives up; the second resumes.
            server.reset_counters()
            server.clear_faults()
            server.inject(NAME, drop_after=size // 2)
            try:
                run_fetch(server, cache, retries=1)
                raise SystemExit("the interrupted run did not fail")
            except NetworkError:
                pass
            first_bytes = server.bytes_served(NAME)
            server.reset_counters()
            resume_time = timed(lambda: run_fetch(server, cache))
            resumed_bytes = server.bytes_served(NAME)
            shutil.rmtree(cache)

        med = {k: statistics.median(v) for k, v in times.items()}
        gib = size / 1024**3
        print()
        link = f"server throttled to {args.rate_mib_s:g} MiB/s" if args.rate_mib_s else "unthrottled loopback"
        print(f"file: {args.size_mib} MiB, {link}, {args.reps} rounds, median seconds (GiB/s)")
        for key, value in med.items():
            print(f"  {key:<13} {value:7.2f} s  ({gib / value:.2f} GiB/s)")
        ratio_plain = med["fetch"] / med["plain"]
        ratio_nosync = med["fetch"] / med["plain-nosync"]
        speedup = med["then-sha256"] / med["fetch"]
        print(
            f"fetch / plain (both fsync'd):   {ratio_plain:.2f}x   goal <= 1.15x  {_ok(ratio_plain <= 1.15)}"
        )
        print(f"fetch / plain-nosync:           {ratio_nosync:.2f}x   (for reference)")
        print(f"then-sha256 / fetch:            {speedup:.2f}x   goal >= 1.5x   {_ok(speedup >= 1.5)}")
        fraction = resumed_bytes / size
        print(
            f"resume at 50%: first run sent {first_bytes / size:.1%}, the resumed run {fraction:.1%} "
            f"of the file in {resume_time:.2f}s   goal <= 55%  {_ok(fraction <= 0.55)}"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ok(good: bool) -> str:
    return "ok" if good else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
