"""Every `console` example in README.md and docs/*.md runs as written.

Each ```console block is one test. Its `$ ` lines run in order, in bash, in a fresh
folder that holds what a reader of the docs has: `examples/` and `benchmarks/` of
this checkout, a `weights/` folder, an `autoglm.yaml`, and a local hub
(`autoglm_cli.testing.hub_server`) in `HF_ENDPOINT` serving the repos the docs name.
`autoglm` runs this checkout's CLI.

A command must exit 0, or with the code printed by a following `$ echo $?`; and no
command may print a traceback, "No such option" or "No such command", or exit 70.
A block preceded by `<!-- example: skip REASON -->` is skipped with that reason
(a recorded transcript against a random port, a server that runs until Ctrl-C, ...).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoglm_cli.testing.hub_server import HubServer, fake_model_files
from autoglm_cli.testing.servers import free_port
from tests.conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*example:\s*skip\s+(?P<reason>.+?)\s*-->\s*$")
BLOCK = re.compile(r"^```console\n(?P<body>.*?)^```", re.S | re.M)
COMMAND_TIMEOUT = 120


@dataclass(frozen=True)
class Step:
    command: str
    expect: int  # the exit code the docs show (`$ echo $?`), else 0


@dataclass(frozen=True)
class Example:
    where: str  # file:line
    steps: tuple[Step, ...]
    skip: str | None


def _steps(body: str) -> tuple[Step, ...]:
    lines = body.splitlines()
    commands: list[list] = []  # [command, expect]
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\") and i < len(lines):
            command = command[:-1] + " " + lines[i].strip()
            i += 1
        if command.strip() == "echo $?":
            shown = lines[i].strip() if i < len(lines) else ""
            if commands and shown.isdigit():
                commands[-1][1] = int(shown)
            continue
        if command.strip().startswith("#"):
            continue
        commands.append([command, 0])
    return tuple(Step(c, e) for c, e in commands)


def collect() -> list[Example]:
    examples = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            before = text[: match.start()].rstrip("\n").splitlines()
            skip = SKIP.match(before[-1].strip()) if before else None
            steps = _steps(match.group("body"))
            if steps:
                line = text[: match.start()].count("\n") + 1
                where = f"{path.relative_to(REPO_ROOT)}:{line}"
                examples.append(Example(where, steps, skip.group("reason") if skip else None))
    return examples


CONFIG = """\
# The config a reader of docs/worker.md and docs/redeploy.md has in ./autoglm.yaml
model_pool: {{default: glm-4-9b-chat, backup: null}}
models:
  glm-4-9b-chat: {{source: zai-org/glm-4-9b-chat, backend: transformers}}
gateway: {{host: 127.0.0.1, port: {port}, keys_file: ./keys.json}}
"""


@pytest.fixture(scope="module")
def docs_hub():
    server = HubServer()
    files = fake_model_files(shard_size=4096)
    for repo in ("zai-org/glm-4-9b-chat", "zai-org/chatglm3-6b", "autoglm-demo/tiny-chat"):
        server.add_repo(repo, files, aliases=[repo.replace("zai-org/", "THUDM/")] if "zai" in repo else [])
    server.add_repo("zai-org/tiny-glm", files, aliases=["THUDM/tiny-glm"])
    with server as endpoint:
        yield endpoint


@pytest.fixture
def sandbox(tmp_path, docs_hub) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    work = tmp_path / "work"
    bin_dir = tmp_path / "bin"
    for folder in (home, work, bin_dir):
        folder.mkdir()
    for name in ("examples", "benchmarks", ".venv"):
        if (REPO_ROOT / name).exists():
            (work / name).symlink_to(REPO_ROOT / name)
    weights = work / "weights"
    weights.mkdir()
    for name, data in fake_model_files(shard_size=2048, shards=3).items():
        (weights / name).write_bytes(data)
    # A free port, so `env-check --only ports` does not depend on what else runs here.
    (work / "autoglm.yaml").write_text(CONFIG.format(port=free_port()))
    (work / "broken.yaml").write_text("gateway:\n  port: eighty\n")
    autoglm = bin_dir / "autoglm"
    autoglm.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m autoglm_cli "$@"\n')
    autoglm.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AUTOGLM_", "HF_"))},
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "HF_ENDPOINT": docs_hub,
        "NO_COLOR": "1",
        "COLUMNS": "80",
    }
    return work, env


def _run_steps(example: Example, work: Path, env: dict[str, str]) -> None:
    background: list[subprocess.Popen] = []
    try:
        for step in example.steps:
            command = step.command.strip()
            if command.endswith("&"):
                background.append(
                    subprocess.Popen(["bash", "-c", command[:-1]], cwd=work, env=env, start_new_session=True)
                )
                continue
            proc = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            shown = f"{example.where}: $ {command}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            for bad in ("Traceback (most recent call last)", "No such option", "No such command"):
                assert bad not in proc.stdout + proc.stderr, shown
            assert proc.returncode == step.expect, shown
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


EXAMPLES = collect()


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_console_example_runs_as_written(example: Example, sandbox):
    if example.skip:
        pytest.skip(example.skip)
    work, env = sandbox
    _run_steps(example, work, env)


def test_every_skip_states_a_reason():
    for path in DOCS:
        for line in path.read_text().splitlines():
            if "example: skip" in line:
                assert SKIP.match(line.strip()), f"{path.name}: {line!r} needs a reason"
