"""Build and read event envelopes (field 1 of every event).

Producers call :func:`stamp` once, when an event is created; a retry of the same send keeps the
stamped ``event_id`` so consumers can deduplicate on it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from google.protobuf.message import Message

from flywheel.errors import EventDecodeError
from flywheel.events.codec import event_type_of, message_class
from flywheel.v1.envelope_pb2 import Envelope

SCHEMA_VERSION = 1


def _event_type(event_type_or_cls: str | Message | type[Message]) -> str:
    if isinstance(event_type_or_cls, str):
        return event_type_of(message_class(event_type_or_cls))
    return event_type_of(event_type_or_cls)


def new_envelope(event_type_or_cls: str | Message | type[Message], producer: str,
                 trace_id: str = "", app_id: str = "", event_id: str | None = None,
                 occurred_at: datetime | None = None) -> Envelope:
    """A fresh envelope: uuid4 id (unless given), UTC now (unless given), schema version 1.

    Raises:
        EventDecodeError: the event type is not a registered event.
    """
    env = Envelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=_event_type(event_type_or_cls),
        schema_version=SCHEMA_VERSION,
        producer=producer,
        trace_id=trace_id,
        app_id=app_id,
    )
    when = occurred_at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    env.occurred_at.FromDatetime(when.astimezone(timezone.utc))
    return env


def _field_or(msg: Message, name: str, given: str | None) -> str:
    if given is not None:
        return given
    if name in msg.DESCRIPTOR.fields_by_name:
        return getattr(msg, name)
    return ""


def stamp(msg: Message, producer: str, *, trace_id: str | None = None, app_id: str | None = None,
          event_id: str | None = None, occurred_at: datetime | None = None) -> Message:
    """Fill ``msg.envelope`` for a new event and return ``msg``.

    ``trace_id`` and ``app_id`` default to the message's own ``trace_id`` / ``app_id`` fields
    (when it has them). Any previous envelope is replaced.
    """
    env = new_envelope(
        msg,
        producer,
        trace_id=_field_or(msg, "trace_id", trace_id),
        app_id=_field_or(msg, "app_id", app_id),
        event_id=event_id,
        occurred_at=occurred_at,
    )
    msg.envelope.CopyFrom(env)
    return msg


def event_id(msg: Message) -> str:
    """The event's id.

    Raises:
        EventDecodeError: the event has no envelope or an empty event id.
    """
    if "envelope" not in msg.DESCRIPTOR.fields_by_name or not msg.HasField("envelope") \
            or not msg.envelope.event_id:
        raise EventDecodeError(f"{msg.DESCRIPTOR.full_name}: no envelope.event_id")
    return msg.envelope.event_id


def occurred_at(msg: Message) -> datetime:
    """When the event happened, as a timezone-aware UTC datetime."""
    return msg.envelope.occurred_at.ToDatetime(tzinfo=timezone.utc)
