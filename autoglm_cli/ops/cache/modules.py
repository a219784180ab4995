"""The transformers dynamic-module cache (code loaded with `trust_remote_code=True`).

transformers copies a repo's Python files to

    $HF_MODULES_CACHE/transformers_modules/<org>/<name>/<commit>/modeling_x.py

(default `$HF_HOME/modules`), with an `__init__.py` at every level. transformers
>= 4.5x sanitizes each part (`zai-org` -> `zai_hyphen_org`, `.` -> `_dot_`);
older versions used the raw names. Each old module folder is rebuilt under the
new org in the style it was written in, file by file (hard links, or verified
copies); `__pycache__` is left out (it is regenerated and names old paths).
"""

from __future__ import annotations

import keyword
import os
from pathlib import Path

from . import actions, fileops
from .kind import Action, Applied, Entry, Item, KindPlan, Problem
from .mapping import MappingRow
from .tree import SKIP_NAMES, plan_tree

PACKAGE = "transformers_modules"


def sanitize(part: str) -> str:
    """transformers' `_sanitize_module_name`."""
    new = part.replace(".", "_dot_").replace("-", "_hyphen_")
    return f"_{new}" if new and new[0].isdigit() else new


def unsanitize(part: str) -> str:
    if part.startswith("_") and part[1:2].isdigit():
        part = part[1:]
    return part.replace("_dot_", ".").replace("_hyphen_", "-")


def _is_sanitized_style(org: str, name: str) -> bool:
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in (org, name))


class ModulesCacheKind:
    name = "hf-modules"
    row_kind = "hf"

    def __init__(self, modules_cache: str | os.PathLike) -> None:
        self.modules_cache = Path(modules_cache).absolute()
        self.root = self.modules_cache / PACKAGE
        self.location = str(self.root)

    def plan(self, row: MappingRow, *, copy: bool) -> KindPlan:
        if not self.root.is_dir():
            return KindPlan()
        entries, problems = [], []
        for org in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name not in SKIP_NAMES):
            for repo in sorted(p for p in org.iterdir() if p.is_dir() and p.name not in SKIP_NAMES):
                found = self._new_location(row, org.name, repo.name)
                if found is None:
                    continue
                old_key, new_key, new_org, new_name = found
                if repo.is_symlink() and not fileops.is_within(repo, self.modules_cache):
                    problems.append(Problem(self.name, str(repo), "symlink points out of the cache root"))
                    continue
                target = self.root / new_org / new_name
                if target == repo:
                    continue
                link = not copy and fileops.same_device(repo, self.root)
                tree = plan_tree(repo, target, link=link, kind=self.name, cache_root=self.modules_cache)
                problems += tree.problems
                init = self.root / new_org / "__init__.py"
                items = [Item(Action.WRITE, str(init), text="", done=init.is_file()), *tree.items]
                entries.append(
                    Entry(self.name, old_key, new_key, str(repo), str(target), tuple(items), (str(repo),))
                )
        return KindPlan(tuple(entries), tuple(problems))

    @staticmethod
    def _new_location(row: MappingRow, org: str, name: str) -> tuple[str, str, str, str] | None:
        """(old repo id, new repo id, new org folder, new name folder) when the row matches."""
        candidates = [f"{unsanitize(org)}/{unsanitize(name)}", f"{org}/{name}"]
        for old_key in dict.fromkeys(candidates):
            new_key = row.apply(old_key)
            if new_key is None or "/" not in new_key:
                continue
            new_org, new_name = new_key.split("/", 1)
            if "/" in new_name:
                continue
            if _is_sanitized_style(org, name):
                return old_key, new_key, sanitize(new_org), sanitize(new_name)
            return old_key, new_key, new_org, new_name
        return None

    def apply(self, item: Item, *, on_bytes) -> Applied:
        return actions.apply_item(item, on_bytes=on_bytes)

    def verify(self, item: Item, *, deep: bool, copied: dict | None) -> str | None:
        return actions.verify_item(item, deep=deep, copied=copied)

    def compat(self, entry: Entry) -> None:
        """Nothing to do: the old module folder is untouched."""

    def prune(self, paths: list[str]) -> None:
        for path in paths:
            fileops.remove_tree(path)
