"""Strict JSON decoding, semantic checks, the OpenAI shape and body framing (pure functions)."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest

from flywheel.client.wire import frame as write_delimited
from flywheel.services.gateway import openai_shape
from flywheel.services.gateway.bodies import (
    JSON,
    PROTOBUF,
    parse_media_type,
    read_body,
    split_delimited,
)
from flywheel.services.gateway.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from flywheel.services.gateway.validation import (
    _walk_message,
    _Issues,
    check_feedback_event,
    check_trace,
    message_from_json,
)
from flywheel.v1 import feedback_pb2, trace_pb2

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "v1"


def _golden(name: str) -> dict:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    data.pop("envelope")
    return data


def _walked(obj: dict, cls):  # noqa: ANN001, ANN202 - the exact path, bypassing the fast one
    msg, issues = cls(), _Issues()
    _walk_message(obj, msg, "", issues)
    assert not issues, issues
    return msg


@pytest.mark.parametrize("name,cls", [("Trace", trace_pb2.Trace),
                                      ("FeedbackEvent", feedback_pb2.FeedbackEvent)])
def test_fast_path_and_walker_agree_on_golden_samples(name, cls) -> None:  # noqa: ANN001
    data = _golden(name)
    assert message_from_json(copy.deepcopy(data), cls) == _walked(data, cls)


def test_json_mapping_spellings_are_accepted() -> None:
    msg = message_from_json({"traceId": "t", "latencyMs": "12", "messages": [
        {"role": "tool", "toolCallId": "c1", "content": "ok"}],
        "logprobs": {"tokenCount": "7"}, "source": 1,
        "startedAt": "2025-01-01T00:00:00.123456789Z"}, trace_pb2.Trace)
    assert msg.trace_id == "t" and msg.messages[0].tool_call_id == "c1"
    assert msg.logprobs.token_count == 7 and msg.latency_ms == 12
    assert msg.started_at.nanos == 123456789  # the fast path would have lost the nanoseconds


def test_type_errors_have_paths() -> None:
    with pytest.raises(InvalidInput) as info:
        message_from_json({"messages": [{"role": "user", "tool_calls": [{"function": {"name": 3}}]}],
                           "tags": {"a": 1}, "logprobs": {"token_count": 2**40},
                           "started_at": "yesterday", "steps": "x", "model": []}, trace_pb2.Trace,
                          "traces[4]")
    paths = {i.path for i in info.value.issues}
    assert paths == {"traces[4].messages[0].tool_calls[0].function.name", "traces[4].tags.a",
                     "traces[4].logprobs.token_count", "traces[4].started_at", "traces[4].steps",
                     "traces[4].model"}


def test_non_object_and_null_handling() -> None:
    with pytest.raises(InvalidInput) as info:
        message_from_json([1, 2], trace_pb2.Trace)
    assert info.value.issues[0].path == "$"
    msg = message_from_json({"trace_id": "t", "model": None, "messages": None}, trace_pb2.Trace)
    assert not msg.HasField("model")


def test_semantic_checks() -> None:
    trace = trace_pb2.Trace(trace_id="ok", messages=[
        {"role": "assistant", "tool_calls": [{"id": "", "type": "web", "function": {"name": ""}}]},
        {"role": "user", "tool_calls": [{"id": "1", "function": {"name": "f"}}]},
    ], tools=[{"name": "f", "parameters_json": "[1]"}], steps=[{"kind": 0, "latency_ms": float("nan")}],
        tags={"": "x"})
    paths = {i.path for i in check_trace(trace)}
    assert {"messages[0].tool_calls[0].id", "messages[0].tool_calls[0].type",
            "messages[0].tool_calls[0].function.name", "messages[1].tool_calls",
            "tools[0].parameters_json", "steps[0].kind", "steps[0].latency_ms", "tags."} <= paths
    assert check_trace(trace_pb2.Trace(trace_id="only-id"))[0].path == "messages"


def test_feedback_kind_is_inferred_only_when_unambiguous() -> None:
    event = feedback_pb2.FeedbackEvent(trace_id="t", feedback={"comment": "meh"})
    assert check_feedback_event(event) == [] and event.feedback.kind == feedback_pb2.FEEDBACK_KIND_COMMENT
    both = feedback_pb2.FeedbackEvent(trace_id="t", feedback={"comment": "meh", "thumbs": 1})
    assert [i.path for i in check_feedback_event(both)] == ["feedback.kind"]


def test_openai_shape_rewrites_only_openai_constructs() -> None:
    proto_shape = {"trace_id": "t", "messages": [{"role": "user", "content": "hi"}],
                   "logprobs": {"token_count": 3}}
    assert openai_shape.normalize_trace(proto_shape) is proto_shape
    out = openai_shape.normalize_trace({
        "model": "m", "logprobs": True, "stream": False, "usage": {"completion_tokens": 4},
        "messages": [{"role": "assistant", "content": None, "refusal": "no", "tool_calls": [
            {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}],
        "choices": [{"message": {"role": "assistant", "content": [{"type": "output_text", "text": "a"},
                                                                  {"type": "text", "text": "b"}]}}],
        "tools": [{"type": "function", "function": {"name": "f", "strict": True, "typo": 1}}],
    })
    assert out["model"] == {"name": "m"} and "logprobs" not in out and "stream" not in out
    assert out["messages"][0] == {"role": "assistant", "content": "no", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}
    assert out["messages"][1]["content"] == "a\n\nb"
    assert out["tools"] == [{"name": "f", "typo": 1}]  # the validator will report "typo"
    assert out["tags"] == {"usage.completion_tokens": "4"}


def test_media_types() -> None:
    assert parse_media_type("application/json; charset=utf-8").kind == JSON
    assert parse_media_type("application/protobuf; delimited=true") == parse_media_type(
        "application/x-protobuf;delimited=\"TRUE\"")
    assert parse_media_type("application/x-protobuf").delimited is False
    for bad in (None, "", "text/plain", "application/jsonx"):
        with pytest.raises(UnsupportedMediaType):
            parse_media_type(bad)
    assert PROTOBUF == parse_media_type("application/vnd.google.protobuf").kind


def test_delimited_framing_round_trip_and_errors() -> None:
    messages = [b"", b"a", b"x" * 300, b"y" * 70_000]
    assert split_delimited(write_delimited(messages), 10) == messages
    with pytest.raises(InvalidInput):
        split_delimited(b"\x05ab", 10)
    with pytest.raises(InvalidInput):
        split_delimited(b"\x80", 10)
    with pytest.raises(PayloadTooLarge):
        split_delimited(write_delimited([b"a"] * 4), 3)


async def _stream(*chunks: bytes):  # noqa: ANN202
    for chunk in chunks:
        yield chunk


async def test_read_body_limits() -> None:
    assert await read_body(_stream(b"ab", b"c"), None, None, 3) == b"abc"
    with pytest.raises(PayloadTooLarge):
        await read_body(_stream(b"ab", b"cd"), None, None, 3)
    with pytest.raises(PayloadTooLarge):
        await read_body(_stream(), "100", None, 3)
    text = b"hello " * 100
    assert await read_body(_stream(gzip.compress(text)), None, "gzip", 600) == text
    with pytest.raises(PayloadTooLarge):
        await read_body(_stream(gzip.compress(text + b"!")), None, "gzip", 600)
    with pytest.raises(InvalidInput):
        await read_body(_stream(b"not gzip"), None, "gzip", 100)


def test_feedback_inside_a_trace_is_checked_on_every_path() -> None:
    from flywheel.services.gateway.validation import check_trace
    from flywheel.v1 import trace_pb2

    trace = trace_pb2.Trace(trace_id="t-1")
    message = trace.messages.add()
    message.role, message.content = "user", "hello"
    feedback = trace.feedback.add()
    feedback.kind = 2  # FEEDBACK_KIND_RATING
    feedback.ratings.helpfulness = 9
    assert [i.path for i in check_trace(trace)] == ["feedback[0].ratings.helpfulness"]
    feedback.ratings.helpfulness = 3
    assert check_trace(trace) == []
    feedback.ratings.helpfulness = 0
    assert [i.path for i in check_trace(trace)] == ["feedback[0].ratings"]
    feedback.kind = 1  # FEEDBACK_KIND_THUMBS without a thumb
    feedback.ratings.helpfulness = 5
    assert [i.path for i in check_trace(trace)] == ["feedback[0].thumbs"]
    feedback.thumbs = 77  # an unknown enum number
    assert "feedback[0].thumbs" in [i.path for i in check_trace(trace)]


def test_the_single_loop_passes_agree_with_the_per_item_checks() -> None:
    """_messages_ok / _steps_ok accept exactly what _check_message / _check_step find nothing
    wrong with (the fast pass may not let through what the detailed check would report)."""
    import random

    from flywheel.services.gateway import validation as v
    from flywheel.v1 import trace_pb2

    rng = random.Random(11)
    for _ in range(3000):
        trace = trace_pb2.Trace()
        for _ in range(rng.randint(1, 4)):
            m = trace.messages.add()
            m.role = rng.choice(["user", "assistant", "tool", "system", "developer", "robot", ""])
            m.tool_call_id = rng.choice(["", "c1"])
            m.name = rng.choice(["", "n", "x" * 300])
            for _ in range(rng.choice([0, 0, 1, 2])):
                call = m.tool_calls.add()
                call.id = rng.choice(["", "c1", "y" * 300])
                call.type = rng.choice(["", "function", "other"])
                call.function.name = rng.choice(["", "lookup", "z" * 300])
            s = trace.steps.add()
            s.kind = rng.choice([0, 1, 2, 3, 42])
            s.status = rng.choice([0, 1, 2, 77])
            s.latency_ms = rng.choice([0.0, 12.5, -1.0, float("nan"), float("inf")])
            s.name = rng.choice(["", "s", "w" * 300])
        found = v._Issues()
        for i, m in enumerate(trace.messages):
            v._check_message(m, "messages", i, found)
        assert v._messages_ok(trace.messages) == (not found), list(found)
        found = v._Issues()
        for i, s in enumerate(trace.steps):
            v._check_step(s, "steps", i, found)
        assert v._steps_ok(trace.steps) == (not found), list(found)
