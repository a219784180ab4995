"""`autoglm keys`: the key is shown once, never listed, revocable; JSON documents."""

from __future__ import annotations

import stat

from autoglm_cli.runtime.auth import Authenticator


def test_create_prints_the_key_once_and_list_never_shows_it(cli, tmp_path):
    keys = tmp_path / "keys.json"
    created = cli(
        "keys", "create", "--keys-file", keys, "--name", "ci", "--model", "glm-4", "--rate-limit", "10"
    )
    assert created.exit_code == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ak_") and "\n" not in key
    assert "only time the key is shown" in created.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert Authenticator(keys).authenticate(key).name == "ci"

    listed = cli("keys", "list", "--keys-file", keys)
    assert listed.exit_code == 0
    assert "ci" in listed.stdout and "glm-4" in listed.stdout and "10/min" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert key[3:15] not in listed.stdout


def test_json_create_list_revoke(cli, tmp_path):
    keys = tmp_path / "keys.json"
    doc = cli("--json", "keys", "create", "--keys-file", keys, "--permission", "model:read").json
    assert doc["ok"] and doc["command"] == "keys create"
    key = doc["result"]["api_key"]
    assert key.startswith("ak_") and len(key) == 46
    key_id = doc["result"]["key"]["id"]
    assert doc["result"]["key"]["permissions"] == ["model:read"]

    listing = cli("keys", "list", "--keys-file", keys, "--json")
    assert key not in listing.stdout
    assert [k["id"] for k in listing.json["result"]["keys"]] == [key_id]

    revoked = cli("keys", "revoke", key_id, "--keys-file", keys, "--json")
    assert revoked.exit_code == 0 and revoked.json["result"]["revoked"]["id"] == key_id
    assert Authenticator(keys).authenticate(key) is None
    again = cli("keys", "revoke", key_id, "--keys-file", keys, "--json")
    assert again.exit_code == 2 and "no key matches" in again.json["error"]["message"]


def test_keys_file_from_environment_and_config(cli, tmp_path, monkeypatch):
    env_file = tmp_path / "env-keys.json"
    monkeypatch.setenv("AUTOGLM_KEYS_FILE", str(env_file))
    assert cli("keys", "create").exit_code == 0
    assert env_file.exists()
    monkeypatch.delenv("AUTOGLM_KEYS_FILE")
    config = tmp_path / "autoglm.yaml"
    conf_file = tmp_path / "conf-keys.json"
    config.write_text(f"gateway: {{keys_file: {conf_file}}}\n")
    assert cli("--config", config, "keys", "create", "--quiet").exit_code == 0
    assert conf_file.exists()


def test_bad_permission_is_exit_2(cli, tmp_path):
    result = cli("keys", "create", "--keys-file", tmp_path / "k.json", "--permission", "admin")
    assert result.exit_code == 2
    assert "unknown permission" in result.stderr
    assert not (tmp_path / "k.json").exists()
