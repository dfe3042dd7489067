"""``/v1/tasks``: claim the next task, read it, label it, give it back (API tokens or cookie)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ..errors import LeaseLost
from ..kinds import KINDS
from .deps import Service, Who

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

KindName = Literal["rate", "correct", "pairwise", "classify_failure"]
assert set(KindName.__args__) == set(KINDS)  # type: ignore[attr-defined]


class LabelIn(BaseModel):
    """A label; which fields count depends on the task's kind (see GET /v1/tasks/...)."""

    lease_token: str | None = Field(None, max_length=64)
    rating: int | str | None = Field(None, description="rate: 0-4 or very bad .. excellent")
    answer: str | None = Field(None, max_length=20_000, description="correct: the answer")
    choice: str | None = Field(None, description="pairwise: a, b or tie")
    failure_source: str | None = Field(None, description="classify_failure: model/system/unknown")
    failure_kind: str | None = Field(None, max_length=64)
    unusable: bool = False
    reason: str | None = Field(None, max_length=2000)

    def raw(self) -> dict[str, Any]:
        return self.model_dump(exclude={"lease_token"}, exclude_none=True)


class ReleaseIn(BaseModel):
    lease_token: str | None = Field(None, max_length=64)


@router.post("/claim", response_model=None)
async def claim(who: Who, service: Service, kind: KindName | None = Query(None)
                ) -> dict[str, Any] | Response:
    """Lease the most uncertain task (of ``kind``); 204 when the queue has nothing for you."""
    view = await service.claim(who, kind)
    return Response(status_code=204) if view is None else view


@router.get("/{task_id}")
async def get_task(task_id: str, who: Who, service: Service) -> dict[str, Any]:
    """A task you hold; reviewers and admins may read any task with its labels."""
    if who.role in ("reviewer", "admin"):
        return await service.task_detail(task_id)
    return await service.held_task(who, task_id)


@router.post("/{task_id}/labels", status_code=201)
async def submit(task_id: str, body: LabelIn, who: Who, service: Service) -> dict[str, Any]:
    """Label a task you hold: 409 without the lease, 422 for a label that does not fit."""
    return await service.submit(who, task_id, body.raw(), body.lease_token)


@router.post("/{task_id}/release", status_code=204)
async def release(task_id: str, body: ReleaseIn, who: Who, service: Service) -> Response:
    """Give a task back to the queue before the lease expires."""
    if not await service.give_back(who, task_id):
        raise LeaseLost(f"you do not hold task {task_id!r}")
    return Response(status_code=204)
