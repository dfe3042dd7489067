"""The serving app factory: OpenAI-compatible chat over onnxruntime with hot model switching.

The lifespan builds the model manager, the batching scheduler and the metrics. With no model
loaded yet it exports the base model directory (``FLYWHEEL_SERVING_BASE_MODEL_DIR``) to an
ONNX artifact (reused when already exported) and serves it as version ``0``; this happens in
the background, and ``/readyz`` answers 503 until it is done. A ``release_source`` then drives
switches and canaries; a ``trace_sink`` receives every served conversation.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flywheel.logging import get_logger

from . import logic
from .api import chat, health, models
from .completions import ServingRuntime
from .errors import ServingError, VersionLoadError
from .metrics import ServingMetrics
from .model_manager import Loader, ModelManager
from .ports import ReleaseSource, TraceSink
from .scheduler import BatchScheduler
from .settings import ServingSettings

log = get_logger(__name__)

BASE_VERSION = "0"
REQUEST_ID_HEADER = "x-request-id"


def generator_loader(threads: int) -> Loader:
    """Load an artifact into an OrtGenerator and warm it up before it takes traffic."""

    def load(artifact_dir: Path):  # noqa: ANN202
        from flywheel.ml.ort_runtime import OrtGenerator

        generator = OrtGenerator(artifact_dir, threads=threads)
        generator.generate([[generator.pad_id, generator.pad_id]], max_new_tokens=2)
        return generator

    return load


def base_artifact(settings: ServingSettings) -> Path:
    """Export (or find the earlier export of) the base model directory."""
    from flywheel.ml.onnx_export import export_onnx

    source = settings.base_model_path()
    if not (source / "config.json").is_file():
        raise VersionLoadError(
            f"no base model at {source}: set FLYWHEEL_SERVING_BASE_MODEL_DIR or run "
            "`flywheel model init-tiny`"
        )
    return export_onnx(source, settings.data_dir, quantize=settings.serving.quantize_base).artifact_dir


class RequestIdMiddleware:
    """Give every request an id (the caller's ``x-request-id`` or a new one) and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given[:64] if given else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> JSONResponse:
        return JSONResponse(logic.error_body(exc.message, exc.type, exc.code, exc.param), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"{param}: {first.get('msg', 'invalid request')}" if param else "invalid request"
        return JSONResponse(logic.error_body(message, "invalid_request_error", "invalid_request", param), 400)


def _start(settings: ServingSettings, manager: ModelManager | None, loader: Loader | None,
           release_source: ReleaseSource | None, trace_sink: TraceSink | None):  # noqa: ANN202
    cfg = settings.serving
    metrics = ServingMetrics()
    if manager is None:
        manager = ModelManager(cfg.model_line, loader or generator_loader(cfg.threads),
                               default_canary_share=cfg.canary_share)
    manager.add_listener(metrics.on_routing)
    if manager.routing.stable is not None:
        metrics.on_routing(manager.routing)
    scheduler = BatchScheduler(cfg.max_batch, cfg.batch_wait_ms, on_batch=metrics.on_batch)
    scheduler.start()
    if not manager.ready:
        manager.load_in_background(BASE_VERSION, lambda: base_artifact(settings))
    stop_source = release_source(manager.apply_release) if release_source is not None else None
    runtime = ServingRuntime(settings, manager, scheduler, metrics, trace_sink)
    return runtime, stop_source


def create_app(
    settings: ServingSettings,
    *,
    release_source: ReleaseSource | None = None,
    trace_sink: TraceSink | None = None,
    manager: ModelManager | None = None,
    loader: Loader | None = None,
) -> FastAPI:
    """Build the serving app.

    Args:
        settings: the frozen process settings.
        release_source: called at start-up with ``apply(release)``; returns an optional stop callable.
        trace_sink: receives a ``ServedConversation`` after every answered request.
        manager: a pre-built model manager (tests, or a process that loaded models already).
        loader: how an artifact directory becomes a generator (default: onnxruntime, warmed up).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime, stop_source = _start(settings, manager, loader, release_source, trace_sink)
        app.state.runtime = runtime
        log.info("serving_started", line=settings.serving.model_line, port=settings.serving.port)
        try:
            yield
        finally:
            if stop_source is not None:
                stop_source()
            await anyio.to_thread.run_sync(runtime.scheduler.stop)
            runtime.manager.close()
            log.info("serving_stopped")

    app = FastAPI(title="Flywheel serving", version="1", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    _install_error_handlers(app)
    for router in (chat.router, models.router, health.router):
        app.include_router(router)
    return app
