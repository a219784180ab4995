"""The Hugging Face hub cache: `models--THUDM--X` -> `models--zai-org--X` (also datasets--, spaces--).

Layout (huggingface_hub's, unchanged by us):

    <cache>/models--ORG--NAME/blobs/<etag>             the bytes (etag: sha256 for LFS files)
                             /snapshots/<commit>/<path>  symlinks ../../blobs/<etag>
                             /refs/main                  the commit hash, no newline
                             /.no_exist/<commit>/<path>  empty: "this file does not exist"
    <cache>/.locks/models--ORG--NAME/<etag>.lock        download locks
    <cache>/blobs/<xx>/<xet hash>                        shared store (blobs may be symlinks into it)

The new folder is built next to the old one: blobs hard-linked (or copied and
verified across filesystems), snapshot symlinks, `.no_exist` markers and refs
rebuilt, refs last. The old folder is never touched until --prune-old, so the
old id keeps resolving. Blobs the new folder already has are kept.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ...hf_paths import repo_folder_name
from . import actions, fileops
from .kind import Action, Applied, Entry, Item, KindPlan, Problem
from .mapping import MappingRow
from .tree import file_item, is_partial, plan_tree

REPO_FOLDER = re.compile(r"(models|datasets|spaces)--(.+)")
SHA256 = re.compile(r"[0-9a-f]{64}")
KNOWN_PARTS = frozenset({"blobs", "snapshots", "refs", ".no_exist"})
REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?")


def repo_folder(repo_type_prefix: str, repo_id: str) -> str:
    """`repo_folder_name` from the folder's type prefix (`models`, `datasets`, `spaces`)."""
    return repo_folder_name(repo_id, repo_type_prefix.removesuffix("s"))


def valid_repo_id(repo_id: str) -> bool:
    return bool(REPO_ID.fullmatch(repo_id)) and "--" not in repo_id and ".." not in repo_id


@dataclass(frozen=True)
class SharedBlobLink(Item):
    """A repo blob that is a symlink into the cache's shared store, plus its manifest line."""

    manifest: str = ""
    reference: str = ""  # the line the store's manifest must hold, e.g. models--zai-org--X/blobs/<etag>


class HubCacheKind:
    name = "hf-hub"
    row_kind = "hf"

    def __init__(self, cache: str | os.PathLike, target_cache: str | os.PathLike | None = None) -> None:
        self.cache = Path(cache).absolute()
        self.target_cache = Path(target_cache).absolute() if target_cache else self.cache
        same = self.target_cache == self.cache
        self.location = str(self.cache) if same else f"{self.cache} -> {self.target_cache}"

    # -- plan --------------------------------------------------------------------

    def plan(self, row: MappingRow, *, copy: bool) -> KindPlan:
        if not self.cache.is_dir():
            return KindPlan(notes=(f"no hub cache at {self.cache}",))
        entries, problems, notes = [], [], []
        for folder in sorted(self.cache.iterdir()):
            match = REPO_FOLDER.fullmatch(folder.name)
            if not match or not (folder.is_dir() or folder.is_symlink()):
                continue
            type_prefix, repo_id = match.group(1), match.group(2).replace("--", "/")
            new_id = row.apply(repo_id)
            if new_id is None:
                continue
            if not valid_repo_id(new_id):
                problems.append(
                    Problem(self.name, str(folder), f"{row.label} gives {new_id!r}, not a repo id")
                )
                continue
            target = self.target_cache / repo_folder(type_prefix, new_id)
            if target == folder:
                continue
            entry, entry_problems, entry_notes = self._plan_repo(folder, target, repo_id, new_id, copy=copy)
            problems += entry_problems
            notes += entry_notes
            if entry is not None:
                entries.append(entry)
        return KindPlan(tuple(entries), tuple(problems), tuple(notes))

    def _plan_repo(self, folder: Path, target: Path, old_id: str, new_id: str, *, copy: bool):
        problems: list[Problem] = []
        notes: list[str] = []
        if folder.is_symlink() and not fileops.is_within(folder, self.cache):
            problems.append(
                Problem(self.name, str(folder), f"points out of the cache root ({os.readlink(folder)})")
            )
            return None, problems, notes
        real = Path(os.path.realpath(folder))
        unrelated = _unrelated_target(real, target, old_id)
        if unrelated:
            problems.append(Problem(self.name, str(target), unrelated))
            return None, problems, notes
        link = not copy and fileops.same_device(real, self.target_cache)
        items: list[Item] = []

        items += self._plan_blobs(real, target, link, problems, notes)
        items += self._plan_snapshots(real, target, link, problems, notes)
        items += self._plan_no_exist(real, target)
        items += self._plan_others(real, target, link, problems)
        items += self._plan_refs(real, target, notes)

        locks = self.cache / ".locks" / folder.name
        held = _held_locks(locks)
        if held:
            problems.append(
                Problem(
                    self.name, str(held[0]), f"a download of {old_id} is in progress (lock held); wait for it"
                )
            )
        new_locks = self.target_cache / ".locks" / target.name
        items.append(Item(Action.MKDIR, str(new_locks), done=new_locks.is_dir()))
        prune = (
            str(folder / "refs"),
            str(folder / "snapshots"),
            str(folder / ".no_exist"),
            str(folder),
            str(locks),
        )
        entry = Entry(self.name, old_id, new_id, str(folder), str(target), tuple(items), prune)
        return entry, problems, notes

    def _plan_blobs(self, real: Path, target: Path, link: bool, problems, notes) -> list[Item]:
        items: list[Item] = []
        blobs = real / "blobs"
        if not blobs.is_dir():
            return items
        for path in sorted(blobs.iterdir()):
            name = path.name
            if is_partial(name):
                continue
            dst = target / "blobs" / name
            if name.endswith(".incomplete"):
                # an unfinished download: bring it along so the new id resumes it, unless the
                # new folder has its own
                if not os.path.lexists(dst) and path.is_file() and not path.is_symlink():
                    items.append(
                        Item(
                            Action.LINK if link else Action.COPY,
                            str(dst),
                            str(path),
                            size=path.stat().st_size,
                            ino=path.stat().st_ino,
                        )
                    )
                continue
            sha = name if SHA256.fullmatch(name) else None
            source = path
            if path.is_symlink():
                resolved = Path(os.path.realpath(path))
                if not fileops.is_within(resolved, self.cache) or not resolved.is_file():
                    problems.append(
                        Problem(
                            self.name,
                            str(path),
                            f"blob symlink points out of the cache root or nowhere ({os.readlink(path)})",
                        )
                    )
                    continue
                store = self.cache / "blobs"
                if self.target_cache == self.cache and fileops.is_within(resolved, store):
                    items.append(self._shared_link(path, resolved, dst, target, sha))
                    continue
                source = resolved
            result = file_item(source, dst, link=link, kind=self.name)
            if isinstance(result, Problem):
                problems.append(result)
                continue
            if sha:
                result = _with_sha(result, sha)
            items.append(result)
        return items

    def _shared_link(self, path: Path, resolved: Path, dst: Path, target: Path, sha: str | None) -> Item:
        text = os.path.relpath(resolved, dst.parent)
        reference = f"{target.name}/blobs/{dst.name}"
        manifest = resolved.with_name(resolved.name + ".refs")
        done = dst.is_symlink() and os.readlink(dst) == text and _manifest_has(manifest, reference)
        return SharedBlobLink(
            Action.SYMLINK,
            str(dst),
            str(path),
            size=resolved.stat().st_size,
            text=text,
            sha256=sha,
            done=done,
            manifest=str(manifest),
            reference=reference,
        )

    def _plan_snapshots(self, real: Path, target: Path, link: bool, problems, notes) -> list[Item]:
        items: list[Item] = []
        snapshots = real / "snapshots"
        if not snapshots.is_dir():
            return items
        for revision in sorted(snapshots.iterdir()):
            if not revision.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(revision):
                dirnames.sort()
                here = Path(dirpath)
                there = target / here.relative_to(real)
                items.append(Item(Action.MKDIR, str(there), done=there.is_dir(), phase=1))
                for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
                    item = self._plan_snapshot_file(
                        here / name, there / name, real, target, link, problems, notes
                    )
                    if item is not None:
                        items.append(item)
        return items

    def _plan_snapshot_file(self, path: Path, dst: Path, real: Path, target: Path, link, problems, notes):
        if not path.is_symlink():  # a real file (e.g. a cache written without symlink support)
            result = file_item(path, dst, link=link, kind=self.name, phase=1)
            if isinstance(result, Problem):
                problems.append(result)
                return None
            return result
        resolved = Path(os.path.realpath(path))
        if not fileops.is_within(resolved, self.cache):
            problems.append(
                Problem(self.name, str(path), f"symlink points out of the cache root ({os.readlink(path)})")
            )
            return None
        if not resolved.exists():
            notes.append(f"{path}: dangling symlink (its blob is missing), not migrated")
            return None
        # one hop, not the final file: a repo blob may itself link into the shared store
        hop = Path(os.path.normpath(path.parent / os.readlink(path)))
        if hop.parent == real / "blobs":
            text = os.path.relpath(target / "blobs" / hop.name, dst.parent)
        else:  # points elsewhere inside the cache: give the new snapshot the file itself
            result = file_item(resolved, dst, link=link, kind=self.name, phase=1)
            if isinstance(result, Problem):
                problems.append(result)
                return None
            return result
        if os.path.lexists(dst):
            if dst.is_symlink() and os.readlink(dst) == text:
                return Item(Action.SYMLINK, str(dst), str(path), text=text, done=True, phase=1)
            current = os.readlink(dst) if dst.is_symlink() else "a file"
            problems.append(
                Problem(self.name, str(dst), f"already exists and points to {current}, not {text}")
            )
            return None
        return Item(Action.SYMLINK, str(dst), str(path), text=text, phase=1)

    def _plan_no_exist(self, real: Path, target: Path) -> list[Item]:
        items: list[Item] = []
        no_exist = real / ".no_exist"
        for dirpath, _, filenames in os.walk(no_exist):
            for name in sorted(filenames):
                dst = target / Path(dirpath).relative_to(real) / name
                items.append(
                    Item(
                        Action.WRITE,
                        str(dst),
                        str(Path(dirpath) / name),
                        text="",
                        done=dst.is_file(),
                        phase=1,
                    )
                )
        return items

    def _plan_others(self, real: Path, target: Path, link: bool, problems) -> list[Item]:
        """Whatever else huggingface_hub keeps per repo (e.g. `trees/<commit>.json` listings)."""
        items: list[Item] = []
        for child in sorted(real.iterdir()):
            if child.name in KNOWN_PARTS or is_partial(child.name):
                continue
            if child.is_dir() and not child.is_symlink():
                tree = plan_tree(child, target / child.name, link=link, kind=self.name, cache_root=self.cache)
                problems += tree.problems
                items += [replace(i, phase=max(i.phase, 1)) for i in tree.items]
            elif child.is_file() and not child.is_symlink():
                result = file_item(child, target / child.name, link=link, kind=self.name, phase=1)
                (problems if isinstance(result, Problem) else items).append(result)
            else:
                problems.append(Problem(self.name, str(child), "unexpected symlink in a repo folder"))
        return items

    def _plan_refs(self, real: Path, target: Path, notes) -> list[Item]:
        items: list[Item] = []
        refs = real / "refs"
        for dirpath, _, filenames in os.walk(refs):
            for name in sorted(filenames):
                path = Path(dirpath) / name
                dst = target / path.relative_to(real)
                commit = path.read_text(encoding="utf-8").strip()
                if dst.is_file():
                    current = dst.read_text(encoding="utf-8").strip()
                    if current != commit:
                        ref = path.relative_to(refs).as_posix()
                        notes.append(f"{target.name}: kept its own ref {ref} -> {current} (old: {commit})")
                        items.append(Item(Action.KEEP, str(dst), str(path), text=current, phase=2))
                        continue
                    items.append(Item(Action.WRITE, str(dst), str(path), text=current, done=True, phase=2))
                    continue
                items.append(Item(Action.WRITE, str(dst), str(path), text=commit, phase=2))
        return items

    # -- apply / verify --------------------------------------------------------

    def apply(self, item: Item, *, on_bytes) -> Applied:
        if isinstance(item, SharedBlobLink):
            _append_manifest(Path(item.manifest), item.reference)  # before the link is visible, as hf does
        return actions.apply_item(item, on_bytes=on_bytes)

    def verify(self, item: Item, *, deep: bool, copied: dict | None) -> str | None:
        problem = actions.verify_item(item, deep=deep, copied=copied)
        if (
            problem is None
            and isinstance(item, SharedBlobLink)
            and not _manifest_has(Path(item.manifest), item.reference)
        ):
            return "not listed in the shared store's manifest"
        return problem

    def compat(self, entry: Entry) -> None:
        """Nothing to do: the old folder is untouched and its blobs share inodes with the new one."""

    def prune(self, paths: list[str]) -> None:
        for path in paths:
            fileops.remove_tree(path)


def _unrelated_target(source: Path, target: Path, old_id: str) -> str:
    """Why `target` holds another repo (it must not be merged into), or '' when it may be.

    A target that shares a snapshot commit or an LFS blob (named by its sha256: the
    weights) with the source is the same repo: a partial re-download under the new id,
    an earlier run, a second old id of it. One that holds snapshots or blobs and shares
    neither is another repo's folder; small git blobs (a common tokenizer, a license)
    may be equal across unrelated repos, so they do not count.
    """
    theirs_blobs, theirs_commits = _names(target / "blobs"), _names(target / "snapshots")
    if not theirs_blobs and not theirs_commits:
        return ""
    shared_lfs = {name for name in theirs_blobs & _names(source / "blobs") if len(name) == 64}
    if shared_lfs or theirs_commits & _names(source / "snapshots"):
        return ""
    return (
        f"already exists with other content: no snapshot or LFS blob in common with {old_id} "
        "(another repo's folder; merging would mix two repos)"
    )


def _names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)}
    except OSError:
        return set()


def _with_sha(item: Item, sha: str) -> Item:
    return replace(item, sha256=sha)


def _held_locks(locks: Path) -> list[Path]:
    """Lock files another process holds right now (a download in progress)."""
    held = []
    if not locks.is_dir():
        return held
    for path in sorted(locks.rglob("*.lock")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(path)
        finally:
            os.close(fd)
    return held


def _manifest_has(manifest: Path, reference: str) -> bool:
    try:
        return reference in manifest.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False


def _append_manifest(manifest: Path, reference: str) -> None:
    """Add the new repo's blob to the shared store's reference list (so GC keeps the payload)."""
    from filelock import FileLock  # huggingface_hub's own dependency; hf locks the same file

    with FileLock(str(manifest.with_name(manifest.name[: -len(".refs")] + ".lock"))):
        if _manifest_has(manifest, reference):
            return
        fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, f"{reference}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
