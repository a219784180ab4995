"""API keys: only hashes on disk, 0600 atomic writes, constant-time lookup, token buckets."""

from __future__ import annotations

import json
import stat
import threading

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.errors import ConfigError, UsageError
from autoglm_cli.runtime.auth import (
    Authenticator,
    KeyStore,
    RateLimiter,
    TokenBucket,
    hash_key,
    resolve_keys_file,
)


def test_create_stores_only_the_hash_in_a_0600_file(tmp_path):
    path = tmp_path / "sub" / "keys.json"
    record, key = KeyStore(path).create(name="ci", models=("glm",), rate_limit=5)
    assert key.startswith("ak_") and len(key) == 46  # ak_ + 43 base64url chars = 256 bits
    text = path.read_text()
    assert key not in text
    assert hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(text)["keys"][0]
    assert data["id"] == record.id and data["models"] == ["glm"] and data["rate_limit"] == 5
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def test_two_keys_are_different_and_both_verify(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    first, key1 = store.create()
    second, key2 = store.create()
    assert key1 != key2 and first.id != second.id
    auth = Authenticator(store.path)
    assert auth.authenticate(key1).id == first.id
    assert auth.authenticate(key2).id == second.id
    assert auth.authenticate(key1 + "x") is None
    assert auth.authenticate("ak_" + "A" * 43) is None


def test_concurrent_creates_lose_no_key(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(store.create()[1])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    auth = Authenticator(store.path)
    assert len(store.list()) == 8
    assert all(auth.authenticate(k) is not None for k in keys)


def test_revoke_by_id_name_or_key(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    a, _ = store.create(name="alpha")
    _, key_b = store.create(name="beta")
    c, _ = store.create()
    assert store.revoke(a.id).id == a.id
    assert store.revoke("beta").name == "beta"
    assert [r.id for r in store.list()] == [c.id]
    with pytest.raises(UsageError, match="no key matches"):
        store.revoke(key_b)


def test_unknown_permission_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="model:write"):
        KeyStore(tmp_path / "k.json").create(permissions=("model:write",))


def test_a_corrupt_keys_file_names_the_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="keys.json"):
        KeyStore(path).list()


def test_authenticator_sees_revocation_without_restart(tmp_path):
    now = [0.0]
    store = KeyStore(tmp_path / "keys.json")
    record, key = store.create()
    auth = Authenticator(store.path, clock=lambda: now[0], recheck=1.0)
    assert auth.authenticate(key) is not None
    store.revoke(record.id)
    assert auth.authenticate(key) is not None  # within the recheck interval the cached list is used
    now[0] = 1.5
    assert auth.authenticate(key) is None


def test_token_bucket_refills_per_minute():
    bucket = TokenBucket(capacity=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take(0.0)
    assert wait == pytest.approx(20.0)  # 3 per minute: one token every 20 s
    assert bucket.take(19.0) == pytest.approx(1.0)
    assert bucket.take(20.0) == 0.0


def test_rate_limiter_is_per_key(tmp_path):
    now = [0.0]
    store = KeyStore(tmp_path / "keys.json")
    limited, _ = store.create(rate_limit=1)
    free, _ = store.create()
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.check(limited)[0] == 0.0
    assert limiter.check(limited)[0] == pytest.approx(60.0)
    assert all(limiter.check(free)[0] == 0.0 for _ in range(100))


def test_keys_file_precedence(tmp_path):
    config = parse_config("gateway: {keys_file: /from/config.json}", environ={})
    assert str(resolve_keys_file("/opt.json", config, {"AUTOGLM_KEYS_FILE": "/env.json"})) == "/opt.json"
    assert str(resolve_keys_file(None, config, {"AUTOGLM_KEYS_FILE": "/env.json"})) == "/env.json"
    assert str(resolve_keys_file(None, config, {})) == "/from/config.json"
    default = resolve_keys_file(None, parse_config("", environ={}), {"XDG_CONFIG_HOME": str(tmp_path)})
    assert default == tmp_path / "autoglm" / "keys.json"
