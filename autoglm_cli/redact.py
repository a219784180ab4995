"""Keep secrets out of everything autoglm prints or logs.

Tokens embedded in URLs (`https://user:token@host/...`), Hugging Face tokens
(`hf_...`), autoglm API keys (`ak_...`) and bearer headers are replaced by `***`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Linear on any input (redact() runs on request paths and response bodies): the scheme is
# bounded (RFC 3986 schemes are short) and must start where a scheme can start, so each `://`
# is tried from one position only; the user-info cannot span a `/`, so the scans never overlap.
_URL_USERINFO = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<userinfo>[^/@\s]+)@"
)
# Real shapes only: a Hugging Face token is `hf_` + 34 letters, an autoglm key `ak_` +
# 43 url-safe base64 characters. Shorter runs are names (`hf_transformers`), not secrets.
_TOKENS = re.compile(r"\b(?:hf_[A-Za-z0-9]{30,}|ak_[A-Za-z0-9_-]{32,})")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")


def redact_url(url: str) -> str:
    """A URL with any password or token in its user-info replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    # `https://token@host` carries the secret in the user name itself.
    userinfo = f"{user}:{MASK}" if parts.password is not None else MASK
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def redact(text: str) -> str:
    """Any text with URL credentials, known token shapes and bearer values masked."""

    def _userinfo(match: re.Match) -> str:
        userinfo = match.group("userinfo")
        user, sep, _ = userinfo.partition(":")
        masked = f"{user}:{MASK}" if sep else MASK
        return f"{match.group('scheme')}{masked}@"

    text = _URL_USERINFO.sub(_userinfo, text)
    text = _TOKENS.sub(MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)
