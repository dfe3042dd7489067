"""``/v1/webhooks``: where an app wants preference requests pushed (signed with HMAC)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from .. import store
from ..errors import RequestNotFound, Unauthorized
from .deps import AppId, Service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    url: str = Field(pattern=r"^https?://", max_length=2048)
    secret: str | None = Field(None, min_length=16, max_length=255,
                               description="Signing secret; generated when omitted.")
    app_id: str | None = Field(None, description="Only without an API key (keys not required).")


def _public(hook: store.StoredWebhook, with_secret: bool = False) -> dict[str, Any]:
    out = {"webhook_id": hook.webhook_id, "app_id": hook.app_id, "url": hook.url,
           "created_at": hook.created_at.isoformat()}
    if with_secret:
        out["secret"] = hook.secret
    return out


@router.post("", status_code=201)
async def register(body: WebhookIn, service: Service, app_id: AppId) -> dict[str, Any]:
    """Register (or re-key) a webhook; the secret is returned only here."""
    owner = app_id or body.app_id
    if owner is None:
        raise Unauthorized("an app API key (or app_id when keys are not required) is needed")
    if not await asyncio.to_thread(store.app_exists, service.engine, owner):
        raise RequestNotFound(f"unknown app {owner!r}")
    hook = await asyncio.to_thread(store.upsert_webhook, service.engine, owner, body.url,
                                   body.secret)
    return _public(hook, with_secret=True)


@router.get("")
async def list_webhooks(service: Service, app_id: AppId) -> dict[str, Any]:
    hooks = await asyncio.to_thread(store.list_webhooks, service.engine, app_id)
    return {"webhooks": [_public(h) for h in hooks]}


@router.delete("/{webhook_id}", status_code=204)
async def delete(webhook_id: str, service: Service, app_id: AppId) -> Response:
    await asyncio.to_thread(store.deactivate_webhook, service.engine, webhook_id, app_id)
    return Response(status_code=204)
