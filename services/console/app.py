"""The console app factory: the page, ``/api/snapshot``, health and metrics.

The lifespan builds the :class:`~.collector.Collector` and a background task that samples
topic end offsets every ``FLYWHEEL_CONSOLE_SAMPLE_INTERVAL_S`` (throughput is the difference
between samples). The page and ``/api/snapshot`` render the same snapshot, reused for
``FLYWHEEL_CONSOLE_SNAPSHOT_TTL_S`` so a page and its JSON agree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from flywheel.errors import FlywheelError
from flywheel.logging import get_logger
from flywheel.settings import check_tcp

from .collector import Collector
from .metrics import ConsoleMetrics
from .settings import SERVICE, ConsoleSettings
from .views import make_environment, render_page

log = get_logger(__name__)


async def _sample_forever(collector: Collector, interval_s: float) -> None:
    while True:
        try:
            await asyncio.to_thread(collector.sample_topics)
        except Exception as exc:  # noqa: BLE001 - the page reports the broker's state
            log.debug("console_sample_failed", error=str(exc))
        await asyncio.sleep(interval_s)


async def _snapshot(request: Request, fresh: bool) -> dict[str, Any]:
    state = request.app.state
    ttl = 0.0 if fresh else state.settings.console.snapshot_ttl_s
    snap = await asyncio.to_thread(state.collector.snapshot, max_age_s=ttl)
    marker = (snap["generated_at"], snap["took_ms"])
    if marker != state.observed:
        state.observed = marker
        state.metrics.observe(snap, snap["took_ms"] / 1000)
        for source, error in snap["sources"].items():
            if error != "ok" and "." not in source:
                log.warning("console_source_failed", source=source, error=error)
    return snap


def create_app(settings: ConsoleSettings, *, collector: Collector | None = None,
               sample: bool = True) -> FastAPI:
    """Build the console app.

    Args:
        settings: the frozen process settings.
        collector: the snapshot source (default: a Collector over ``settings``).
        sample: sample end offsets in the background (off in unit tests).
    """
    config = settings.console

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = collector or Collector(settings, own_service=SERVICE)
        app.state.collector = own
        sampler = asyncio.create_task(_sample_forever(own, config.sample_interval_s)) \
            if sample else None
        log.info("console_started", port=config.port, prefix=settings.topic_prefix)
        try:
            yield
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            if collector is None:
                await asyncio.to_thread(own.close)
            log.info("console_stopped")

    app = FastAPI(title="Flywheel console", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = ConsoleMetrics()
    app.state.templates = make_environment()
    app.state.observed = None

    @app.exception_handler(FlywheelError)
    async def domain_error(_: Request, exc: FlywheelError) -> JSONResponse:
        return JSONResponse({"error": {"code": "unavailable", "message": str(exc)}}, 503)

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    async def page(request: Request,
                   refresh: int | None = Query(None, ge=0, le=3600,
                                               description="Auto-refresh seconds; 0: off.")
                   ) -> HTMLResponse:
        """The console page, rendered from the same snapshot as ``/api/snapshot``."""
        snap = await _snapshot(request, fresh=False)
        html = render_page(app.state.templates, snap,
                           refresh_s=config.refresh_s if refresh is None else refresh,
                           task_metric=config.task_metric)
        return HTMLResponse(html)

    @app.get("/api/snapshot", tags=["api"])
    async def snapshot(request: Request, fresh: bool = Query(
            False, description="Collect anew instead of reusing a snapshot younger than the TTL.")
                       ) -> JSONResponse:
        """Everything the page shows, as JSON (the shape ``flywheel status --json`` prints)."""
        return JSONResponse(await _snapshot(request, fresh))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Ready when the broker accepts connections (the other sources are shown as down)."""
        try:
            await asyncio.to_thread(check_tcp, "FLYWHEEL_KAFKA_BOOTSTRAP", settings.kafka(), 1.5)
            checks = {"kafka": "ok"}
        except FlywheelError as exc:
            checks = {"kafka": f"unavailable: {exc}"}
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        return Response(app.state.metrics.render(), media_type=app.state.metrics.content_type)

    return app
