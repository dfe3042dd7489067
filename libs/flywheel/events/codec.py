"""Encode and decode events: binary Protobuf on topics, the Protobuf JSON mapping for people.

Events are the generated ``flywheel.v1`` messages. Binary decoding keeps unknown fields, so a
processor that decodes, changes and re-emits an event written by a newer producer does not drop
what it does not know. JSON parsing ignores unknown fields by default.

JSON output keeps the proto field names (``tool_call_id``, not ``toolCallId``), which matches
the OpenAI chat format; the parser accepts both spellings. int64 values are JSON strings and
enums are their names (``"ROUTE_ANNOTATE"``), as the JSON mapping prescribes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Union

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from flywheel.errors import EventDecodeError
from flywheel.events.topics import resolve_topic
from flywheel.v1 import (
    annotation_pb2,
    datasets_pb2,
    examples_pb2,
    feedback_pb2,
    models_pb2,
    pipeline_pb2,
    preference_pb2,
    trace_pb2,
    triage_pb2,
)

PACKAGE = "flywheel.v1"
EventClass = Union[type[Message], str]

EVENT_CLASSES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        trace_pb2.Trace,
        feedback_pb2.FeedbackEvent,
        triage_pb2.TriageDecision,
        preference_pb2.PreferenceRequest,
        preference_pb2.PreferenceAnswer,
        annotation_pb2.AnnotationTask,
        annotation_pb2.AnnotationLabel,
        examples_pb2.SftExample,
        examples_pb2.DpoExample,
        examples_pb2.EvalExample,
        datasets_pb2.DatasetBatch,
        models_pb2.ModelCandidate,
        models_pb2.ModelRelease,
        pipeline_pb2.DeadLetter,
        pipeline_pb2.PipelineHealth,
    )
}
"""Every event on every topic, keyed by full message name (``"flywheel.v1.Trace"``)."""


def message_class(event_type: str) -> type[Message]:
    """The event class for a full name (``"flywheel.v1.Trace"``) or a short one (``"Trace"``).

    Raises:
        EventDecodeError: the name is not a registered event.
    """
    full = event_type if "." in event_type else f"{PACKAGE}.{event_type}"
    try:
        return EVENT_CLASSES[full]
    except KeyError:
        raise EventDecodeError(
            f"unknown event type {event_type!r}; known: {', '.join(sorted(EVENT_CLASSES))}"
        ) from None


def event_type_of(msg_or_cls: Message | type[Message]) -> str:
    """Full message name of an event instance or class, e.g. ``"flywheel.v1.Trace"``."""
    return msg_or_cls.DESCRIPTOR.full_name


def _resolve(cls_or_event_type: EventClass) -> type[Message]:
    if isinstance(cls_or_event_type, str):
        return message_class(cls_or_event_type)
    return cls_or_event_type


def encode(msg: Message) -> bytes:
    """Binary Protobuf, deterministic (map entries sorted) so equal events give equal bytes."""
    return msg.SerializeToString(deterministic=True)


def _check_envelope(msg: Message, name: str) -> None:
    if "envelope" not in msg.DESCRIPTOR.fields_by_name or not msg.HasField("envelope"):
        raise EventDecodeError(f"{name}: the event has no envelope (field 1)")
    declared = msg.envelope.event_type
    if declared and declared != name:
        raise EventDecodeError(f"{name}: the envelope says the event is a {declared}")


def decode(data: bytes, cls_or_event_type: EventClass, *, require_envelope: bool = True) -> Message:
    """Parse binary Protobuf into an event, keeping unknown fields.

    Args:
        data: the encoded event.
        cls_or_event_type: the message class, or its full or short name.
        require_envelope: reject a message without ``envelope`` (all topic payloads have one).

    Raises:
        EventDecodeError: the bytes are not a valid message, the envelope is missing, or the
            envelope names another event type.
    """
    cls = _resolve(cls_or_event_type)
    name = cls.DESCRIPTOR.full_name
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EventDecodeError(f"{name}: expected bytes, got {type(data).__name__}")
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise EventDecodeError(f"{name}: invalid protobuf ({len(data)} bytes): {exc}") from None
    if require_envelope:
        _check_envelope(msg, name)
    return msg


def to_dict(msg: Message) -> dict[str, Any]:
    """The event as a JSON-ready dict (Protobuf JSON mapping, proto field names)."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def to_json(msg: Message, *, indent: int | None = None) -> str:
    """The event as JSON text (Protobuf JSON mapping, proto field names, unicode kept)."""
    return json.dumps(to_dict(msg), indent=indent, ensure_ascii=False)


def from_dict(data: Mapping[str, Any], cls_or_event_type: EventClass, *,
              ignore_unknown: bool = True, require_envelope: bool = False) -> Message:
    """Build an event from a JSON-mapping dict.

    Raises:
        EventDecodeError: a field has the wrong type, an unknown field appears with
            ``ignore_unknown=False``, or the envelope is required and missing.
    """
    cls = _resolve(cls_or_event_type)
    name = cls.DESCRIPTOR.full_name
    if not isinstance(data, Mapping):
        raise EventDecodeError(f"{name}: expected a JSON object, got {type(data).__name__}")
    msg = cls()
    try:
        json_format.ParseDict(dict(data), msg, ignore_unknown_fields=ignore_unknown)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise EventDecodeError(f"{name}: invalid JSON mapping: {exc}") from None
    if require_envelope:
        _check_envelope(msg, name)
    return msg


def from_json(text: str | bytes, cls_or_event_type: EventClass, *,
              ignore_unknown: bool = True, require_envelope: bool = False) -> Message:
    """Parse JSON text (Protobuf JSON mapping) into an event; unknown fields are ignored.

    The envelope is optional here because clients send traces and feedback without one and the
    gateway stamps them; pass ``require_envelope=True`` for events read back from a topic.

    Raises:
        EventDecodeError: the text is not JSON or does not match the message.
    """
    name = _resolve(cls_or_event_type).DESCRIPTOR.full_name
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"{name}: not JSON: {exc}") from None
    return from_dict(data, cls_or_event_type, ignore_unknown=ignore_unknown,
                     require_envelope=require_envelope)


def decode_topic_value(topic: str, data: bytes, *, prefix: str = "flywheel") -> Message:
    """Decode a record value read from ``topic`` (short name or full broker name).

    Raises:
        UnknownTopicError: the topic is not in the registry.
        EventDecodeError: the value is not the topic's event.
    """
    spec = resolve_topic(topic, prefix)
    return decode(data, spec.event_type)
