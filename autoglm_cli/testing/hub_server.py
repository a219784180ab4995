"""A real local HTTP server speaking the subset of the Hugging Face Hub API that
`huggingface_hub` (2.x) and `autoglm fetch-weights` use, with fault injection.

It serves repositories built from local folders (or in-memory files):

- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: model info with
  `sha` and `siblings`; `?blobs=true` adds `size`, `blobId` and `lfs`
  (`sha256`, `size`, `pointerSize`); `?expand=...` returns only those fields.
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=`: the tree listing,
  paginated with a `Link: <...>; rel="next"` header like the Hub (page size is
  `HubServer(page_size=...)`).
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`; small (git)
  files are served directly (ETag = git blob sha1); LFS files answer `302` to a
  second "CDN" listener on another port (another origin, as on the real Hub) with
  `X-Linked-Etag` (the sha256) and `X-Linked-Size`. Both honour `Range`
  (206, `Content-Range`, 416 past the end).
- `GET /files/{name}`: plain static files (the "HTTPS URL + .sha256 manifest" case).
- Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`)
  so `huggingface_hub` raises its precise exceptions.

A repo can be served under several ids (`aliases=`), either directly or as a `307`
redirect to its new id, like the Hub does for `THUDM/...` -> `zai-org/...`.

Every byte of file content handed to the socket is counted per `(repo, path)`
(`bytes_served`; counted just before it is sent, so a client never races it), every
request is logged (`requests`), and faults can be injected per file: drop the
connection mid-file, answer a status (503 + `Retry-After`) a number of times, ignore
`Range`, corrupt a byte, or throttle. Usage::

    server = HubServer()
    server.add_repo("zai-org/tiny", model_dir, aliases=["THUDM/tiny"])
    with server as endpoint:                  # "http://127.0.0.1:PORT"
        server.inject("model-00001-of-00002.safetensors", drop_after=4096)
        ...                                   # HfApi(endpoint=endpoint), autoglm fetch-weights --endpoint ...

`huggingface_hub` reads `HF_ENDPOINT` once, at import; `hub_endpoint_patched(endpoint)`
points an already imported `huggingface_hub` at the server for code that does not take
an `endpoint=` argument.

Standard library only, so the demo can use it as the "local source" of the tiny model.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Files stored in git LFS on the Hub: weights by extension (the Hub's default
# .gitattributes) and anything above 10 MiB.
DEFAULT_LFS_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.gguf",
    "*.model",
    "*.tar.gz",
    "*.zip",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_IN_MEMORY_LIMIT = 16 * 1024 * 1024  # larger files are streamed from disk
_CHUNK = 1024 * 1024
_SENDFILE_STEP = 4 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, as the Hub reports for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 (git's id, not security)


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file committed in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class HubFile:
    """One file of a repo revision: its bytes (or where they lie) and their ids."""

    path: str
    size: int
    sha256: str
    blob_id: str  # git oid: of the content, or of the LFS pointer for LFS files
    lfs: bool
    data: bytes | None = None
    source: Path | None = None

    @property
    def etag(self) -> str:
        """What the Hub puts in ETag / X-Linked-Etag: the sha256 for LFS, the git oid otherwise."""
        return self.sha256 if self.lfs else self.blob_id

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @classmethod
    def build(
        cls,
        path: str,
        content: bytes | str | os.PathLike,
        *,
        lfs_patterns: Iterable[str] = DEFAULT_LFS_PATTERNS,
        sha256: str | None = None,
    ) -> HubFile:
        """Hash `content` (bytes, or a file path) and decide LFS like the Hub would.

        `sha256` may be given for a large on-disk file whose hash is already known
        (the benchmark serves 1 GiB and need not hash it twice).
        """
        name = path.rsplit("/", 1)[-1]
        if isinstance(content, (bytes, bytearray)):
            data = bytes(content)
            size = len(data)
            source = None
        else:
            source = Path(content)
            size = source.stat().st_size
            data = source.read_bytes() if size <= _IN_MEMORY_LIMIT else None
        is_lfs = size > LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) for p in lfs_patterns)
        if sha256 is None:
            sha256 = hashlib.sha256(data).hexdigest() if data is not None else _sha256_file(source)
        if is_lfs:
            blob_id = git_blob_sha1(lfs_pointer(sha256, size))
        else:
            if data is None:
                data = source.read_bytes()  # a big non-LFS file (patterns excluded it): git hashes it
            blob_id = git_blob_sha1(data)
        return cls(path=path, size=size, sha256=sha256, blob_id=blob_id, lfs=is_lfs, data=data, source=source)


def _sha256_file(path: Path | None) -> str:
    assert path is not None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK * 4):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class HubCommit:
    sha: str
    files: dict[str, HubFile]
    date: datetime


@dataclass
class HubRepo:
    """A model repo: commits and the refs (branches, tags) pointing at them."""

    repo_id: str
    commits: dict[str, HubCommit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    private: bool = False

    @property
    def commit(self) -> str:
        """The commit `main` points at."""
        return self.refs["main"]

    def files(self, revision: str = "main") -> dict[str, HubFile]:
        return self.commits[self.resolve(revision)].files

    def resolve(self, revision: str) -> str:
        """A branch, tag or (full or abbreviated) commit sha -> the commit sha; KeyError if unknown."""
        if revision in self.refs:
            return self.refs[revision]
        if revision in self.commits:
            return revision
        if len(revision) >= 7:
            matches = [sha for sha in self.commits if sha.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        raise KeyError(revision)


@dataclass
class Fault:
    """One injected misbehaviour for the files matching `path` (a glob over repo paths).

    `times` is how many matching requests it affects (None: all of them). A fault
    with `status` answers that status instead of the content (and `Retry-After`
    when `retry_after` is set). The others shape the content response:
    `drop_after` sends that many body bytes then closes the connection;
    `ignore_range` answers 200 with the whole file; `corrupt` flips the byte at
    file offset `corrupt_at` (default: the middle) in whatever range is served;
    `bytes_per_second` throttles. `drop_at` closes the connection when a body
    that started before that file offset reaches it (a retry from there goes
    through); `stall_at` stops sending there and holds the
    connection open (`stall_s` seconds, or until the server stops); `down_after`
    takes the files down once that many of their bytes were sent in all: every
    connection serving them drops at once, and every later request is dropped
    before it is answered (a mirror that went away mid-file; use `times=None`).
    `kinds` picks the requests it applies to:
    "content" (GET of file bytes: /resolve for git files, the CDN for LFS files),
    "redirect" (GET /resolve answered with the 302 to the CDN), "head" (HEAD
    /resolve), "api".
    """

    path: str = "*"
    repo: str | None = None
    times: int | None = 1
    status: int | None = None
    retry_after: float | None = None
    drop_after: int | None = None
    ignore_range: bool = False
    corrupt: bool = False
    corrupt_at: int | None = None
    bytes_per_second: float | None = None
    drop_at: int | None = None
    stall_at: int | None = None
    stall_s: float = 3600.0
    down_after: int | None = None
    kinds: tuple[str, ...] = ("content",)
    hits: int = 0
    sent: int = 0  # content bytes sent under this fault (for `down_after`)
    down: bool = False

    @property
    def shapes_stream(self) -> bool:
        return bool(
            self.corrupt
            or self.bytes_per_second
            or self.drop_at is not None
            or self.stall_at is not None
            or self.down_after is not None
        )

    def matches(self, repo_id: str | None, path: str | None, kind: str) -> bool:
        if kind not in self.kinds or (self.times is not None and self.hits >= self.times):
            return False
        if self.repo is not None and repo_id != self.repo:
            return False
        return path is None and self.path == "*" or path is not None and fnmatch.fnmatch(path, self.path)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # the URL path and query, as received
    status: int
    range: str | None
    authorization: bool  # whether an Authorization header came with it
    repo: str | None = None
    file: str | None = None
    kind: str = "other"  # api | head | content | redirect | other


class HubServer:
    """The fake Hub: a context manager that starts it and returns its endpoint URL."""

    def __init__(
        self,
        *,
        page_size: int = 1000,
        host: str = "127.0.0.1",
        token: str | None = None,
        lfs_via_cdn: bool = True,
        bytes_per_second: float | None = None,
        ignore_range: bool = False,
        names_only: bool = False,
        tree_api: bool = True,
        hash_headers: bool = True,
    ) -> None:
        self.page_size = page_size
        self.host = host
        self.token = token  # when set, private repos need `Authorization: Bearer <token>`
        self.lfs_via_cdn = lfs_via_cdn  # False: LFS files are served directly, without the 302
        # Every content response is paced to this many bytes/s, per connection (a slow route).
        self.bytes_per_second = bytes_per_second
        self.ignore_range = ignore_range  # answer 200 with the whole file to every Range request
        # A mirror: model info lists `siblings` by name only (no size, blobId or lfs, even
        # with ?blobs=true); without `tree_api` the tree listing answers 404 too, and
        # without `hash_headers` the resolve HEAD carries no ETag / X-Linked-Etag.
        self.names_only = names_only
        self.tree_api = tree_api
        self.hash_headers = hash_headers
        self.stopping = threading.Event()  # ends stalled connections
        self.repos: dict[str, HubRepo] = {}
        self.aliases: dict[str, tuple[str, bool]] = {}  # old id -> (new id, answer with a redirect)
        self.static: dict[str, HubFile] = {}
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self._bytes: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()
        self._active = 0  # requests being handled right now
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.endpoint = ""
        self.cdn_endpoint = ""

    # -- content ---------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: str | os.PathLike | Mapping[str, bytes | str | os.PathLike],
        *,
        branch: str = "main",
        tags: Iterable[str] = (),
        aliases: Iterable[str] = (),
        alias_redirect: bool = True,
        private: bool = False,
        lfs_patterns: Iterable[str] = DEFAULT_LFS_PATTERNS,
        sha256s: Mapping[str, str] | None = None,
    ) -> HubRepo:
        """Serve `files` (a folder, or {repo path: bytes or file path}) as a new commit of `repo_id`.

        Calling it again for the same id adds a commit and moves `branch` to it.
        `aliases` are old ids that answer for this repo (a 307 redirect to the new
        id when `alias_redirect`, else served directly under the old id too).
        """
        entries = _collect(files)
        built = {
            path: HubFile.build(path, content, lfs_patterns=lfs_patterns, sha256=(sha256s or {}).get(path))
            for path, content in sorted(entries.items())
        }
        with self._lock:
            repo = self.repos.setdefault(repo_id, HubRepo(repo_id, private=private))
            parent = repo.refs.get(branch, "")
            sha = hashlib.sha1(  # noqa: S324 (a commit id, not security)
                (parent + repo_id + "".join(f"{p}\0{f.blob_id}\n" for p, f in built.items())).encode()
            ).hexdigest()
            repo.commits[sha] = HubCommit(sha, built, datetime.now(timezone.utc))
            repo.refs[branch] = sha
            for tag in tags:
                repo.refs[tag] = sha
            for alias in aliases:
                self.aliases[alias] = (repo_id, alias_redirect)
        return repo

    def add_file(self, name: str, content: bytes | str | os.PathLike, *, sha256: str | None = None) -> str:
        """Serve a plain file at `/files/{name}`; returns its URL (valid once started)."""
        self.static[name] = HubFile.build(name, content, lfs_patterns=(), sha256=sha256)
        return self.file_url(name)

    def file_url(self, name: str) -> str:
        return f"{self.endpoint}/files/{quote(name)}"

    def resolve_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    # -- faults and counters ---------------------------------------------------

    def inject(self, path: str = "*", *, times: int | None = 1, **kwargs) -> Fault:
        """Add a `Fault` (see its fields) for the files matching `path`."""
        fault = Fault(path=path, times=times, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def bytes_served(self, path: str | None = None, *, repo: str | None = None) -> int:
        """Content bytes sent for files named `path` (all files when None), in `repo` or any."""
        with self._lock:
            return sum(
                n
                for (r, p), n in self._bytes.items()
                if (path is None or p == path) and (repo is None or r == repo)
            )

    def reset_counters(self) -> None:
        """Zero the byte counters and the request log, once the requests in flight are over
        (a transfer the client gave up on may still be writing its last chunk)."""
        self.wait_idle()
        with self._lock:
            self._bytes.clear()
            self.requests.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled; False if that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._active == 0:
                    return True
            time.sleep(0.005)
        return False

    def requests_for(self, file: str | None = None, *, kind: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (file is None or r.file == file) and (kind is None or r.kind == kind)
            ]

    # -- lifecycle -------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        if self._servers:
            return self.endpoint
        self.stopping.clear()
        hub = _Server((self.host, port), _Handler, self, role="hub")
        cdn = _Server((self.host, 0), _Handler, self, role="cdn")
        self._servers = [hub, cdn]
        self.endpoint = f"http://{self.host}:{hub.server_address[1]}"
        self.cdn_endpoint = f"http://{self.host}:{cdn.server_address[1]}"
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self.endpoint

    def stop(self) -> None:
        self.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler ---------------------------------------------------

    def _take_fault(self, repo_id: str | None, path: str | None, kind: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(repo_id, path, kind):
                    fault.hits += 1
                    return fault
        return None

    def _count(self, repo_id: str, path: str, n: int) -> None:
        with self._lock:
            self._bytes[(repo_id, path)] += n

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _lookup(self, rest: str) -> tuple[str, str, bool] | None:
        """Split `org/name/more...` into (repo id, remainder, redirect?) by the ids served."""
        candidates = [(rid, rid, False) for rid in self.repos]
        candidates += [(old, new, redirect) for old, (new, redirect) in self.aliases.items()]
        for served_as, target, redirect in sorted(candidates, key=lambda c: -len(c[0])):
            if rest == served_as or rest.startswith(served_as + "/"):
                return target, rest[len(served_as) :], redirect and served_as != target
        return None


def _collect(files: str | os.PathLike | Mapping[str, bytes | str | os.PathLike]) -> dict[str, bytes | Path]:
    if isinstance(files, Mapping):
        return {str(k): (v if isinstance(v, (bytes, bytearray)) else Path(v)) for k, v in files.items()}
    root = Path(files)
    out: dict[str, bytes | Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".git/") and rel != ".git":
            out[rel] = path
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, hub: HubServer, role: str) -> None:
        self.hub = hub
        self.role = role
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (killed, or gave up) before its request was read
        super().handle_error(request, client_address)


class _Abort(Exception):
    """The handler dropped the connection on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a pooled client expects
    server: _Server
    server_version = "autoglm-hub-server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: tests read `HubServer.requests`

    # -- dispatch --------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        self._record: dict = {"repo": None, "file": None, "kind": "other"}
        self._status = 0
        self._logged = False
        hub = self.server.hub
        with hub._lock:
            hub._active += 1
        try:
            parts = urlsplit(self.path)
            path = parts.path  # still quoted: revisions like refs%2Fpr%2F1 are one segment
            query = parse_qs(parts.query, keep_blank_values=True)
            if not self._authorized():
                self._error(401, "RepoNotFound", "Invalid credentials in Authorization header")
            elif self.server.role == "cdn":
                self._serve_cdn(path, query, head)
            elif path.startswith("/api/models/"):
                self._serve_api(path[len("/api/models/") :], query, head)
            elif path.startswith("/files/"):
                self._serve_static(unquote(path[len("/files/") :]), head)
            else:
                self._serve_resolve(path.lstrip("/"), head)
        except (_Abort, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._log_request()
            with hub._lock:
                hub._active -= 1

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged before the client can see the answer, so a test never races the log.
        self._status = code
        self._log_request()
        super().send_response(code, message)

    def _log_request(self) -> None:
        if getattr(self, "_logged", True):  # already logged, or a malformed request before dispatch
            return
        self._logged = True
        self.server.hub._log(
            RequestRecord(
                method=self.command,
                path=self.path,
                status=self._status,
                range=self.headers.get("Range"),
                authorization="Authorization" in self.headers,
                **self._record,
            )
        )

    def _authorized(self) -> bool:
        hub = self.server.hub
        auth = self.headers.get("Authorization")
        if hub.token is None or auth is None:
            return True  # a wrong token is checked only against private repos (see _repo)
        return auth == f"Bearer {hub.token}"

    def _repo(self, rest: str, url_prefix: str) -> tuple[HubRepo, str] | None:
        """(repo, the rest of the quoted path after its id), or None after answering 404/401/307.

        Repo ids are plain ASCII, so they are matched on the still-quoted path.
        """
        hub = self.server.hub
        found = hub._lookup(rest)
        if found is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        repo_id, remainder, redirect = found
        repo = hub.repos[repo_id]
        self._record["repo"] = repo_id
        if repo.private and self.headers.get("Authorization") != f"Bearer {hub.token}":
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if redirect:
            query = urlsplit(self.path).query
            location = f"{url_prefix}{repo_id}{remainder}" + (f"?{query}" if query else "")
            self._record["kind"] = "redirect"
            self._send(
                307, b"", {"Location": location, "X-Redirected-From": rest[: len(rest) - len(remainder)]}
            )
            return None
        return repo, remainder

    # -- /api/models -----------------------------------------------------------

    def _serve_api(self, rest: str, query: dict, head: bool) -> None:
        self._record["kind"] = "api"
        found = self._repo(rest, "/api/models/")
        if found is None:
            return
        repo, remainder = found
        fault = self.server.hub._take_fault(repo.repo_id, None, "api")
        if fault is not None and fault.status:
            self._fault_status(fault)
            return
        kind, _, raw = remainder.lstrip("/").partition("/")
        if not kind:
            self._model_info(repo, "main", query, head)
        elif kind == "revision" and raw:
            self._model_info(repo, unquote(raw), query, head)
        elif kind == "tree" and raw:
            # The revision is one quoted segment; the rest (if any) is a path in the repo.
            raw_rev, _, raw_path = raw.partition("/")
            self._tree(repo, unquote(raw_rev), unquote(raw_path), query, head)
        else:
            self._error(404, None, "Not found")

    def _commit(self, repo: HubRepo, revision: str) -> HubCommit | None:
        try:
            return repo.commits[repo.resolve(revision)]
        except KeyError:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None

    def _model_info(self, repo: HubRepo, revision: str, query: dict, head: bool) -> None:
        commit = self._commit(repo, revision)
        if commit is None:
            return
        blobs = _truthy(query.get("blobs")) and not self.server.hub.names_only
        siblings = []
        for f in commit.files.values():
            entry: dict = {"rfilename": f.path}
            if blobs:
                entry |= {"size": f.size, "blobId": f.blob_id}
                if f.lfs:
                    entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(entry)
        org = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],  # noqa: S324
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": org,
            "sha": commit.sha,
            "lastModified": commit.date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "createdAt": commit.date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["safetensors"],
            "library_name": "transformers",
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        expand = query.get("expand") or query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
        self._json(info, head=head, extra={"X-Repo-Commit": commit.sha})

    def _tree(self, repo: HubRepo, revision: str, prefix: str, query: dict, head: bool) -> None:
        if not self.server.hub.tree_api:
            self._error(404, None, "Not found")
            return
        commit = self._commit(repo, revision)
        if commit is None:
            return
        recursive = _truthy(query.get("recursive"))
        prefix = prefix.strip("/")
        base = f"{prefix}/" if prefix else ""
        if prefix and prefix in commit.files:
            self._error(404, "EntryNotFound", f"{prefix} is a file, not a folder")
            return
        entries: dict[str, dict] = {}
        for path, f in commit.files.items():
            if not path.startswith(base):
                continue
            rel = path[len(base) :]
            parts = rel.split("/")
            # Folders on the way to the file (the Hub lists them too).
            depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)
            for i in range(1, depth + 1):
                folder = base + "/".join(parts[:i])
                entries.setdefault(
                    folder, {"type": "directory", "oid": _tree_oid(commit, folder), "size": 0, "path": folder}
                )
            if recursive or len(parts) == 1:
                entry = {"type": "file", "oid": f.blob_id, "size": f.size, "path": path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
                entries[path] = entry
        if prefix and not entries:
            self._error(404, "EntryNotFound", f"{prefix} does not exist")
            return
        ordered = [entries[k] for k in sorted(entries)]
        cursor = int((query.get("cursor") or ["0"])[0] or 0)
        page = ordered[cursor : cursor + self.server.hub.page_size]
        headers = {"X-Repo-Commit": commit.sha}
        if cursor + self.server.hub.page_size < len(ordered):
            parts = urlsplit(self.path)
            kept = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in kept + [("cursor", str(cursor + len(page)))])
            headers["Link"] = f'<{self.server.hub.endpoint}{parts.path}?{qs}>; rel="next"'
        self._json(page, head=head, extra=headers)

    # -- /{repo}/resolve/{rev}/{path} ------------------------------------------

    def _serve_resolve(self, rest: str, head: bool) -> None:
        self._record["kind"] = "head" if head else "content"
        found = self._repo(rest, "/")
        if found is None:
            return
        repo, remainder = found
        if not remainder.startswith("/resolve/"):
            self._error(404, None, "Not found")
            return
        raw_rev, _, raw_path = remainder[len("/resolve/") :].partition("/")
        revision, file_path = unquote(raw_rev), unquote(raw_path)
        self._record["file"] = file_path
        commit = self._commit(repo, revision)
        if commit is None:
            return
        f = commit.files.get(file_path)
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", extra={"X-Repo-Commit": commit.sha})
            return
        hub = self.server.hub
        via_cdn = f.lfs and hub.lfs_via_cdn
        # Content faults hit the request that carries the bytes (the CDN's, for LFS files).
        fault = hub._take_fault(
            repo.repo_id, file_path, "head" if head else "redirect" if via_cdn else "content"
        )
        if fault is not None and fault.status:
            self._fault_status(fault)
            return
        meta = {"X-Repo-Commit": commit.sha, "ETag": f'"{f.blob_id}"', "Accept-Ranges": "bytes"}
        if not hub.hash_headers:
            del meta["ETag"]
        if via_cdn:
            location = (
                f"{hub.cdn_endpoint}/lfs/{f.sha256}?repo={quote(repo.repo_id, safe='')}"
                f"&path={quote(file_path, safe='')}&commit={commit.sha}"
            )
            meta |= {"X-Linked-Size": str(f.size), "Location": location}
            if hub.hash_headers:
                meta["X-Linked-Etag"] = f'"{f.sha256}"'
            self._record["kind"] = "head" if head else "redirect"
            self._send(302, b"", meta, head=head)
            return
        if f.lfs:
            meta |= {"X-Linked-Size": str(f.size)}
            if hub.hash_headers:
                meta["X-Linked-Etag"] = f'"{f.sha256}"'
        self._content(f, repo.repo_id, file_path, head, meta, fault)

    def _serve_cdn(self, path: str, query: dict, head: bool) -> None:
        self._record["kind"] = "content"
        hub = self.server.hub
        sha256 = path.rsplit("/", 1)[-1]
        repo_id = (query.get("repo") or [""])[0]
        file_path = (query.get("path") or [""])[0]
        commit_sha = (query.get("commit") or [""])[0]
        self._record |= {"repo": repo_id, "file": file_path}
        repo = hub.repos.get(repo_id)
        f = repo.commits[commit_sha].files.get(file_path) if repo and commit_sha in repo.commits else None
        if f is None or f.sha256 != sha256:
            self._send(404, b"NoSuchKey", {"Content-Type": "text/plain"}, head=head)
            return
        fault = hub._take_fault(repo_id, file_path, "head" if head else "content")
        if fault is not None and fault.status:
            self._fault_status(fault)
            return
        etag = {"ETag": f'"{f.sha256}"'} if hub.hash_headers else {}
        self._content(f, repo_id, file_path, head, {**etag, "Accept-Ranges": "bytes"}, fault)

    def _serve_static(self, name: str, head: bool) -> None:
        self._record |= {"kind": "content", "repo": "", "file": name}
        f = self.server.hub.static.get(name)
        if f is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"}, head=head)
            return
        fault = self.server.hub._take_fault(None, name, "head" if head else "content")
        if fault is not None and fault.status:
            self._fault_status(fault)
            return
        self._content(f, "", name, head, {"ETag": f'"{f.sha256[:32]}"', "Accept-Ranges": "bytes"}, fault)

    # -- content with Range and faults -----------------------------------------

    def _content(
        self, f: HubFile, repo_id: str, path: str, head: bool, meta: dict, fault: Fault | None
    ) -> None:
        start, end, status = 0, f.size, 200
        headers = dict(meta, **{"Content-Type": "application/octet-stream"})
        hub = self.server.hub
        if fault is not None and fault.down and not head:
            # Gone: the connection closes without an answer.
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise _Abort()
        wanted = self.headers.get("Range")
        if wanted and not (fault and fault.ignore_range) and not hub.ignore_range:
            parsed = _parse_range(wanted, f.size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{f.size}"
                self._send(416, b"", headers, head=head)
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        headers["Content-Length"] = str(end - start)
        self._status = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return
        limit = end - start
        if fault and fault.drop_after is not None:
            limit = min(limit, fault.drop_after)
        plain = (fault is None or not fault.shapes_stream) and not hub.bytes_per_second
        if plain and f.source is not None and f.data is None and limit == end - start:
            # Full-speed path for big files: the kernel copies file -> socket.
            self._sendfile(f.source, repo_id, path, start, limit)
        else:
            self._stream(f, repo_id, path, start, start + limit, fault)
        if limit < end - start:
            # Drop the connection mid-file, like a flaky link: the client sees a short body.
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise _Abort()

    def _sendfile(self, source: Path, repo_id: str, path: str, start: int, limit: int) -> None:
        """`sendfile` in steps of at most 4 MiB, each counted before it is sent (so a client
        that got the bytes always sees them counted) and un-counted as far as it was not sent:
        a client that closes mid-body (it got what it wanted) is off by less than one step."""
        hub = self.server.hub
        self.wfile.flush()
        with open(source, "rb") as fh:
            offset, end = start, start + limit
            while offset < end:
                step = min(_SENDFILE_STEP, end - offset)
                hub._count(repo_id, path, step)
                sent = 0
                try:
                    sent = os.sendfile(self.connection.fileno(), fh.fileno(), offset, step)
                finally:
                    if sent < step:
                        hub._count(repo_id, path, sent - step)
                if sent == 0:
                    raise BrokenPipeError("the client stopped reading")
                offset += sent

    def _stream(self, f: HubFile, repo_id: str, path: str, start: int, end: int, fault: Fault | None) -> None:
        corrupt_at = None
        if fault and fault.corrupt:
            corrupt_at = fault.corrupt_at if fault.corrupt_at is not None else f.size // 2
            if not start <= corrupt_at < end:
                corrupt_at = start
        hub = self.server.hub
        rate = (fault.bytes_per_second if fault else None) or hub.bytes_per_second
        # Small paced writes: what a killed client never got stays small (bytes are counted as written).
        chunk_size = min(_CHUNK, max(1024, int(rate / 50))) if rate else _CHUNK
        began = time.monotonic()
        sent = 0
        for offset, chunk in _chunks(f, start, end, chunk_size):
            if corrupt_at is not None and offset <= corrupt_at < offset + len(chunk):
                i = corrupt_at - offset
                chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
            cut = self._cut(fault, offset, len(chunk), start)
            if cut is not None:
                chunk = chunk[:cut]
            if chunk:
                hub._count(repo_id, path, len(chunk))  # before: see _content
                try:
                    self.wfile.write(chunk)
                except OSError:
                    hub._count(repo_id, path, -len(chunk))  # refused by a closed peer: not sent (as sendfile)
                    raise
                sent += len(chunk)
            if cut is not None:
                self._break_off(fault, offset + len(chunk))
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    def _cut(self, fault: Fault | None, offset: int, n: int, start: int) -> int | None:
        """How much of the chunk at file `offset` goes out before the fault breaks the stream."""
        if fault is None:
            return None
        cuts = [
            at - offset
            for at in (fault.drop_at, fault.stall_at)
            if at is not None and offset <= at < offset + n and at > start  # crossed, not started at
        ]
        if fault.down_after is not None:
            with self.server.hub._lock:
                if fault.down:
                    cuts.append(0)
                else:
                    room = fault.down_after - fault.sent
                    take = max(0, min(n, room))
                    fault.sent += take
                    if take < n or room == n:
                        fault.down = True
                        cuts.append(take)
        return min(cuts) if cuts else None

    def _break_off(self, fault: Fault, reached: int) -> None:
        """Stall (hold the connection, send nothing) or drop it, at file offset `reached`."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
        if fault.stall_at is not None and reached == fault.stall_at and not fault.down:
            self.server.hub.stopping.wait(fault.stall_s)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Abort()

    # -- small answers ---------------------------------------------------------

    def _fault_status(self, fault: Fault) -> None:
        headers = {"Content-Type": "text/plain"}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        self._send(fault.status or 503, b"injected fault", headers)

    def _json(self, body, *, head: bool, extra: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self._send(200, data, {"Content-Type": "application/json", **(extra or {})}, head=head)

    def _error(self, status: int, code: str | None, message: str, *, extra: dict | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head=self.command == "HEAD")

    def _send(self, status: int, body: bytes, headers: dict, *, head: bool = False) -> None:
        self._status = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)


def _chunks(f: HubFile, start: int, end: int, size: int) -> Iterator[tuple[int, bytes]]:
    if f.data is not None:
        view = memoryview(f.data)
        for offset in range(start, end, size):
            yield offset, bytes(view[offset : min(end, offset + size)])
        return
    assert f.source is not None
    with open(f.source, "rb") as fh:
        fh.seek(start)
        offset = start
        while offset < end:
            chunk = fh.read(min(size, end - offset))
            if not chunk:
                return
            yield offset, chunk
            offset += len(chunk)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` -> [start, end); None: not satisfiable (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not (first or last) or not all(part.isdigit() for part in (first, last) if part):
        return None  # malformed: refused, so a client bug shows instead of a silent 200
    if first == "":
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(first)
    if last and int(last) < start:
        return None
    end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        return None
    return start, end


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[0].lower() in {"1", "true", "yes"}


def _tree_oid(commit: HubCommit, folder: str) -> str:
    names = "".join(f"{p}\0{f.blob_id}" for p, f in commit.files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(names.encode()).hexdigest()  # noqa: S324


@contextlib.contextmanager
def hub_endpoint_patched(endpoint: str) -> Iterator[None]:
    """Point an already imported `huggingface_hub` at `endpoint` (it read HF_ENDPOINT at import).

    Patches `constants.ENDPOINT`, the resolve URL template, the trusted Hub hosts
    and `HF_ENDPOINT` in the environment; restores them on exit.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    endpoint = endpoint.rstrip("/")
    saved_env = os.environ.get("HF_ENDPOINT")
    saved = {
        "ENDPOINT": constants.ENDPOINT,
        "HUGGINGFACE_CO_URL_TEMPLATE": constants.HUGGINGFACE_CO_URL_TEMPLATE,
        "HF_URL_HOSTS": constants.HF_URL_HOSTS,
    }
    saved_origins = getattr(_http, "_HUB_ORIGINS", None)
    os.environ["HF_ENDPOINT"] = endpoint
    constants.ENDPOINT = endpoint
    constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    host = urlsplit(endpoint).hostname
    constants.HF_URL_HOSTS = frozenset(constants.HF_URL_HOSTS | ({host} if host else set()))
    if saved_origins is not None:
        _http._HUB_ORIGINS = frozenset(saved_origins | {_http._url_origin(endpoint)})
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(constants, name, value)
        if saved_origins is not None:
            _http._HUB_ORIGINS = saved_origins
        if saved_env is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = saved_env


def fake_model_files(shard_size: int = 256 * 1024, *, shards: int = 2, seed: int = 0) -> dict[str, bytes]:
    """A model-shaped repo without torch: config, tokenizer files and random "safetensors" shards.

    Deterministic for a seed; the shards are not loadable weights (use
    `testing.tiny_model.build_tiny_model` for a model that generates).
    """
    import random

    rng = random.Random(seed)
    files: dict[str, bytes] = {
        "config.json": json.dumps(
            {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2}
        ).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}).encode(),
        "tokenizer_config.json": json.dumps({"model_max_length": 512}).encode(),
    }
    weight_map = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        files[name] = rng.randbytes(shard_size)
        weight_map[f"layers.{i}.weight"] = name
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    return files


# -- `python -m autoglm_cli.testing.hub_server DIR`: a local hub for the README's examples --


def repos_in(directory: Path) -> dict[str, Path]:
    """Every `ORG/NAME/` folder under `directory` that holds files: a repo served as `ORG/NAME`."""
    found = {}
    for org in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for repo in sorted(p for p in org.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if any(f.is_file() for f in repo.rglob("*")):
                found[f"{org.name}/{repo.name}"] = repo
    return found


def main(argv: list[str] | None = None) -> int:
    """Serve the repos under DIR until Ctrl-C; print the endpoint to put in HF_ENDPOINT."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m autoglm_cli.testing.hub_server",
        description="Serve every ORG/NAME folder under DIR as a Hugging Face Hub repo, offline. "
        "`make demo` leaves its tiny model in .autoglm/demo/hub.",
        epilog="example: python -m autoglm_cli.testing.hub_server .autoglm/demo/hub --port 8799 &\n"
        "         HF_ENDPOINT=http://127.0.0.1:8799 autoglm redeploy --config examples/local.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="folder holding ORG/NAME/ repo folders")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, metavar="PORT", help="port (default: any free one)")
    args = parser.parse_args(argv)

    if not args.directory.is_dir():
        print(
            f"error: {args.directory} is not a directory (run `make demo` to create .autoglm/demo/hub)",
            file=sys.stderr,
        )
        return 2
    repos = repos_in(args.directory)
    if not repos:
        print(f"error: no ORG/NAME/ folders with files under {args.directory}", file=sys.stderr)
        return 2
    server = HubServer(host=args.host)
    for repo_id, folder in repos.items():
        server.add_repo(repo_id, folder)
    try:
        endpoint = server.start(port=args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 3
    print(f"serving {', '.join(repos)} at {endpoint}", flush=True)
    print(f"use it with: export HF_ENDPOINT={endpoint}   (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
