"""SIGKILL a real `autoglm migrate-cache --yes` process at random points, rerun, compare.

The caches are built by huggingface_hub (hub cache), in transformers' layout
(module cache) and by hand (a directory cache). A reference migration runs
without interruption on a copy; every killed-and-rerun copy must end up with the
very same tree: the same files with the same bytes, the same symlinks, nothing
missing, no leftovers. Each kill waits for a random number of new journal lines,
then a random few milliseconds, so kills land all through the migration (and the
prune) however loaded the machine is; `AUTOGLM_MIGRATE_TEST_STEP_DELAY` (the
journal's test hook, docs/migrate-cache.md) stretches each step to a few
milliseconds so the points between steps are hit too.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoglm_cli.testing.hub_server import fake_model_files
from tests.conftest import REPO_ROOT
from tests.ops.cache.conftest import MODELING, snapshot_tree

pytestmark = pytest.mark.slow

STEP_DELAY = "0.004"
MIN_KILLS = 12  # per mode: 24 kills in all
MAX_KILLS_PER_ROUND = 4


def _build_template(root: Path, hub_server) -> None:
    from huggingface_hub import snapshot_download

    for i in range(3):
        repo = f"THUDM/model-{i}"
        files = fake_model_files(16 * 1024, shards=6, seed=i)
        files["configuration_x.py"] = MODELING
        hub_server.add_repo(repo, files)
        snapshot_download(repo, cache_dir=root / "hub")
    leaf = root / "modules" / "transformers_modules" / "THUDM" / "model_hyphen_0" / ("c" * 40)
    leaf.mkdir(parents=True)
    for level in (leaf.parents[2], leaf.parents[1], leaf.parent, leaf):
        (level / "__init__.py").touch()
    (leaf / "configuration_x.py").write_bytes(MODELING)
    app = root / "app"
    for i in range(6):
        entry = app / "THUDM" / f"tool-{i}"
        (entry / "sub").mkdir(parents=True)
        (entry / "sub" / "data.bin").write_bytes(os.urandom(2048))
        (entry / "notes.txt").write_text(f"tool {i}\n")
        (app / f"user:{i}").write_text(f"user {i}\n")


def _copy(template: Path, root: Path) -> Path:
    shutil.copytree(template, root, symlinks=True)
    app = root / "app"
    (root / "autoglm.yaml").write_text(
        "cache_migrations:\n"
        "  - {old: 'THUDM/', new: 'zai-org/{name}'}\n"
        f"  - {{old: 'THUDM/', new: 'zai-org/{{name}}', kind: dir, root: '{app}'}}\n"
        f"  - {{old: 'user:', new: 'profile/{{id}}', kind: dir, root: '{app}'}}\n"
    )
    return root


def _command(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "autoglm_cli", "--config", str(root / "autoglm.yaml"), "migrate-cache", "--yes",
        "--hub-cache", str(root / "hub"), "--modules-cache", str(root / "modules"),
        "--journal", str(root.parent / f"{root.name}.journal.jsonl"), *extra,
    ]  # fmt: skip


def _journal(root: Path) -> Path:
    return root.parent / f"{root.name}.journal.jsonl"


def _run(root: Path, extra: tuple[str, ...], *, kill_at: tuple[int, float] | None) -> int | None:
    """Run once. With `kill_at=(n, delay)`: SIGKILL it `delay` s after its n-th new journal line.

    Returns the exit code, or None if it was killed. Counting journal lines instead of
    wall time puts the kills inside the migration however loaded the machine is.
    """
    env = {**os.environ, "AUTOGLM_MIGRATE_TEST_STEP_DELAY": STEP_DELAY, "NO_COLOR": "1"}
    journal = _journal(root)
    start_lines = _lines(journal)
    proc = subprocess.Popen(
        _command(root, *extra),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_at is not None:
        lines, delay = kill_at
        deadline = time.monotonic() + 60
        while proc.poll() is None and _lines(journal) < start_lines + lines and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return None
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return proc.returncode


def _lines(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def _tree(root: Path) -> dict:
    found = {}
    for part in ("hub", "modules", "app"):
        found.update({f"{part}/{k}": v for k, v in snapshot_tree(root / part).items()})
    return found


@pytest.mark.parametrize("extra", [(), ("--copy", "--prune-old")], ids=["link", "copy-prune"])
def test_sigkill_at_random_points_then_rerun_gives_the_same_tree(tmp_path, hub_server, extra):
    from huggingface_hub import scan_cache_dir, snapshot_download

    template = tmp_path / "template"
    _build_template(template, hub_server)
    original = _tree(template)

    reference = _copy(template, tmp_path / "reference")
    _run(reference, extra, kill_at=None)
    expected = _tree(reference)
    assert not any(k.endswith(".autoglm-partial") for k in expected)
    lines_per_run = _lines(_journal(reference))

    rng = random.Random(int(os.environ.get("AUTOGLM_CRASH_SEED", "5")))
    kills = mid_run_kills = rounds = 0
    while kills < MIN_KILLS and rounds < 12:
        victim = _copy(template, tmp_path / f"round-{rounds}")
        for _ in range(MAX_KILLS_PER_ROUND):
            lines = _lines(_journal(victim))
            kill_at = (rng.randint(0, lines_per_run), rng.uniform(0, 0.03))
            if _run(victim, extra, kill_at=kill_at) is not None:
                break  # it finished before the kill
            kills += 1
            mid_run_kills += _lines(_journal(victim)) > lines  # it had started changing things
        _run(victim, extra, kill_at=None)  # the rerun that must finish the job
        assert _tree(victim) == expected, f"round {rounds} differs from the uninterrupted run"
        shutil.rmtree(victim)
        rounds += 1
    assert kills >= MIN_KILLS
    assert mid_run_kills >= MIN_KILLS // 2

    # and the result is what a user needs: the new ids resolve offline, the old ones too (unless pruned)
    assert scan_cache_dir(reference / "hub").warnings == []
    for i in range(3):
        snap = Path(
            snapshot_download(f"zai-org/model-{i}", cache_dir=reference / "hub", local_files_only=True)
        )
        for name, data in fake_model_files(16 * 1024, shards=6, seed=i).items():
            assert (snap / name).read_bytes() == data
    if not extra:  # every old path still resolves, to the same bytes (through compat links too)
        for rel, (kind, value) in original.items():
            path = reference / rel
            if kind == "file":
                assert hashlib.sha256(path.read_bytes()).hexdigest() == value, rel
            elif kind == "link":
                assert os.readlink(path) == value, rel
            else:
                assert path.is_dir(), rel
