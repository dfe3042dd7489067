"""The HTTP API over in-memory fakes: statuses, bodies, idempotency, limits and metrics."""

from __future__ import annotations

import gzip
import json

import pytest

from flywheel.events.codec import decode
from flywheel.keys import revoke_key
from flywheel.client.wire import frame as write_delimited
from flywheel.v1 import feedback_pb2, trace_pb2

from .conftest import make_harness


def _trace(trace_id: str = "t-1", **extra) -> dict:  # noqa: ANN003
    return {"trace_id": trace_id, "messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"}], **extra}


def test_single_trace_is_written_keyed_by_trace_id_with_the_keys_app(gateway) -> None:  # noqa: ANN001
    body = _trace(app_id="someone-else", envelope={"event_id": "forged"})
    r = gateway.client.post("/v1/traces", json=body, headers={"x-api-key": gateway.key})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0,
                        "items": [{"trace_id": "t-1", "status": "accepted"}]}
    [record] = gateway.writer.records
    assert record.topic == "unit.traces.raw.v1" and record.key == b"t-1"
    trace = decode(record.value, trace_pb2.Trace)
    assert trace.app_id == gateway.app_id == trace.envelope.app_id
    assert trace.envelope.producer == "gateway" and trace.envelope.event_id != "forged"
    assert trace.envelope.trace_id == "t-1"
    assert trace.source == trace_pb2.TRACE_SOURCE_GATEWAY


def test_bearer_header_works_and_bad_keys_get_401(gateway) -> None:  # noqa: ANN001
    ok = gateway.client.post("/v1/traces", json=_trace(),
                             headers={"authorization": f"Bearer {gateway.key}"})
    assert ok.status_code == 200
    for headers, fragment in (({}, "missing API key"),
                              ({"x-api-key": "fw_000000000000_" + "x" * 43}, "invalid"),
                              ({"authorization": "Basic abc"}, "Bearer")):
        r = gateway.client.post("/v1/traces", json=_trace(), headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "unauthorized" and fragment in r.json()["message"]


def test_revoked_key_is_refused_once_the_cache_expires(tmp_path, keys_engine) -> None:  # noqa: ANN001
    harness = next(make_harness(tmp_path, keys_engine, auth_cache_s=0))
    from flywheel.keys import list_keys

    [info] = list_keys(keys_engine)
    assert harness.client.post("/v1/traces", json=_trace(), headers=harness.headers()).status_code == 200
    revoke_key(keys_engine, info.key_id)
    r = harness.client.post("/v1/traces", json=_trace("t-2"), headers=harness.headers())
    assert r.status_code == 401


def test_batch_in_all_three_json_forms_and_duplicates_within_and_across_requests(gateway) -> None:  # noqa: ANN001
    c, h = gateway.client, gateway.headers()
    assert c.post("/v1/traces", json=[_trace("a"), _trace("b")], headers=h).json()["accepted"] == 2
    r = c.post("/v1/traces", json={"traces": [_trace("b"), _trace("c"), _trace("c")]}, headers=h)
    assert r.status_code == 200
    assert [i["status"] for i in r.json()["items"]] == ["duplicate", "accepted", "duplicate"]
    assert [rec.key for rec in gateway.writer.records] == [b"a", b"b", b"c"]
    assert len(gateway.writer.writes) == 2


def test_missing_trace_id_is_generated_and_returned(gateway) -> None:  # noqa: ANN001
    body = _trace()
    del body["trace_id"]
    item = gateway.client.post("/v1/traces", json=body, headers=gateway.headers()).json()["items"][0]
    assert item["generated_id"] is True and len(item["trace_id"]) == 36
    assert gateway.writer.records[0].key == item["trace_id"].encode()


def test_binary_single_and_delimited_batch(gateway) -> None:  # noqa: ANN001
    one = trace_pb2.Trace(trace_id="p-1", messages=[{"role": "user", "content": "x"}])
    r = gateway.client.post("/v1/traces", content=one.SerializeToString(),
                            headers=gateway.headers("application/x-protobuf"))
    assert r.status_code == 200, r.text
    many = [trace_pb2.Trace(trace_id=f"p-{i}", messages=[{"role": "user", "content": "x"}])
            for i in range(2, 5)]
    r = gateway.client.post("/v1/traces", content=write_delimited([m.SerializeToString() for m in many]),
                            headers=gateway.headers("application/x-protobuf; delimited=true"))
    assert r.status_code == 200 and r.json()["accepted"] == 3
    assert [rec.key for rec in gateway.writer.records] == [b"p-1", b"p-2", b"p-3", b"p-4"]


def test_openai_shape_is_accepted(gateway) -> None:  # noqa: ANN001
    body = {
        "trace_id": "oa-1", "model": "gpt-4o-mini", "temperature": 0.2, "user": "u-9",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"}]}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "response": {"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 9},
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                  "tool_calls": [{"id": "c1", "type": "function", "function": {
                                      "name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}]},
    }
    r = gateway.client.post("/v1/traces", json=body, headers=gateway.headers())
    assert r.status_code == 200, r.text
    trace = decode(gateway.writer.records[0].value, trace_pb2.Trace)
    assert trace.model.name == "gpt-4o-mini" and trace.model.version == "gpt-4o-mini-2024-07-18"
    assert trace.user_id == "u-9" and trace.request_id == "chatcmpl-1"
    assert trace.messages[0].content == "weather in Oslo?"
    assert trace.messages[1].tool_calls[0].function.name == "weather"
    assert json.loads(trace.tools[0].parameters_json) == {"type": "object"}
    assert trace.tags["usage.prompt_tokens"] == "9"


def test_422_lists_the_path_of_every_invalid_field(gateway) -> None:  # noqa: ANN001
    body = {"traces": [
        _trace("ok"),
        {"trace_id": "bad", "mesages": [], "messages": [{"role": "robot", "content": 5}],
         "latency_ms": -1, "source": "NOPE"},
        {"trace_id": "x y", "messages": [{"role": "tool", "content": "r"}]},
    ]}
    r = gateway.client.post("/v1/traces", json=body, headers=gateway.headers())
    assert r.status_code == 422
    paths = {f["path"]: f["message"] for f in r.json()["fields"]}
    assert "unknown field" in paths["traces[1].mesages"]
    assert "string" in paths["traces[1].messages[0].content"]
    assert "TRACE_SOURCE_GATEWAY" in paths["traces[1].source"]
    assert "letters, digits" in paths["traces[2].trace_id"]
    assert "traces[2].messages[0].tool_call_id" in paths
    assert r.json()["error"] == "invalid_input"
    assert gateway.writer.records == []  # nothing half-written


def test_semantic_errors_are_reported_with_paths(gateway) -> None:  # noqa: ANN001
    body = {"trace_id": "s", "messages": [{"role": "robot"}], "latency_ms": -3,
            "feedback": [{"kind": "FEEDBACK_KIND_RATING", "ratings": {"style": 9}}]}
    r = gateway.client.post("/v1/traces", json=body, headers=gateway.headers())
    assert r.status_code == 422
    paths = {f["path"] for f in r.json()["fields"]}
    assert {"messages[0].role", "latency_ms", "feedback[0].ratings.style"} <= paths


@pytest.mark.parametrize("content,ctype,status,code", [
    (b"{", "application/json", 422, "invalid_input"),
    (b"", "application/json", 422, "invalid_input"),
    # strict JSON (RFC 8259): no NaN/Infinity literals, UTF-8 only, no lone surrogates
    (b'{"trace_id": "t", "latency_ms": NaN}', "application/json", 422, "invalid_input"),
    ('{"trace_id": "t"}'.encode("utf-16"), "application/json", 422, "invalid_input"),
    (b'{"trace_id": "\\ud800"}', "application/json", 422, "invalid_input"),
    (b'[{"trace_id": "t"},]', "application/json", 422, "invalid_input"),
    (b"\x0a\xff", "application/x-protobuf", 422, "invalid_input"),
    (b"<a/>", "application/xml", 415, "unsupported_media_type"),
    (b"{}", None, 415, "unsupported_media_type"),
])
def test_undecodable_bodies(gateway, content, ctype, status, code) -> None:  # noqa: ANN001
    headers = {"x-api-key": gateway.key, **({"content-type": ctype} if ctype else {})}
    r = gateway.client.post("/v1/traces", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["message"]


def test_413_for_body_size_batch_count_and_gzip_bombs(gateway) -> None:  # noqa: ANN001
    big = _trace(tags={"k": "v" * 2000})
    r = gateway.client.post("/v1/traces", json=[big] * 120, headers=gateway.headers())
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    r = gateway.client.post("/v1/traces", json=[_trace(f"n{i}") for i in range(51)],
                            headers=gateway.headers())
    assert r.status_code == 413 and "limit is 50" in r.json()["message"]
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    r = gateway.client.post("/v1/traces", content=bomb,
                            headers=gateway.headers(**{"content-encoding": "gzip"}))
    assert r.status_code == 413
    ok = gzip.compress(json.dumps(_trace("gz")).encode())
    r = gateway.client.post("/v1/traces", content=ok,
                            headers=gateway.headers(**{"content-encoding": "gzip"}))
    assert r.status_code == 200
    r = gateway.client.post("/v1/traces", content=ok,
                            headers=gateway.headers(**{"content-encoding": "br"}))
    assert r.status_code == 415


def test_429_with_retry_after(tmp_path, keys_engine) -> None:  # noqa: ANN001
    harness = next(make_harness(tmp_path, keys_engine, rate_per_s=0.5, rate_burst=2))
    codes = [harness.client.post("/v1/traces", json=_trace(f"r{i}"), headers=harness.headers())
             for i in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
    assert codes[2].json()["error"] == "rate_limited" and codes[2].json()["retry_after_s"] >= 1


def test_503_when_the_broker_does_not_ack_and_the_retry_goes_through(gateway) -> None:  # noqa: ANN001
    gateway.writer.fail = True
    r = gateway.client.post("/v1/traces", json=[_trace("a"), _trace("b")], headers=gateway.headers())
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["error"] == "broker_unavailable"
    assert gateway.coordination.claims == {}  # claims released
    gateway.writer.fail = False
    r = gateway.client.post("/v1/traces", json=[_trace("a"), _trace("b")], headers=gateway.headers())
    assert r.status_code == 200 and r.json()["accepted"] == 2


def test_an_id_being_written_by_another_request_is_not_called_a_duplicate(gateway) -> None:  # noqa: ANN001
    gateway.coordination.claims[f"{gateway.app_id}:traces:busy"] = ("other-request", 1e18)
    r = gateway.client.post("/v1/traces", json=[_trace("busy"), _trace("free")],
                            headers=gateway.headers())
    assert r.status_code == 409 and r.json()["error"] == "in_flight" and "retry-after" in r.headers
    assert gateway.writer.records == []
    assert f"{gateway.app_id}:traces:free" not in gateway.coordination.claims


def test_503_when_redis_is_down(gateway) -> None:  # noqa: ANN001
    gateway.coordination.down = True
    r = gateway.client.post("/v1/traces", json=_trace(), headers=gateway.headers())
    assert r.status_code == 503 and r.json()["error"] == "dependency_unavailable"


def test_feedback_kinds_and_validation(gateway) -> None:  # noqa: ANN001
    c, h = gateway.client, gateway.headers()
    events = [
        {"trace_id": "t-1", "feedback_id": "f1", "feedback": {"thumbs": "THUMBS_DOWN"}},
        {"trace_id": "t-1", "feedback_id": "f2", "feedback": {"ratings": {"helpfulness": 6, "style": 2}}},
        {"trace_id": "t-1", "feedback_id": "f3", "feedback": {"kind": "FEEDBACK_KIND_REGENERATE"}},
        {"trace_id": "t-1", "feedback_id": "f4", "feedback": {"corrected_answer": "42"}},
        {"trace_id": "t-9", "feedback_id": "f5", "feedback": {
            "kind": "FEEDBACK_KIND_PREFERENCE", "preference": {"request_id": "pr-1", "chosen": "CHOICE_B"}}},
        {"trace_id": "t-9", "feedback_id": "f6", "feedback": {"kind": "FEEDBACK_KIND_COMMENT",
                                                              "comment": "too long"}},
    ]
    r = c.post("/v1/feedback", json={"events": events}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 6
    decoded = [decode(rec.value, feedback_pb2.FeedbackEvent) for rec in gateway.writer.records]
    assert [d.feedback.kind for d in decoded] == [1, 2, 5, 4, 7, 3]
    assert {rec.topic for rec in gateway.writer.records} == {"unit.feedback.events.v1"}
    assert gateway.writer.records[4].key == b"t-9"
    assert decoded[0].envelope.app_id == gateway.app_id
    again = c.post("/v1/feedback", json=events[0], headers=h).json()
    assert again["duplicates"] == 1

    bad = [{"feedback": {"thumbs": "THUMBS_UP"}},
           {"trace_id": "t", "feedback": {"kind": "FEEDBACK_KIND_RATING", "ratings": {"correctness": 8}}},
           {"trace_id": "t", "feedback": {"kind": "FEEDBACK_KIND_THUMBS"}},
           {"trace_id": "t", "feedback": {}},
           {"trace_id": "t", "feedback": {"kind": "FEEDBACK_KIND_PREFERENCE", "preference": {"chosen": "CHOICE_A"}}}]
    r = c.post("/v1/feedback", json=bad, headers=h)
    assert r.status_code == 422
    paths = {f["path"] for f in r.json()["fields"]}
    assert {"[0].trace_id", "[1].feedback.ratings.correctness", "[2].feedback.thumbs",
            "[3].feedback.kind", "[4].feedback.preference.request_id"} <= paths


def test_health_ready_and_metrics(gateway) -> None:  # noqa: ANN001
    c = gateway.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "kafka": "ok", "redis": "ok", "database": "ok"}
    gateway.coordination.down = True
    not_ready = c.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["redis"].startswith("unavailable")
    gateway.coordination.down = False
    c.post("/v1/traces", json=_trace(), headers=gateway.headers())
    c.post("/v1/traces", json=_trace(), headers=gateway.headers())
    c.post("/v1/traces", json=_trace(), headers={})
    text = c.get("/metrics").text
    assert 'flywheel_gateway_requests_total{route="/v1/traces",status="200"} 2.0' in text
    assert 'flywheel_gateway_events_produced_total{topic="unit.traces.raw.v1"} 1.0' in text
    assert 'flywheel_gateway_events_duplicate_total{kind="traces"} 1.0' in text
    assert 'flywheel_gateway_rejected_total{reason="unauthorized"} 1.0' in text
    assert "flywheel_gateway_request_seconds_bucket" in text


def test_unknown_route_and_method(gateway) -> None:  # noqa: ANN001
    assert gateway.client.get("/v1/nope").json()["error"] == "not_found"
    assert gateway.client.get("/v1/traces").status_code == 405
