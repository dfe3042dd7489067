"""Dependency aliases over what the lifespan stored on ``app.state``.

Authentication is a dependency: it reads ``X-API-Key`` or ``Authorization: Bearer``, resolves
the key (cached) and yields the :class:`~flywheel.keys.KeyIdentity` whose app id is stamped on
every event. Dependencies are ``async def``: FastAPI runs plain ``def`` dependencies in a
thread pool, a thread hop per request that the ingest path cannot afford. The security
schemes are declared in the OpenAPI document by ``app.py`` (``SECURITY``), not through
FastAPI's security classes, which would add two more dependencies to every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from flywheel.keys import KeyIdentity
from flywheel.settings import Settings

from ..auth import KeyResolver, presented_key
from ..config import GatewaySettings
from ..coordination import Coordination
from ..ingest import Ingestor
from ..metrics import GatewayMetrics
from ..writer import EventWriter

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "A key from `flywheel keys create --app NAME`."},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key as a Bearer token."},
}
SECURITY = [{"ApiKey": []}, {"Bearer": []}]


@dataclass
class GatewayState:
    """Everything the handlers use, built by the lifespan."""

    settings: Settings
    gw: GatewaySettings
    writer: EventWriter
    coordination: Coordination
    engine: Engine
    resolver: KeyResolver
    ingestor: Ingestor
    metrics: GatewayMetrics


def gateway_state(request: Request) -> GatewayState:
    """What the lifespan built (for handlers on the ingest path, without a dependency)."""
    return request.app.state.gateway


async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


State = Annotated[GatewayState, Depends(get_state)]


async def authenticate(request: Request) -> KeyIdentity:
    """The identity behind the request's API key (401 when missing, unknown or revoked)."""
    headers = request.headers
    key = presented_key(headers.get("authorization"), headers.get("x-api-key"))
    return await request.app.state.gateway.resolver.resolve(key)


Identity = Annotated[KeyIdentity, Depends(authenticate)]
