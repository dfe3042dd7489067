"""``/v1/agreement``, ``/v1/calibration``, ``/v1/queue``: how the labelling is going."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import calibration
from .deps import Service, Who

router = APIRouter(prefix="/v1", tags=["stats"])


@router.get("/agreement")
async def agreement(_: Who, service: Service) -> dict[str, Any]:
    """Inter-annotator agreement per task kind and per annotator (people only)."""
    return await service.agreement()


@router.get("/calibration")
async def judge_calibration(_: Who, service: Service) -> dict[str, Any]:
    """Judge-vs-people agreement per criterion over the sliding window (also in Redis)."""
    return {"criteria": await calibration.read_all(service.redis)}


@router.get("/queue")
async def queue_stats(_: Who, service: Service) -> dict[str, Any]:
    return await service.queue_stats()
