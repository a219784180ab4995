"""Git repositories after a move: fresh clones, and re-pointing existing checkouts safely.

Modules: `urls` (parsing, `moves` rewriting, credentials), `gitcmd` (running git,
failures, progress), `checkout` (reading a checkout's state), `proof` (does a
remote hold our history?), `repoint` (plan + apply), `fresh` (clone into a
temporary sibling), `conventions` (branch names), `report` (what is returned),
`clone` (the one entry point the CLI calls).
"""

from __future__ import annotations

from .clone import CloneRequest, clone
from .report import CloneReport, UrlChange

__all__ = ["CloneReport", "CloneRequest", "UrlChange", "clone"]
