"""`migrate-cache`: move caches to a new layout from a mapping table, journaled and resumable.

Modules: `mapping` (the table), `kind` (the interface every cache kind follows),
`hub`, `modules`, `directory` (the kinds), `tree`, `actions`, `fileops` (file
steps), `journal`, `engine` (plan / apply / verify / prune), `registry` (which
kinds serve a row), `locations` (where caches are), `resolver` (new-first
lookups for the runtime), `report`.
"""

from __future__ import annotations

from .engine import migrate, plan, status
from .locations import Locations
from .mapping import MappingRow, MappingTable

__all__ = ["Locations", "MappingRow", "MappingTable", "migrate", "plan", "status"]
