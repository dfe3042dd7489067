"""Building traces and feedback events, and how batches travel (shared by SDK and gateway).

Events are sent as binary Protobuf: a batch is ``application/x-protobuf; delimited=true``, each
message preceded by its length as a varint. Every event carries its id from the moment it is
logged (a uuid4 when the caller gives none), so a retry after a timeout, or a replay from the
disk spool, is recognised by the gateway as the same event.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from flywheel.v1 import common_pb2, feedback_pb2, trace_pb2

TRACE, FEEDBACK = "trace", "feedback"
DELIMITED_PROTOBUF = "application/x-protobuf; delimited=true"
_EVENT_NS = uuid.UUID("6f1c2b3a-8d4e-4f5a-9b6c-7d8e9f0a1b2c")
_EVENT_NS_BYTES = _EVENT_NS.bytes
_KIND_NAMES = {TRACE: "traces", FEEDBACK: "feedback"}


def event_id_for(app_id: str, kind: str, key: str) -> str:
    """The envelope event id of a trace (kind ``traces``) or feedback (``feedback``) event.

    Stable for the same app, kind and id, so a redelivered event keeps its event id whether it
    went through the gateway or straight to Kafka.
    """
    name = f"{app_id}\x1f{_KIND_NAMES.get(kind, kind)}\x1f{key}".encode()
    # uuid.uuid5(_EVENT_NS, name), without building a UUID object (this runs per event)
    digest = bytearray(hashlib.sha1(_EVENT_NS_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a Protobuf base-128 varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(messages: Iterable[bytes]) -> bytes:
    """Length-delimited framing: varint length, then the message, for each message."""
    out = bytearray()
    for message in messages:
        out += varint(len(message))
        out += message
    return bytes(out)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def chat_message(message: Mapping[str, Any] | Message) -> common_pb2.ChatMessage:
    """A ChatMessage from an OpenAI-style dict (content parts joined, arguments as JSON text)."""
    if isinstance(message, common_pb2.ChatMessage):
        return message
    if isinstance(message, Message):
        raise TypeError(f"expected a chat message, got {type(message).__name__}")
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments", "")
        calls.append(common_pb2.ToolCall(
            id=call.get("id", ""), type=call.get("type", "function"),
            function=common_pb2.FunctionCall(
                name=function.get("name", ""),
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments))))
    return common_pb2.ChatMessage(
        role=message.get("role", ""), content=_content_text(message.get("content")),
        name=message.get("name") or "", tool_call_id=message.get("tool_call_id") or "",
        tool_calls=calls)


def build_trace(trace: Message | Mapping[str, Any] | None = None, **fields: Any) -> trace_pb2.Trace:
    """A Trace from a message, a JSON-mapping dict, or keyword fields (merged over it).

    ``messages`` may be OpenAI-style dicts; ``model`` may be a plain name. A missing
    ``trace_id`` becomes a uuid4.

    Raises:
        ValueError: a field name or value that does not fit the Trace message.
    """
    if isinstance(trace, trace_pb2.Trace):
        msg = trace_pb2.Trace()
        msg.CopyFrom(trace)
    else:
        msg = trace_pb2.Trace()
        if trace:
            data = dict(trace)
            messages = data.pop("messages", None)
            if isinstance(data.get("model"), str):
                data["model"] = {"name": data["model"]}
            try:
                json_format.ParseDict(data, msg)
            except json_format.ParseError as exc:
                raise ValueError(str(exc)) from None
            if messages:
                msg.messages.extend(chat_message(m) for m in messages)
    if fields:
        _apply_fields(msg, fields)
    if not msg.trace_id:
        msg.trace_id = str(uuid.uuid4())
    if msg.source == trace_pb2.TRACE_SOURCE_UNSPECIFIED:
        msg.source = trace_pb2.TRACE_SOURCE_SDK
    return msg


def _apply_fields(msg: trace_pb2.Trace, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        if name == "messages":
            msg.messages.extend(chat_message(m) for m in value)
        elif name == "model":
            msg.model.CopyFrom(value if isinstance(value, common_pb2.ModelRef)
                               else common_pb2.ModelRef(name=str(value)))
        elif name == "tags":
            msg.tags.update({str(k): str(v) for k, v in value.items()})
        elif name == "started_at" and isinstance(value, datetime):
            msg.started_at.FromDatetime(value.astimezone(timezone.utc))
        elif name in ("steps", "tools", "context_documents", "feedback"):
            getattr(msg, name).extend(value)
        elif name == "outcome":
            msg.outcome.CopyFrom(value)
        elif name in trace_pb2.Trace.DESCRIPTOR.fields_by_name:
            setattr(msg, name, value)
        else:
            raise ValueError(f"Trace has no field {name!r}")


_THUMBS = {"up": feedback_pb2.THUMBS_UP, "down": feedback_pb2.THUMBS_DOWN,
           True: feedback_pb2.THUMBS_UP, False: feedback_pb2.THUMBS_DOWN}
_CHOICES = {"a": common_pb2.CHOICE_A, "b": common_pb2.CHOICE_B, "tie": common_pb2.CHOICE_TIE}


def build_feedback(trace_id: str, *, thumbs: str | bool | None = None,
                   ratings: Mapping[str, int] | None = None, comment: str | None = None,
                   corrected_answer: str | None = None, regenerate: bool = False,
                   rephrase: bool = False, abandon: bool = False,
                   preference: tuple[str, str] | None = None, feedback_id: str | None = None,
                   user_id: str = "", request_id: str = "",
                   given_at: datetime | None = None) -> list[feedback_pb2.FeedbackEvent]:
    """One FeedbackEvent per signal given (thumbs, ratings, ...), all about ``trace_id``.

    ``preference`` is ``(preference_request_id, "a" | "b" | "tie")``. With one signal the event
    id is ``feedback_id`` (a uuid4 when omitted); with several, ``<feedback_id>:<kind>``.

    Raises:
        ValueError: no signal, or a value out of range.
    """
    base = feedback_id or str(uuid.uuid4())
    signals: list[tuple[str, feedback_pb2.Feedback]] = []
    if thumbs is not None:
        if thumbs not in _THUMBS:
            raise ValueError("thumbs must be 'up', 'down', True or False")
        signals.append(("thumbs", feedback_pb2.Feedback(kind=feedback_pb2.FEEDBACK_KIND_THUMBS,
                                                        thumbs=_THUMBS[thumbs])))
    if ratings:
        unknown = set(ratings) - {"helpfulness", "correctness", "style"}
        if unknown or not all(1 <= int(v) <= 7 for v in ratings.values()):
            raise ValueError("ratings are helpfulness/correctness/style from 1 to 7")
        signals.append(("rating", feedback_pb2.Feedback(
            kind=feedback_pb2.FEEDBACK_KIND_RATING, ratings=common_pb2.Ratings(**ratings))))
    for flag, kind, name in ((regenerate, feedback_pb2.FEEDBACK_KIND_REGENERATE, "regenerate"),
                             (rephrase, feedback_pb2.FEEDBACK_KIND_REPHRASE, "rephrase"),
                             (abandon, feedback_pb2.FEEDBACK_KIND_ABANDON, "abandon")):
        if flag:
            signals.append((name, feedback_pb2.Feedback(kind=kind)))
    if comment:
        signals.append(("comment", feedback_pb2.Feedback(kind=feedback_pb2.FEEDBACK_KIND_COMMENT,
                                                         comment=comment)))
    if corrected_answer:
        signals.append(("correction", feedback_pb2.Feedback(
            kind=feedback_pb2.FEEDBACK_KIND_CORRECTION, corrected_answer=corrected_answer)))
    if preference is not None:
        request, chosen = preference
        if chosen not in _CHOICES:
            raise ValueError("preference choice must be 'a', 'b' or 'tie'")
        signals.append(("preference", feedback_pb2.Feedback(
            kind=feedback_pb2.FEEDBACK_KIND_PREFERENCE,
            preference=feedback_pb2.PreferenceChoice(request_id=request, chosen=_CHOICES[chosen]))))
    if not signals:
        raise ValueError("give at least one of thumbs, ratings, comment, corrected_answer, "
                         "regenerate, rephrase, abandon or preference")
    when = given_at or datetime.now(timezone.utc)
    events = []
    for name, feedback in signals:
        feedback.given_at.FromDatetime(when.astimezone(timezone.utc))
        events.append(feedback_pb2.FeedbackEvent(
            feedback_id=base if len(signals) == 1 else f"{base}:{name}", trace_id=trace_id,
            user_id=user_id, request_id=request_id, feedback=feedback))
    return events
