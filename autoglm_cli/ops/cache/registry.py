"""Which kinds of cache serve a mapping row, and who finishes a journal's open intents.

Adding a kind (say a Redis store keyed by prefix) means: a module with a class
that follows `kind.CacheKind`, a branch in `kinds_for`, and, if it journals
intents of its own, an entry in `RECOVER`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...errors import UsageError
from . import actions, fileops
from .directory import DirectoryKind
from .hub import HubCacheKind
from .kind import CacheKind
from .locations import Locations
from .mapping import MappingRow
from .modules import ModulesCacheKind


def kinds_for(row: MappingRow, locations: Locations) -> list[CacheKind]:
    if row.kind == "hf":
        kinds: list[CacheKind] = [HubCacheKind(locations.hub_cache, locations.to_hub_cache)]
        if locations.modules_cache is not None:
            kinds.append(ModulesCacheKind(locations.modules_cache))
        return kinds
    if row.kind == "dir":
        root = Path(row.root) if row.root else locations.root
        if root is None:
            raise UsageError(
                f"mapping row {row.label} is a directory-cache row but no directory was given",
                remedy="Pass --root DIR (or set `root:` on the row in cache_migrations).",
            )
        return [DirectoryKind(root, locations.to_root)]
    raise UsageError(f"unknown cache kind {row.kind!r}", remedy="Use kind hf or dir.")


def row_id(row: MappingRow, kinds: list[CacheKind]) -> str:
    """A stable name for the row in the journal: kind, where, and the mapping."""
    return f"{row.kind}:{kinds[0].location}:{row.old}=>{row.new}"


def _prune_paths(record: dict) -> None:
    for path in record.get("paths", []):
        fileops.remove_tree(path)


# journal intent op -> the function that finishes it after a crash
RECOVER: dict[str, Callable[[dict], None]] = {
    "rename": actions.recover_rename,
    "prune-paths": _prune_paths,
}
