"""The synchronous client: log calls return at once; a background thread batches and sends.

    client = Client("http://gateway:8000", api_key="fw_...")
    client.log_trace(messages=[{"role": "user", "content": "hi"}, ...], model="gpt-4o")
    client.log_feedback(trace_id, thumbs="down", comment="wrong order number")
    client.flush()   # wait until everything logged so far is acknowledged
    client.close()   # flush, then stop; what could not be sent waits in the disk spool

Direct mode (no gateway) produces to Kafka with kafka-python::

    client = Client.direct("kafka:9092", app_id="shop")
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import Any

from flywheel.logging import get_logger

from .core import ClientStats, ErrorCallback, LoggingMixin, Options, make_buffer, plan_next
from .retry import RetryPolicy
from .spool import Pending
from .transport import HttpTransport, KafkaTransport

log = get_logger(__name__)


class Client(LoggingMixin):
    """Log traces and feedback to the gateway (or Kafka) with batching, retries and a spool.

    Args:
        base_url: the gateway, e.g. ``http://127.0.0.1:8000``.
        api_key: a key from ``flywheel keys create --app NAME``.
        transport: instead of base_url/api_key, any object with ``send(kind, payloads)``.
        batch_size: events per request (one kind per request).
        flush_interval_s: send a partial batch after this long.
        max_buffer: events held in memory; beyond that they go to the spool.
        spill_dir: spool directory; None: ``~/.cache/flywheel/spool/<digest>``; False: none.
        retry: backoff policy for 409/429/5xx and connection errors.
        on_error: called with (message, dropped event ids) when events are dropped.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 transport: Any = None, batch_size: int = 100, flush_interval_s: float = 1.0,
                 max_buffer: int = 10_000, spill_dir: str | Path | bool | None = None,
                 retry: RetryPolicy | None = None, timeout_s: float = 10.0,
                 on_error: ErrorCallback | None = None, close_at_exit: bool = True) -> None:
        if transport is None:
            if not base_url or not api_key:
                raise ValueError("give base_url and api_key, or a transport")
            transport = HttpTransport(base_url, api_key, timeout_s=timeout_s)
        self.transport = transport
        self.options = Options(batch_size, flush_interval_s, max_buffer, retry or RetryPolicy())
        target = base_url or getattr(transport, "app_id", "direct")
        self.buffer = make_buffer(self.options, spill_dir, str(target))
        self.stats = ClientStats()
        self.on_error = on_error
        self._cond = threading.Condition()
        self._flush_requests = 0
        self._busy = False
        self._closing = False
        self._give_up_at: float | None = None
        self._thread = threading.Thread(target=self._loop, name="flywheel-client", daemon=True)
        self._thread.start()
        if close_at_exit:
            atexit.register(self.close, 5.0)

    @classmethod
    def direct(cls, bootstrap: str, app_id: str, *, topic_prefix: str = "flywheel",
               **kwargs: Any) -> Client:
        """A client that produces straight to Kafka (kafka-python, acks=all)."""
        return cls(transport=KafkaTransport(bootstrap, app_id, topic_prefix=topic_prefix),
                   **kwargs)

    # -- logging -------------------------------------------------------------------------------

    def _wake_sender(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- flushing --------------------------------------------------------------------------

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every queued event is acknowledged (True) or ``timeout_s`` passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                while len(self.buffer) or self._busy or self.buffer.has_spooled():
                    if not self._thread.is_alive():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(timeout=0.5 if remaining is None else min(remaining, 0.5))
                return True
            finally:
                self._flush_requests -= 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, stop the sender, and spool whatever is left."""
        if self._closing:
            return
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._give_up_at = time.monotonic()
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout_s))
        self.stats.spilled += self.buffer.spill()
        self.buffer.close()
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
        atexit.unregister(self.close)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sender thread -----------------------------------------------------------------

    def _next_batch(self) -> list[Pending] | None:
        last = time.monotonic()
        with self._cond:
            while True:
                pending = len(self.buffer) > 0 or self.buffer.has_spooled()
                if self._closing and (not pending or self._give_up_at is not None):
                    return None
                due = pending and (len(self.buffer) >= self.options.batch_size
                                   or self._flush_requests or self.buffer.has_spooled()
                                   or time.monotonic() - last >= self.options.flush_interval_s)
                if due:
                    batch = self.buffer.take(self.options.batch_size)
                    self._busy = bool(batch)
                    if batch:
                        return batch
                self._cond.notify_all()
                self._cond.wait(timeout=self.options.flush_interval_s if pending else 0.5)

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - never let the sender thread die
                log.error("client_send_failed", error=type(exc).__name__)
                self.buffer.give_back(batch)
                time.sleep(self.options.retry.base_s)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, batch: list[Pending]) -> None:
        work, attempt = [batch], 0
        while work:
            current = work.pop(0)
            attempt += 1
            outcome = self.transport.send(current[0].kind, [e.payload for e in current])
            plan = plan_next(outcome, current, attempt, self.options)
            self.buffer.ack(plan.ack + plan.drop)
            self.stats.sent += outcome.accepted if plan.ack else 0
            self.stats.duplicates += outcome.duplicates if plan.ack else 0
            if plan.ack:
                attempt = 0
            if plan.drop:
                self.stats.dropped += len(plan.drop)
                self._report(plan.reason, [e.event_id for e in plan.drop])
            if plan.wait_s is not None:
                self.stats.retries += 1
                self.stats.last_error = plan.reason
                if not self._sleep(plan.wait_s):
                    self.buffer.give_back([e for part in plan.again + work for e in part])
                    return
            work[:0] = plan.again

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False when the client is closing and must stop retrying."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                if self._closing:
                    return False
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(timeout=remaining)

    def _report(self, message: str, event_ids: list[str]) -> None:
        self.stats.last_error = message
        log.warning("client_events_dropped", count=len(event_ids), reason=message[:200])
        if self.on_error is not None:
            self.on_error(message, event_ids)
