"""``/v1/guidelines``: the versioned instructions shown with each task kind."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .. import store
from ..errors import NotFound
from .deps import Admin, Service, Who
from .tasks import KindName

router = APIRouter(prefix="/v1/guidelines", tags=["guidelines"])


class GuidelineIn(BaseModel):
    kind: KindName
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    text: str = Field(min_length=1, max_length=50_000)


@router.get("/{kind}")
async def get_guideline(kind: KindName, _: Who, service: Service,
                        version: str | None = Query(None)) -> dict[str, Any]:
    found = await service.guideline(kind, version)
    if found is None:
        raise NotFound(f"no guideline for {kind} {version or ''}".strip())
    return {"kind": kind, "version": found[0], "text": found[1]}


@router.post("", status_code=201)
async def add_guideline(body: GuidelineIn, _: Admin, service: Service) -> dict[str, Any]:
    """A new version (versions are immutable); new tasks show the newest one."""
    await asyncio.to_thread(store.put_document, service.engine, body.kind, body.version, body.text)
    return {"kind": body.kind, "version": body.version}
