"""Find cached files under the new name first and the old one second (dual read).

The runtime asks for `zai-org/glm-4-9b-chat` (or still for `THUDM/glm-4-9b-chat`)
and gets a path whichever side of a migration the cache is on:

    resolver = CacheResolver.from_config(config)
    found = resolver.hub_file("THUDM/glm-4-9b-chat", "config.json")
    found.path, found.repo_id, found.via    # ..., "zai-org/glm-4-9b-chat", "new"

With `backfill=True`, a hit under the old name also builds the new folder (hard
links, nothing copied; the old folder is left alone), so the next lookup is a
"new" hit. Directory caches work the same way through `path(key)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...progress import NULL_PROGRESS
from . import actions, fileops
from .hub import REPO_FOLDER, HubCacheKind, repo_folder
from .kind import Action
from .locations import Locations
from .mapping import MappingTable
from .tree import plan_tree

_TYPE_PREFIX = {"model": "models", "dataset": "datasets", "space": "spaces"}


@dataclass(frozen=True)
class Resolved:
    path: Path
    key: str  # the repo id (or relative path) it was found under
    via: str  # "new" or "old"
    backfilled: bool = False

    @property
    def repo_id(self) -> str:
        return self.key


class CacheResolver:
    def __init__(
        self,
        table: MappingTable,
        *,
        hub_cache: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        backfill: bool = False,
    ) -> None:
        self.table = table
        self.hub_cache = Path(hub_cache) if hub_cache else Locations.resolve().hub_cache
        self.root = Path(root) if root else None
        self.backfill = backfill

    @classmethod
    def from_config(cls, config, **kwargs) -> CacheResolver:
        """The resolver for a loaded `Config` (its `cache_migrations` and `weights.cache_dir`)."""
        kwargs.setdefault("hub_cache", config.weights.cache_dir)
        return cls(MappingTable.from_config(config.cache_migrations), **kwargs)

    def names(self, key: str, kind: str = "hf") -> list[tuple[str, str]]:
        """[(name, "new" | "old")]: the new name first, then the old one(s)."""
        new = self.table.new_key(key, kind)
        if new is not None:
            return [(new, "new"), (key, "old")]
        return [(key, "new")] + [(old, "old") for old in self.table.old_keys(key, kind)]

    # -- hub cache ---------------------------------------------------------------

    def hub_file(
        self, repo_id: str, filename: str, *, revision: str = "main", repo_type: str = "model"
    ) -> Resolved | None:
        """The cached file, new name first; None when neither name has it."""
        from huggingface_hub import try_to_load_from_cache

        names = self.names(repo_id)
        for name, via in names:
            found = try_to_load_from_cache(
                name, filename, cache_dir=self.hub_cache, revision=revision, repo_type=repo_type
            )
            if isinstance(found, str):
                if via == "old" and self.backfill and self._backfill_repo(name, names[0][0], repo_type):
                    again = try_to_load_from_cache(
                        names[0][0],
                        filename,
                        cache_dir=self.hub_cache,
                        revision=revision,
                        repo_type=repo_type,
                    )
                    if isinstance(again, str):
                        return Resolved(Path(again), names[0][0], "new", backfilled=True)
                return Resolved(Path(found), name, via)
        return None

    def snapshot(self, repo_id: str, *, revision: str = "main", repo_type: str = "model") -> Resolved | None:
        """The snapshot folder of `revision` (a ref or a commit), new name first."""
        names = self.names(repo_id)
        for name, via in names:
            path = self._snapshot_dir(name, revision, repo_type)
            if path is None:
                continue
            if via == "old" and self.backfill and self._backfill_repo(name, names[0][0], repo_type):
                again = self._snapshot_dir(names[0][0], revision, repo_type)
                if again is not None:
                    return Resolved(again, names[0][0], "new", backfilled=True)
            return Resolved(path, name, via)
        return None

    def _snapshot_dir(self, repo_id: str, revision: str, repo_type: str) -> Path | None:
        folder = self.hub_cache / repo_folder(_TYPE_PREFIX[repo_type], repo_id)
        commit = revision
        ref = folder / "refs" / revision
        if ref.is_file():
            commit = ref.read_text(encoding="utf-8").strip()
        path = folder / "snapshots" / commit
        return path if path.is_dir() else None

    def _backfill_repo(self, old_id: str, new_id: str, repo_type: str) -> bool:
        """Build the new repo folder from the old one (hard links; the old one is untouched)."""
        prefix = _TYPE_PREFIX[repo_type]
        kind = HubCacheKind(self.hub_cache)
        old = self.hub_cache / repo_folder(prefix, old_id)
        new = self.hub_cache / repo_folder(prefix, new_id)
        if not REPO_FOLDER.fullmatch(old.name):
            return False
        entry, problems, _ = kind._plan_repo(old, new, old_id, new_id, copy=False)
        if entry is None or problems:
            return False
        for phase in sorted({i.phase for i in entry.todo}):
            for item in (i for i in entry.todo if i.phase == phase):
                kind.apply(item, on_bytes=lambda _: None)
        return True

    # -- directory caches --------------------------------------------------------

    def path(self, key: str) -> Resolved | None:
        """`<root>/<key>` under the new name first, then under the old one(s)."""
        if self.root is None:
            raise ValueError("this resolver has no directory-cache root")
        names = self.names(key, "dir")
        for name, via in names:
            path = self.root / name
            if not os.path.lexists(path):
                continue
            if via == "old" and self.backfill:
                new = self.root / names[0][0]
                if self._backfill_path(path, new):
                    return Resolved(new, names[0][0], "new", backfilled=True)
            return Resolved(path, name, via)
        return None

    def _backfill_path(self, old: Path, new: Path) -> bool:
        if old.is_file():
            try:
                fileops.link_file(old, new)
            except fileops.CrossDevice:
                return False
            return True
        if not fileops.same_device(old, new.parent):
            return False
        plan = plan_tree(old, new, link=True, kind="dir", cache_root=self.root, skip=frozenset())
        if plan.problems:
            return False
        for phase in (0, 1):
            for item in plan.items:
                if item.phase == phase and not item.done and item.action is not Action.KEEP:
                    actions.apply_item(item, on_bytes=NULL_PROGRESS.task("").advance)
        return True
