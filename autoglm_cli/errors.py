"""The domain error tree.

Every error the library raises on purpose is an `AutoglmError`. Each class knows
its exit code (the table in DESIGN.md / the README) and carries a remedy: one line
telling the user what to do next. The CLI turns them into messages in exactly one
place (`autoglm_cli.cli.app.main`); nothing below `cli/` prints or exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # mismatch, unhealthy, required check failed
    USAGE = 2  # usage or config error
    ENVIRONMENT = 3  # environment or I/O failure after retries
    ROLLED_BACK = 4  # deploy failed and the previous version was restored
    INTERNAL = 70  # an unexpected error: a bug in autoglm (sysexits' EX_SOFTWARE)
    INTERRUPTED = 130


EXIT_CODE_HELP = {
    ExitCode.OK: "ok",
    ExitCode.CHECK_FAILED: "a check failed (mismatch, unhealthy, required check failed)",
    ExitCode.USAGE: "usage or config error",
    ExitCode.ENVIRONMENT: "environment or I/O failure after retries",
    ExitCode.ROLLED_BACK: "deploy failed and the previous version was restored",
    ExitCode.INTERNAL: "a bug in autoglm (AUTOGLM_DEBUG=1 shows the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class AutoglmError(Exception):
    """Base of every error autoglm raises deliberately."""

    exit_code: ExitCode = ExitCode.ENVIRONMENT
    default_remedy: str = ""

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy if remedy is not None else self.default_remedy

    def to_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "remedy": self.remedy,
            "exit_code": int(self.exit_code),
        }


# --- exit code 2: the user asked for something that cannot be done as asked ---


class UsageError(AutoglmError):
    exit_code = ExitCode.USAGE
    default_remedy = "Run the command with --help to see its options."


class ConfigError(UsageError):
    """A config file that cannot be read or does not match the schema."""

    default_remedy = "Fix the field in the config file; `docs/config.md` lists every field."

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        remedy: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = f"{where}: " if where else ""
        field_part = f"{field}: " if field else ""
        super().__init__(f"{prefix}{field_part}{message}", remedy=remedy)
        self.file, self.line, self.field = file, line, field

    def to_dict(self) -> dict:
        return super().to_dict() | {"file": self.file, "line": self.line, "field": self.field}


class ManifestError(UsageError):
    """A checksum manifest that cannot be parsed (exit 2, like sha256sum)."""

    default_remedy = "Fix or regenerate the manifest (`autoglm verify-sha256 --generate DIR`)."


class MigrationRefused(UsageError):
    """A cache migration that would lose or mix up data: colliding targets, unsafe symlinks."""

    default_remedy = (
        "Fix the mapping (or remove the conflicting entry), then run `autoglm migrate-cache` again."
    )


class DirectoryNotEmptyError(UsageError):
    """A clone target that holds files but is not a git checkout."""

    default_remedy = "Pick another directory, or empty this one; an existing checkout is re-pointed instead."


class BranchNotFoundError(UsageError):
    """A branch the remote does not have (the message lists the ones it has)."""

    default_remedy = "Pass one of the remote's branches with --branch, or leave --branch out for its default."


class RemoteNotFoundError(UsageError):
    """A remote URL where no repository answers, or not for these credentials."""

    default_remedy = (
        "Check the URL and its credentials; if the project moved, add a `moves` entry "
        "(old prefix: new prefix) to the config or pass --to NEW_URL."
    )


# --- exit code 1: the work ran and found something wrong ---


class CheckFailed(AutoglmError):
    exit_code = ExitCode.CHECK_FAILED


class IntegrityError(CheckFailed):
    """Bytes that do not match their expected hash or size."""

    default_remedy = "Delete the file and fetch it again; never load it as is."


class UnrelatedHistoryError(CheckFailed):
    """A remote that does not hold the history the checkout expects."""

    default_remedy = "Check the URL: the remote holds a different project."


class DirtyWorkTreeError(CheckFailed):
    """Uncommitted changes in a file the operation must rewrite."""

    default_remedy = (
        "Commit or stash those changes (`git stash`), run the command again, then `git stash pop`."
    )


# --- exit code 3: the environment failed us (after retries) ---


class EnvironmentFailure(AutoglmError):
    exit_code = ExitCode.ENVIRONMENT
    default_remedy = "Check the machine (disk, permissions, network) and run the command again."


class NetworkError(EnvironmentFailure):
    default_remedy = "Check connectivity to the endpoint (or set another one) and retry."


class DiskSpaceError(EnvironmentFailure):
    default_remedy = "Free disk space or point the cache elsewhere; --force skips this check."


def describe(exc: BaseException) -> str:
    """An exception as a sentence: "no such file or directory: weights/x", not `FileNotFoundError(2, ...)`."""
    if isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror[0].lower() + exc.strerror[1:]
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return f"{what}: {' -> '.join(names)}" if names else what
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- exit code 130 and 70: stopped by the user, or by a bug ---


class Interrupted(AutoglmError):
    """Ctrl-C: the message says what was happening and what is kept."""

    exit_code = ExitCode.INTERRUPTED


class InternalError(AutoglmError):
    """An exception nobody anticipated: named in one line, never shown as a raw traceback."""

    exit_code = ExitCode.INTERNAL

    @classmethod
    def from_exception(cls, exc: BaseException) -> InternalError:
        what = describe(exc) if str(exc).strip() else "(no message)"
        return cls(
            f"unexpected {type(exc).__name__}: {what} - this is a bug in autoglm; "
            "AUTOGLM_DEBUG=1 shows the traceback",
            remedy="",
        )
