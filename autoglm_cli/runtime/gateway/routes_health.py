"""`/healthz` (the process answers), `/readyz` (a node serves the default model), `/metrics`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request):
    state = request.app.state.gateway
    return {"status": "ok", "uptime_s": round(time.time() - state.started, 1)}


@router.get("/readyz")
async def readyz(request: Request):
    """200 when at least one node can serve the default model, else 503; lists every node and its error."""
    report = request.app.state.gateway.runtime.readiness()
    if report["ready"]:
        return JSONResponse(report)
    return JSONResponse(report, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics")
async def metrics(request: Request):
    body, content_type = request.app.state.gateway.metrics.render()
    return Response(body, media_type=content_type)
