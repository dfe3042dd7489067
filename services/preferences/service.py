"""The preferences service layer: turn requests into pending questions, record answers.

Routers and the Faust agent stay thin and call this; SQL runs in worker threads, Redis and
Kafka on the event loop.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aredis
from sqlalchemy import Engine

from flywheel.events.codec import to_dict
from flywheel.logging import get_logger
from flywheel.v1.preference_pb2 import PreferenceRequest

from . import budget, store
from .delivery import WebhookDispatcher
from .errors import InvalidEvent, SecondAnswerUnavailable
from .events import Publisher
from .logic import answer_event, display_order, expiry, new_answer_id, pending_view, resolve_answer
from .second_answer import SecondAnswerSource
from .settings import PreferencesSection

log = get_logger(__name__)

SERVICE = "preferences"


@dataclass(frozen=True)
class AnswerIn:
    """A user's answer as the API received it."""

    user: str
    chosen: str
    reason: str = ""
    ratings: dict[str, dict[str, int | None]] | None = None
    shown_order: list[str] | None = None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class PreferencesService:
    """Everything the API and the consumer do, over injected clients."""

    def __init__(self, config: PreferencesSection, engine: Engine, client: aredis.Redis,
                 publisher: Publisher, source: SecondAnswerSource, dispatcher: WebhookDispatcher,
                 *, rng: random.Random | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.config = config
        self.engine = engine
        self.redis = client
        self.publisher = publisher
        self.source = source
        self.dispatcher = dispatcher
        self._rng = rng or random.Random()
        self._clock = clock
        self.outcomes: Counter[str] = Counter()

    # -- from preference.requests --------------------------------------------------------------

    async def handle_request(self, event: PreferenceRequest) -> str:
        """Make a pending request from a ``PreferenceRequest``; return the outcome's name.

        Raises:
            InvalidEvent: the request has no prompt, user or first answer (dead-letter it).
            SecondAnswerUnavailable: the model endpoint failed (dead-letter it).
        """
        outcome = await self._handle(event)
        self.outcomes[outcome] += 1
        log.info("preference_request_handled", outcome=outcome, trace_id=event.trace_id,
                 event_id=event.envelope.event_id)
        return outcome

    async def _handle(self, event: PreferenceRequest) -> str:
        _check_request(event)
        request_id = event.request_id or f"pr_{event.envelope.event_id}"
        if await asyncio.to_thread(store.request_exists, self.engine, request_id):
            return "duplicate"
        now = self._clock()
        if not await budget.take_question(self.redis, event.user_id, now, self.config.daily_budget):
            return "over_budget"
        try:
            payload = await self._payload(event)
        except SecondAnswerUnavailable:
            await budget.give_back(self.redis, event.user_id, now)
            raise
        requested = event.expires_at.ToDatetime(tzinfo=timezone.utc) \
            if event.HasField("expires_at") else None
        expires_at = expiry(now, requested, self.config.ttl_s, self.config.max_ttl_s)
        created = await asyncio.to_thread(
            store.insert_request, self.engine, request_id=request_id, trace_id=event.trace_id,
            user_id=event.user_id, app_id=payload["app_id"] or None, payload=payload,
            created_at=now, expires_at=expires_at)
        if not created:
            await budget.give_back(self.redis, event.user_id, now)
            return "duplicate"
        await self.dispatcher.schedule(request_id, payload["app_id"] or None)
        return "created"

    async def _payload(self, event: PreferenceRequest) -> dict[str, Any]:
        prompt = [to_dict(m) for m in event.prompt]
        first = _answer_dict(to_dict(event.answer_a))
        if event.HasField("answer_b") and event.answer_b.messages:
            second, role = _answer_dict(to_dict(event.answer_b)), "given"
        else:
            second, choice = await self.source.obtain(prompt, first, event.user_id)
            role = choice.role
        return {"app_id": event.envelope.app_id, "prompt": prompt,
                "answers": {"a": first, "b": second}, "display": display_order(self._rng),
                "second_source": role, "source_event_id": event.envelope.event_id,
                "decision_trace_id": event.trace_id}

    # -- HTTP ------------------------------------------------------------------------------------

    async def pending(self, user: str, app_id: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.pending_for_user, self.engine, user, app_id,
                                       self._clock(), limit)
        return [pending_view(r.request_id, r.trace_id, r.user_id, r.payload, r.created_at,
                             r.expires_at) for r in rows]

    async def answer(self, request_id: str, app_id: str | None, body: AnswerIn) -> dict[str, Any]:
        """Record a user's answer and publish it on ``preference.answers``.

        Raises:
            RequestNotFound, RequestExpired, AlreadyAnswered, InvalidAnswer.
        """
        stored = await asyncio.to_thread(store.get_request, self.engine, request_id)
        if stored is not None and stored.user_id == body.user:
            # Validate before claiming, so a malformed post does not use up the request.
            resolve_answer(stored.payload, body.chosen, body.ratings, body.shown_order)
        now = self._clock()
        record = {"chosen": body.chosen, "reason": body.reason, "ratings": body.ratings or {},
                  "shown_order": body.shown_order}
        stored = await asyncio.to_thread(store.record_answer, self.engine, request_id, body.user,
                                         app_id, now, record)
        resolved = resolve_answer(stored.payload, body.chosen, body.ratings, body.shown_order)
        event = answer_event(request_id=request_id, trace_id=stored.trace_id,
                             user_id=stored.user_id, payload=stored.payload, resolved=resolved,
                             reason=body.reason, answered_at=now)
        try:
            await self.publisher.publish("preference.answers", stored.trace_id, event)
        except Exception:
            await asyncio.to_thread(store.undo_answer, self.engine, request_id)
            raise
        log.info("preference_answered", request_id=request_id, position=resolved.position_of_chosen,
                 event_id=event.envelope.event_id)
        return {"request_id": request_id, "status": "answered", "event_id": event.envelope.event_id,
                "position_of_chosen": resolved.position_of_chosen}


def _check_request(event: PreferenceRequest) -> None:
    if not event.user_id:
        raise InvalidEvent("preference request without user_id")
    if not event.prompt:
        raise InvalidEvent("preference request without prompt")
    if not event.answer_a.messages:
        raise InvalidEvent("preference request without a first answer (answer_a)")


def _answer_dict(answer: dict[str, Any]) -> dict[str, Any]:
    # Fresh opaque ids: the ids apps see must not tell which answer is the original.
    return {"answer_id": new_answer_id(), "source_answer_id": answer.get("answer_id", ""),
            "messages": answer.get("messages", []),
            "model": {"name": answer.get("model", {}).get("name", ""),
                      "version": answer.get("model", {}).get("version", "")}}
