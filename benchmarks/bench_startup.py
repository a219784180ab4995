"""Start-up: `autoglm --help` vs `hf --help` (huggingface_hub's CLI), side by side.

Goal (issue #2): autoglm's wall time at most 0.25x hf's. Both are the console
scripts of the same virtual environment, run alternately so machine noise hits
both alike; the median of each is compared. `python -c pass` is shown as the
floor every Python CLI pays.

    .venv/bin/python benchmarks/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.25


def _script(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found next to {sys.executable} or on PATH (make install)")
    return found


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each command (default 21)")
    args = parser.parse_args()

    os.environ["NO_COLOR"] = "1"
    commands = {
        "autoglm --help": [_script("autoglm"), "--help"],
        "hf --help": [_script("hf"), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    for argv in commands.values():  # warm the page cache and .pyc files
        _time(argv)
        _time(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name].append(_time(argv))

    print(f"{'command':<16} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, values in samples.items():
        print(
            f"{name:<16} {statistics.median(values) * 1000:>10.1f} {min(values) * 1000:>8.1f}"
            f" {max(values) * 1000:>8.1f}"
        )
    ratio = statistics.median(samples["autoglm --help"]) / statistics.median(samples["hf --help"])
    best_ratio = min(samples["autoglm --help"]) / min(samples["hf --help"])
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"({args.runs} runs each, interleaved)")
    print(f"\nratio autoglm/hf: {ratio:.3f} (medians), {best_ratio:.3f} (minimums)")
    print(f"goal <= {GOAL}: {verdict}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
