"""`autoglm migrate-cache` as a user runs it: plans, --yes, --status, --json, errors."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture
def app_cache(tmp_path) -> Path:
    root = tmp_path / "app-cache"
    (root / "THUDM" / "glm-4").mkdir(parents=True)
    (root / "THUDM" / "glm-4" / "weights.bin").write_bytes(b"w" * 4096)
    (root / "user:42").write_text("42")
    return root


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AUTOGLM_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


MAPS = ("--map", "THUDM/=zai-org/{name}", "--map", "user:=profile/{id}")


def test_without_a_terminal_and_without_yes_it_only_prints_the_plan(app_cache, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "autoglm_cli", "migrate-cache", "--root", str(app_cache), *MAPS],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "NO_COLOR": "1", "AUTOGLM_STATE_DIR": str(tmp_path / "state")},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Dry run" in proc.stderr
    assert "THUDM/glm-4" in proc.stdout and "zai-org/glm-4" in proc.stdout and "rename" in proc.stdout
    assert "user:42" in proc.stdout and "link" in proc.stdout
    assert "Apply it with --yes" in proc.stdout
    assert not (app_cache / "zai-org").exists()
    assert not (tmp_path / "state").exists()  # a plan writes no journal


def test_json_plan_lists_rows_entries_items_and_bytes(cli, app_cache):
    result = cli("--json", "migrate-cache", "--root", app_cache, *MAPS, "--dry-run")
    assert result.exit_code == 0
    doc = result.json
    assert doc["command"] == "migrate-cache" and doc["result"]["mode"] == "plan"
    rows = {r["old"]: r for r in doc["result"]["rows"]}
    assert rows["THUDM/"]["status"] == "pending"
    (entry,) = rows["THUDM/"]["entries"]
    assert entry["method"] == "rename" and entry["bytes"] == 4096
    assert entry["target"] == str(app_cache / "zai-org" / "glm-4")
    (entry,) = rows["user:"]["entries"]
    assert entry["method"] == "link" and entry["item_list"][0]["action"] == "link"


def test_apply_then_status(cli, app_cache):
    before = cli("migrate-cache", "--root", app_cache, *MAPS, "--status", "--json")
    assert {r["status"] for r in before.json["result"]["rows"]} == {"pending"}

    applied = cli("migrate-cache", "--root", app_cache, *MAPS, "--yes")
    assert applied.exit_code == 0, applied.stderr
    assert "2 of 2 row(s) completed" in applied.stdout
    assert "old names still resolve" in applied.stdout

    status = cli("migrate-cache", "--root", app_cache, *MAPS, "--status")
    assert status.exit_code == 0
    lines = [line.split() for line in status.stdout.splitlines()]
    assert ["THUDM/", "zai-org/{name}", "dir", "completed"] in [line[:4] for line in lines]
    assert ["user:", "profile/{id}", "dir", "completed"] in [line[:4] for line in lines]


def test_rows_come_from_the_config_when_no_map_is_given(cli, app_cache, tmp_path):
    (tmp_path / "autoglm.yaml").write_text(
        f"cache_migrations:\n  - {{old: 'user:', new: 'profile/{{id}}', kind: dir, root: '{app_cache}'}}\n"
    )
    result = cli("migrate-cache", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["old"] for r in result.json["result"]["rows"]] == ["user:"]
    assert (app_cache / "profile" / "42").read_text() == "42"


def test_a_failed_row_is_journaled_and_the_others_complete(cli, app_cache):
    (app_cache / "profile").write_text("a file where a folder must go")
    result = cli("migrate-cache", "--root", app_cache, *MAPS, "--yes", "--json")
    assert result.exit_code == 3
    rows = {r["old"]: r for r in result.json["result"]["rows"]}
    assert rows["THUDM/"]["status"] == "completed"
    assert rows["user:"]["status"] == "failed" and "profile" in rows["user:"]["error"]
    status = cli("migrate-cache", "--root", app_cache, *MAPS, "--status", "--json")
    assert {r["old"]: r["status"] for r in status.json["result"]["rows"]} == {
        "THUDM/": "completed",
        "user:": "failed",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no mapping rows"),
        (("--map", "THUDM/"), "expected OLD=NEW"),
        (("--map", "THUDM/=zai-org/{org}"), "unknown placeholder"),
        (("--kind", "redis", "--map", "a=b"), "expected hf or dir"),
        (("--kind", "dir", "--map", "user:=profile/{id}"), "no directory was given"),
    ],
)
def test_usage_errors_say_what_to_do(cli, args, message):
    result = cli("migrate-cache", *args, "--yes")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())  # rich wraps long lines
    assert "hint:" in result.stderr


def test_on_a_terminal_it_shows_the_plan_and_asks(app_cache, tmp_path):
    """stdin and stderr on a pseudo-terminal: the plan, a question, and only 'y' applies it."""
    import pty
    import select

    def session(answer: bytes) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoglm_cli", "migrate-cache", "--root", str(app_cache), *MAPS],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=REPO_ROOT,
            env={**os.environ, "NO_COLOR": "1", "AUTOGLM_STATE_DIR": str(tmp_path / "state"), "TERM": "dumb"},
        )
        os.close(slave)
        seen = b""
        while b"Apply this migration?" not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, seen.decode(errors="replace")
            seen += os.read(master, 4096)
        os.write(master, answer)
        proc.wait(timeout=60)
        os.close(master)
        return proc.returncode, seen.decode(errors="replace")

    code, screen = session(b"n\n")
    assert code == 0 and "THUDM/glm-4" in screen and "rename" in screen
    assert not (app_cache / "zai-org").exists()

    code, _ = session(b"y\n")
    assert code == 0
    assert (app_cache / "zai-org" / "glm-4" / "weights.bin").read_bytes() == b"w" * 4096
    assert os.path.islink(app_cache / "THUDM" / "glm-4")


def test_on_a_terminal_nothing_to_migrate_asks_nothing(tmp_path):
    import pty

    master, slave = pty.openpty()
    empty = tmp_path / "cache"
    empty.mkdir()
    env = {**os.environ, "NO_COLOR": "1", "AUTOGLM_STATE_DIR": str(tmp_path / "state"), "TERM": "dumb"}
    env["HF_HOME"] = str(tmp_path / "hf")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoglm_cli", "migrate-cache", "--root", str(empty), *MAPS],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=REPO_ROOT,
        env=env,
    )
    os.close(slave)
    assert proc.wait(timeout=60) == 0  # it would hang on a question
    screen = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(master, 4096):
            screen += chunk
    os.close(master)
    assert b"Nothing to migrate" in screen and b"Apply this migration?" not in screen
