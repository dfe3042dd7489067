"""The asyncio client: the same contract as :class:`flywheel.client.Client` on an event loop.

    async with AsyncClient("http://gateway:8000", api_key="fw_...") as client:
        trace_id = client.log_trace(messages=[...])      # queues, returns at once
        async with client.run(user_id="u-1") as run:      # records an agent run
            ...
        client.log_feedback(trace_id, ratings={"helpfulness": 6})
        await client.flush()
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from flywheel.logging import get_logger

from .core import ClientStats, ErrorCallback, LoggingMixin, Options, make_buffer, plan_next
from .retry import RetryPolicy
from .spool import Pending
from .transport import AsyncHttpTransport

log = get_logger(__name__)


class AsyncClient(LoggingMixin):
    """Async twin of :class:`~flywheel.client.Client` (HTTP to the gateway).

    Must be used on a running event loop; the sender task starts with the first event.
    ``transport`` may be any object with ``async send(kind, payloads)``.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 transport: Any = None, batch_size: int = 100, flush_interval_s: float = 1.0,
                 max_buffer: int = 10_000, spill_dir: str | Path | bool | None = None,
                 retry: RetryPolicy | None = None, timeout_s: float = 10.0,
                 on_error: ErrorCallback | None = None) -> None:
        if transport is None:
            if not base_url or not api_key:
                raise ValueError("give base_url and api_key, or a transport")
            transport = AsyncHttpTransport(base_url, api_key, timeout_s=timeout_s)
        self.transport = transport
        self.options = Options(batch_size, flush_interval_s, max_buffer, retry or RetryPolicy())
        self.buffer = make_buffer(self.options, spill_dir, str(base_url or "async-direct"))
        self.stats = ClientStats()
        self.on_error = on_error
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requests = 0
        self._closing = False
        self._task: asyncio.Task | None = None

    # -- logging -------------------------------------------------------------------------------

    def _wake_sender(self) -> None:
        self._idle.clear()
        self._ensure_task()
        self._wake.set()

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    # -- flushing --------------------------------------------------------------------------

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued event is acknowledged (True) or ``timeout_s`` passed."""
        if not len(self.buffer) and not self.buffer.has_spooled() and self._idle.is_set():
            return True
        self._ensure_task()
        self._flush_requests += 1
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                while len(self.buffer) or self.buffer.has_spooled() or not self._idle.is_set():
                    self._wake.set()
                    await self._idle.wait()
                    if len(self.buffer) or self.buffer.has_spooled():
                        self._idle.clear()
            return True
        except TimeoutError:
            return False
        finally:
            self._flush_requests -= 1

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, stop the sender, spool whatever is left."""
        if self._closing:
            return
        await self.flush(timeout_s)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=max(1.0, timeout_s))
            except TimeoutError:
                self._task.cancel()
        self.stats.spilled += self.buffer.spill()
        self.buffer.close()
        close = getattr(self.transport, "close", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the sender task -------------------------------------------------------------------

    async def _next_batch(self) -> list[Pending] | None:
        last = time.monotonic()
        while True:
            pending = len(self.buffer) > 0 or self.buffer.has_spooled()
            if self._closing:
                return None
            due = pending and (len(self.buffer) >= self.options.batch_size
                               or self._flush_requests or self.buffer.has_spooled()
                               or time.monotonic() - last >= self.options.flush_interval_s)
            if due:
                batch = self.buffer.take(self.options.batch_size)
                if batch:
                    return batch
            if not pending:
                self._idle.set()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.options.flush_interval_s)
            except TimeoutError:
                pass

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                self._idle.set()
                return
            try:
                await self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - keep the sender alive
                log.error("client_send_failed", error=type(exc).__name__)
                self.buffer.give_back(batch)
                await asyncio.sleep(self.options.retry.base_s)

    async def _deliver(self, batch: list[Pending]) -> None:
        work, attempt = [batch], 0
        while work:
            current = work.pop(0)
            attempt += 1
            outcome = await self.transport.send(current[0].kind, [e.payload for e in current])
            plan = plan_next(outcome, current, attempt, self.options)
            self.buffer.ack(plan.ack + plan.drop)
            if plan.ack:
                self.stats.sent += outcome.accepted
                self.stats.duplicates += outcome.duplicates
                attempt = 0
            if plan.drop:
                self.stats.dropped += len(plan.drop)
                self._report(plan.reason, [e.event_id for e in plan.drop])
            if plan.wait_s is not None:
                self.stats.retries += 1
                self.stats.last_error = plan.reason
                if not await self._sleep(plan.wait_s):
                    self.buffer.give_back([e for part in plan.again + work for e in part])
                    return
            work[:0] = plan.again

    async def _sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not self._closing:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                pass
        return False

    def _report(self, message: str, event_ids: list[str]) -> None:
        self.stats.last_error = message
        log.warning("client_events_dropped", count=len(event_ids), reason=message[:200])
        if self.on_error is not None:
            self.on_error(message, event_ids)
