"""Git remote URLs: parse them, rewrite them through the `moves` map, keep credentials right.

A `moves` key is a URL prefix, with or without its scheme:

    moves:
      github.com/THUDM/: github.com/zai-org/              # https, ssh:// and git@host: forms
      https://git.example.com/THUDM/: https://git.example.com/zai-org/

Matching ignores credentials (`https://user:token@host/...` matches `host/...`),
the longest matching key wins, and the rewritten URL keeps the original's form
(scheme, `git@host:` style) and its credentials. A token is only carried to the
same host: moving a remote to another host drops it (and says so) rather than
sending it to a server it was never meant for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from ...redact import redact_url

# `[user@]host:path` (git's scp-like syntax): a colon before any slash, no "://".
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>.*)$")


@dataclass(frozen=True)
class GitUrl:
    style: Literal["url", "scp", "local"]
    scheme: str  # "https", "ssh", "file", ... ("" for scp and local paths)
    userinfo: str  # "user:token", "token", "git" or ""
    host: str  # "github.com", "host:8080" ("" for file:// and local paths)
    path: str  # "/org/repo.git" (url), "org/repo.git" (scp), the path itself (local)

    @classmethod
    def parse(cls, text: str) -> GitUrl:
        if "://" in text:
            scheme, rest = text.split("://", 1)
            netloc, slash, path = rest.partition("/")
            userinfo, at, host = netloc.rpartition("@")
            return cls("url", scheme.lower(), userinfo if at else "", host, slash + path)
        match = _SCP.match(text)
        if match and len(match.group("host")) > 1:  # "C:\..." is a drive, not a host
            return cls("scp", "", match.group("user") or "", match.group("host"), match.group("path"))
        return cls("local", "", "", "", text)

    def render(self) -> str:
        if self.style == "url":
            userinfo = f"{self.userinfo}@" if self.userinfo else ""
            return f"{self.scheme}://{userinfo}{self.host}{self.path}"
        if self.style == "scp":
            userinfo = f"{self.userinfo}@" if self.userinfo else ""
            return f"{userinfo}{self.host}:{self.path}"
        return self.path

    @property
    def bare(self) -> str:
        """The URL without user-info: what matching and comparisons look at."""
        return replace(self, userinfo="").render()

    @property
    def location(self) -> str:
        """`host/path`, the same for https://, ssh:// and git@host: forms of one repository."""
        if self.style == "local" or not self.host:
            return self.path
        host = self.host.split(":", 1)[0] if self.style == "url" else self.host
        return f"{host}/{self.path.lstrip('/')}"

    def with_location(self, location: str) -> GitUrl:
        if self.style == "local" or not self.host:
            return replace(self, path=location)
        host, _, path = location.partition("/")
        if self.style == "url":
            port = self.host.partition(":")[2]
            return replace(self, host=f"{host}:{port}" if port else host, path="/" + path)
        return replace(self, host=host, path=path)

    @property
    def hostname(self) -> str:
        return self.host.split(":", 1)[0].lower()

    @property
    def carries_secret(self) -> bool:
        """A password or token in the user-info (an ssh user name alone is no secret)."""
        if not self.userinfo:
            return False
        return ":" in self.userinfo or self.scheme in ("http", "https")


def display(url: str) -> str:
    """A URL fit for output: credentials masked."""
    return redact_url(url) if "://" in url else url


def same_repository(a: str, b: str) -> bool:
    """Whether two URLs name one repository, credentials and a trailing `.git` or `/` aside."""

    def key(url: str) -> str:
        bare = GitUrl.parse(url).bare.rstrip("/")
        return bare[:-4] if bare.endswith(".git") else bare

    return key(a) == key(b)


@dataclass(frozen=True)
class Rewrite:
    """The outcome of applying `moves` (or `--to`) to one URL."""

    old: str
    new: str
    rule: str  # the moves key that matched, or "--to"
    credentials_dropped: bool = False


def apply_moves(url: str, moves: Mapping[str, str]) -> Rewrite | None:
    """`url` rewritten by the longest matching `moves` key, or None when none matches."""
    parsed = GitUrl.parse(url)
    bare, location = parsed.bare, parsed.location
    for key in sorted(moves, key=len, reverse=True):
        target = moves[key]
        if _is_prefix(key, url) and parsed.userinfo and key.find("@") >= 0:
            # A key written with its user-info (`git@github.com:THUDM/`) matches as written.
            return Rewrite(url, target + url[len(key) :], key)
        if _is_prefix(key, bare):
            return carry_credentials(url, target + bare[len(key) :], rule=key)
        if "://" not in key and _is_prefix(key, location):
            moved = parsed.with_location(target + location[len(key) :])
            return carry_credentials(url, replace(moved, userinfo="").render(), rule=key)
    return None


def _is_prefix(key: str, text: str) -> bool:
    """`key` starts `text` at a path boundary: `github.com/THUDM` never matches `.../THUDM2/x`."""
    if not key or not text.startswith(key):
        return False
    rest = text[len(key) :]
    return key[-1] in "/:" or not rest or rest[0] in "/:" or rest == ".git"


def carry_credentials(old: str, new: str, *, rule: str) -> Rewrite:
    """`new` with the user-info of `old` when `new` has none and it is safe to carry.

    A user name alone (ssh's `git@`) always moves along; a password or token only
    to the same host.
    """
    before, after = GitUrl.parse(old), GitUrl.parse(new)
    if not before.userinfo or after.userinfo or after.style == "local" or not after.host:
        return Rewrite(old, new, rule)
    if before.carries_secret and before.hostname != after.hostname:
        return Rewrite(old, new, rule, credentials_dropped=True)
    return Rewrite(old, replace(after, userinfo=before.userinfo).render(), rule)


def repository_name(url: str) -> str:
    """The directory `git clone URL` would create: the last path part without `.git`."""
    parsed = GitUrl.parse(url)
    tail = parsed.path.rstrip("/").rsplit("/", 1)[-1]
    if parsed.style == "scp":
        tail = tail.rsplit(":", 1)[-1]
    if tail.endswith(".git"):
        tail = tail[:-4]
    if not tail and parsed.host:
        tail = parsed.hostname
    return tail or "repository"
