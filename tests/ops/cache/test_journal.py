"""The journal: fsynced JSON lines, one writer, torn tails, open intents, row statuses."""

from __future__ import annotations

import pytest

from autoglm_cli.errors import EnvironmentFailure
from autoglm_cli.ops.cache.journal import Journal, default_journal_path, read_records, row_statuses


def test_records_survive_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.row_status("r1", "in_progress", old="THUDM/", new="zai-org/{name}", kind="hf")
        journal.intent("rename:/x", "dir", "rename", source="/a", target="/x", ino=1)
    with open(path, "ab") as f:
        f.write(b'{"t": "done", "id": "rena')  # the process died inside this write
    assert [r["t"] for r in read_records(path)] == ["row", "intent"]
    with Journal(path) as journal:
        assert [r["id"] for r in journal.open_intents()] == ["rename:/x"]
        journal.done("rename:/x")
        assert journal.open_intents() == []
    assert [r["t"] for r in read_records(path)] == [
        "row",
        "intent",
        "done",
    ]  # the tail was closed off cleanly


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path), pytest.raises(EnvironmentFailure, match="another migrate-cache run"):
        Journal(path).open()
    with Journal(path):  # released when the first one closed
        pass


def test_row_status_is_the_latest_record(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.row_status("r1", "in_progress", old="THUDM/", new="zai-org/{name}", kind="hf")
        journal.row_status("r2", "in_progress", old="user:", new="profile/{id}", kind="dir")
        journal.row_status("r1", "completed", old="THUDM/", new="zai-org/{name}", kind="hf")
        journal.row_status("r2", "failed", old="user:", new="profile/{id}", kind="dir", error="disk full")
    statuses = row_statuses(read_records(path))
    assert {k: v.status for k, v in statuses.items()} == {"r1": "completed", "r2": "failed"}
    assert statuses["r2"].error == "disk full"


def test_default_location_follows_the_state_dir_variables(tmp_path):
    assert default_journal_path({"AUTOGLM_STATE_DIR": str(tmp_path)}) == tmp_path / "migrate-cache.jsonl"
    assert (
        default_journal_path({"XDG_STATE_HOME": str(tmp_path)})
        == tmp_path / "autoglm" / "migrate-cache.jsonl"
    )
