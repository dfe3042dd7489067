"""Dead letters: messages a stream processor gave up on, kept byte for byte with the error.

Every Faust service sends what it cannot process (undecodable bytes, schema violations, failed
redactions) to the ``deadletter`` topic with the source topic, partition and offset, and moves
on. ``flywheel deadletter replay`` later sends the kept bytes back to their source topic; the
replayed record carries the headers below, so a message that fails again gets a new dead letter
with ``attempt`` counted up.

Dead letter ids are derived from (source topic, partition, offset): the same message failing
twice (a redelivery after a crash) yields the same event id, which consumers deduplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from flywheel.events.codec import encode
from flywheel.events.envelope import stamp
from flywheel.settings import Settings
from flywheel.v1.pipeline_pb2 import DeadLetter

REPLAY_OF_HEADER = "flywheel-replay-of"
ATTEMPT_HEADER = "flywheel-attempt"
_NAMESPACE = uuid.UUID("0c8f4f7e-2d6b-4b1a-8f51-3f0d5a9e7b42")
MAX_ERROR_CHARS = 2000

HeadersArg = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


def dead_letter_id(source_topic: str, partition: int, offset: int) -> str:
    """The dead letter's event id: stable for one source record."""
    return str(uuid.uuid5(_NAMESPACE, f"{source_topic}:{partition}:{offset}"))


def _header_items(headers: HeadersArg) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def attempt_from_headers(headers: HeadersArg) -> int:
    """1 for a first delivery; one more than the ``flywheel-attempt`` header of a replay."""
    for name, value in _header_items(headers):
        if name == ATTEMPT_HEADER:
            try:
                return int(bytes(value).decode()) + 1
            except (ValueError, UnicodeDecodeError):
                return 2
    return 1


def build_dead_letter(*, service: str, source_topic: str, partition: int, offset: int,
                      key: bytes | None, value: bytes | None, error: BaseException | None = None,
                      error_type: str = "", error_message: str = "", attempt: int = 1,
                      trace_id: str = "", failed_at: datetime | None = None) -> DeadLetter:
    """A DeadLetter event for one source record.

    ``error_type`` defaults to the exception's class name, ``error_message`` to its text
    (cut to 2,000 characters; the message must not repeat the record's content).
    """
    now = failed_at or datetime.now(timezone.utc)
    dl = DeadLetter(
        source_topic=source_topic, partition=partition, offset=offset,
        key=key or b"", value=value or b"",
        error_type=error_type or (type(error).__name__ if error is not None else "Error"),
        error_message=(error_message or (str(error) if error is not None else ""))[:MAX_ERROR_CHARS],
        service=service, attempt=attempt,
    )
    dl.failed_at.FromDatetime(now)
    return stamp(dl, service, trace_id=trace_id, event_id=dead_letter_id(source_topic, partition, offset),
                 occurred_at=now)


def replay_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers for a replayed record: which dead letter it comes from and its attempt count."""
    return [(REPLAY_OF_HEADER, dl.envelope.event_id.encode()),
            (ATTEMPT_HEADER, str(dl.attempt).encode())]


class _Producer(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None, timestamp: float | None,
                   headers: Any) -> Awaitable[Any]: ...


class DeadLetterSender:
    """Sends dead letters through a Faust app's producer (or any producer with the same
    ``send``). ``send`` returns the delivery future; await it before committing when the
    dead letter must be durable first (the Faust commit also flushes the producer)."""

    def __init__(self, settings: Settings, service: str, *, producer: _Producer | None = None,
                 app: Any = None) -> None:
        if producer is None and app is None:
            raise ValueError("DeadLetterSender needs a producer or a Faust app")
        self._producer = producer
        self._app = app
        self.topic = settings.topic("deadletter")
        self.service = service
        self.sent = 0

    @property
    def producer(self) -> _Producer:
        """The producer; a Faust app's producer is resolved at first use (after start)."""
        if self._producer is None:
            self._producer = self._app.producer
        return self._producer

    async def send(self, dl: DeadLetter) -> Awaitable[Any]:
        self.sent += 1
        return await self.producer.send(self.topic, dl.envelope.event_id.encode(), encode(dl),
                                        None, None, None)

    async def send_record(self, *, source_topic: str, partition: int, offset: int,
                          key: bytes | None, value: bytes | None, headers: HeadersArg = None,
                          error: BaseException | None = None, error_type: str = "",
                          error_message: str = "", trace_id: str = "") -> Awaitable[Any]:
        """Build and send the dead letter for one consumed record."""
        dl = build_dead_letter(service=self.service, source_topic=source_topic,
                               partition=partition, offset=offset, key=key, value=value,
                               error=error, error_type=error_type, error_message=error_message,
                               attempt=attempt_from_headers(headers), trace_id=trace_id)
        return await self.send(dl)


def read_dead_letters(bootstrap: str, topic: str, timeout_s: float = 15.0) -> list[DeadLetter]:
    """Every dead letter currently on ``topic``, oldest first (reads to the end offsets).

    Records that are not DeadLetter events are skipped. Uses kafka-python without a consumer
    group, so reading never moves anybody's offsets.
    """
    from flywheel.errors import EventDecodeError
    from flywheel.events.codec import decode
    from flywheel.kafka.reader import read_to_end

    out: list[DeadLetter] = []
    for record in read_to_end(bootstrap, topic, timeout_s, client_id="flywheel-deadletters"):
        try:
            out.append(decode(record.value, DeadLetter))
        except EventDecodeError:
            continue
    out.sort(key=lambda d: (d.failed_at.seconds, d.failed_at.nanos))
    return out
