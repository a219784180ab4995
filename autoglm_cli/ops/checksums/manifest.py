"""sha256sum manifests: parse every line GNU coreutils accepts, write lines it reads back.

Formats read (the rules are ported from coreutils 9 `md5sum.c`, so a manifest
that `sha256sum -c` accepts parses the same way here):

- GNU lines: `HEX  name` (text) and `HEX *name` (binary), or, in a manifest
  whose first GNU line has that form, `HEX name` (the form `md5 -r` writes);
  leading blanks are skipped, the hex digest may be upper case;
- BSD tag lines: `SHA256 (name) = HEX` (also `SHA256(name)= HEX`);
- a leading `\\` on either form: the name is escaped (`\\\\`, `\\n`, `\\r`),
  which coreutils writes for names holding a backslash, a newline or a CR;
- empty lines and lines starting with `#` are skipped; CRLF endings are fine.

Anything else is a malformed line: it is kept (with its line number and the
reason) so the caller can report it and decide with `--strict`.

Names are bytes on disk; they are decoded with the file-system encoding
(`os.fsdecode`, surrogate escapes for invalid UTF-8) so they round-trip exactly.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

SHA256_HEX_LEN = 64
_HEX = re.compile(rb"[0-9a-fA-F]*")  # a regex: a byte-by-byte check was most of the parse time
_BLANKS = b" \t"
_BLANKS_SET = (b" ", b"\t")
_BSD_TAG = b"SHA256"
# coreutils' escape set: the only characters that force the leading-backslash form.
_ESCAPES_OUT = {ord("\\"): b"\\\\", ord("\n"): b"\\n", ord("\r"): b"\\r"}
_ESCAPES_IN = {ord("\\"): b"\\", ord("n"): b"\n", ord("r"): b"\r"}


@dataclass(frozen=True)
class ManifestEntry:
    """One well-formed line: a file name (relative to the root) and its expected digest."""

    name: str  # as decoded by os.fsdecode; may hold surrogate escapes
    sha256: str  # lower-case hex
    line: int  # 1-based line number in the manifest
    binary: bool = False  # the `*` marker; informational only on POSIX
    style: str = "gnu"  # "gnu" or "bsd"


@dataclass(frozen=True)
class MalformedLine:
    """A line that is neither a comment, blank, GNU nor BSD checksum line."""

    line: int
    text: str  # the raw line, decoded for display
    reason: str


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    malformed: tuple[MalformedLine, ...]


class _Malformed(ValueError):
    """Internal: why one line does not parse."""


# The longest line read: a name is at most PATH_MAX (4096) bytes, escaped at most twice that, plus the
# digest. Anything longer is not a checksum line; it is reported malformed without being held in memory.
MAX_LINE_BYTES = 64 * 1024
# A text that shows this many malformed lines and no checksum line is not a manifest (`verify /dev/urandom`).
MAX_MALFORMED_WITHOUT_ENTRY = 1000
_SHOWN_BYTES = 200  # of a malformed line, for the report


class NotAManifest(ValueError):
    """The input is evidently not a sha256sum manifest (binary data, endless malformed lines)."""


def parse_manifest(data: bytes) -> Manifest:
    """Parse a whole manifest (bytes, as read from disk or stdin)."""
    entries: list[ManifestEntry] = []
    malformed: list[MalformedLine] = []
    for item in iter_manifest(io.BytesIO(data)):
        (entries if isinstance(item, ManifestEntry) else malformed).append(item)
    return Manifest(tuple(entries), tuple(malformed))


def iter_manifest(
    stream: BinaryIO, *, max_line: int = MAX_LINE_BYTES
) -> Iterator[ManifestEntry | MalformedLine]:
    """Parse a manifest line by line from a binary stream: memory stays bounded by `max_line`.

    A line longer than `max_line` is reported malformed (its first bytes shown) and skipped
    to its end without being kept. Raises `NotAManifest` after
    `MAX_MALFORMED_WITHOUT_ENTRY` malformed lines with no checksum line among them.
    """
    parser = _LineParser()
    seen_entry = False
    bad = 0
    for number, raw, complete in _lines(stream, max_line):
        if raw.startswith(b"#"):
            continue
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            continue
        if not complete:
            reason = f"line longer than {max_line // 1024} KiB: not a checksum line"
            item: ManifestEntry | MalformedLine = MalformedLine(
                number, _display_bytes(raw[:_SHOWN_BYTES]) + "…", reason
            )
        else:
            try:
                item = parser.parse(line, number)
            except _Malformed as why:
                shown = _display_bytes(raw[:_SHOWN_BYTES]) + ("…" if len(raw) > _SHOWN_BYTES else "")
                item = MalformedLine(number, shown, str(why))
        if isinstance(item, ManifestEntry):
            seen_entry = True
        else:
            bad += 1
            if not seen_entry and bad >= MAX_MALFORMED_WITHOUT_ENTRY:
                raise NotAManifest(f"{bad} malformed lines and no checksum line in the first {number} lines")
        yield item


def _lines(stream: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """(number, line without its newline, complete?) for each line; a line over `max_line` bytes is
    cut there and the rest of it read and dropped in blocks."""
    number = 0
    while True:
        raw = stream.readline(max_line + 1)
        if not raw:
            return
        number += 1
        if raw.endswith(b"\n"):
            yield number, raw[:-1], True
            continue
        if len(raw) <= max_line:
            yield number, raw, True  # the last line, without a newline
            return
        while True:  # skip the rest of the over-long line
            rest = stream.readline(1024 * 1024)
            if not rest or rest.endswith(b"\n"):
                break
        yield number, raw[:max_line], False


class _LineParser:
    """Parses lines one by one; remembers which GNU form the manifest uses.

    coreutils locks the form on the first GNU line: `HEX  name`/`HEX *name`
    (marker form) or `HEX name` (reversed form, as `md5 -r` writes). After a
    marker line, a reversed line is malformed; after a reversed line, the byte
    after the blank belongs to the name. Ported as is, so both tools agree.
    """

    def __init__(self) -> None:
        self.reversed_form: bool | None = None  # None until the first GNU line

    def parse(self, line: bytes, number: int) -> ManifestEntry:
        i = 0
        while i < len(line) and line[i] in _BLANKS:
            i += 1
        escaped = line[i : i + 1] == b"\\"
        if escaped:
            i += 1
        if line.startswith(_BSD_TAG, i):
            j = i + len(_BSD_TAG)
            if line[j : j + 1] == b" ":
                j += 1
            if line[j : j + 1] == b"(":
                name, digest = _split_bsd(line[j + 1 :])
                return _entry(name, digest, number, escaped, binary=False, style="bsd")
        return self._split_gnu(line[i:], number, escaped)

    def _split_gnu(self, rest: bytes, number: int, escaped: bool) -> ManifestEntry:
        digest = rest[:SHA256_HEX_LEN]
        if len(digest) < SHA256_HEX_LEN or not _is_hex(digest):
            raise _Malformed("not a checksum line: expected 64 hex digits, a blank and a name, or a BSD tag")
        i = SHA256_HEX_LEN
        if rest[i : i + 1] not in _BLANKS_SET:
            raise _Malformed("no blank between the digest and the name")
        i += 1
        binary = False
        has_marker = len(rest) - i != 1 and rest[i : i + 1] in (b" ", b"*")
        if not has_marker:
            if self.reversed_form is False:
                raise _Malformed("'HEX name' line in a manifest of 'HEX  name' lines (two blanks expected)")
            self.reversed_form = True
        elif not self.reversed_form:
            self.reversed_form = False
            binary = rest[i : i + 1] == b"*"
            i += 1
        return _entry(rest[i:], digest, number, escaped, binary=binary, style="gnu")


def _split_bsd(rest: bytes) -> tuple[bytes, bytes]:
    """`name) = HEX`; the name ends at the last `)` (names may contain parentheses)."""
    close = rest.rfind(b")")
    if close < 0:
        raise _Malformed("BSD line without a closing ')'")
    name, tail = rest[:close], rest[close + 1 :].lstrip(_BLANKS)
    if not tail.startswith(b"="):
        raise _Malformed("BSD line without '= digest'")
    return name, tail[1:].lstrip(_BLANKS)


def _entry(
    name: bytes, digest: bytes, number: int, escaped: bool, *, binary: bool, style: str
) -> ManifestEntry:
    if len(digest) != SHA256_HEX_LEN or not _is_hex(digest):
        raise _Malformed(f"digest is not {SHA256_HEX_LEN} hex digits")
    if escaped:
        name = _unescape(name)
    if not name:
        raise _Malformed("empty file name")
    return ManifestEntry(os.fsdecode(name), digest.decode("ascii").lower(), number, binary, style)


def _is_hex(digest: bytes) -> bool:
    return _HEX.fullmatch(digest) is not None


def _unescape(name: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == ord("\\"):
            if i + 1 >= len(name) or name[i + 1] not in _ESCAPES_IN:
                raise _Malformed("bad escape in a backslash-escaped name (only \\\\, \\n and \\r exist)")
            out += _ESCAPES_IN[name[i + 1]]
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


# --- writing ----------------------------------------------------------------


def format_line(name: str, sha256: str, *, binary: bool = False) -> bytes:
    """One GNU line exactly as `sha256sum` writes it (escaped form when needed)."""
    raw = os.fsencode(name)
    marker = b"*" if binary else b" "
    if any(c in _ESCAPES_OUT for c in raw):
        escaped = b"".join(_ESCAPES_OUT.get(c, bytes((c,))) for c in raw)
        return b"\\" + sha256.encode("ascii") + b" " + marker + escaped + b"\n"
    return sha256.encode("ascii") + b" " + marker + raw + b"\n"


def format_manifest(entries: list[tuple[str, str]]) -> bytes:
    """The manifest for `(name, sha256)` pairs, in the order given."""
    return b"".join(format_line(name, digest) for name, digest in entries)


# --- names for people --------------------------------------------------------


def display_name(name: str) -> str:
    """A name safe for a terminal, a table cell and JSON: control characters and
    undecodable bytes become escapes; everything printable stays as is."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _display_bytes(raw: bytes) -> str:
    return display_name(os.fsdecode(raw))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
