"""The gateway against a real Kafka broker, Redis and SQLite: what is posted is on the topic."""

from __future__ import annotations

import httpx

from flywheel.client.wire import frame
from flywheel.events.codec import decode
from flywheel.v1 import feedback_pb2, trace_pb2

from .conftest import read_topic


def _trace(trace_id: str) -> dict:
    return {"trace_id": trace_id, "session_id": "s-1", "model": {"name": "m", "version": "3"},
            "messages": [{"role": "user", "content": f"question {trace_id}"},
                         {"role": "assistant", "content": "answer"}],
            "tags": {"n": trace_id}}


def _post_concurrently(gw, batches: list[list[str]]) -> list[httpx.Response]:  # noqa: ANN001
    """Post each batch of trace ids as one request, all at once; the answers in order."""
    from concurrent.futures import ThreadPoolExecutor

    def post(ids: list[str]) -> httpx.Response:
        return httpx.post(f"{gw.base_url}/v1/traces", json=[_trace(i) for i in ids],
                          headers=gw.headers(), timeout=30)

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        return list(pool.map(post, batches))


def test_a_posted_batch_is_readable_from_traces_raw_with_nothing_missing(
        start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    gw = start_gateway()
    ids = {f"b-{i}" for i in range(100)}
    r = httpx.post(f"{gw.base_url}/v1/traces", json={"traces": [_trace(i) for i in sorted(ids)]},
                   headers=gw.headers(), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 100
    records = read_topic(kafka_bootstrap, gw.topic("traces.raw"), ids)
    assert sorted(r.key.decode() for r in records) == sorted(ids)
    for record in records:
        trace = decode(record.value, trace_pb2.Trace)
        assert trace.trace_id == record.key.decode() and trace.app_id == gw.app_id
        assert trace.envelope.producer == "gateway" and trace.messages[0].content.endswith(trace.trace_id)


def test_a_binary_batch_is_read_back_stamped(start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    """Binary events are written as the client's bytes with the stamp appended: what a
    consumer decodes carries the key's app, the gateway's envelope and any generated id."""
    gw = start_gateway()
    traces = [trace_pb2.Trace(**{**_trace(f"pb-{i}"), "model": None, "tags": {}}) for i in range(6)]
    traces[1].app_id = "not-the-key-app"
    traces[2].source = trace_pb2.TRACE_SOURCE_SERVING
    traces[3].trace_id = ""
    traces[4].feedback.add(thumbs=1)  # kind left out: the gateway infers it
    r = httpx.post(f"{gw.base_url}/v1/traces", content=frame([t.SerializeToString() for t in traces]),
                   headers=gw.headers("application/x-protobuf; delimited=true"), timeout=30)
    assert r.status_code == 200, r.text
    ids = [item["trace_id"] for item in r.json()["items"]]
    assert r.json()["items"][3]["generated_id"] is True
    records = read_topic(kafka_bootstrap, gw.topic("traces.raw"), set(ids))
    written = {r.key.decode(): decode(r.value, trace_pb2.Trace) for r in records}
    assert sorted(written) == sorted(ids)
    for i, trace_id in enumerate(ids):
        trace = written[trace_id]
        assert trace.trace_id == trace.envelope.trace_id == trace_id
        assert trace.app_id == trace.envelope.app_id == gw.app_id
        assert trace.envelope.producer == "gateway" and trace.envelope.event_type == "flywheel.v1.Trace"
        assert trace.source == (trace_pb2.TRACE_SOURCE_SERVING if i == 2 else trace_pb2.TRACE_SOURCE_GATEWAY)
        assert trace.messages[0].content == traces[i].messages[0].content
    assert written[ids[4]].feedback[-1].kind == feedback_pb2.FEEDBACK_KIND_THUMBS
    assert len({t.envelope.event_id for t in written.values()}) == len(ids)


def test_a_duplicate_is_not_produced_twice(start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    gw = start_gateway()
    url = f"{gw.base_url}/v1/traces"
    first = httpx.post(url, json=_trace("dup-1"), headers=gw.headers(), timeout=30)
    again = httpx.post(url, json=_trace("dup-1"), headers=gw.headers(), timeout=30)
    batch = httpx.post(url, json=[_trace("dup-1"), _trace("dup-2")], headers=gw.headers(), timeout=30)
    binary = httpx.post(url, content=frame([trace_pb2.Trace(**{**_trace("dup-2"), "model": None,
                                                                 "tags": {}}).SerializeToString()]),
                        headers=gw.headers("application/x-protobuf; delimited=true"), timeout=30)
    assert [x.json()["accepted"] for x in (first, again, batch, binary)] == [1, 0, 1, 0]
    assert again.json()["items"][0]["status"] == "duplicate"
    records = read_topic(kafka_bootstrap, gw.topic("traces.raw"), {"dup-1", "dup-2"}, settle_s=2)
    assert sorted(r.key.decode() for r in records) == ["dup-1", "dup-2"]


def test_feedback_before_and_after_its_trace(start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    gw = start_gateway()
    early = {"trace_id": "later-trace", "feedback_id": "fb-1",
             "feedback": {"kind": "FEEDBACK_KIND_RATING",
                          "ratings": {"helpfulness": 2, "correctness": 1, "style": 7}}}
    r = httpx.post(f"{gw.base_url}/v1/feedback", json=early, headers=gw.headers(), timeout=30)
    assert r.status_code == 200, r.text
    httpx.post(f"{gw.base_url}/v1/traces", json=_trace("later-trace"), headers=gw.headers(),
               timeout=30)
    late = {"trace_id": "later-trace", "feedback_id": "fb-2",
            "feedback": {"kind": "FEEDBACK_KIND_PREFERENCE",
                         "preference": {"request_id": "pr-1", "chosen": "CHOICE_A"}}}
    assert httpx.post(f"{gw.base_url}/v1/feedback", json=[late, early], headers=gw.headers(),
                      timeout=30).json()["accepted"] == 1
    records = read_topic(kafka_bootstrap, gw.topic("feedback.events"), {"later-trace"}, settle_s=2)
    events = [decode(r.value, feedback_pb2.FeedbackEvent) for r in records]
    assert sorted(e.feedback_id for e in events) == ["fb-1", "fb-2"]
    assert {r.key for r in records} == {b"later-trace"}
    assert all(e.envelope.app_id == gw.app_id for e in events)


def test_bad_inputs_get_their_status_and_message(start_gateway) -> None:  # noqa: ANN001
    gw = start_gateway(max_body_bytes=50_000, max_batch_count=10, rate_per_s=0.5, rate_burst=3)
    url = f"{gw.base_url}/v1/traces"
    cases = [
        ({"x-api-key": "fw_0123456789ab_" + "x" * 43, "content-type": "application/json"},
         b'{"trace_id":"a","messages":[{"role":"user","content":"x"}]}', 401, "unauthorized"),
        (gw.headers(), b'[' + b','.join([b'{"trace_id":"big","tags":{"k":"' + b"v" * 2000 + b'"}}'] * 30)
         + b']', 413, "payload_too_large"),
        (gw.headers(), b"[" + b",".join([b'{"trace_id":"n"}'] * 11) + b"]", 413, "payload_too_large"),
        (gw.headers("text/csv"), b"a,b", 415, "unsupported_media_type"),
        (gw.headers(), b'{"trace_id":"a","messages":[{"role":"robot"}]}', 422, "invalid_input"),
    ]
    for headers, body, status, code in cases:
        r = httpx.post(url, content=body, headers=headers, timeout=30)
        assert r.status_code == status, (status, r.text)
        assert r.json()["error"] == code and r.json()["message"]
    invalid = httpx.post(url, content=b'{"trace_id":"a","messages":[{"role":"robot"}]}',
                         headers=gw.headers(), timeout=30).json()
    assert invalid["fields"] == [{"path": "messages[0].role",
                                  "message": "expected one of system, developer, user, assistant, tool"}]
    statuses = [httpx.post(url, json=_trace(f"r{i}"), headers=gw.headers(), timeout=30)
                for i in range(6)]
    limited = [s for s in statuses if s.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"] == "rate_limited"


def test_readiness_and_metrics(start_gateway) -> None:  # noqa: ANN001
    gw = start_gateway()
    ready = httpx.get(f"{gw.base_url}/readyz", timeout=30)
    assert ready.status_code == 200 and set(ready.json()["checks"].values()) == {"ok"}
    assert httpx.get(f"{gw.base_url}/healthz").json() == {"status": "ok"}
    httpx.post(f"{gw.base_url}/v1/traces", json=_trace("m-1"), headers=gw.headers(), timeout=30)
    text = httpx.get(f"{gw.base_url}/metrics").text
    assert f'flywheel_gateway_events_produced_total{{topic="{gw.topic("traces.raw")}"}} 1.0' in text


def test_concurrent_batches_without_transactions_are_grouped_and_all_written(
        start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    gw = start_gateway(atomic_batches=False, produce_deadline_s=10.0)
    batches = [[f"p{b}-{i}" for i in range(50)] for b in range(12)]
    answers = _post_concurrently(gw, batches)
    assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers if a.status_code != 200]
    assert sum(a.json()["accepted"] for a in answers) == 600
    expected = {i for ids in batches for i in ids}
    records = read_topic(kafka_bootstrap, gw.topic("traces.raw"), expected, settle_s=2)
    keys = [r.key.decode() for r in records if r.key.decode().startswith("p")]
    assert sorted(keys) == sorted(expected)  # each exactly once


def test_every_committed_batch_request_is_counted_in_one_transaction(
        start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    import re

    gw = start_gateway()
    batches = [[f"x{b}-{i}" for i in range(20)] for b in range(8)]
    answers = _post_concurrently(gw, batches)
    assert [a.status_code for a in answers] == [200] * 8
    httpx.post(f"{gw.base_url}/v1/traces", json=_trace("x-single"), headers=gw.headers(), timeout=30)
    text = httpx.get(f"{gw.base_url}/metrics").text
    count = float(re.search(r"^flywheel_gateway_transaction_requests_count (\S+)$", text, re.M)[1])
    total = float(re.search(r"^flywheel_gateway_transaction_requests_sum (\S+)$", text, re.M)[1])
    # Each batch request is in exactly one committed transaction; a single-trace request in none.
    assert total == 8
    assert 1 <= count <= 8
