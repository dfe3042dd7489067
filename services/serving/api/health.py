"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from .deps import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: Runtime) -> JSONResponse:
    """Ready once a model version is loaded and answering."""
    routing = runtime.manager.routing
    body = {
        "status": "ready" if routing.stable is not None else "loading",
        "stable": routing.stable and routing.stable.version,
        "canary": routing.canary and routing.canary.version,
        "canary_share": routing.canary_share,
        "error": runtime.manager.last_error,
    }
    return JSONResponse(body, status_code=200 if routing.stable is not None else 503)


@router.get("/metrics")
def metrics(runtime: Runtime) -> Response:
    runtime.metrics.queue_depth.set(runtime.scheduler.depth)
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
