"""The FastAPI app factory: routes, auth, errors in OpenAI's shape, metrics middleware."""

from __future__ import annotations

import gc
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...hf_paths import hub_cache_dir
from ...redact import redact
from ..auth import Authenticator, RateLimiter
from ..errors import ApiError
from ..metrics import Metrics
from ..service import Runtime

log = logging.getLogger("autoglm.gateway")


@dataclass
class GatewayState:
    config: object
    runtime: Runtime
    metrics: Metrics
    auth: bool
    authenticator: Authenticator | None
    limiter: RateLimiter
    started: float


def create_app(
    config, *, keys_file: Path | None = None, runtime: Runtime | None = None, warn=None, on_started=None
) -> FastAPI:
    """The gateway for `config`: starts its runtime (workers, nodes) when the server starts."""
    metrics = runtime.metrics if runtime is not None else Metrics()
    runtime = runtime or Runtime(config, metrics=metrics, warn=warn)
    metrics.watch_weights_cache(hub_cache_dir(config.weights.cache_dir))
    auth = config.gateway.auth
    if auth and keys_file is None:
        from ..auth import resolve_keys_file

        keys_file = resolve_keys_file(None, config)
    state = GatewayState(
        config=config,
        runtime=runtime,
        metrics=metrics,
        auth=auth,
        authenticator=Authenticator(keys_file) if auth else None,
        limiter=RateLimiter(),
        started=time.time(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        from ..engines.signals import EngineSignalPoller  # engine nodes' own load reports

        signals = EngineSignalPoller(runtime, interval=float(config.engines.poll_interval)).start()
        # Everything built at start-up lives for the whole run: keep it out of the collector's
        # full passes, which otherwise show up as latency spikes under load.
        gc.collect()
        gc.freeze()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await signals.stop()
            await runtime.stop()

    app = FastAPI(
        title="autoglm gateway",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gateway = state

    from .routes_health import router as health_router
    from .routes_openai import router as openai_router
    from .routes_tasks import router as tasks_router

    app.include_router(health_router)
    app.include_router(openai_router)
    app.include_router(tasks_router)
    _install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    def _error_response(err: ApiError) -> JSONResponse:
        app.state.gateway.metrics.count_error(err)  # once: the runtime may have counted it
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        if param:
            message = f"{param}: {message}"
        return _error_response(ApiError(message, status=400, type="invalid_request_error", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error_response(ApiError(message, status=exc.status_code, type=kind, headers=exc.headers))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("unhandled error on %s: %s", request.url.path, redact(repr(exc)), exc_info=exc)
        return _error_response(ApiError("internal server error"))


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it (pure ASGI: cheap)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_requests.labels(route, str(status)).inc()
            self.metrics.http_latency.labels(route).observe(time.perf_counter() - started)
