"""Where weights come from: a Hub repo (metadata through huggingface_hub) or a plain URL.

Both resolve to a list of `RemoteFile`s that say what to download and what its
bytes must hash to, so the download engine never has to trust the transport.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ...errors import AutoglmError, CheckFailed, NetworkError, UsageError
from ...redact import redact_url
from ...retry import DEFAULT_RETRY, RetryPolicy, call_with_retry

DEFAULT_ENDPOINT = "https://huggingface.co"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_GIT_OID = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch and the hashes its bytes must match."""

    path: str  # relative path in the repo (or the file name of a URL)
    urls: tuple[str, ...]  # tried in order: one per endpoint
    size: int | None
    sha256: str | None
    git_oid: str | None = None  # git blob sha1: the Hub's only hash for small (non-LFS) files
    lfs: bool = False

    @property
    def blob_name(self) -> str:
        """The name huggingface_hub gives the blob: the sha256 for LFS files, the git oid otherwise."""
        name = self.sha256 if self.lfs or not self.git_oid else self.git_oid
        if not name:  # no hash known (--allow-unverified): a name no content hash can take
            import hashlib

            return (
                "unverified-"
                + hashlib.sha256((self.urls[0] if self.urls else self.path).encode()).hexdigest()
            )
        return name

    @property
    def has_hash(self) -> bool:
        return self.sha256 is not None or self.git_oid is not None


@dataclass(frozen=True)
class HubSnapshot:
    """A repo at one commit, as the Hub described it."""

    repo_id: str  # the id the Hub answers to now (after `moves` and its own redirects)
    requested_id: str
    revision: str
    commit: str
    endpoint: str
    files: tuple[RemoteFile, ...]  # after --include/--exclude
    all_files: tuple[RemoteFile, ...]  # the whole commit (for huggingface_hub's tree cache)

    @property
    def renamed_from(self) -> str | None:
        return self.requested_id if self.requested_id != self.repo_id else None


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def is_repo_id(source: str) -> bool:
    return bool(_REPO_ID.match(source)) and "--" not in source and ".." not in source


def apply_moves(repo_id: str, moves: dict[str, str]) -> str:
    """`THUDM/glm-4-9b-chat` -> `zai-org/glm-4-9b-chat` through the config's `moves` (longest prefix wins).

    Keys and values may be orgs (`THUDM`), ids, or Hub URLs (`huggingface.co/THUDM/`);
    entries for other hosts (`github.com/THUDM/`, for git remotes) are ignored here.
    """
    best_old, best_new = "", ""
    for old, new in moves.items():
        old_prefix, new_prefix = _hub_prefix(old), _hub_prefix(new)
        if not old_prefix or new_prefix is None or len(old_prefix) <= len(best_old):
            continue
        if repo_id == old_prefix or repo_id.startswith(old_prefix + "/"):
            best_old, best_new = old_prefix, new_prefix
    if not best_old or not best_new:
        return repo_id
    return best_new + repo_id[len(best_old) :]


_HUB_HOSTS = ("huggingface.co/", "www.huggingface.co/", "hf.co/")


def _hub_prefix(text: str) -> str | None:
    """A `moves` side as a repo-id prefix; None when it names another host."""
    bare = re.sub(r"^[A-Za-z][\w+.-]*://", "", text.strip()).rstrip("/")
    for host in _HUB_HOSTS:
        if bare.startswith(host):
            return bare[len(host) :]
    first = bare.split("/", 1)[0]
    return None if "." in first or ":" in first else bare


def hub_token() -> str | None:
    """HF_TOKEN, else the token file `hf auth login` wrote; never printed anywhere."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def endpoints_to_try(explicit: str | Sequence[str] | None, configured: Sequence[str]) -> list[str]:
    """--endpoint (repeatable, in order), else config `weights.endpoints`, else HF_ENDPOINT, else the Hub."""
    if explicit:
        found = [explicit] if isinstance(explicit, str) else list(dict.fromkeys(explicit))
    elif configured:
        found = list(configured)
    else:
        found = [os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT]
    return [e.rstrip("/") for e in found]


def resolve_url(endpoint: str, repo_id: str, commit: str, path: str) -> str:
    return f"{endpoint}/{repo_id}/resolve/{commit}/{quote(path)}"


def resolve_hub(
    repo_id: str,
    *,
    revision: str = "main",
    endpoints: Sequence[str],
    token: str | None,
    moves: dict[str, str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    on_note: Callable[[str], None] | None = None,
) -> HubSnapshot:
    """Ask the endpoints, in order, for the repo's files at `revision` (with sizes and hashes).

    The id is mapped through `moves` first; the old id is asked too when the new
    one is unknown. Transient failures are retried with backoff at each
    endpoint before the next one is asked.
    """
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import filter_repo_objects

    if not is_repo_id(repo_id):
        raise UsageError(
            f"{repo_id!r} is neither a Hub repo id (org/name) nor an http(s) URL.",
            remedy="Pass a repo id such as zai-org/glm-4-9b-chat, or a URL with --sha256.",
        )
    candidates = list(dict.fromkeys([apply_moves(repo_id, moves or {}), repo_id]))
    last_error: AutoglmError | None = None
    for endpoint in endpoints:
        api = HfApi(endpoint=endpoint, token=token or False)
        for candidate in candidates:

            def ask(candidate=candidate, api=api):
                return api.model_info(candidate, revision=revision, files_metadata=True, timeout=30)

            try:
                info = call_with_retry(ask, policy=policy, retry_if=_transient_hub_error)
            except RevisionNotFoundError:
                raise UsageError(
                    f"{candidate} has no revision {revision!r} at {redact_url(endpoint)}.",
                    remedy="Check --revision (a branch, tag or commit sha).",
                ) from None
            except RepositoryNotFoundError as exc:
                refused = _token_refused(exc, endpoint, token)
                if refused is not None:
                    raise refused from None
                last_error = UsageError(
                    f"{candidate} was not found at {redact_url(endpoint)} (or it is private).",
                    remedy="Check the repo id, `moves` in the config, and HF_TOKEN for private repos.",
                )
                continue
            except (HfHubHTTPError, OSError, httpx2.TransportError) as exc:
                refused = _token_refused(exc, endpoint, token)
                if refused is not None:
                    raise refused from None
                last_error = NetworkError(
                    f"{redact_url(endpoint)} did not answer for {candidate}: {_short(exc)}"
                )
                if on_note:
                    on_note(f"{redact_url(endpoint)} failed ({_short(exc)}); trying the next endpoint")
                break  # this endpoint is down: the next candidate id would fail the same way
            snapshot = _snapshot(
                info, candidate, repo_id, revision, endpoint, endpoints, include, exclude, filter_repo_objects
            )
            return _complete_metadata(snapshot, api, token, on_note)
    assert last_error is not None
    raise last_error


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), read now rather than at huggingface_hub's import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"}


def resolve_from_cache(
    repo_id: str,
    *,
    revision: str,
    cache_dir,
    moves: dict[str, str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> HubSnapshot:
    """The snapshot an earlier fetch recorded (refs + huggingface_hub's tree listing), for offline runs."""
    import json

    from huggingface_hub.utils import filter_repo_objects

    from ...hf_paths import repo_folder_name

    for candidate in dict.fromkeys([apply_moves(repo_id, moves or {}), repo_id]):
        folder = cache_dir / repo_folder_name(candidate)
        ref = folder / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else revision
        tree = folder / "trees" / f"{commit}.json"
        try:
            listing = json.loads(tree.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError):
            continue
        files = tuple(
            RemoteFile(
                path=path,
                urls=(),
                size=entry["size"],
                sha256=entry.get("lfs_sha256"),
                git_oid=entry["blob_id"],
                lfs="lfs_sha256" in entry,
            )
            for path, entry in sorted(listing.items())
        )
        chosen = set(
            filter_repo_objects(
                items=[f.path for f in files], allow_patterns=include or None, ignore_patterns=exclude or None
            )
        )
        return HubSnapshot(
            repo_id=candidate,
            requested_id=repo_id,
            revision=revision,
            commit=commit,
            endpoint="(offline: the local cache)",
            files=tuple(f for f in files if f.path in chosen),
            all_files=files,
        )
    raise UsageError(
        f"HF_HUB_OFFLINE is set and the cache {cache_dir} has no listing of {repo_id}@{revision}.",
        remedy="Unset HF_HUB_OFFLINE to fetch it, or point --cache-dir at the cache that has it.",
    )


def _snapshot(info, served_id, requested_id, revision, endpoint, endpoints, include, exclude, filter_fn):
    canonical = info.id or served_id
    if not info.sha:
        raise CheckFailed(f"{redact_url(endpoint)} answered for {served_id} without a commit sha.")
    others = [endpoint] + [e for e in endpoints if e != endpoint]
    files = []
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        files.append(
            RemoteFile(
                path=sibling.rfilename,
                urls=tuple(resolve_url(e, canonical, info.sha, sibling.rfilename) for e in others),
                size=lfs.size if lfs else sibling.size,
                sha256=lfs.sha256 if lfs else None,
                git_oid=sibling.blob_id,
                lfs=lfs is not None,
            )
        )
    by_path = {f.path: f for f in files}
    chosen = list(
        filter_fn(items=list(by_path), allow_patterns=include or None, ignore_patterns=exclude or None)
    )
    if (include or exclude) and not chosen:
        raise UsageError(
            f"no file of {canonical} matches the --include/--exclude patterns.",
            remedy=f"The repo has: {', '.join(sorted(by_path)[:8])}{' ...' if len(by_path) > 8 else ''}",
        )
    return HubSnapshot(
        repo_id=canonical,
        requested_id=requested_id,
        revision=revision,
        commit=info.sha,
        endpoint=endpoint,
        files=tuple(by_path[p] for p in chosen),
        all_files=tuple(files),
    )


def _complete_metadata(snapshot: HubSnapshot, api, token, on_note) -> HubSnapshot:
    """Sizes and hashes a mirror left out of its model info: the tree API, then each file's HEAD.

    Some mirrors answer `siblings` with names only. huggingface_hub then asks the
    tree listing, and for a single file reads the resolve HEAD: `X-Linked-Etag`
    (the sha256 of an LFS file), `ETag` (the git blob id) and `X-Linked-Size`.
    """
    import dataclasses

    if all(f.size is not None and f.has_hash for f in snapshot.all_files):
        return snapshot
    endpoint = snapshot.endpoint
    found: dict[str, RemoteFile] = {}
    try:
        for entry in api.list_repo_tree(snapshot.repo_id, revision=snapshot.commit, recursive=True):
            size, oid, lfs = (
                getattr(entry, "size", None),
                getattr(entry, "blob_id", None),
                getattr(entry, "lfs", None),
            )
            if size is None and oid is None:
                continue  # a folder
            found[entry.path] = RemoteFile(
                entry.path, (), lfs.size if lfs else size, lfs.sha256 if lfs else None, oid, lfs is not None
            )
    except Exception as exc:  # noqa: BLE001 (any failure: the HEADs below still answer)
        if on_note:
            on_note(f"{redact_url(endpoint)} has no tree listing ({_short(exc)}); asking each file's HEAD")

    def merged(f: RemoteFile) -> RemoteFile:
        other = found.get(f.path)
        if other is None:
            return f
        return dataclasses.replace(
            f,
            size=f.size if f.size is not None else other.size,
            sha256=f.sha256 or other.sha256,
            git_oid=f.git_oid or other.git_oid,
            lfs=f.lfs or other.lfs,
        )

    files = [merged(f) for f in snapshot.all_files]
    missing = [f for f in files if f.size is None or not f.has_hash]
    if missing:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            heads = dict(
                zip(
                    [f.path for f in missing],
                    pool.map(lambda f: _head_metadata(f, token), missing),
                    strict=True,
                )
            )
        files = [heads.get(f.path, f) for f in files]
    by_path = {f.path: f for f in files}
    return dataclasses.replace(
        snapshot,
        files=tuple(by_path[f.path] for f in snapshot.files),
        all_files=tuple(files),
    )


def _head_metadata(remote: RemoteFile, token: str | None) -> RemoteFile:
    """What the resolve HEAD says of a file (huggingface_hub's `get_hf_file_metadata` headers)."""
    import dataclasses

    import requests

    headers = {"Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.head(remote.urls[0], headers=headers, allow_redirects=False, timeout=30)
    except OSError:
        return remote
    if response.status_code >= 400:
        return remote
    linked = _etag(response.headers.get("X-Linked-Etag"))
    etag = _etag(response.headers.get("ETag"))
    size_text = response.headers.get("X-Linked-Size") or (
        response.headers.get("Content-Length") if response.status_code == 200 else None
    )
    sha256 = remote.sha256 or next((t for t in (linked, etag) if t and _SHA256.match(t)), None)
    git_oid = remote.git_oid or (etag if etag and _GIT_OID.match(etag) else None)
    return dataclasses.replace(
        remote,
        size=remote.size
        if remote.size is not None
        else int(size_text)
        if (size_text or "").isdigit()
        else None,
        sha256=sha256.lower() if sha256 else None,
        git_oid=git_oid,
        lfs=remote.lfs or sha256 is not None,
    )


def _etag(value: str | None) -> str | None:
    if not value:
        return None
    return value.strip().removeprefix("W/").strip('"') or None


def resolve_plain_url(
    url: str,
    *,
    session,
    sha256: str | None = None,
    sha256_url: str | None = None,
    timeout: float = 60,
) -> RemoteFile:
    """A plain URL plus where its sha256 comes from: `--sha256`, a manifest URL, or `<url>.sha256`."""
    name = os.path.basename(urlsplit(url).path) or "download"
    if sha256 is not None:
        if not _SHA256.match(sha256):
            raise UsageError(f"--sha256 must be 64 hex digits, got {sha256!r}.")
        expected = sha256.lower()
    else:
        manifest_url = sha256_url or url + ".sha256"
        expected = _sha256_from_manifest(
            session, manifest_url, name, explicit=sha256_url is not None, timeout=timeout
        )
    size = None
    try:
        head = session.head(url, allow_redirects=True, timeout=timeout)
        if head.ok and "Content-Length" in head.headers and "Content-Encoding" not in head.headers:
            size = int(head.headers["Content-Length"])
    except OSError:
        pass  # the GET will tell; a HEAD is only a hint for the disk-space check
    return RemoteFile(path=name, urls=(url,), size=size, sha256=expected)


def _sha256_from_manifest(session, manifest_url: str, name: str, *, explicit: bool, timeout: float) -> str:
    try:
        response = session.get(manifest_url, timeout=timeout)
    except OSError as exc:
        raise NetworkError(
            f"cannot fetch the sha256 manifest {redact_url(manifest_url)}: {_short(exc)}"
        ) from None
    if response.status_code == 404 and not explicit:
        raise UsageError(
            f"no sha256 is known for {name}: {redact_url(manifest_url)} does not exist.",
            remedy="Pass --sha256 HEX or --sha256-url URL (a sha256sum manifest): no unverified downloads.",
        )
    if not response.ok:
        raise NetworkError(f"{redact_url(manifest_url)} answered HTTP {response.status_code}.")
    entries = parse_sha256sum(response.text)
    if not entries:
        raise UsageError(f"{redact_url(manifest_url)} holds no sha256 line (expected `HEX  NAME`).")
    for entry_hash, entry_name in entries:
        if os.path.basename(entry_name) == name:
            return entry_hash
    if len(entries) == 1 and entries[0][1] in ("", "-"):
        return entries[0][0]
    if len(entries) == 1:
        return entries[0][0]  # `resnet50.pth.sha256` often names the file differently (a build path)
    raise UsageError(f"{redact_url(manifest_url)} has no line for {name}.")


def parse_sha256sum(text: str) -> list[tuple[str, str]]:
    """A `.sha256` file or manifest -> [(hex, name)], in order.

    The lines `verify` reads (`ops.checksums.manifest`: GNU, BSD tag, escaped names),
    plus a bare HEX line, which a `<file>.sha256` of one digest often is (name "").
    """
    from ..checksums.manifest import parse_manifest

    parsed = parse_manifest(text.encode("utf-8", "surrogateescape"))
    found = [(e.line, e.sha256, e.name) for e in parsed.entries]
    found += [
        (bad.line, bad.text.strip().lower(), "")
        for bad in parsed.malformed
        if _SHA256.match(bad.text.strip())
    ]
    return [(digest, name) for _, digest, name in sorted(found)]


def _token_refused(exc: BaseException, endpoint: str, token: str | None) -> NetworkError | None:
    """A 401/403 that is about the token, not about the repo (a missing repo is also a 401)."""
    from .hub_auth import auth_refused

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    message = getattr(exc, "server_message", None) or ""
    if status == 401 and (
        type(exc).__name__ != "RepositoryNotFoundError" or "Invalid credentials" in message
    ):
        return auth_refused(endpoint, 401, token=token)
    if status == 403:
        return auth_refused(endpoint, 403, token=token)
    return None


def _transient_hub_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status in (408, 429, 500, 502, 503, 504)  # its response carries any Retry-After
    return isinstance(exc, OSError) or _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    import httpx2

    return isinstance(exc, httpx2.TransportError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
