"""API keys: the keys file, verification in the gateway, per-key rate limits.

A key is `ak_` + 43 characters of base64url (256 bits from `secrets`). The keys
file stores only its SHA-256 (a slow KDF buys nothing for 256 random bits), with
an id (`key_...`, unrelated to the key) to list and revoke it by. The file is
JSON, mode 0600, replaced atomically (temporary sibling, fsync, rename) under a
lock so concurrent `keys create` calls never lose a key.

The gateway compares the hash of a presented key with every stored hash using
`hmac.compare_digest` (constant time, no early exit), re-reads the file when it
changes (a revoked key stops working without a restart), and limits each key to
`rate_limit` requests per minute with a token bucket (burst = the per-minute limit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write
from ..errors import ConfigError, EnvironmentFailure, UsageError

KEY_PREFIX = "ak_"
ENV_KEYS_FILE = "AUTOGLM_KEYS_FILE"
PERMISSIONS = ("model:read", "model:infer")
FILE_VERSION = 1


@dataclass(frozen=True)
class KeyRecord:
    id: str
    hash: str = field(repr=False)
    name: str = ""
    models: tuple[str, ...] = ()  # empty: every model
    permissions: tuple[str, ...] = PERMISSIONS
    rate_limit: int | None = None  # requests per minute; None: unlimited
    created: str = ""

    def allows(self, permission: str) -> bool:
        return permission in self.permissions

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def public(self) -> dict:
        """Everything but the hash: what `keys list` shows."""
        return {
            "id": self.id,
            "name": self.name,
            "models": list(self.models),
            "permissions": list(self.permissions),
            "rate_limit": self.rate_limit,
            "created": self.created,
        }


ANONYMOUS = KeyRecord(id="anonymous", hash="", name="auth disabled")


# -- where the file is ------------------------------------------------------------


def default_keys_file(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autoglm" / "keys.json"


def resolve_keys_file(
    option: str | os.PathLike | None, config=None, environ: Mapping[str, str] = os.environ
) -> Path:
    """`--keys-file` > `$AUTOGLM_KEYS_FILE` > `gateway.keys_file` > the default."""
    if option:
        return Path(option).expanduser()
    if environ.get(ENV_KEYS_FILE):
        return Path(environ[ENV_KEYS_FILE]).expanduser()
    if config is not None and config.gateway.keys_file:
        return Path(config.gateway.keys_file).expanduser()
    return default_keys_file(environ)


# -- keys and hashes ----------------------------------------------------------------


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def find_key(records: list[KeyRecord], key: str) -> KeyRecord | None:
    """The record whose hash matches `key`; compares against all of them in constant time."""
    digest = hash_key(key).encode()
    found = None
    for record in records:
        if hmac.compare_digest(digest, record.hash.encode()):
            found = record
    return found


# -- the file -----------------------------------------------------------------------


def _parse(path: Path, text: str) -> list[KeyRecord]:
    try:
        data = json.loads(text) if text.strip() else {"keys": []}
        records = []
        for item in data.get("keys", []):
            records.append(
                KeyRecord(
                    id=str(item["id"]),
                    hash=str(item["hash"]),
                    name=str(item.get("name", "")),
                    models=tuple(item.get("models") or ()),
                    permissions=tuple(item.get("permissions") or PERMISSIONS),
                    rate_limit=item.get("rate_limit"),
                    created=str(item.get("created", "")),
                )
            )
        return records
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"not a valid keys file: {exc}",
            file=str(path),
            remedy="Restore it from a backup, or move it away and create keys with `autoglm keys create`.",
        ) from None


def read_keys(path: Path) -> list[KeyRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read the keys file {path}: {exc}") from None
    return _parse(path, text)


class KeyStore:
    """Create, list and revoke keys in one keys file."""

    def __init__(
        self, path: Path, *, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    ):
        self.path = Path(path)
        self.now = now

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def list(self) -> list[KeyRecord]:
        return read_keys(self.path)

    def _save(self, records: list[KeyRecord]) -> None:
        data = {
            "version": FILE_VERSION,
            "keys": [{**r.public(), "hash": r.hash} for r in records],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a private folder, if new
        atomic_write(self.path, json.dumps(data, indent=2) + "\n", mode=0o600)

    def create(
        self,
        *,
        name: str = "",
        models: tuple[str, ...] = (),
        permissions: tuple[str, ...] = PERMISSIONS,
        rate_limit: int | None = None,
    ) -> tuple[KeyRecord, str]:
        unknown = [p for p in permissions if p not in PERMISSIONS]
        if unknown:
            raise UsageError(
                f"unknown permission(s): {', '.join(unknown)}",
                remedy=f"Use one or more of: {', '.join(PERMISSIONS)}.",
            )
        if rate_limit is not None and rate_limit < 1:
            raise UsageError("--rate-limit must be at least 1 request per minute")
        key = generate_key()
        with self._locked():
            records = read_keys(self.path)
            ids = {r.id for r in records}
            key_id = f"key_{secrets.token_hex(4)}"
            while key_id in ids:
                key_id = f"key_{secrets.token_hex(4)}"
            record = KeyRecord(
                id=key_id,
                hash=hash_key(key),
                name=name,
                models=tuple(models),
                permissions=tuple(dict.fromkeys(permissions)) or PERMISSIONS,
                rate_limit=rate_limit,
                created=self.now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            )
            self._save([*records, record])
        return record, key

    def revoke(self, ident: str) -> KeyRecord:
        """Remove the key with id (or name, or the key itself) `ident`."""
        with self._locked():
            records = read_keys(self.path)
            match = [r for r in records if r.id == ident]
            if not match and ident.startswith(KEY_PREFIX):
                found = find_key(records, ident)
                match = [found] if found else []
            if not match:
                match = [r for r in records if r.name and r.name == ident]
            if len(match) != 1:
                what = "several keys are named" if len(match) > 1 else "no key matches"
                raise UsageError(
                    f"{what} {ident!r} in {self.path}",
                    remedy="Pass the key's id as `autoglm keys list` shows it.",
                )
            self._save([r for r in records if r.id != match[0].id])
            return match[0]


def insecure_mode(path: Path) -> bool:
    """True when group or others may read the keys file."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except FileNotFoundError:
        return False


# -- in the gateway -------------------------------------------------------------------


class Authenticator:
    """Verifies presented keys against the keys file, re-reading it when it changes."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic, recheck: float = 1.0):
        self.path = Path(path)
        self.clock = clock
        self.recheck = recheck
        self._records: list[KeyRecord] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -math.inf
        self.reload()

    def reload(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._records = read_keys(self.path) if stamp is not None else []
            self._stamp = stamp
        self._checked = self.clock()

    @property
    def count(self) -> int:
        return len(self._records)

    def authenticate(self, key: str) -> KeyRecord | None:
        if self.clock() - self._checked >= self.recheck:
            try:
                self.reload()
            except (ConfigError, EnvironmentFailure):
                self._checked = self.clock()  # keep the last good keys until the file is fixed
        return find_key(self._records, key)


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled continuously at `capacity` per `period` seconds."""

    capacity: int
    period: float = 60.0
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        rate = self.capacity / self.period
        if self.tokens < 0:
            self.tokens, self.updated = float(self.capacity), now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate

    def remaining(self) -> int:
        return max(0, int(self.tokens))


class RateLimiter:
    """One token bucket per key, sized by the key's `rate_limit` (requests per minute)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, record: KeyRecord) -> tuple[float, TokenBucket | None]:
        """(0, bucket) when the request may go ahead, else (seconds to wait, bucket)."""
        if not record.rate_limit:
            return 0.0, None
        bucket = self._buckets.get(record.id)
        if bucket is None or bucket.capacity != record.rate_limit:
            bucket = self._buckets[record.id] = TokenBucket(record.rate_limit)
        return bucket.take(self.clock()), bucket


__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "KeyRecord",
    "KeyStore",
    "RateLimiter",
    "TokenBucket",
    "find_key",
    "generate_key",
    "hash_key",
    "insecure_mode",
    "read_keys",
    "resolve_keys_file",
]
