"""``/v1/preferences``: pending questions for a user, and their answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..service import AnswerIn
from .deps import AppId, Service

router = APIRouter(prefix="/v1/preferences", tags=["preferences"])


class RatingsIn(BaseModel):
    """Optional 1-7 ratings of one answer."""

    helpfulness: int | None = Field(None, ge=1, le=7)
    correctness: int | None = Field(None, ge=1, le=7)
    style: int | None = Field(None, ge=1, le=7)


class AnswerBody(BaseModel):
    """Which answer the user preferred (an ``answer_id`` from the request, or ``"tie"``)."""

    user: str = Field(min_length=1, max_length=128)
    chosen: str = Field(min_length=1, max_length=64)
    reason: str = Field("", max_length=2000)
    ratings: dict[str, RatingsIn] | None = Field(
        None, description="Per answer id: optional 1-7 helpfulness, correctness and style.")
    shown_order: list[str] | None = Field(
        None, min_length=2, max_length=2,
        description="Answer ids in the order the user saw them, when the app reordered them.")


@router.get("/pending")
async def pending(service: Service, app_id: AppId, user: str = Query(min_length=1, max_length=128),
                  limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    """Unexpired questions for ``user``, oldest first; answers are in display order."""
    return {"requests": await service.pending(user, app_id, limit)}


@router.post("/{request_id}")
async def answer(request_id: str, body: AnswerBody, service: Service, app_id: AppId
                 ) -> dict[str, Any]:
    """Record the user's choice: 404 unknown, 410 expired, 409 answered before, 422 invalid."""
    ratings = None if body.ratings is None else {
        answer_id: r.model_dump(exclude_none=True) for answer_id, r in body.ratings.items()}
    return await service.answer(request_id, app_id, AnswerIn(
        user=body.user, chosen=body.chosen, reason=body.reason, ratings=ratings,
        shown_order=body.shown_order))
