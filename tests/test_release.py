"""The release artifacts: `make dist` builds a wheel and an sdist whose checksums both
`sha256sum -c` and `autoglm verify` accept, and the wheel alone is a working install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from autoglm_cli import __version__

from .conftest import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("dist")
    venv = Path(sys.prefix)
    subprocess.run(
        # -o: never reinstall the running environment (a pyproject newer than .installed would)
        [
            "make",
            "-s",
            "-C",
            str(REPO_ROOT),
            "-o",
            f"{venv}/.installed",
            "dist",
            f"DIST={out}",
            f"VENV={venv}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def test_dist_holds_wheel_sdist_and_checksums_for_this_version(dist):
    names = sorted(p.name for p in dist.iterdir())
    assert names == sorted(
        [f"autoglm-{__version__}-py3-none-any.whl", f"autoglm-{__version__}.tar.gz", "SHA256SUMS"]
    )
    sums = (dist / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 2 and all(re.fullmatch(r"[0-9a-f]{64}  autoglm-\S+", line) for line in sums)
    # The sdist carries what a release needs besides the code.
    with tarfile.open(dist / f"autoglm-{__version__}.tar.gz") as sdist:
        members = {Path(m).relative_to(f"autoglm-{__version__}").as_posix() for m in sdist.getnames()[1:]}
    assert {"CHANGELOG.md", "README.md", "pyproject.toml", "autoglm_cli/__init__.py"} <= members


def test_checksums_pass_sha256sum_and_autoglm_verify_and_catch_a_changed_byte(dist, tmp_path):
    copy = tmp_path / "dist"
    shutil.copytree(dist, copy)
    autoglm = [sys.executable, "-m", "autoglm_cli"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=copy, capture_output=True).returncode == 0
    assert subprocess.run([*autoglm, "verify", "SHA256SUMS"], cwd=copy, capture_output=True).returncode == 0

    wheel = next(copy.glob("*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=copy, capture_output=True).returncode == 1
    checked = subprocess.run([*autoglm, "verify", "SHA256SUMS"], cwd=copy, capture_output=True, text=True)
    assert checked.returncode == 1, checked.stderr
    assert wheel.name in checked.stdout + checked.stderr


def test_the_wheel_alone_installs_a_working_autoglm(dist, tmp_path):
    """A fresh virtualenv with the wheel installed: a package file or an entry point the
    wheel lacks shows up here. Dependencies come from this environment (a .pth line: its
    own .pth files, e.g. the editable install of the checkout, are not processed)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("*.whl"))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True}

    where = subprocess.run([str(python), "-c", "import autoglm_cli; print(autoglm_cli.__file__)"], **run)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    version = subprocess.run([str(bindir / "autoglm"), "--version"], **run)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"autoglm {__version__}"

    kit = "from autoglm_cli.ops.deploy.monitoring import KIT_FILES as K, kit_text; [kit_text(n) for n in K]"
    assert subprocess.run([str(python), "-c", kit], **run).returncode == 0  # package data in the wheel

    helped = subprocess.run([str(bindir / "autoglm"), "--help"], **run)
    assert helped.returncode == 0, helped.stderr
    for command in ("clone", "env-check", "fetch-weights", "verify", "deploy", "health", "redeploy", "serve"):
        assert command in helped.stdout


def test_the_changelog_has_a_section_for_this_version():
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), (
        f"CHANGELOG.md has no '## [{__version__}] - YYYY-MM-DD' section: write one when the version changes"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?", __version__), "the version is not SemVer-shaped"
