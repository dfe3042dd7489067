"""The Python SDK against the gateway app over in-memory fakes (no network)."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from flywheel.client import AsyncClient, Client, KafkaTransport, RetryPolicy
from flywheel.client.core import Options, plan_next
from flywheel.client.spool import DiskSpool, EventBuffer, Pending
from flywheel.client.transport import (
    AsyncHttpTransport,
    HttpTransport,
    SendOutcome,
    outcome_of,
)
from flywheel.client.wire import TRACE, build_feedback, build_trace
from flywheel.events.codec import decode
from flywheel.v1 import feedback_pb2, trace_pb2

from .conftest import make_harness

FAST = RetryPolicy(base_s=0.01, max_s=0.05, jitter_s=0.01)


def _client(gateway, tmp_path, **kwargs) -> Client:  # noqa: ANN001
    transport = HttpTransport("http://testserver", gateway.key, client=gateway.client)
    return Client(transport=transport, spill_dir=tmp_path / "spool", retry=FAST,
                  flush_interval_s=0.05, close_at_exit=False, **kwargs)


def _written_ids(gateway) -> list[str]:  # noqa: ANN001
    return [r.key.decode() for r in gateway.writer.records]


def test_batches_and_flush(gateway, tmp_path) -> None:  # noqa: ANN001
    client = _client(gateway, tmp_path)
    ids = [client.log_trace(messages=[{"role": "user", "content": f"q{i}"}], model="m")
           for i in range(250)]
    assert client.flush(30)
    assert sorted(_written_ids(gateway)) == sorted(ids)
    assert max(len(w) for w in gateway.writer.writes) <= 100
    assert client.stats.sent == 250
    trace = decode(gateway.writer.records[0].value, trace_pb2.Trace)
    assert trace.source == trace_pb2.TRACE_SOURCE_SDK and trace.model.name == "m"
    client.close()


def test_feedback_signals(gateway, tmp_path) -> None:  # noqa: ANN001
    client = _client(gateway, tmp_path)
    fid = client.log_feedback("t-1", thumbs="down", ratings={"correctness": 2},
                              corrected_answer="A-1042", regenerate=True)
    assert client.flush(10)
    events = [decode(r.value, feedback_pb2.FeedbackEvent) for r in gateway.writer.records]
    assert {e.feedback.kind for e in events} == {1, 2, 4, 5}
    assert all(e.feedback_id.startswith(fid + ":") and e.trace_id == "t-1" for e in events)
    with pytest.raises(ValueError):
        client.log_feedback("t-1")
    with pytest.raises(ValueError):
        client.log_feedback("t-1", ratings={"helpfulness": 9})
    client.close()


def test_outage_spills_to_disk_and_a_later_client_delivers_exactly_once(gateway, tmp_path) -> None:  # noqa: ANN001
    gateway.writer.fail = True
    first = _client(gateway, tmp_path, max_buffer=10)
    ids = [first.log_trace(messages=[{"role": "user", "content": "x"}]) for _ in range(40)]
    assert not first.flush(0.5)
    first.close(timeout_s=0.2)
    assert gateway.writer.records == [] and first.stats.retries > 0
    gateway.writer.fail = False
    second = _client(gateway, tmp_path)
    assert second.flush(20)
    assert sorted(_written_ids(gateway)) == sorted(ids)
    second.close()
    assert list((tmp_path / "spool").glob("*.seg")) == []


def test_invalid_events_are_dropped_and_the_rest_delivered(gateway, tmp_path) -> None:  # noqa: ANN001
    errors = []
    client = _client(gateway, tmp_path, on_error=lambda msg, ids: errors.append((msg, ids)))
    good = [client.log_trace(messages=[{"role": "user", "content": "ok"}]) for _ in range(3)]
    bad = client.log_trace(trace_pb2.Trace(messages=[{"role": "robot", "content": "?"}]))
    good.append(client.log_trace(messages=[{"role": "user", "content": "ok"}]))
    assert client.flush(10)
    assert sorted(_written_ids(gateway)) == sorted(good)
    assert errors and errors[0][1] == [bad] and "rejected" in errors[0][0]
    client.close()


def test_too_large_batches_are_split(tmp_path, keys_engine) -> None:  # noqa: ANN001
    harness = next(make_harness(tmp_path, keys_engine, max_body_bytes=4000))
    client = _client(harness, tmp_path)
    ids = [client.log_trace(messages=[{"role": "user", "content": "y" * 300}]) for _ in range(40)]
    huge = client.log_trace(messages=[{"role": "user", "content": "z" * 10_000}])
    assert client.flush(20)
    assert sorted(_written_ids(harness)) == sorted(ids) and huge not in _written_ids(harness)
    assert client.stats.dropped == 1
    client.close()


def test_agent_run_records_steps_errors_and_outcome(gateway, tmp_path) -> None:  # noqa: ANN001
    client = _client(gateway, tmp_path)
    with pytest.raises(RuntimeError):
        with client.run(user_id="u-1", model="gpt-4o", session_id="s-1") as run:
            run.system("be brief")
            run.user("refund A-1")
            with run.model_call() as call:
                call.output(tool_calls=[{"function": {"name": "lookup", "arguments": {"id": "A-1"}}},
                                        {"function": {"name": "refund", "arguments": "{}"}}])
            with run.tool_call("lookup", {"id": "A-1"}) as tool:
                tool.result({"status": "delivered"})
            with pytest.raises(TimeoutError):
                with run.tool_call("refund", {}):
                    raise TimeoutError("payments timed out")
            raise RuntimeError("gave up")
    assert client.flush(10)
    trace = decode(gateway.writer.records[0].value, trace_pb2.Trace)
    assert trace.trace_id == run.trace_id and trace.user_id == "u-1"
    assert [m.role for m in trace.messages] == ["system", "user", "assistant", "tool", "tool"]
    calls = trace.messages[2].tool_calls
    assert [m.tool_call_id for m in trace.messages[3:]] == [calls[0].id, calls[1].id]
    assert [s.kind for s in trace.steps] == [2, 3, 4, 3, 4]
    assert trace.steps[3].status == trace_pb2.STEP_STATUS_TIMEOUT
    assert trace.steps[3].error.type == "TimeoutError"
    assert trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
    assert trace.outcome.failure_kind == "runtime_error"
    assert trace.latency_ms > 0 and all(s.latency_ms >= 0 for s in trace.steps)
    client.close()


async def test_async_client(gateway, tmp_path) -> None:  # noqa: ANN001
    asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.client.app),
                             base_url="http://testserver")
    transport = AsyncHttpTransport("http://testserver", gateway.key, client=asgi)
    async with AsyncClient(transport=transport, spill_dir=tmp_path / "aspool", retry=FAST,
                           flush_interval_s=0.05) as client:
        async with client.run(model="m") as run:
            run.user("hi")
            async with run.model_call() as call:
                call.output("hello")
        ids = [client.log_trace(messages=[{"role": "user", "content": "x"}]) for _ in range(120)]
        client.log_feedback(run.trace_id, thumbs="up")
        assert await client.flush(20)
    written = _written_ids(gateway)
    assert set(ids) | {run.trace_id} <= set(written) and len(written) == 122


def test_direct_mode_stamps_and_produces() -> None:
    class FakeFuture:
        def get(self, timeout=None):  # noqa: ANN001, ANN202
            return None

    class FakeProducer:
        def __init__(self) -> None:
            self.sent = []

        def send(self, topic, key=None, value=None):  # noqa: ANN001, ANN202
            self.sent.append((topic, key, value))
            return FakeFuture()

        def flush(self, timeout=None) -> None:  # noqa: ANN001
            pass

        def close(self, timeout=None) -> None:  # noqa: ANN001
            pass

    producer = FakeProducer()
    transport = KafkaTransport("unused:9092", "shop", topic_prefix="p", producer=producer)
    trace = build_trace(messages=[{"role": "user", "content": "x"}], trace_id="t-9")
    assert transport.send(TRACE, [trace.SerializeToString()]).status == "ok"
    [(topic, key, value)] = producer.sent
    msg = decode(value, trace_pb2.Trace)
    assert topic == "p.traces.raw.v1" and key == b"t-9" and msg.app_id == "shop"
    assert msg.envelope.producer == "sdk" and msg.envelope.app_id == "shop"


def test_plan_next_decisions() -> None:
    options = Options(retry=FAST)
    batch = [Pending(TRACE, str(i), b"") for i in range(4)]
    assert plan_next(SendOutcome("ok"), batch, 1, options).ack == batch
    retry = plan_next(SendOutcome("retry", retry_after_s=0.02), batch, 1, options)
    assert retry.again == [batch] and 0.02 <= retry.wait_s <= 0.03 + 0.01
    split = plan_next(SendOutcome("too_large"), batch, 1, options)
    assert split.again == [batch[:2], batch[2:]]
    reject = plan_next(SendOutcome("rejected", bad_indexes={1, 9}), batch, 1, options)
    assert reject.drop == [batch[1]] and reject.again == [[batch[0], batch[2], batch[3]]]
    server = plan_next(SendOutcome("retry", http_status=500), batch, 5, options)
    assert server.drop == batch


def test_outcome_classification_and_backoff() -> None:
    assert outcome_of(429, {"retry-after": "3"}, b"{}").retry_after_s == 3
    assert outcome_of(503, {}, b"").status == "retry"
    assert outcome_of(409, {}, b"").status == "retry"
    assert outcome_of(401, {}, b"").status == "auth"
    bad = outcome_of(422, {}, b'{"fields":[{"path":"[3].messages","message":"x"}]}')
    assert bad.status == "rejected" and bad.bad_indexes == {3}
    policy = RetryPolicy(base_s=0.1, max_s=1.0, jitter_s=0.1)
    rng = random.Random(7)
    delays = [policy.delay(n, rng=rng) for n in range(1, 12)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert 2.0 <= policy.delay(1, retry_after_s=2.0, rng=rng) <= 2.1


def test_spool_survives_torn_writes_and_is_exclusive(tmp_path) -> None:  # noqa: ANN001
    spool = DiskSpool(tmp_path, lambda kind, payload: payload.decode())
    spool.append([Pending(TRACE, "a", b"a"), Pending(TRACE, "b", b"b")])
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes() + b"T\x09abc")  # torn: 9 announced, 3 written
    assert [e.event_id for e in spool.read_oldest()] == ["a", "b"]
    other = DiskSpool(tmp_path, lambda kind, payload: payload.decode())
    assert other.directory != spool.directory  # the first client holds the lock
    other.close()
    buffer = EventBuffer(1, spool)
    assert buffer.put(Pending(TRACE, "m", b"m")) and buffer.put(Pending(TRACE, "s", b"s"))
    first = buffer.take(10)
    assert [e.event_id for e in first] == ["a", "b"]
    buffer.ack(first)
    rest = []
    while batch := buffer.take(10):
        rest += batch
        buffer.ack(batch)
    assert sorted(e.event_id for e in rest) == ["m", "s"]
    assert not buffer.has_spooled() and len(buffer) == 0
    spool.close()


def test_build_trace_inputs() -> None:
    trace = build_trace({"trace_id": "t", "model": "m", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]}]}, tags={"k": 1})
    assert trace.model.name == "m" and trace.messages[0].tool_calls[0].function.arguments == '{"a": 1}'
    assert trace.tags["k"] == "1"
    with pytest.raises(ValueError):
        build_trace({"mesages": []})
    with pytest.raises(ValueError):
        build_trace(nonsense=1)
    assert build_feedback("t", comment="c")[0].feedback.kind == feedback_pb2.FEEDBACK_KIND_COMMENT


def test_async_client_requires_base_url_or_transport() -> None:
    with pytest.raises(ValueError):
        AsyncClient()
    asyncio.run(asyncio.sleep(0))


async def test_async_client_spills_in_an_outage_and_replays(gateway, tmp_path) -> None:  # noqa: ANN001
    def transport() -> AsyncHttpTransport:
        asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.client.app),
                                 base_url="http://testserver")
        return AsyncHttpTransport("http://testserver", gateway.key, client=asgi)

    gateway.writer.fail = True
    first = AsyncClient(transport=transport(), spill_dir=tmp_path / "aspool", retry=FAST,
                        flush_interval_s=0.05, max_buffer=5)
    ids = [first.log_trace(messages=[{"role": "user", "content": "x"}]) for _ in range(30)]
    assert not await first.flush(0.5)
    await first.aclose(timeout_s=0.2)
    assert gateway.writer.records == []
    gateway.writer.fail = False
    second = AsyncClient(transport=transport(), spill_dir=tmp_path / "aspool", retry=FAST,
                         flush_interval_s=0.05)
    second.log_trace(trace_id="after", messages=[{"role": "user", "content": "y"}])
    assert await second.flush(20)
    await second.aclose()
    assert sorted(_written_ids(gateway)) == sorted([*ids, "after"])


def test_event_ids_are_the_uuid5_of_app_kind_and_id() -> None:
    import uuid

    from flywheel.client.wire import _EVENT_NS, event_id_for

    rng = random.Random(3)
    for _ in range(500):
        app = "".join(rng.choice("abcé☃-_") for _ in range(rng.randrange(1, 12)))
        key = "".join(rng.choice("0123456789abcdef-") for _ in range(rng.randrange(1, 40)))
        for kind, name in (("trace", "traces"), ("feedback", "feedback"), ("traces", "traces")):
            expected = str(uuid.uuid5(_EVENT_NS, f"{app}\x1f{name}\x1f{key}"))
            assert event_id_for(app, kind, key) == expected
