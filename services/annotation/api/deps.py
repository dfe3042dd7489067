"""Dependency aliases over ``app.state`` and authentication of annotators.

Scripts send ``Authorization: Bearer fwa_...`` (an API token); the page uses the ``fw_session``
cookie set at login. Both resolve to a :class:`Principal`; role checks are dependencies too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Depends, Header, Request

from ..auth import Principal
from ..errors import Unauthorized
from ..service import AnnotationService

SESSION_COOKIE = "fw_session"


def get_service(request: Request) -> AnnotationService:
    return request.app.state.service


Service = Annotated[AnnotationService, Depends(get_service)]


async def optional_principal(service: Service,
                             authorization: Annotated[str | None, Header()] = None,
                             fw_session: Annotated[str | None, Cookie()] = None
                             ) -> Principal | None:
    """The caller, or None when no (valid) credentials were sent."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await service.principal(api_token=token.strip())
    if fw_session:
        return await service.principal(session_token=fw_session)
    return None


async def current_principal(who: Annotated[Principal | None, Depends(optional_principal)]
                            ) -> Principal:
    """The caller, or 401."""
    if who is None:
        raise Unauthorized("sign in, or send Authorization: Bearer <API token>")
    return who


Who = Annotated[Principal, Depends(current_principal)]
MaybeWho = Annotated[Principal | None, Depends(optional_principal)]


def _role(role: str):  # noqa: ANN202
    async def check(who: Who) -> Principal:
        who.require(role)
        return who

    return check


Reviewer = Annotated[Principal, Depends(_role("reviewer"))]
Admin = Annotated[Principal, Depends(_role("admin"))]
