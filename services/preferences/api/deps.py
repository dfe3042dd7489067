"""Dependency aliases over what the lifespan stored on ``app.state``, and app authentication."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, Request

from flywheel.keys import verify_key

from ..errors import Unauthorized
from ..service import PreferencesService


def get_service(request: Request) -> PreferencesService:
    return request.app.state.service


async def get_app_id(request: Request,
                     authorization: Annotated[str | None, Header()] = None) -> str | None:
    """The app behind ``Authorization: Bearer <app API key>``.

    Without a key the caller is anonymous (``None``: every app's requests), allowed only when
    ``FLYWHEEL_PREFERENCES_REQUIRE_APP_KEY=false``.

    Raises:
        Unauthorized: a missing (when required), malformed, unknown or revoked key.
    """
    service: PreferencesService = request.app.state.service
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected Authorization: Bearer <API key>")
        identity = await asyncio.to_thread(verify_key, service.engine, token.strip())
        if identity is None:
            raise Unauthorized("invalid or revoked API key")
        return identity.app_id
    if service.config.require_app_key:
        raise Unauthorized("an app API key is required (Authorization: Bearer <key>)")
    return None


Service = Annotated[PreferencesService, Depends(get_service)]
AppId = Annotated[str | None, Depends(get_app_id)]
