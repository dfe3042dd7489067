"""``/v1/prompts``: versioned judge and teacher prompts and their gate (see llm/prompts.py)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from .deps import Admin, Reviewer, Service

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

Role = Literal["judge", "teacher"]


class PromptIn(BaseModel):
    role: Role
    kind: Literal["rate", "correct", "pairwise", "classify_failure"]
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    system: str = Field(min_length=1, max_length=20_000)
    user: str = Field(min_length=1, max_length=50_000)


def _lab(request: Request) -> Any:
    return request.app.state.prompt_lab


@router.get("")
async def list_prompts(_: Reviewer, service: Service, request: Request) -> dict[str, Any]:
    return {"versions": await asyncio.to_thread(_lab(request).registry.versions)}


@router.post("", status_code=201)
async def create(body: PromptIn, _: Admin, request: Request) -> dict[str, Any]:
    report = await asyncio.to_thread(_lab(request).registry.create, body.role, body.kind,
                                     body.version, body.system, body.user)
    return {"role": body.role, "kind": body.kind, "version": body.version, **report}


@router.get("/{role}/{kind}/{version}")
async def report(role: Role, kind: str, version: str, _: Reviewer, request: Request
                 ) -> dict[str, Any]:
    return await asyncio.to_thread(_lab(request).registry.report, role, kind, version)


@router.post("/{role}/{kind}/{version}/preview")
async def preview(role: Role, kind: str, version: str, _: Reviewer, request: Request,
                  n: int = Query(10, ge=1, le=19)) -> dict[str, Any]:
    """Run the version next to the active one on at most 19 settled items, for eyeballing."""
    return await _lab(request).preview(role, kind, version, n)


@router.post("/{role}/{kind}/{version}/approve")
async def approve(role: Role, kind: str, version: str, who: Reviewer, request: Request
                  ) -> dict[str, Any]:
    return await _lab(request).approve(role, kind, version, who.username)


@router.post("/{role}/{kind}/{version}/evaluate")
async def evaluate(role: Role, kind: str, version: str, _: Admin, request: Request,
                   n: int = Query(600, ge=1, le=100_000)) -> dict[str, Any]:
    """Score the version against people's labels (500+ items or all), per slice."""
    return await _lab(request).evaluate(role, kind, version, n)


@router.post("/{role}/{kind}/{version}/activate")
async def activate(role: Role, kind: str, version: str, _: Admin, request: Request
                   ) -> dict[str, Any]:
    """Use a passed version on the stream."""
    return await asyncio.to_thread(_lab(request).registry.activate, role, kind, version)
