"""Running a tool to ask it something (`git --version`, `nvidia-smi --query-gpu`), with a time limit."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

# The first dotted number in a tool's output: "git version 2.39.5", "Client Version: v1.32.4",
# "v3.14.0+g3fc9f4b". Requires a dot so "Docker version 28" in prose is not mistaken for one.
_VERSION_RE = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class CommandOutput:
    ok: bool  # ran and exited 0
    text: str  # stdout, or stderr when stdout is empty
    error: str = ""  # why it did not run or failed, one line
    timed_out: bool = False


def run_command(argv: list[str], timeout: float) -> CommandOutput:
    shown = " ".join([os.path.basename(argv[0]), *argv[1:]])  # messages name the tool, not its path
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CommandOutput(False, "", f"`{shown}` did not answer within {timeout:g} s", timed_out=True)
    except OSError as exc:
        return CommandOutput(False, "", f"cannot run `{argv[0]}`: {exc.strerror or exc}")
    text = (proc.stdout.strip() or proc.stderr.strip()).strip()
    if proc.returncode != 0:
        first_line = text.splitlines()[0] if text else ""
        return CommandOutput(False, text, f"`{shown}` exited {proc.returncode}: {first_line}".rstrip(": "))
    return CommandOutput(True, text)


def parse_version(text: str) -> str | None:
    match = _VERSION_RE.search(text)
    return match.group(1) if match else None
