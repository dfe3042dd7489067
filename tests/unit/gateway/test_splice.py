"""Events decoded from binary Protobuf are written as their own bytes with the stamp appended:
what is written must decode to exactly what stamping the message and encoding it gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.client.wire import frame
from flywheel.events.codec import encode, from_dict
from flywheel.services.gateway.bodies import parse_media_type
from flywheel.services.gateway.ingest import (
    FEEDBACK,
    TRACES,
    Item,
    Splicer,
    decode_feedback,
    decode_traces,
    request_envelope,
    stamp,
)
from flywheel.v1 import feedback_pb2, trace_pb2

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "v1"
DELIMITED = parse_media_type("application/x-protobuf; delimited=true")


def _golden(name: str) -> dict:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    data.pop("envelope", None)
    return data


def _variants() -> list[tuple[str, dict]]:
    base = _golden("Trace")
    return [
        ("golden", base),
        ("no trace id", {**base, "trace_id": ""}),
        ("app id in the body", {**base, "app_id": "someone-else"}),
        ("source given", {**base, "source": "TRACE_SOURCE_SERVING"}),
        ("no source", {k: v for k, v in base.items() if k != "source"}),
        ("longest trace id", {**base, "trace_id": "t" * 128}),
        ("minimal", {"messages": [{"role": "user", "content": "hi"}]}),
    ]


def _both_ways(items: list[Item], kind: str, cls: type, app_id: str) -> list[tuple[bytes | None, bytes]]:
    """(spliced value or None, encoded value after stamping) per item."""
    envelope = request_envelope(cls, app_id)
    splicer = Splicer(kind, app_id, envelope)
    out = []
    for item in items:
        spliced = splicer.value(item)
        stamp(item, kind, app_id, envelope)
        out.append((spliced, encode(item.message)))
    return out


@pytest.mark.parametrize("name,data", _variants(), ids=[n for n, _ in _variants()])
def test_a_spliced_trace_decodes_to_the_stamped_trace(name: str, data: dict) -> None:
    body = frame([from_dict(data, "Trace").SerializeToString()])
    items = decode_traces(body, DELIMITED, 10)
    assert items[0].frame is not None
    [(spliced, encoded)] = _both_ways(items, TRACES, trace_pb2.Trace, "app-1")
    assert spliced is not None
    written = trace_pb2.Trace.FromString(spliced)
    assert written == trace_pb2.Trace.FromString(encoded)
    assert written.app_id == "app-1"
    assert written.envelope.trace_id == written.trace_id == items[0].record_key
    assert written.envelope.producer == "gateway" and written.envelope.event_id not in ("", "-")
    assert written.source == (trace_pb2.TRACE_SOURCE_SERVING if name == "source given"
                              else trace_pb2.TRACE_SOURCE_GATEWAY)


def test_a_batch_splices_each_trace_with_its_own_ids() -> None:
    base = _golden("Trace")
    body = frame([from_dict({**base, "trace_id": f"t-{i}"}, "Trace").SerializeToString()
                  for i in range(5)])
    items = decode_traces(body, DELIMITED, 10)
    pairs = _both_ways(items, TRACES, trace_pb2.Trace, "app-1")
    written = [trace_pb2.Trace.FromString(s) for s, _ in pairs]
    assert [w.trace_id for w in written] == [f"t-{i}" for i in range(5)]
    assert len({w.envelope.event_id for w in written}) == 5
    assert written == [trace_pb2.Trace.FromString(e) for _, e in pairs]


def test_a_trace_the_checks_filled_in_is_encoded_again() -> None:
    data = _golden("Trace")
    data["feedback"] = [{"thumbs": "THUMBS_UP"}]  # kind left out: the gateway infers it
    items = decode_traces(frame([from_dict(data, "Trace").SerializeToString()]), DELIMITED, 10)
    assert items[0].frame is None
    assert items[0].message.feedback[0].kind == feedback_pb2.FEEDBACK_KIND_THUMBS
    [(spliced, encoded)] = _both_ways(items, TRACES, trace_pb2.Trace, "app-1")
    assert spliced is None
    assert trace_pb2.Trace.FromString(encoded).feedback[0].kind == feedback_pb2.FEEDBACK_KIND_THUMBS


def test_a_trace_with_its_own_envelope_is_encoded_again() -> None:
    data = {**_golden("Trace"), "envelope": {"event_id": "mine", "schema_version": 7}}
    items = decode_traces(frame([from_dict(data, "Trace").SerializeToString()]), DELIMITED, 10)
    [(spliced, encoded)] = _both_ways(items, TRACES, trace_pb2.Trace, "app-1")
    assert spliced is None  # merging would keep schema_version 7; stamping replaces it
    assert trace_pb2.Trace.FromString(encoded).envelope.schema_version == 1


def test_json_bodies_are_encoded() -> None:
    items = decode_traces(json.dumps(_golden("Trace")).encode(),
                          parse_media_type("application/json"), 10)
    assert items[0].frame is None


@pytest.mark.parametrize("feedback_id", ["fb-1", ""])
def test_a_spliced_feedback_event_decodes_to_the_stamped_event(feedback_id: str) -> None:
    data = {**_golden("FeedbackEvent"), "feedback_id": feedback_id}
    body = frame([from_dict(data, "FeedbackEvent").SerializeToString()])
    items = decode_feedback(body, DELIMITED, 10)
    [(spliced, encoded)] = _both_ways(items, FEEDBACK, feedback_pb2.FeedbackEvent, "app-2")
    assert spliced is not None
    written = feedback_pb2.FeedbackEvent.FromString(spliced)
    assert written == feedback_pb2.FeedbackEvent.FromString(encoded)
    assert written.envelope.trace_id == written.trace_id
    assert written.feedback_id == items[0].event_id_key != ""


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**63 - 1])
def test_varint_matches_protobuf(value: int) -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    from flywheel.client.wire import varint

    assert varint(value) == _VarintBytes(value)
