"""Where fetched files go: the standard Hugging Face cache, or a plain local folder.

The HF cache layout (what transformers, vLLM and huggingface_hub read)::

    <cache>/models--org--name/
        blobs/<sha256 for LFS files | git blob sha1 for small files>
        snapshots/<commit>/<path>  -> ../../blobs/<...>   (relative symlinks)
        refs/<revision>            (the commit a branch or tag pointed at)
        trees/<commit>.json        (huggingface_hub >= 2's listing of the commit, so
                                    `snapshot_download(local_files_only=True)` can
                                    tell a complete snapshot from a partial one)

A `--local-dir` gets the files themselves plus huggingface_hub's bookkeeping under
`.cache/huggingface/` (download metadata and the tree listing), so a later
`snapshot_download(local_dir=...)` recognises them instead of downloading again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ...atomic import atomic_write
from ...errors import EnvironmentFailure
from ...hf_paths import local_dir_metadata, repo_folder_name
from .sources import RemoteFile

TREE_CACHE_FORMAT_VERSION = 1
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by autoglm (Hugging Face Hub cache).\n"
)


class HubCacheLayout:
    """One repo's folder in an HF cache."""

    def __init__(self, cache_dir: Path, repo_id: str) -> None:
        self.cache_dir = cache_dir
        self.repo_id = repo_id
        self.folder = cache_dir / repo_folder_name(repo_id)

    def blob_path(self, remote: RemoteFile) -> Path:
        return self.folder / "blobs" / remote.blob_name

    def snapshot_dir(self, commit: str) -> Path:
        return self.folder / "snapshots" / commit

    def snapshot_path(self, commit: str, path: str) -> Path:
        return self.snapshot_dir(commit).joinpath(*path.split("/"))

    def destination(self, remote: RemoteFile) -> Path:
        """Where the engine writes the file: its blob."""
        return self.blob_path(remote)

    def lock_path(self, remote: RemoteFile) -> Path:
        """huggingface_hub's lock for this blob (`hf download` takes the same one)."""
        return self.cache_dir / ".locks" / self.folder.name / f"{remote.blob_name}.lock"

    def prepare(self) -> None:
        for sub in ("blobs", "snapshots", "refs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        tag = self.cache_dir / "CACHEDIR.TAG"
        if not tag.exists():
            with contextlib.suppress(OSError):
                tag.write_text(CACHEDIR_TAG)

    def link(self, commit: str, remote: RemoteFile) -> Path:
        """snapshots/<commit>/<path> -> the blob, as a relative symlink (replaced atomically)."""
        pointer = self.snapshot_path(commit, remote.path)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.blob_path(remote), pointer.parent)
        if pointer.is_symlink() and os.readlink(pointer) == target:
            return pointer
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.link")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(target, tmp)
            os.replace(tmp, pointer)
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot create the snapshot link {pointer}: {exc.strerror or exc}",
                remedy="Use a file system with symlinks for the cache, or fetch with --local-dir.",
            ) from None
        return pointer

    def existing(self, commit: str, remote: RemoteFile) -> Path | None:
        """A copy already in this cache: this repo's blob, or another repo's blob of the same hash.

        Blob names are content hashes, so `models--THUDM--x/blobs/<sha256>` is the
        file `models--zai-org--x` needs after a rename (the caller verifies it).
        """
        blob = self.blob_path(remote)
        if blob.is_file():
            return blob
        for other in sorted(self.cache_dir.glob("models--*/blobs/" + remote.blob_name)):
            if other.is_file() and other.parent.parent != self.folder:
                return other
        return None

    def adopt(self, found: Path, remote: RemoteFile) -> Path:
        """Make a verified blob of another repo this repo's blob: a hard link, else a copy."""
        blob = self.blob_path(remote)
        if found == blob:
            return blob
        tmp = blob.with_name(f".{blob.name}.{os.getpid()}.adopt")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(found, tmp)
        except OSError:
            shutil.copyfile(found, tmp)  # another file system: copy, then make it durable
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, blob)
        return blob

    def write_ref(self, revision: str, commit: str) -> None:
        if revision == commit:
            return
        ref = self.folder / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        if ref.is_file() and ref.read_text().strip() == commit:
            return
        atomic_write(ref, commit.encode())  # no newline, like huggingface_hub

    def write_tree(self, commit: str, files: Iterable[RemoteFile]) -> None:
        write_tree_cache(self.folder, commit, files)


class LocalDirLayout:
    """Files written as themselves under a folder (`--local-dir`)."""

    def __init__(self, root: Path, *, hub: bool = True) -> None:
        self.root = root
        self.hub = hub  # False for plain URLs: no huggingface_hub bookkeeping in the folder

    def destination(self, remote: RemoteFile) -> Path:
        return self.root.joinpath(*remote.path.split("/"))

    def existing(self, commit: str, remote: RemoteFile) -> Path | None:
        path = self.destination(remote)
        return path if path.is_file() else None

    def lock_path(self, remote: RemoteFile) -> Path:
        """huggingface_hub's lock for this file in a local dir (plain URLs: one in the temp dir)."""
        if self.hub:
            return local_dir_metadata(self.root) / "download" / f"{remote.path}.lock"
        key = hashlib.sha256(str(self.destination(remote).absolute()).encode()).hexdigest()[:32]
        return Path(tempfile.gettempdir()) / "autoglm-locks" / f"{key}.lock"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def record(self, commit: str, remote: RemoteFile) -> None:
        """huggingface_hub's per-file metadata: the commit and etag the file was fetched at."""
        meta = self._bookkeeping() / "download" / (remote.path + ".metadata")
        meta.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(meta, f"{commit}\n{remote.blob_name}\n{time.time()}\n".encode())

    def write_tree(self, commit: str, files: Iterable[RemoteFile]) -> None:
        write_tree_cache(self._bookkeeping(), commit, files)

    def _bookkeeping(self) -> Path:
        path = local_dir_metadata(self.root)
        path.mkdir(parents=True, exist_ok=True)
        gitignore = path / ".gitignore"
        if not gitignore.exists():
            with contextlib.suppress(OSError):
                gitignore.write_text("*\n")
        return path


def write_tree_cache(folder: Path, commit: str, files: Iterable[RemoteFile]) -> None:
    """`<folder>/trees/<commit>.json` in huggingface_hub's format (version 1)."""
    entries = {}
    for remote in files:
        if remote.size is None or remote.git_oid is None:
            return  # not a Hub listing: huggingface_hub would not trust it
        entry: dict = {"size": remote.size, "blob_id": remote.git_oid}
        if remote.lfs:
            entry |= {"lfs_sha256": remote.sha256, "lfs_size": remote.size}
        entries[remote.path] = entry
    path = folder / "trees" / f"{commit}.json"
    if path.is_file():
        return  # a commit's listing never changes (and the cache may be read-only)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format_version": TREE_CACHE_FORMAT_VERSION, "files": dict(sorted(entries.items()))}
    atomic_write(path, json.dumps(body, indent=1).encode())
