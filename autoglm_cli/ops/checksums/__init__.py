"""SHA-256 checksums: sha256sum manifests, parallel hashing, verification reports.

    manifest.py  read and write sha256sum manifests (GNU, BSD tag, escaped names)
    tree.py      safe relative names; the files a directory tree holds
    hashing.py   hash_file / hash_files: one file per thread, big reused buffers
    verify.py    verify_manifest / verify_expected -> VerifyReport of FileResult
    generate.py  generate_manifest: a manifest `sha256sum -c` accepts

Another source of expected digests (e.g. Hub metadata) builds `ExpectedFile`s
and calls `verify_expected`; it gets the same `VerifyReport` and exit codes.
"""

from .generate import GeneratedEntry, GenerateReport, generate_manifest
from .hashing import BLOCK_SIZE, HashResult, NotRegularFileError, default_jobs, hash_file, hash_files
from .manifest import MalformedLine, Manifest, ManifestEntry, format_line, parse_manifest
from .verify import ExpectedFile, FileResult, FileStatus, VerifyReport, verify_expected, verify_manifest

__all__ = [
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
