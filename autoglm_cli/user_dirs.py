"""Where autoglm keeps per-user state (the XDG base directory rules)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`$AUTOGLM_STATE_DIR`, else `$XDG_STATE_HOME/autoglm`, else `~/.local/state/autoglm`."""
    if environ.get("AUTOGLM_STATE_DIR"):
        return Path(environ["AUTOGLM_STATE_DIR"])
    return Path(environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "autoglm"
