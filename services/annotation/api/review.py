"""``/v1/review``: reviewers settle tasks whose annotators disagreed; their label is final."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from .deps import Reviewer, Service
from .tasks import LabelIn

router = APIRouter(prefix="/v1/review", tags=["review"])


@router.post("/claim", response_model=None)
async def claim(who: Reviewer, service: Service) -> dict[str, Any] | Response:
    """Lease the next disagreement, with every label given so far; 204 when none."""
    view = await service.claim(who, review=True)
    return Response(status_code=204) if view is None else view


@router.post("/{task_id}", status_code=201)
async def decide(task_id: str, body: LabelIn, who: Reviewer, service: Service) -> dict[str, Any]:
    """The reviewer's decision: a label like any other, final and settling the task."""
    return await service.submit(who, task_id, body.raw(), body.lease_token, review=True)
