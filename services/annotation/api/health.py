"""Liveness (``/healthz``) and readiness (``/readyz``: SQL, Redis and the consumer)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _sql_ok(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    service = request.app.state.service
    checks: dict[str, str] = {}
    try:
        await asyncio.to_thread(_sql_ok, service.engine)
        checks["database"] = "ok"
    except Exception as exc:  # report, do not raise: this is the probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await service.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    checks["consumer"] = "ok" if request.app.state.consumer_ready() else "starting"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)
