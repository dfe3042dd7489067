"""SQL access of the preferences service (blocking: call from worker threads).

Requests are answered at most once: the answer is recorded by one conditional ``UPDATE ...
WHERE status = 'pending'``, so two concurrent posts cannot both win.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from flywheel.db.engine import session_scope
from flywheel.db.models import App, PreferenceRequest, PreferenceStatus, Webhook

from .errors import AlreadyAnswered, RequestExpired, RequestNotFound, WebhookNotFound


@dataclass(frozen=True)
class StoredRequest:
    """A preference request as read from SQL."""

    request_id: str
    trace_id: str
    user_id: str
    app_id: str | None
    payload: dict[str, Any]
    status: str
    created_at: datetime
    expires_at: datetime


def _stored(row: PreferenceRequest) -> StoredRequest:
    return StoredRequest(row.request_id, row.trace_id, row.user_id, row.app_id, row.payload,
                         str(row.status), row.created_at, row.expires_at)


def request_exists(engine: Engine, request_id: str) -> bool:
    with session_scope(engine) as session:
        return session.get(PreferenceRequest, request_id) is not None


def insert_request(engine: Engine, *, request_id: str, trace_id: str, user_id: str,
                   app_id: str | None, payload: dict[str, Any], created_at: datetime,
                   expires_at: datetime) -> bool:
    """Store a new pending request; False when it was stored before (a redelivery)."""
    try:
        with session_scope(engine) as session:
            known_app = app_id if app_id and session.get(App, app_id) is not None else None
            session.add(PreferenceRequest(
                request_id=request_id, trace_id=trace_id, user_id=user_id, app_id=known_app,
                payload=payload, created_at=created_at, expires_at=expires_at))
        return True
    except IntegrityError:
        return False


def get_request(engine: Engine, request_id: str) -> StoredRequest | None:
    with session_scope(engine) as session:
        row = session.get(PreferenceRequest, request_id)
        return None if row is None else _stored(row)


def pending_for_user(engine: Engine, user_id: str, app_id: str | None, now: datetime,
                     limit: int) -> list[StoredRequest]:
    """Unexpired pending requests of a user (of one app when ``app_id`` is given), oldest first."""
    with session_scope(engine) as session:
        query = select(PreferenceRequest).where(
            PreferenceRequest.user_id == user_id,
            PreferenceRequest.status == PreferenceStatus.PENDING,
            PreferenceRequest.expires_at > now,
        ).order_by(PreferenceRequest.created_at).limit(limit)
        if app_id is not None:
            query = query.where(PreferenceRequest.app_id == app_id)
        return [_stored(row) for row in session.exec(query)]


def record_answer(engine: Engine, request_id: str, user_id: str, app_id: str | None,
                  now: datetime, answer: dict[str, Any]) -> StoredRequest:
    """Mark a request answered with ``answer``.

    Raises:
        RequestNotFound: unknown id, or the request belongs to another user or app.
        RequestExpired: the request expired (it is marked expired).
        AlreadyAnswered: it was answered before (or concurrently).
    """
    with session_scope(engine) as session:
        row = session.get(PreferenceRequest, request_id)
        if row is None or row.user_id != user_id or (app_id is not None and row.app_id != app_id):
            raise RequestNotFound(f"no preference request {request_id!r} for this user")
        if row.status == PreferenceStatus.ANSWERED:
            raise AlreadyAnswered(f"preference request {request_id!r} was already answered")
        if row.status == PreferenceStatus.EXPIRED or row.expires_at <= now:
            _mark_expired(session, request_id)
            session.commit()
            raise RequestExpired(f"preference request {request_id!r} expired")
        table = PreferenceRequest.__table__
        result = session.execute(
            sa.update(table)
            .where(table.c.request_id == request_id, table.c.status == PreferenceStatus.PENDING)
            .values(status=PreferenceStatus.ANSWERED, answered_at=now, answer=answer))
        if result.rowcount != 1:
            raise AlreadyAnswered(f"preference request {request_id!r} was already answered")
        stored = _stored(row)
    return stored


def undo_answer(engine: Engine, request_id: str) -> None:
    """Put an answered request back to pending (its answer event could not be published)."""
    table = PreferenceRequest.__table__
    with session_scope(engine) as session:
        session.execute(sa.update(table).where(table.c.request_id == request_id)
                        .values(status=PreferenceStatus.PENDING, answered_at=None, answer=None))


def _mark_expired(session: Any, request_id: str) -> None:
    table = PreferenceRequest.__table__
    session.execute(sa.update(table)
                    .where(table.c.request_id == request_id,
                           table.c.status == PreferenceStatus.PENDING)
                    .values(status=PreferenceStatus.EXPIRED))


# -- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredWebhook:
    webhook_id: str
    app_id: str
    url: str
    secret: str
    active: bool
    created_at: datetime


def _webhook(row: Webhook) -> StoredWebhook:
    return StoredWebhook(row.webhook_id, row.app_id, row.url, row.secret, row.active,
                         row.created_at)


def app_exists(engine: Engine, app_id: str) -> bool:
    with session_scope(engine) as session:
        return session.get(App, app_id) is not None


def upsert_webhook(engine: Engine, app_id: str, url: str, secret: str | None) -> StoredWebhook:
    """Register (or re-activate, with a new secret) the app's webhook at ``url``."""
    with session_scope(engine) as session:
        row = session.exec(select(Webhook).where(Webhook.app_id == app_id,
                                                 Webhook.url == url)).first()
        if row is None:
            row = Webhook(app_id=app_id, url=url, secret="")
        row.secret = secret or "whsec_" + secrets.token_urlsafe(32)
        row.active = True
        session.add(row)
        session.flush()
        return _webhook(row)


def list_webhooks(engine: Engine, app_id: str | None) -> list[StoredWebhook]:
    with session_scope(engine) as session:
        query = select(Webhook).where(Webhook.active == True)  # noqa: E712
        if app_id is not None:
            query = query.where(Webhook.app_id == app_id)
        return [_webhook(row) for row in session.exec(query.order_by(Webhook.created_at))]


def get_webhook(engine: Engine, webhook_id: str) -> StoredWebhook | None:
    with session_scope(engine) as session:
        row = session.get(Webhook, webhook_id)
        return None if row is None else _webhook(row)


def deactivate_webhook(engine: Engine, webhook_id: str, app_id: str | None) -> None:
    """Stop deliveries to a webhook.

    Raises:
        WebhookNotFound: no such webhook (for this app).
    """
    with session_scope(engine) as session:
        row = session.get(Webhook, webhook_id)
        if row is None or not row.active or (app_id is not None and row.app_id != app_id):
            raise WebhookNotFound(f"no webhook {webhook_id!r}")
        row.active = False
        session.add(row)
