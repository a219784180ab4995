"""The OpenAI-compatible gateway (FastAPI). `create_app(config)` builds it; `serve` runs it with uvicorn."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
