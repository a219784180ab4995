"""The mapping table: old prefix -> new template, one row per rename.

A row matches a key (a hub repo id such as `THUDM/glm-4-9b-chat`, or a path
relative to a directory cache such as `user:42`) when the key starts with the
row's old prefix. The rest of the key is the *captured remainder*; the template
spells it `{name}`, `{id}` or `{rest}` (three names for the same value, so the
table reads naturally: `zai-org/{name}`, `profile/{id}`). A template without a
placeholder renames exactly one key (the remainder must be empty), so a fixed
rename can never swallow its longer siblings (`chatglm3-6b` vs `chatglm3-6b-32k`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import UsageError

PLACEHOLDERS = ("name", "id", "rest")
KINDS = ("hf", "dir")


@dataclass(frozen=True)
class MappingRow:
    old: str
    new: str
    kind: str = "hf"
    root: str | None = None  # kind "dir": the cache directory (None: --root)

    @property
    def has_placeholder(self) -> bool:
        return any(field for _, field, _, _ in string.Formatter().parse(self.new) if field)

    @property
    def label(self) -> str:
        return f"{self.old} -> {self.new}"

    def apply(self, key: str) -> str | None:
        """The new key for `key`, or None when this row does not match it."""
        if not key.startswith(self.old):
            return None
        rest = key[len(self.old) :]
        if not self.has_placeholder:
            return self.new if rest == "" else None
        if rest == "":
            return None  # the prefix itself (e.g. the folder `THUDM/`) is not an entry
        return self.new.format(name=rest, id=rest, rest=rest)

    def reverse(self, new_key: str) -> str | None:
        """The old key that this row maps to `new_key`, or None (for dual reads)."""
        pattern = []
        seen = False
        for literal, field, _, _ in string.Formatter().parse(self.new):
            pattern.append(re.escape(literal))
            if field:
                pattern.append("(?P=rest)" if seen else "(?P<rest>.+)")
                seen = True
        match = re.fullmatch("".join(pattern), new_key)
        if match is None:
            return None
        return self.old + (match.group("rest") if seen else "")


def validate_row(row: MappingRow) -> MappingRow:
    """Reject rows that cannot mean what the user wants, with a hint."""
    where = f"mapping row {row.old!r} = {row.new!r}"
    if not row.old:
        raise UsageError(
            f"{where}: the old prefix is empty", remedy="Write the prefix to replace, e.g. THUDM/."
        )
    if not row.new:
        raise UsageError(
            f"{where}: the new template is empty", remedy="Write a template, e.g. zai-org/{name}."
        )
    if row.kind not in KINDS:
        raise UsageError(f"{where}: unknown kind {row.kind!r}", remedy=f"Use one of: {', '.join(KINDS)}.")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(row.new) if f is not None]
        specs = [(spec, conv) for _, f, spec, conv in string.Formatter().parse(row.new) if f is not None]
    except ValueError as exc:
        raise UsageError(f"{where}: bad template: {exc}", remedy="Use {name}, {id} or {rest}.") from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise UsageError(
            f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}",
            remedy="Templates take {name}, {id} or {rest} (all three are the text after the old prefix).",
        )
    if any(spec or conv for spec, conv in specs):
        raise UsageError(f"{where}: placeholders take no format spec", remedy="Write {name}, not {name:...}.")
    if not fields and row.old.endswith("/"):
        raise UsageError(
            f"{where}: the template has no placeholder, so every entry under {row.old!r} would get one name",
            remedy=f"Did you mean {row.new.rstrip('/')}/{{name}}?",
        )
    return row


def parse_map_option(text: str, *, kind: str, root: str | None = None) -> MappingRow:
    """`OLD=NEW` from the command line."""
    old, sep, new = text.partition("=")
    if not sep:
        raise UsageError(
            f"--map {text!r}: expected OLD=NEW",
            remedy="Write the old prefix and the new template, e.g. --map 'THUDM/=zai-org/{name}'.",
        )
    return validate_row(MappingRow(old=old.strip(), new=new.strip(), kind=kind, root=root))


@dataclass(frozen=True)
class MappingTable:
    rows: tuple[MappingRow, ...]

    @classmethod
    def build(cls, rows: Iterable[MappingRow]) -> MappingTable:
        unique: list[MappingRow] = []
        for row in rows:
            validate_row(row)
            if row not in unique:
                unique.append(row)
        return cls(tuple(unique))

    @classmethod
    def from_config(cls, migrations: Sequence, *, root: str | None = None) -> MappingTable:
        """Rows from `config.cache_migrations` (objects with old, new, kind, root)."""
        return cls.build(
            MappingRow(old=m.old, new=m.new, kind=m.kind, root=root or getattr(m, "root", None))
            for m in migrations
        )

    def rows_of(self, kind: str) -> tuple[MappingRow, ...]:
        return tuple(r for r in self.rows if r.kind == kind)

    def new_key(self, key: str, kind: str = "hf") -> str | None:
        """The first row's rename of `key` (rows are tried in table order)."""
        for row in self.rows_of(kind):
            new = row.apply(key)
            if new is not None:
                return new
        return None

    def old_keys(self, new_key: str, kind: str = "hf") -> list[str]:
        """Every old key some row maps to `new_key` (for reading the old location)."""
        found = []
        for row in self.rows_of(kind):
            old = row.reverse(new_key)
            if old is not None and row.apply(old) == new_key and old not in found:
                found.append(old)
        return found
