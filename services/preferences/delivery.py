"""Webhook delivery: signed POSTs of pending requests, retried with backoff.

Due deliveries live in one Redis sorted set, ``fw:pref:webhooks:due``, scored by the unix time
they are due; members are ``<webhook_id>|<request_id>|<attempt>``. Every replica polls it and
takes a member with ``ZREM`` (only one replica's ``ZREM`` returns 1), so a delivery is tried
by one replica at a time and survives restarts. A failed attempt is re-added with a later
score until ``webhook_max_attempts``; requests answered or expired meanwhile are not sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable

import httpx
import redis.asyncio as aredis
from sqlalchemy import Engine

from flywheel.db.models import PreferenceStatus
from flywheel.logging import get_logger

from . import store
from .logic import pending_view
from .settings import PreferencesSection
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, backoff_delay, sign, should_retry

log = get_logger(__name__)

DUE_KEY = "fw:pref:webhooks:due"
EVENT_TYPE = "preference.request"
_BATCH = 20


class WebhookDispatcher:
    """Schedules and sends webhook deliveries."""

    def __init__(self, engine: Engine, client: aredis.Redis, http: httpx.AsyncClient,
                 config: PreferencesSection, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._redis = client
        self._http = http
        self._config = config
        self._rng = rng or random.Random()
        self._clock = clock
        self.stats: Counter[str] = Counter()

    async def schedule(self, request_id: str, app_id: str | None) -> int:
        """Queue a first delivery of ``request_id`` to every active webhook of its app."""
        if not app_id:
            return 0
        hooks = await asyncio.to_thread(store.list_webhooks, self._engine, app_id)
        if hooks:
            now = self._clock()
            await self._redis.zadd(DUE_KEY, {f"{h.webhook_id}|{request_id}|1": now for h in hooks})
        return len(hooks)

    async def run(self) -> None:
        """Deliver due requests until cancelled."""
        while True:
            try:
                if await self.run_due() == 0:
                    await asyncio.sleep(self._config.webhook_poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive over Redis or SQL hiccups
                log.warning("webhook_loop_error", error=str(exc))
                await asyncio.sleep(self._config.webhook_poll_s)

    async def run_due(self) -> int:
        """Send every delivery due now (at most one batch); return how many were taken."""
        members = await self._redis.zrangebyscore(DUE_KEY, "-inf", self._clock(), start=0,
                                                  num=_BATCH)
        taken = []
        for member in members:
            if await self._redis.zrem(DUE_KEY, member) == 1:
                taken.append(member.decode() if isinstance(member, bytes) else member)
        await asyncio.gather(*(self._attempt(m) for m in taken))
        return len(taken)

    async def _attempt(self, member: str) -> None:
        webhook_id, request_id, attempt_text = member.split("|")
        attempt = int(attempt_text)
        status = await self._deliver(webhook_id, request_id, attempt)
        if status is not None and 200 <= status < 300:
            self.stats["delivered"] += 1
            log.info("webhook_delivered", webhook_id=webhook_id, request_id=request_id,
                     attempt=attempt)
        elif status == -1:
            self.stats["skipped"] += 1
        elif should_retry(status) and attempt < self._config.webhook_max_attempts:
            delay = backoff_delay(attempt, self._config.webhook_backoff_s,
                                  self._config.webhook_backoff_max_s, self._rng)
            await self._redis.zadd(
                DUE_KEY, {f"{webhook_id}|{request_id}|{attempt + 1}": self._clock() + delay})
            self.stats["retried"] += 1
            log.info("webhook_retry_scheduled", webhook_id=webhook_id, request_id=request_id,
                     attempt=attempt, status=status, delay_s=round(delay, 3))
        else:
            self.stats["failed"] += 1
            log.warning("webhook_gave_up", webhook_id=webhook_id, request_id=request_id,
                        attempt=attempt, status=status)

    async def _deliver(self, webhook_id: str, request_id: str, attempt: int) -> int | None:
        """POST once; the HTTP status, None without a response, -1 when nothing is to send."""
        hook = await asyncio.to_thread(store.get_webhook, self._engine, webhook_id)
        request = await asyncio.to_thread(store.get_request, self._engine, request_id)
        if hook is None or not hook.active or request is None \
                or request.status != PreferenceStatus.PENDING:
            return -1
        delivery_id = f"{webhook_id}:{request_id}"
        body = json.dumps({
            "type": EVENT_TYPE, "delivery_id": delivery_id, "attempt": attempt,
            "request": pending_view(request.request_id, request.trace_id, request.user_id,
                                    request.payload, request.created_at, request.expires_at),
        }, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", EVENT_HEADER: EVENT_TYPE,
                   DELIVERY_HEADER: delivery_id,
                   SIGNATURE_HEADER: sign(hook.secret, int(self._clock()), body)}
        try:
            response = await self._http.post(hook.url, content=body, headers=headers,
                                             timeout=self._config.http_timeout_s)
            return response.status_code
        except httpx.HTTPError as exc:
            log.info("webhook_unreachable", webhook_id=webhook_id, error=type(exc).__name__)
            return None
