"""The ingest service: decode, validate, stamp, admit and write traces and feedback.

Handlers call :func:`decode_traces` / :func:`decode_feedback` (pure) and then
:meth:`Ingestor.write_events`, which, in order:

1. admits the request in Redis: one token from the key's rate bucket, one claim per event id
   (the requests of one event-loop iteration in one call, :class:`AdmitBatcher`);
2. answers ids already written in the idempotency window as duplicates (not produced again),
   and refuses the request with 409 when another request is writing one of its ids right now;
3. writes the new events with acks=all and a deadline (a batch in one transaction);
4. marks the ids written, or on failure releases its claims so that a retry goes through.

Every event gets the gateway's envelope: ``producer="gateway"``, the app id of the API key
(never the body's), and an ``event_id`` derived from the app and the trace or feedback id, so
a redelivery of the same event keeps its id.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson
from google.protobuf.message import DecodeError, Message

from flywheel.client.wire import event_id_for, varint
from flywheel.events.codec import encode
from flywheel.events.envelope import new_envelope
from flywheel.keys import KeyIdentity
from flywheel.logging import get_logger
from flywheel.v1 import feedback_pb2, trace_pb2
from flywheel.v1.envelope_pb2 import Envelope

from . import openai_shape, otlp
from .bodies import JSON, MediaType, split_delimited
from .config import GatewaySettings
from .coordination import NEW, PENDING, AdmitRequest, Coordination
from .errors import (
    BrokerUnavailable,
    DependencyDown,
    FieldIssue,
    InFlight,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
)
from .metrics import GatewayMetrics
from .validation import (
    check_feedback_event,
    check_trace,
    ensure_id,
    message_from_json,
)
from .writer import EventWriter, Record

log = get_logger(__name__)

PRODUCER = "gateway"
TRACES, FEEDBACK = "traces", "feedback"
_HOLD_KEY_ID = "otlp-hold"


@dataclass
class Item:
    """One decoded event of a request with the id that keys idempotency and the topic."""

    message: Message
    event_id_key: str  # trace_id or feedback_id
    record_key: str  # trace_id (both topics are keyed by trace id)
    generated_id: bool = False
    # The binary Protobuf the message was decoded from, when the checks filled in nothing:
    # the gateway then writes it with its stamp appended instead of encoding the message again.
    frame: bytes | None = None


# --- decoding (pure) ---------------------------------------------------------------------------

def _json_items(body: bytes, batch_key: str) -> tuple[list[Any], list[str]]:
    # orjson: strict RFC 8259 (UTF-8 only, no NaN/Infinity, no trailing commas), and
    # about 2.5x faster than json.loads on the request bodies measured in the benchmark.
    try:
        data = orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput([FieldIssue("$", f"invalid JSON: {exc}")]) from None
    if isinstance(data, list):
        return data, [f"[{i}]" for i in range(len(data))]
    if isinstance(data, dict) and set(data) == {batch_key}:
        items = data[batch_key]
        if not isinstance(items, list):
            raise InvalidInput([FieldIssue(batch_key, "expected a JSON array")])
        return items, [f"{batch_key}[{i}]" for i in range(len(items))]
    return [data], [""]


def _binary_items(body: bytes, media: MediaType, cls: type[Message], max_count: int,
                  ) -> tuple[list[Message], list[str], list[bytes]]:
    frames = split_delimited(body, max_count) if media.delimited else [body]
    paths = [f"[{i}]" for i in range(len(frames))] if media.delimited else [""]
    messages, issues = [], []
    for frame, path in zip(frames, paths):
        try:
            messages.append(cls.FromString(frame))
        except (DecodeError, RuntimeError, ValueError) as exc:
            issues.append(FieldIssue(path or "$", f"invalid {cls.DESCRIPTOR.name} protobuf: {exc}"))
    if issues:
        raise InvalidInput(issues)
    return messages, paths, frames


def _normalized(normalize: Callable[[Any], Any], item: Any) -> Any:
    """``normalize(item)``, or the item unchanged when it is too malformed to rewrite (the
    validator then reports exactly what is wrong with it)."""
    try:
        return normalize(item)
    except Exception:  # noqa: BLE001 - best effort on arbitrary JSON
        return item


def _decode(body: bytes, media: MediaType, cls: type[Message], batch_key: str, max_count: int,
            normalize: Callable[[Any], Any], check: Callable[[Message, str], list[FieldIssue]],
            ) -> list[tuple[Message, bytes | None]]:
    """``(message, frame)`` per event: ``frame`` is the binary Protobuf the message was decoded
    from when the check filled in nothing, else None."""
    if not body:
        raise InvalidInput([FieldIssue("$", "empty body")])
    if media.kind == JSON:
        raw, paths = _json_items(body, batch_key)
        if len(raw) > max_count:
            raise PayloadTooLarge(f"{len(raw)} events in one request; the limit is {max_count}")
        frames: list[bytes | None] = [None] * len(raw)
    else:
        raw, paths, frames = _binary_items(body, media, cls, max_count)  # type: ignore[assignment]
    if not raw:
        raise InvalidInput([FieldIssue(batch_key, "an empty batch")])
    out, issues = [], []
    for item, path, frame in zip(raw, paths, frames):
        try:
            message = item if isinstance(item, Message) else \
                message_from_json(_normalized(normalize, item), cls, path)
        except InvalidInput as exc:
            issues.extend(exc.issues)
            continue
        found = check(message, path)
        if found:
            issues.extend(found)
        out.append((message, None if getattr(found, "filled", True) else frame))
    if issues:
        raise InvalidInput(issues[:50])
    return out


def decode_traces(body: bytes, media: MediaType, max_count: int) -> list[Item]:
    """Traces from a request body (JSON mapping, OpenAI shape or binary), validated.

    Raises:
        InvalidInput: with every invalid field's path.
        PayloadTooLarge: more than ``max_count`` traces.
    """
    decoded = _decode(body, media, trace_pb2.Trace, "traces", max_count,
                      openai_shape.normalize_trace, check_trace)
    items = []
    for trace, frame in decoded:
        trace.trace_id, generated = ensure_id(trace.trace_id)
        items.append(Item(trace, trace.trace_id, trace.trace_id, generated, frame))
    return items


def decode_feedback(body: bytes, media: MediaType, max_count: int) -> list[Item]:
    """Feedback events from a request body (JSON mapping or binary), validated.

    Raises:
        InvalidInput: with every invalid field's path.
        PayloadTooLarge: more than ``max_count`` events.
    """
    decoded = _decode(body, media, feedback_pb2.FeedbackEvent, "events", max_count,
                      lambda obj: obj, check_feedback_event)
    items = []
    for event, frame in decoded:
        event.feedback_id, generated = ensure_id(event.feedback_id)
        items.append(Item(event, event.feedback_id, event.trace_id, generated, frame))
    return items


def stamp(item: Item, kind: str, app_id: str, envelope: Message) -> None:
    """Set the envelope (a copy of ``envelope`` with this event's ids), and on traces the app
    id and the default source, in place. ``envelope`` comes from :func:`request_envelope`."""
    msg = item.message
    if kind == TRACES:
        msg.app_id = app_id
        if msg.source == trace_pb2.TRACE_SOURCE_UNSPECIFIED:
            msg.source = trace_pb2.TRACE_SOURCE_GATEWAY
    target = msg.envelope
    target.CopyFrom(envelope)
    target.event_id = event_id_for(app_id, kind, item.event_id_key)
    target.trace_id = item.record_key


def _tag(cls: type[Message], name: str) -> bytes:
    """The key of field ``name`` on the wire (its number and wire type), as a one-byte tag."""
    field = cls.DESCRIPTOR.fields_by_name[name]
    wire_type = 2 if field.type in (field.TYPE_STRING, field.TYPE_MESSAGE, field.TYPE_BYTES) else 0
    key = field.number << 3 | wire_type
    assert key < 0x80, name
    return bytes([key])


def _delimited(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


_ENVELOPE_EVENT_ID, _ENVELOPE_TRACE_ID = _tag(Envelope, "event_id"), _tag(Envelope, "trace_id")
_ENVELOPE_FIELD = {cls: _tag(cls, "envelope") for cls in (trace_pb2.Trace, feedback_pb2.FeedbackEvent)}
_ID_FIELD = {TRACES: _tag(trace_pb2.Trace, "trace_id"),
             FEEDBACK: _tag(feedback_pb2.FeedbackEvent, "feedback_id")}
_TRACE_APP_ID = _tag(trace_pb2.Trace, "app_id")
_SOURCE_GATEWAY = _tag(trace_pb2.Trace, "source") + varint(trace_pb2.TRACE_SOURCE_GATEWAY)


class Splicer:
    """Writes an event decoded from binary Protobuf as its own bytes with the stamp appended.

    Parsing Protobuf merges repeated occurrences of a message: a later scalar field replaces
    an earlier one and a later sub-message merges into an absent one, so ``frame + suffix``
    decodes to exactly what :func:`stamp` makes of the message, without encoding the whole
    event again (encoding and stamping took about a tenth of a gateway worker's CPU in the
    batched Protobuf benchmark). Only for messages without an envelope of their own (one
    present would be merged into, not replaced): :meth:`value` answers None for those.
    """

    def __init__(self, kind: str, app_id: str, envelope: Message) -> None:
        self.kind = kind
        shared = Envelope()
        shared.CopyFrom(envelope)
        shared.ClearField("event_id")
        shared.ClearField("trace_id")
        self._envelope = shared.SerializeToString()
        self._app = app_id
        self._app_field = _delimited(_TRACE_APP_ID, app_id.encode())

    def value(self, item: Item) -> bytes | None:
        msg = item.message
        if item.frame is None or msg.HasField("envelope"):
            return None
        envelope = b"".join((self._envelope,
                             _delimited(_ENVELOPE_EVENT_ID, event_id_for(
                                 self._app, self.kind, item.event_id_key).encode()),
                             _delimited(_ENVELOPE_TRACE_ID, item.record_key.encode())))
        parts = [item.frame, _delimited(_ENVELOPE_FIELD[type(msg)], envelope)]
        if item.generated_id:  # the id the gateway made up for the event
            parts.append(_delimited(_ID_FIELD[self.kind], item.event_id_key.encode()))
        if self.kind == TRACES:
            parts.append(self._app_field)
            if msg.source == trace_pb2.TRACE_SOURCE_UNSPECIFIED:
                parts.append(_SOURCE_GATEWAY)
        return b"".join(parts)


@lru_cache(maxsize=1024)
def _envelope_template(cls: type[Message], app_id: str) -> bytes:
    return new_envelope(cls, PRODUCER, app_id=app_id, event_id="-",
                        occurred_at=datetime.fromtimestamp(0, timezone.utc)).SerializeToString()


def request_envelope(cls: type[Message], app_id: str) -> Message:
    """The envelope fields every event of one request shares (type, producer, app, time):
    a cached template per event type and app, stamped with the current time."""
    envelope = Envelope.FromString(_envelope_template(cls, app_id))
    envelope.occurred_at.FromNanoseconds(time.time_ns())
    return envelope


# --- the service -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteResult:
    """Per event of the request, in order: ``accepted`` or ``duplicate``."""

    ids: list[str]
    statuses: list[str]
    generated: list[bool]

    def as_json(self, id_name: str) -> dict[str, Any]:
        return {
            "accepted": self.statuses.count("accepted"),
            "duplicates": self.statuses.count("duplicate"),
            "items": [{id_name: i, "status": s, **({"generated_id": True} if g else {})}
                      for i, s, g in zip(self.ids, self.statuses, self.generated)],
        }


class CommitBatcher:
    """Marks ids written in Redis for every request that finished in the same loop iteration
    with one round trip, instead of one round trip per request.

    Each request still waits for its mark before answering, so an immediate resend is answered
    "duplicate". If Redis fails, the error is logged and the request still succeeds: its events
    are on the topic; the claims stay ``pending`` until they expire.
    """

    def __init__(self, coordination: Coordination, window_s: int) -> None:
        self.coordination = coordination
        self.window_s = window_s
        self._pending: dict[tuple[str, str], list[str]] = {}
        self._waiters: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None

    def add(self, app_id: str, kind: str, ids: list[str]) -> asyncio.Future:
        """Queue a mark; the returned future resolves once it was written (or failed)."""
        loop = asyncio.get_running_loop()
        self._pending.setdefault((app_id, kind), []).extend(ids)
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush_soon())
        return waiter

    async def _flush_soon(self) -> None:
        while self._waiters:  # marks added while a flush was on the wire go in the next one
            await asyncio.sleep(0)  # let the other requests of this iteration add their ids
            await self.flush()

    async def flush(self) -> None:
        """Write every mark collected so far and release their waiters."""
        groups, self._pending = self._pending, {}
        waiters, self._waiters = self._waiters, []
        try:
            for (app_id, kind), ids in groups.items():
                try:
                    await self.coordination.commit(app_id, kind, ids, self.window_s)
                except Exception as exc:  # noqa: BLE001 - written already; the claims expire
                    log.error("idempotency_commit_failed", app_id=app_id, count=len(ids),
                              error=type(exc).__name__)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


class AdmitBatcher:
    """Admits every request that asks in the same event-loop iteration with one Redis call per
    app, instead of one round trip per request.

    The requests of an iteration are collected and sent on the next one; the script handles
    them in the order they asked, so rate limits and claims come out as if each request had
    made its own call. Calls of successive iterations may be on the wire at the same time
    (pipelined on one connection). If the call fails, every request in it gets the error.
    """

    def __init__(self, coordination: Coordination, pending_ttl_s: float) -> None:
        self.coordination = coordination
        self.pending_ttl_s = pending_ttl_s
        self._waiting: dict[str, list[tuple[AdmitRequest, asyncio.Future]]] = {}
        self._scheduled = False
        self._calls: set[asyncio.Task] = set()

    def admit(self, app_id: str, request: AdmitRequest) -> asyncio.Future:
        """Queue ``request``; the future resolves to its :class:`Admission`."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.setdefault(app_id, []).append((request, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send)
        return future

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, {}
        self._scheduled = False
        loop = asyncio.get_running_loop()
        for app_id, group in waiting.items():
            task = loop.create_task(self._call(app_id, group))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, app_id: str, group: list[tuple[AdmitRequest, asyncio.Future]]) -> None:
        try:
            admissions = await self.coordination.admit(
                app_id, [request for request, _ in group], pending_ttl_s=self.pending_ttl_s)
        except BaseException as exc:  # noqa: BLE001 - handed to every request of the call
            for _, future in group:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception)
                                         else ConnectionError(type(exc).__name__))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), admission in zip(group, admissions):
            if not future.done():
                future.set_result(admission)


@dataclass(frozen=True)
class _Admitted:
    states: list[str]  # per id: NEW, DONE or PENDING
    token: str  # this request's claim token


class Ingestor:
    """Admission, idempotency and writing, over a :class:`Coordination` and an :class:`EventWriter`."""

    def __init__(self, gw: GatewaySettings, topics: dict[str, str], writer: EventWriter,
                 coordination: Coordination, metrics: GatewayMetrics) -> None:
        self.gw = gw
        self.topics = topics  # kind -> full topic name
        self.writer = writer
        self.coordination = coordination
        self.metrics = metrics
        self.pending_ttl_s = gw.produce_deadline_s * 2 + 10
        self.commits = CommitBatcher(coordination, gw.idempotency_window_s)
        self.admissions = AdmitBatcher(coordination, self.pending_ttl_s)
        # Claim tokens: unique per request (a random prefix per Ingestor, so per worker, and a
        # counter), cheaper than a uuid4 per request.
        self._token_prefix = uuid.uuid4().hex[:20]
        self._tokens = itertools.count()

    async def write_events(self, identity: KeyIdentity, kind: str, items: list[Item],
                           *, rate_limited: bool = True) -> WriteResult:
        """Admit and write ``items``; see the module docstring for the steps.

        Raises:
            RateLimited, InFlight, BrokerUnavailable, DependencyDown, PayloadTooLarge.
        """
        app_id = identity.app_id
        envelope = request_envelope(type(items[0].message), app_id) if items else None
        encoded: dict[str, bytes] = {}
        splicer = Splicer(kind, app_id, envelope) if envelope is not None else None
        for index, item in enumerate(items):
            if item.event_id_key in encoded:
                continue
            value = splicer.value(item) if splicer is not None else None
            if value is None:
                stamp(item, kind, app_id, envelope)
                value = encode(item.message)
            encoded[item.event_id_key] = value
            if len(encoded[item.event_id_key]) > self.gw.max_event_bytes:
                raise PayloadTooLarge(f"event {index} ({item.event_id_key}) encodes to "
                                      f"{len(encoded[item.event_id_key])} bytes; the limit is "
                                      f"{self.gw.max_event_bytes}")
        unique = list(encoded)
        states = await self._admit(identity, kind, unique, rate_limited)
        fresh = [i for i, s in zip(unique, states.states) if s == NEW]
        if PENDING in states.states:
            await self._release(app_id, kind, fresh, states.token)
            raise InFlight("another request is writing some of these ids; retry shortly", 1)
        keys = {item.event_id_key: item.record_key for item in items}
        records = [Record(self.topics[kind], keys[i].encode(), encoded[i]) for i in fresh]
        await self._write(app_id, kind, fresh, records, states.token)
        return self._result(kind, items, set(fresh))

    async def _admit(self, identity: KeyIdentity, kind: str, ids: list[str],
                     rate_limited: bool) -> _Admitted:
        token = f"{self._token_prefix}-{next(self._tokens)}"
        rate, burst = (self.gw.rate_per_s, self.gw.rate_burst) if rate_limited else (1e9, 10**9)
        key_id = identity.key_id if rate_limited else _HOLD_KEY_ID
        try:
            admission = await self.admissions.admit(
                identity.app_id, AdmitRequest(key_id, kind, ids, token, rate, burst))
        except Exception as exc:  # noqa: BLE001 - any Redis failure: nothing was written
            raise DependencyDown(f"Redis did not answer: {type(exc).__name__}",
                                 self.gw.retry_after_s) from None
        if not admission.allowed:
            raise RateLimited(f"rate limit of {self.gw.rate_per_s:g} requests/s for this key "
                              "exceeded", max(1, math.ceil(admission.retry_after_s)))
        return _Admitted(admission.states, token)

    async def _write(self, app_id: str, kind: str, fresh: list[str], records: list[Record],
                     token: str) -> None:
        if not records:
            return

        async def late_success() -> None:
            await self._commit(app_id, kind, fresh)

        started = time.perf_counter()
        try:
            await self.writer.write(records, self.gw.produce_deadline_s, late_success)
        except BrokerUnavailable as exc:
            await self._release(app_id, kind, fresh, token)
            raise BrokerUnavailable(exc.message, self.gw.retry_after_s) from None
        except BaseException:
            await self._release(app_id, kind, fresh, token)
            raise
        self.metrics.produce_latency.labels("batch" if len(records) > 1 else "single").observe(
            time.perf_counter() - started)
        self.metrics.produced.labels(self.topics[kind]).inc(len(records))
        await self._commit(app_id, kind, fresh)

    async def _commit(self, app_id: str, kind: str, ids: list[str]) -> None:
        await self.commits.add(app_id, kind, ids)

    async def _release(self, app_id: str, kind: str, ids: list[str], token: str) -> None:
        try:
            await self.coordination.release(app_id, kind, ids, token)
        except Exception as exc:  # noqa: BLE001 - the pending claims expire on their own
            log.error("idempotency_release_failed", app_id=app_id, count=len(ids),
                      error=type(exc).__name__)

    def _result(self, kind: str, items: list[Item], fresh: set[str]) -> WriteResult:
        statuses, seen = [], set()
        for item in items:
            new = item.event_id_key in fresh and item.event_id_key not in seen
            seen.add(item.event_id_key)
            statuses.append("accepted" if new else "duplicate")
        duplicates = statuses.count("duplicate")
        if duplicates:
            self.metrics.duplicates.labels(kind).inc(duplicates)
        return WriteResult([i.event_id_key for i in items], statuses,
                           [i.generated_id for i in items])

    # --- OTLP -----------------------------------------------------------------------------

    async def write_otlp(self, identity: KeyIdentity, spans: list[otlp.SpanView]) -> tuple[int, str]:
        """Turn an export's spans into traces and write them; returns (rejected spans, why).

        Traces whose root span is in this export (or arrived earlier) are written now, with any
        spans held for them; the spans of other traces are held in Redis until their root
        arrives or ``otlp_hold_s`` passes (then the background flusher writes them).
        """
        summary = otlp.summarize(spans)
        self.metrics.otlp_spans.labels("skipped").inc(summary.skipped_spans)
        app_id = identity.app_id
        ready = [t for t in summary.by_trace if t in summary.complete]
        ready += [t for t in summary.complete if t not in summary.by_trace]
        waiting = [t for t in summary.by_trace if t not in summary.complete]
        try:
            held = await self.coordination.held_spans(app_id, ready)
            await self._hold(app_id, {t: summary.by_trace[t] for t in waiting})
        except Exception as exc:  # noqa: BLE001
            raise DependencyDown(f"Redis did not answer: {type(exc).__name__}",
                                 self.gw.retry_after_s) from None
        groups = {t: summary.by_trace.get(t, []) + [otlp.span_from_raw(b) for b in held.get(t, [])]
                  for t in ready}
        items, rejected, reasons = self._otlp_items(groups)
        result = await self.write_events(identity, TRACES, items)
        late = sum(len(groups[i.event_id_key]) for i, s in zip(items, result.statuses)
                   if s == "duplicate")
        self.metrics.otlp_spans.labels("converted").inc(
            sum(len(groups[i.event_id_key]) for i in items) - late)
        self.metrics.otlp_spans.labels("late").inc(late)
        self.metrics.otlp_spans.labels("rejected").inc(rejected)
        await self._drop_held(app_id, [t for t in ready if t in held])
        return rejected, "; ".join(reasons[:5])

    def _otlp_items(self, groups: dict[str, list[otlp.SpanView]]) -> tuple[list[Item], int, list[str]]:
        items, rejected, reasons = [], 0, []
        for trace_id, spans in groups.items():
            unique = list({s.span_id: s for s in spans}.values())
            if not any(otlp.is_genai(s) for s in unique):
                continue
            trace = otlp.spans_to_trace(unique)
            issues = check_trace(trace)
            if issues:
                rejected += len(unique)
                reasons.append(f"trace {trace_id}: {issues[0].path}: {issues[0].message}")
                continue
            items.append(Item(trace, trace.trace_id, trace.trace_id))
        return items, rejected, reasons

    async def _hold(self, app_id: str, waiting: dict[str, list[otlp.SpanView]]) -> None:
        for trace_id, spans in waiting.items():
            await self.coordination.hold_spans(
                app_id, trace_id, {s.span_id: s.raw for s in spans},
                due_at=time.time() + self.gw.otlp_hold_s, ttl_s=self.gw.otlp_hold_s * 6 + 60)
            self.metrics.otlp_spans.labels("held").inc(len(spans))

    async def _drop_held(self, app_id: str, trace_ids: list[str]) -> None:
        try:
            await self.coordination.drop_held(app_id, trace_ids)
        except Exception as exc:  # noqa: BLE001 - they expire; the trace id claim stops repeats
            log.error("otlp_drop_held_failed", app_id=app_id, error=type(exc).__name__)

    async def flush_due_otlp(self, now: float, limit: int = 100) -> int:
        """Write traces whose hold expired without a root span; returns how many were written."""
        written = 0
        for app_id, trace_id in await self.coordination.take_due(now, limit):
            held = await self.coordination.held_spans(app_id, [trace_id])
            spans = [otlp.span_from_raw(b) for b in held.get(trace_id, [])]
            items, rejected, _ = self._otlp_items({trace_id: spans})
            self.metrics.otlp_spans.labels("rejected").inc(rejected)
            identity = KeyIdentity(key_id=_HOLD_KEY_ID, app_id=app_id)
            try:
                if items:
                    result = await self.write_events(identity, TRACES, items, rate_limited=False)
                    fresh = result.statuses[0] == "accepted"
                    written += 1 if fresh else 0
                    self.metrics.otlp_spans.labels("converted" if fresh else "late").inc(len(spans))
            except (BrokerUnavailable, DependencyDown, InFlight):
                await self.coordination.postpone(app_id, trace_id, now + self.gw.otlp_hold_s)
                continue
            await self._drop_held(app_id, [trace_id])
        return written


__all__ = ["FEEDBACK", "TRACES", "AdmitBatcher", "CommitBatcher", "Ingestor", "Item", "Splicer",
           "WriteResult", "decode_feedback", "decode_traces", "request_envelope", "stamp"]
