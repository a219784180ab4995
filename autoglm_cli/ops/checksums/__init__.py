"""SHA-256 checksums: sha256sum manifests, parallel hashing, verification reports.

    manifest.py  read and write sha256sum manifests (GNU, BSD tag, escaped names)
    tree.py      safe relative names; the files a directory tree holds
    hashing.py   hash_file / hash_files: one file per thread, big reused buffers
    verify.py    verify_manifest / verify_expected -> VerifyReport of FileResult
    generate.py  generate_manifest: a manifest `sha256sum -c` accepts

Another source of expected digests (e.g. Hub metadata) builds `ExpectedFile`s
and calls `verify_expected`; it gets the same `VerifyReport` and exit codes.

The names load on first use: `migrate-cache` needs `hashing`, not the verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .generate import GeneratedEntry, GenerateReport, generate_manifest
    from .hashing import BLOCK_SIZE, HashResult, NotRegularFileError, default_jobs, hash_file, hash_files
    from .manifest import MalformedLine, Manifest, ManifestEntry, format_line, parse_manifest
    from .verify import ExpectedFile, FileResult, FileStatus, VerifyReport, verify_expected, verify_manifest

_HOMES = {
    "GeneratedEntry": "generate",
    "GenerateReport": "generate",
    "generate_manifest": "generate",
    "BLOCK_SIZE": "hashing",
    "HashResult": "hashing",
    "NotRegularFileError": "hashing",
    "default_jobs": "hashing",
    "hash_file": "hashing",
    "hash_files": "hashing",
    "MalformedLine": "manifest",
    "Manifest": "manifest",
    "ManifestEntry": "manifest",
    "format_line": "manifest",
    "parse_manifest": "manifest",
    "ExpectedFile": "verify",
    "FileResult": "verify",
    "FileStatus": "verify",
    "VerifyReport": "verify",
    "verify_expected": "verify",
    "verify_manifest": "verify",
}
__all__ = [  # literal, so linters and type checkers see the re-exports
    "BLOCK_SIZE",
    "ExpectedFile",
    "FileResult",
    "FileStatus",
    "GenerateReport",
    "GeneratedEntry",
    "HashResult",
    "MalformedLine",
    "Manifest",
    "ManifestEntry",
    "NotRegularFileError",
    "VerifyReport",
    "default_jobs",
    "format_line",
    "generate_manifest",
    "hash_file",
    "hash_files",
    "parse_manifest",
    "verify_expected",
    "verify_manifest",
]
__getattr__ = lazy_exports(__name__, _HOMES)
