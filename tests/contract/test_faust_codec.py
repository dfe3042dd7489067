"""Faust codecs: one binary Protobuf codec per event type, through Faust's codec API."""

from __future__ import annotations

import base64

import pytest
from faust.exceptions import ValueDecodeError
from faust.serializers import codecs
from faust.serializers.registry import Registry

from flywheel.errors import EventDecodeError
from flywheel.events.codec import EVENT_CLASSES, decode, encode, to_dict
from flywheel.events.faust_codec import ProtobufCodec, codec_name, register_codecs
from flywheel.v1 import feedback_pb2, trace_pb2

from .conftest import GOLDEN_ROOT

TRACE_BIN = (GOLDEN_ROOT / "v1" / "Trace.bin").read_bytes()


@pytest.fixture(scope="module", autouse=True)
def _registered() -> dict[str, ProtobufCodec]:
    return register_codecs()


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_every_event_has_a_registered_codec(name: str) -> None:
    codec = codecs.get_codec(name)
    assert isinstance(codec, ProtobufCodec)
    assert codec.message_cls is EVENT_CLASSES[name]
    assert codec_name(EVENT_CLASSES[name]) == name
    sample = (GOLDEN_ROOT / "v1" / f"{EVENT_CLASSES[name].DESCRIPTOR.name}.bin").read_bytes()
    msg = codecs.loads(name, sample)
    assert isinstance(msg, EVENT_CLASSES[name])
    assert codecs.dumps(name, msg) == encode(msg)


def test_dumps_accepts_a_json_mapping_dict() -> None:
    msg = decode(TRACE_BIN, "Trace")
    msg.DiscardUnknownFields()  # a dict carries known fields only
    assert codecs.dumps("flywheel.v1.Trace", to_dict(msg)) == encode(msg)


def test_dumps_rejects_another_type() -> None:
    with pytest.raises(EventDecodeError, match="cannot encode FeedbackEvent"):
        codecs.dumps("flywheel.v1.Trace", feedback_pb2.FeedbackEvent())


def test_codec_chains_and_clones_keep_the_message_class() -> None:
    chained = ProtobufCodec("Trace") | codecs.binary()
    data = chained.dumps(decode(TRACE_BIN, "Trace"))
    assert base64.b64decode(data) == encode(decode(TRACE_BIN, "Trace"))
    assert chained.loads(data) == decode(TRACE_BIN, "Trace")
    assert "Trace" in repr(chained)


def test_faust_registry_decodes_values_to_messages() -> None:
    registry = Registry()
    msg = registry.loads_value(None, TRACE_BIN, serializer="flywheel.v1.Trace")
    assert isinstance(msg, trace_pb2.Trace)
    assert registry.dumps_value(None, msg, serializer="flywheel.v1.Trace") == encode(msg)


def test_faust_registry_reports_bad_values_as_value_decode_errors() -> None:
    registry = Registry()
    with pytest.raises(ValueDecodeError, match="invalid protobuf"):
        registry.loads_value(None, b"\x0a\xff\xff", serializer="flywheel.v1.Trace")
    with pytest.raises(ValueDecodeError, match="no envelope"):
        registry.loads_value(None, b"", serializer="flywheel.v1.Trace")


def test_codec_needs_a_message_class() -> None:
    with pytest.raises(EventDecodeError):
        ProtobufCodec()
