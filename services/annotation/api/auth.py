"""``/v1/auth`` and ``/v1/annotators``: sign-in, sessions, API tokens and accounts."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Cookie, Response
from pydantic import BaseModel, Field

from .. import auth
from ..errors import Unauthorized
from .deps import SESSION_COOKIE, Admin, Service, Who

router = APIRouter(tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenIn(BaseModel):
    name: str | None = Field(None, max_length=255)


class AnnotatorIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@\-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["annotator", "reviewer", "admin"] = "annotator"


def _who(p: auth.Principal) -> dict[str, Any]:
    return {"annotator_id": p.annotator_id, "username": p.username, "role": p.role}


async def login(service: Any, response: Response, username: str, password: str) -> dict[str, Any]:
    """Check the password, open a session and set the cookie (shared with the page)."""
    who = await asyncio.to_thread(auth.verify_login, service.engine, username, password)
    if who is None:
        raise Unauthorized("wrong username or password")
    token, expires = await asyncio.to_thread(auth.open_session, service.engine, who.annotator_id,
                                             service.config.session_ttl_s)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(service.config.session_ttl_s),
                        httponly=True, samesite="lax", secure=service.config.cookie_secure,
                        path="/")
    return {**_who(who), "expires_at": expires.isoformat()}


@router.post("/v1/auth/login")
async def api_login(body: LoginIn, service: Service, response: Response) -> dict[str, Any]:
    """Sign in; the session cookie is set on the response."""
    return await login(service, response, body.username, body.password)


@router.post("/v1/auth/logout", status_code=204)
async def api_logout(service: Service, response: Response,
                     fw_session: str | None = Cookie(None)) -> Response:
    if fw_session:
        await asyncio.to_thread(auth.close_session, service.engine, fw_session)
        service.forget_session(fw_session)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/v1/auth/me")
async def me(who: Who) -> dict[str, Any]:
    return _who(who)


@router.post("/v1/auth/tokens", status_code=201)
async def new_token(body: TokenIn, who: Who, service: Service) -> dict[str, Any]:
    """A new API token for the caller; it is shown only here."""
    token = await asyncio.to_thread(auth.create_token, service.engine, who.username, body.name)
    return {"token": token, "username": who.username}


@router.post("/v1/annotators", status_code=201, tags=["annotators"])
async def create_annotator(body: AnnotatorIn, _: Admin, service: Service) -> dict[str, Any]:
    created = await asyncio.to_thread(auth.create_annotator, service.engine, body.username,
                                      body.password, body.role)
    return _who(created)


@router.get("/v1/annotators", tags=["annotators"])
async def list_annotators(_: Admin, service: Service) -> dict[str, Any]:
    people = await asyncio.to_thread(auth.list_annotators, service.engine)
    return {"annotators": [_who(p) for p in people]}
