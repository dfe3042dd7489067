"""What the sync and async clients share: options, statistics and the per-outcome decision."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

from google.protobuf.message import Message

from flywheel.v1 import feedback_pb2, trace_pb2

from .retry import RETRYABLE_STATUSES, RetryPolicy
from .spool import DiskSpool, EventBuffer, Pending
from .transport import AUTH, OK, REJECTED, RETRY, TOO_LARGE, SendOutcome
from .wire import FEEDBACK, TRACE, build_feedback, build_trace

ErrorCallback = Callable[[str, list[str]], Any]  # (message, event ids dropped)


@dataclass
class ClientStats:
    """Counters since the client started."""

    sent: int = 0
    duplicates: int = 0
    retries: int = 0
    dropped: int = 0
    spilled: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class Options:
    """Batching, buffering and retry settings of a client."""

    batch_size: int = 100
    flush_interval_s: float = 1.0
    max_buffer: int = 10_000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_server_errors: int = 5  # plain 500s are retried this often, then the batch is dropped

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_buffer < 1 or self.flush_interval_s <= 0:
            raise ValueError("batch_size and max_buffer must be >= 1, flush_interval_s > 0")


def event_id_of(kind: str, payload: bytes) -> str:
    """The idempotency id inside an encoded event (trace_id or feedback_id)."""
    if kind == TRACE:
        return trace_pb2.Trace.FromString(payload).trace_id
    return feedback_pb2.FeedbackEvent.FromString(payload).feedback_id


def default_spill_dir(target: str) -> Path:
    """``~/.cache/flywheel/spool/<digest of the target>``: one spool per gateway or cluster."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "flywheel" / "spool" / digest


def make_buffer(options: Options, spill_dir: str | Path | bool | None, target: str) -> EventBuffer:
    """The event buffer; ``spill_dir=False`` keeps events in memory only (dropped when full)."""
    spool = None
    if spill_dir is not False:
        directory = Path(spill_dir) if spill_dir not in (None, True) else default_spill_dir(target)
        spool = DiskSpool(directory, event_id_of)
    return EventBuffer(options.max_buffer, spool)


@dataclass
class Plan:
    """What to do after one send: acknowledge, drop (with the reason), resend, wait."""

    ack: list[Pending] = field(default_factory=list)
    drop: list[Pending] = field(default_factory=list)
    again: list[list[Pending]] = field(default_factory=list)
    wait_s: float | None = None
    reason: str = ""


def plan_next(outcome: SendOutcome, batch: list[Pending], attempt: int, options: Options) -> Plan:
    """Decide from a transport outcome (pure).

    OK acknowledges; retryable failures wait (Retry-After or backoff with jitter) and resend;
    a batch that is too large is split in halves; invalid events named by a 422 are dropped and
    the rest resent; a bad key waits the longest backoff and retries, so a fixed key delivers
    what was buffered.
    """
    if outcome.status == OK:
        return Plan(ack=batch)
    if outcome.status in (RETRY, AUTH):
        if outcome.http_status >= 500 and outcome.http_status not in RETRYABLE_STATUSES and \
                attempt >= options.max_server_errors:
            return Plan(drop=batch, reason=f"server error {attempt} times: {outcome.message}")
        retry_after = options.retry.max_s if outcome.status == AUTH else outcome.retry_after_s
        return Plan(again=[batch], wait_s=options.retry.delay(attempt, retry_after),
                    reason=outcome.message)
    if outcome.status == TOO_LARGE:
        if len(batch) == 1:
            return Plan(drop=batch, reason=f"event too large: {outcome.message}")
        half = len(batch) // 2
        return Plan(again=[batch[:half], batch[half:]], reason=outcome.message)
    assert outcome.status == REJECTED
    bad = {i for i in outcome.bad_indexes if 0 <= i < len(batch)}
    if not bad or len(batch) == 1:
        return Plan(drop=batch, reason=f"rejected: {outcome.message}")
    keep = [e for i, e in enumerate(batch) if i not in bad]
    return Plan(drop=[batch[i] for i in sorted(bad)], again=[keep] if keep else [],
                reason=f"rejected: {outcome.message}")


__all__ = ["FEEDBACK", "TRACE", "ClientStats", "Options", "Plan", "default_spill_dir",
           "event_id_of", "make_buffer", "plan_next"]


class LoggingMixin:
    """``log_trace``, ``log_feedback`` and ``run`` of both clients: build, buffer, wake the sender.

    The client provides ``buffer``, ``stats``, ``_closing``, ``_report`` and ``_wake_sender``
    (how its sender thread or task is told that something is queued).
    """

    buffer: EventBuffer
    stats: ClientStats
    _closing: bool

    def log_trace(self, trace: Message | Mapping[str, Any] | None = None, **fields: Any) -> str:
        """Queue a trace (a Trace, a JSON-mapping dict, or fields); returns its trace id.

        No I/O on the caller's path: a background sender delivers it.
        """
        msg = build_trace(trace, **fields)
        self._put(Pending(TRACE, msg.trace_id, msg.SerializeToString()))
        return msg.trace_id

    def log_feedback(self, trace_id: str, **signals: Any) -> str:
        """Queue feedback on a trace; see :func:`flywheel.client.wire.build_feedback`.

        Returns the feedback id (with several signals, each event's id starts with it).
        """
        events = build_feedback(trace_id, **signals)
        for event in events:
            self._put(Pending(FEEDBACK, event.feedback_id, event.SerializeToString()))
        return events[0].feedback_id.split(":")[0]

    def run(self, **kwargs: Any) -> Any:
        """Record an agent run (``with`` or ``async with``); logged as one trace when it ends."""
        from .run import AgentRun

        return AgentRun(self.log_trace, **kwargs)

    def _put(self, event: Pending) -> None:
        if self._closing:
            raise RuntimeError("the client is closed")
        if not self.buffer.put(event):
            self.stats.dropped += 1
            self._report("buffer full and no spool", [event.event_id])
        self._wake_sender()

    def _report(self, message: str, event_ids: list[str]) -> None:
        raise NotImplementedError

    def _wake_sender(self) -> None:
        raise NotImplementedError
