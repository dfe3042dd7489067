"""Codec contracts: registry, envelope rules, error handling and unknown-field behaviour."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from flywheel.errors import EventDecodeError, UnknownTopicError
from flywheel.events import codec, envelope
from flywheel.events.topics import TOPICS
from flywheel.v1 import envelope_pb2, feedback_pb2, trace_pb2, triage_pb2

from .conftest import GOLDEN_ROOT

TRACE_BIN = (GOLDEN_ROOT / "v1" / "Trace.bin").read_bytes()
TRACE_JSON = (GOLDEN_ROOT / "v1" / "Trace.json").read_text()


# -- registry --------------------------------------------------------------------------------


@pytest.mark.parametrize("short", sorted(TOPICS))
def test_every_topic_event_type_resolves_to_a_class(short: str) -> None:
    spec = TOPICS[short]
    cls = codec.message_class(spec.event_type)
    assert cls.DESCRIPTOR.full_name == spec.event_type


def test_every_event_is_carried_by_exactly_one_topic() -> None:
    carried = sorted(spec.event_type for spec in TOPICS.values())
    assert carried == sorted(codec.EVENT_CLASSES)


@pytest.mark.parametrize("short", sorted(TOPICS))
def test_topic_key_names_a_field_of_its_event(short: str) -> None:
    spec = TOPICS[short]
    desc = codec.message_class(spec.event_type).DESCRIPTOR
    in_envelope = spec.key in envelope_pb2.Envelope.DESCRIPTOR.fields_by_name
    assert spec.key in desc.fields_by_name or in_envelope, (
        f"topic {short} is keyed by {spec.key!r}, which {desc.name} does not have"
    )


@pytest.mark.parametrize("cls", list(codec.EVENT_CLASSES.values()), ids=list(codec.EVENT_CLASSES))
def test_every_event_has_an_envelope_as_field_1(cls: type[Message]) -> None:
    field = cls.DESCRIPTOR.fields_by_number.get(1)
    assert field is not None and field.name == "envelope"
    assert field.message_type.full_name == "flywheel.v1.Envelope"
    assert not field.is_repeated


def test_message_class_accepts_full_and_short_names() -> None:
    assert codec.message_class("flywheel.v1.Trace") is trace_pb2.Trace
    assert codec.message_class("Trace") is trace_pb2.Trace
    with pytest.raises(EventDecodeError, match="unknown event type 'Nope'"):
        codec.message_class("Nope")
    with pytest.raises(EventDecodeError):
        codec.message_class("flywheel.v1.Envelope")  # a type, not an event


# -- errors ----------------------------------------------------------------------------------


def test_decode_rejects_corrupt_bytes() -> None:
    with pytest.raises(EventDecodeError, match=r"flywheel\.v1\.Trace: invalid protobuf"):
        codec.decode(b"\x0a\xff\xff\xff", "Trace")


def test_decode_rejects_a_truncated_event() -> None:
    with pytest.raises(EventDecodeError):
        codec.decode(TRACE_BIN[: len(TRACE_BIN) // 2], trace_pb2.Trace)


def test_decode_rejects_a_missing_envelope() -> None:
    with pytest.raises(EventDecodeError, match="no envelope"):
        codec.decode(b"", "Trace")
    data = codec.encode(trace_pb2.Trace(trace_id="t"))
    with pytest.raises(EventDecodeError, match="no envelope"):
        codec.decode(data, "Trace")
    assert codec.decode(data, "Trace", require_envelope=False).trace_id == "t"


def test_decode_rejects_another_event_type() -> None:
    with pytest.raises(EventDecodeError, match="envelope says the event is a flywheel.v1.Trace"):
        codec.decode(TRACE_BIN, feedback_pb2.FeedbackEvent)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(EventDecodeError, match="expected bytes"):
        codec.decode("text", "Trace")  # type: ignore[arg-type]


def test_from_json_rejects_bad_text_and_types() -> None:
    with pytest.raises(EventDecodeError, match="not JSON"):
        codec.from_json("{", "Trace")
    with pytest.raises(EventDecodeError, match="invalid JSON mapping"):
        codec.from_json('{"latency_ms": "fast"}', "Trace")
    with pytest.raises(EventDecodeError, match="expected a JSON object"):
        codec.from_json("[1, 2]", "Trace")
    with pytest.raises(EventDecodeError, match="no envelope"):
        codec.from_json('{"trace_id": "t"}', "Trace", require_envelope=True)


def test_decode_topic_value_uses_the_registry() -> None:
    assert codec.decode_topic_value("traces.raw", TRACE_BIN).trace_id
    assert codec.decode_topic_value("flywheel.traces.raw.v1", TRACE_BIN).trace_id
    assert codec.decode_topic_value("acme.traces.raw.v1", TRACE_BIN, prefix="acme").trace_id
    with pytest.raises(EventDecodeError):
        codec.decode_topic_value("feedback.events", TRACE_BIN)
    with pytest.raises(UnknownTopicError):
        codec.decode_topic_value("traces.cooked", TRACE_BIN)


# -- unknown fields --------------------------------------------------------------------------


def test_unknown_json_fields_are_ignored_at_every_level() -> None:
    data = json.loads(TRACE_JSON)
    data["added_in_v1_9"] = {"anything": [1, 2]}
    data["envelope"]["region"] = "eu-west-1"
    data["messages"][0]["refusal"] = None
    data["steps"][1]["error"]["retryable"] = True
    msg = codec.from_json(json.dumps(data), "Trace")
    assert msg == codec.from_json(TRACE_JSON, "Trace")
    with pytest.raises(EventDecodeError, match="has no field named"):
        codec.from_json(json.dumps(data), "Trace", ignore_unknown=False)


def _future_pool() -> descriptor_pool.DescriptorPool:
    """The current schema plus fields a newer producer might add, in a pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    for wkt in (timestamp_pb2.DESCRIPTOR, struct_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        wkt.CopyToProto(proto)
        pool.Add(proto)
    order = ["flywheel/v1/envelope.proto", "flywheel/v1/common.proto",
             "flywheel/v1/feedback.proto", "flywheel/v1/trace.proto"]
    files = {f.name: f for f in (envelope_pb2.DESCRIPTOR, trace_pb2.DESCRIPTOR,
                                 feedback_pb2.DESCRIPTOR, *trace_pb2.DESCRIPTOR.dependencies)}
    new_fields = {
        "Envelope": [("region", 50, descriptor_pb2.FieldDescriptorProto.TYPE_STRING, False)],
        "Trace": [("future_note", 99, descriptor_pb2.FieldDescriptorProto.TYPE_STRING, False),
                  ("future_ids", 100, descriptor_pb2.FieldDescriptorProto.TYPE_INT64, True)],
        "AgentStep": [("cost_usd", 40, descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE, False)],
    }
    for name in order:
        proto = descriptor_pb2.FileDescriptorProto()
        files[name].CopyToProto(proto)
        for message in proto.message_type:
            for fname, number, ftype, repeated in new_fields.get(message.name, []):
                message.field.add(
                    name=fname, number=number, type=ftype, json_name=fname,
                    label=(descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                           else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL),
                )
        pool.Add(proto)
    return pool


def _future_trace_class() -> type[Message]:
    pool = _future_pool()
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flywheel.v1.Trace"))


def _future_bytes() -> bytes:
    future_cls = _future_trace_class()
    future = future_cls.FromString(TRACE_BIN)
    future.future_note = "from a newer producer"
    future.future_ids.extend([7, 11])
    future.envelope.region = "eu-west-1"
    future.steps[1].cost_usd = 0.0042
    return future.SerializeToString()


def _assert_future_fields(data: bytes) -> None:
    back = _future_trace_class().FromString(data)
    assert back.future_note == "from a newer producer"
    assert list(back.future_ids) == [7, 11]
    assert back.envelope.region == "eu-west-1"
    assert back.steps[1].cost_usd == pytest.approx(0.0042)


def test_unknown_binary_fields_survive_decode_then_encode() -> None:
    msg = codec.decode(_future_bytes(), "Trace")
    # A processor edits a known field and re-emits.
    msg.tags["triaged"] = "yes"
    reencoded = codec.encode(msg)
    _assert_future_fields(reencoded)
    assert _future_trace_class().FromString(reencoded).tags["triaged"] == "yes"


def test_unknown_binary_fields_survive_embedding_in_another_event() -> None:
    trace = codec.decode(_future_bytes(), "Trace")
    decision = triage_pb2.TriageDecision(decision_id="d1", trace_id=trace.trace_id)
    decision.trace.CopyFrom(trace)
    envelope.stamp(decision, "triage")
    again = codec.decode(codec.encode(decision), triage_pb2.TriageDecision)
    _assert_future_fields(codec.encode(again.trace))


def test_the_future_schema_really_adds_fields() -> None:
    # Guards the two tests above: today's Trace must not know the added fields.
    assert "future_note" not in trace_pb2.Trace.DESCRIPTOR.fields_by_name
    assert codec.decode(_future_bytes(), "Trace") != codec.decode(TRACE_BIN, "Trace")


# -- envelope --------------------------------------------------------------------------------


def test_new_envelope_fills_every_field() -> None:
    before = datetime.now(timezone.utc)
    env = envelope.new_envelope("Trace", "gateway", trace_id="t1", app_id="acme")
    assert uuid.UUID(env.event_id).version == 4
    assert env.event_type == "flywheel.v1.Trace"
    assert env.schema_version == 1
    assert env.producer == "gateway" and env.trace_id == "t1" and env.app_id == "acme"
    when = env.occurred_at.ToDatetime(tzinfo=timezone.utc)
    assert before - timedelta(seconds=1) <= when <= datetime.now(timezone.utc)
    assert envelope.new_envelope(trace_pb2.Trace, "x", event_id="e1").event_id == "e1"


def test_new_envelope_rejects_naive_times_and_unknown_types() -> None:
    with pytest.raises(ValueError):
        envelope.new_envelope("Trace", "x", occurred_at=datetime(2025, 1, 1))
    with pytest.raises(EventDecodeError):
        envelope.new_envelope("NotAnEvent", "x")


def test_stamp_takes_type_and_ids_from_the_message() -> None:
    fb = feedback_pb2.FeedbackEvent(feedback_id="f1", trace_id="t9")
    assert envelope.stamp(fb, "gateway", app_id="acme") is fb
    assert fb.envelope.event_type == "flywheel.v1.FeedbackEvent"
    assert fb.envelope.trace_id == "t9" and fb.envelope.app_id == "acme"
    first = envelope.event_id(fb)
    envelope.stamp(fb, "gateway")
    assert envelope.event_id(fb) != first, "stamping makes a new event"
    assert envelope.occurred_at(fb).tzinfo is not None


def test_event_id_requires_an_envelope() -> None:
    with pytest.raises(EventDecodeError, match="no envelope.event_id"):
        envelope.event_id(trace_pb2.Trace())
    assert envelope.event_id(codec.decode(TRACE_BIN, "Trace")).startswith("0f8b6c1e")
