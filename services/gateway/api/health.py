"""Liveness, readiness (broker, Redis and database really answer) and Prometheus metrics."""

from __future__ import annotations

import asyncio

import anyio
from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import text

from .deps import State
from .models import Health
from .respond import json_response

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


def _select_one(state: State) -> None:
    with state.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def _check(name: str, probe) -> tuple[str, str]:  # noqa: ANN001 - awaitable factory
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await probe()
        return name, "ok"
    except BaseException as exc:  # noqa: BLE001 - any failure means "not ready"
        if isinstance(exc, asyncio.CancelledError) and not isinstance(exc, TimeoutError):
            raise
        return name, f"unavailable: {type(exc).__name__}"


@router.get("/readyz", response_model=Health, summary="Readiness",
            responses={503: {"model": Health, "description": "A dependency does not answer."}})
async def readyz(state: State) -> Response:
    """Ready when the broker, Redis and the database all answer within two seconds."""
    results = dict(await asyncio.gather(
        _check("kafka", lambda: state.writer.ping(_CHECK_TIMEOUT_S)),
        _check("redis", state.coordination.ping),
        _check("database", lambda: anyio.to_thread.run_sync(_select_one, state)),
    ))
    ready = all(v == "ok" for v in results.values())
    return json_response({"status": "ready" if ready else "not_ready", "checks": results},
                         200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: State) -> Response:
    """Requests, latency, events produced, duplicates, rejections by reason, OTLP spans."""
    payload, content_type = state.metrics.render()
    return Response(payload, media_type=content_type)
