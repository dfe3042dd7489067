"""The gateway app factory: routers, one error handler, metrics, and the lifespan.

The lifespan opens the aiokafka producers, the async Redis client and the SQL engine (where the
API keys live), stores them on ``app.state.gateway``, runs the OTLP hold flusher, and closes
everything on shutdown. Tests hand in :class:`Backends` to replace the broker and Redis.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flywheel.client.wire import varint
from flywheel.errors import FlywheelError
from flywheel.keys import verify_key
from flywheel.logging import get_logger
from flywheel.settings import Settings

from . import schema
from .api import feedback, health, otlp, traces
from .api.deps import SECURITY_SCHEMES, GatewayState
from .api.ingest_route import ROUTES, serve
from .api.respond import json_response
from .auth import KeyResolver
from .bodies import PROTOBUF, parse_media_type
from .config import GatewaySettings
from .coordination import Coordination, RedisCoordination
from .errors import DependencyDown, GatewayError, InFlight, InvalidInput
from .ingest import FEEDBACK, TRACES, Ingestor
from .metrics import GatewayMetrics
from .writer import EventWriter, KafkaEventWriter, ProducerConfig

log = get_logger(__name__)

_FLUSH_EVERY_S = 1.0
# gRPC status codes for OTLP error bodies (google.rpc.Status.code).
_GRPC_CODES = {400: 3, 401: 16, 409: 10, 413: 8, 415: 3, 429: 8, 503: 14}


@dataclass
class Backends:
    """Replacements for the broker, Redis and the database (tests)."""

    writer: EventWriter
    coordination: Coordination
    engine: Engine


def _open_backends(settings: Settings, gw: GatewaySettings,
                   metrics: GatewayMetrics | None = None) -> Backends:
    from flywheel.db.engine import make_engine
    from flywheel.rediskit import make_async_redis

    config = ProducerConfig(
        bootstrap=settings.kafka(), client_id=f"{settings.service_name}-gateway",
        linger_ms=gw.linger_ms, request_timeout_ms=max(1000, int(gw.produce_deadline_s * 1000)),
        transaction_timeout_ms=max(10_000, int(gw.produce_deadline_s * 4000)))
    writer = KafkaEventWriter(
        config, atomic_batches=gw.atomic_batches, lanes=gw.transaction_lanes,
        lane_cooldown_s=gw.transaction_cooldown_ms / 1000,
        on_commit=metrics.transaction_requests.observe if metrics is not None else None)
    return Backends(writer, RedisCoordination(make_async_redis(settings), settings.redis()),
                    make_engine(settings.database()))


async def _flush_held_otlp(ingestor: Ingestor) -> None:
    while True:
        await asyncio.sleep(_FLUSH_EVERY_S)
        try:
            await ingestor.flush_due_otlp(time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the next tick
            log.warning("otlp_flush_failed", error=type(exc).__name__)


def _lifespan(settings: Settings, gw: GatewaySettings, backends: Backends | None):  # noqa: ANN202
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics: GatewayMetrics = app.state.metrics
        opened = backends or _open_backends(settings, gw, metrics)
        topics = {TRACES: settings.topic("traces.raw"), FEEDBACK: settings.topic("feedback.events")}
        ingestor = Ingestor(gw, topics, opened.writer, opened.coordination, metrics)
        try:
            await opened.writer.start(settings.startup_timeout_s)
        except BaseException:
            await _close(opened, owned=backends is None)
            raise
        app.state.gateway = GatewayState(
            settings=settings, gw=gw, writer=opened.writer, coordination=opened.coordination,
            engine=opened.engine, resolver=KeyResolver(partial(verify_key, opened.engine),
                                                       gw.auth_cache_s),
            ingestor=ingestor, metrics=metrics)
        flusher = asyncio.get_running_loop().create_task(_flush_held_otlp(ingestor))
        # What exists now (modules, the app, clients) lives as long as the process: keep it
        # out of the collector's generations so collections only walk request garbage.
        gc.collect()
        gc.freeze()
        log.info("gateway_started", traces_topic=topics[TRACES], atomic_batches=gw.atomic_batches)
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await ingestor.commits.flush()
            await _close(opened, owned=backends is None)

    return lifespan


async def _close(backends: Backends, owned: bool) -> None:
    await backends.writer.stop()
    if owned:
        await backends.coordination.close()
        backends.engine.dispose()


# --- errors ------------------------------------------------------------------------------------

def _retry_headers(retry_after_s: float | None) -> dict[str, str]:
    return {} if retry_after_s is None else {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


def _otlp_status(content_type: str | None, status: int, message: str,
                 headers: dict[str, str]) -> Response:
    """An OTLP/HTTP error: google.rpc.Status in the request's encoding."""
    code = _GRPC_CODES.get(status, 2)
    try:
        binary = parse_media_type(content_type).kind == PROTOBUF
    except GatewayError:
        binary = False
    if not binary:
        return json_response({"code": code, "message": message}, status, headers)
    text = message.encode()[:4096]
    payload = bytes([0x08, code, 0x12]) + varint(len(text)) + text
    return Response(payload, status_code=status, media_type=PROTOBUF, headers=headers)


def _gateway_error(metrics: GatewayMetrics, path: str, content_type: str | None,
                   exc: GatewayError) -> Response:
    retry = getattr(exc, "retry_after_s", None)
    headers = _retry_headers(retry)
    metrics.rejected.labels(exc.code).inc()
    if path == otlp.OTLP_PATH:
        status = 400 if exc.status == 422 else 503 if isinstance(exc, InFlight) else exc.status
        message = exc.message
        if isinstance(exc, InvalidInput):
            message = "; ".join(f"{i.path}: {i.message}" for i in exc.issues[:5])
        return _otlp_status(content_type, status, message, headers)
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, InvalidInput):
        body["fields"] = [{"path": i.path, "message": i.message} for i in exc.issues]
    if retry is not None:
        body["retry_after_s"] = retry
    return json_response(body, exc.status, headers)


def render_error(metrics: GatewayMetrics, path: str, content_type: str | None,
                 exc: BaseException) -> Response:
    """The answer to a request that raised ``exc``: the one place errors become responses,
    for the FastAPI exception handlers and the ingest fast path alike."""
    if isinstance(exc, GatewayError):
        return _gateway_error(metrics, path, content_type, exc)
    if isinstance(exc, FlywheelError):
        return _gateway_error(metrics, path, content_type, DependencyDown(str(exc), 2))
    log.error("unexpected_error", path=path, error=type(exc).__name__, exc_info=exc)
    metrics.rejected.labels("internal_error").inc()
    return json_response({"error": "internal_error", "message": "internal error"}, 500)


def _install_error_handlers(app: FastAPI) -> None:
    """One place that turns errors into answers (see errors.py for the body shape)."""

    async def render(request: Request, exc: Exception) -> Response:  # async: no thread hop
        return render_error(request.app.state.metrics, request.url.path,
                            request.headers.get("content-type"), exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        issues = [{"path": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                  for e in exc.errors()]
        request.app.state.metrics.rejected.labels("invalid_input").inc()
        return json_response({"error": "invalid_input", "message": f"{len(issues)} invalid "
                              "fields", "fields": issues}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": code, "message": str(exc.detail)}, exc.status_code,
                             dict(exc.headers or {}))

    for kind in (GatewayError, FlywheelError, Exception):
        app.add_exception_handler(kind, render)  # type: ignore[arg-type]


# --- metrics middleware ----------------------------------------------------------------------

class MetricsMiddleware:
    """Count requests by route and status and time them (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(scope["path"], status[0], time.perf_counter() - started)


# --- the app -----------------------------------------------------------------------------------

class GatewayApp(FastAPI):
    """FastAPI, with the two ingest routes answered before the framework's layers.

    ``POST /v1/traces`` and ``POST /v1/feedback`` are served by
    :func:`~flywheel.services.gateway.api.ingest_route.serve`: the same authentication, body
    rules, decoding, admission, writing, error answers and request metrics as their FastAPI
    routes (which stay declared for the OpenAPI document and call the same code), without the
    middleware stack, routing and dependency solving that every other request goes through.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = ROUTES.get(scope["path"])
            state = getattr(self.state, "gateway", None)
            if route is not None and state is not None:
                metrics = self.state.metrics
                await serve(state, route, scope, receive, send,
                            lambda path, ctype, exc: render_error(metrics, path, ctype, exc))
                return
        await super().__call__(scope, receive, send)


# --- the factory -------------------------------------------------------------------------------

def create_app(settings: Settings, gateway_settings: GatewaySettings | None = None, *,
               backends: Backends | None = None) -> GatewayApp:
    """The gateway ASGI app.

    Args:
        settings: the shared settings (broker, Redis, database, topic prefix).
        gateway_settings: limits and windows; read from ``FLYWHEEL_GATEWAY_*`` when omitted.
        backends: use these instead of connecting to Kafka, Redis and SQL (tests).
    """
    gw = gateway_settings or GatewaySettings()
    app = GatewayApp(title="Flywheel gateway", version="1",
                     description="Ingest LLM traces, user feedback and OTLP GenAI spans into Kafka.",
                     lifespan=_lifespan(settings, gw, backends))
    app.state.metrics = GatewayMetrics()
    for module in (traces, feedback, otlp, health):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            components = spec.setdefault("components", {})
            components.setdefault("schemas", {}).update(schema.components())
            components["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
