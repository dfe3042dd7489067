"""Helpers for the release-flow tests on a real broker: topics, registry rows, events.

Loaded by file path from the conftests of tests/integration/exporter and .../serving.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.events.codec import decode, encode
from flywheel.events.envelope import stamp

REPO = Path(__file__).resolve().parents[3]
LINE = "shop-assistant"


def tiny_models() -> Any:
    name = "flywheel_tests_tiny_models"
    if name not in sys.modules:
        path = REPO / "tests" / "unit" / "export" / "tiny_models.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def prepare(settings: Any) -> Any:
    """Topics under the test's prefix and a migrated registry; returns the engine."""
    from flywheel.db.engine import make_engine, migrate
    from flywheel.kafka.admin import create_topics

    create_topics(settings.kafka(), settings.topic_prefix)
    migrate(settings.database())
    return make_engine(settings.database())


def register_candidate(engine: Any, version: int, merged: Path, line: str = LINE) -> None:
    """The registry row the trainer writes for a gate-passed version."""
    from flywheel.db.engine import session_scope
    from flywheel.db.models import ModelLine, ModelStatus, ModelVersion

    with session_scope(engine) as s:
        if s.get(ModelLine, line) is None:
            s.add(ModelLine(line=line, base_model="tiny"))
            s.flush()
        s.add(ModelVersion(line=line, version=version, parent_version=None, base_model="tiny",
                           merged_path=str(merged), status=ModelStatus.CANDIDATE,
                           status_history=[{"status": "candidate", "at": datetime.now(UTC).isoformat(),
                                            "reason": "gate passed"}]))


def candidate_event(version: int, merged: Path, *, passed: bool = True, line: str = LINE) -> Any:
    from flywheel.v1.models_pb2 import Gate, ModelCandidate

    event = ModelCandidate(model_line=line, version=version, base_model="tiny", merged_path=str(merged),
                           gate=Gate(passed=passed, reasons=["eval ok" if passed else "eval dropped"]),
                           status="gated" if passed else "rejected", metrics={"eval.exact_match": 0.5})
    return stamp(event, "trainer")


def produce(settings: Any, short_topic: str, events: list[Any], key: Callable[[Any], str]) -> None:
    from flywheel.kafka.producer import make_producer

    producer = make_producer(settings, client_id="test-producer")
    try:
        for event in events:
            producer.send(settings.topic(short_topic), key=key(event).encode(), value=encode(event))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def read_events(settings: Any, short_topic: str, event_type: str, *, expect: int = 1,
                timeout_s: float = 60.0, where: Callable[[Any], bool] = lambda e: True,
                settle_s: float = 0.0) -> list[Any]:
    """Events on a topic from the beginning: at least ``expect`` matching, or whatever arrived by
    the deadline; with ``settle_s`` keep reading that long after (to see that nothing else came)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic(short_topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka(), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        settle_until = None
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for r in records:
                    event = decode(r.value, event_type)
                    if where(event):
                        found.append(event)
            if len(found) >= expect:
                if settle_until is None:
                    settle_until = time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
        return found
    finally:
        consumer.close()


def served_trace(line: str, version: str, *, failed: bool = False) -> Any:
    """A serving trace as the trace sink writes it (one answered request of ``version``)."""
    from flywheel.v1 import common_pb2, trace_pb2

    rid = uuid.uuid4().hex
    trace = trace_pb2.Trace(trace_id=rid, request_id=rid, source=trace_pb2.TRACE_SOURCE_SERVING,
                            model=common_pb2.ModelRef(name=line, version=version))
    trace.messages.add(role="user", content="Where is my order 1234?")
    trace.messages.add(role="assistant", content="Order 1234 has shipped.")
    if failed:
        trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE
        trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_MODEL
    return stamp(trace, "serving")


def thumbs(trace: Any, up: bool) -> Any:
    from flywheel.v1 import feedback_pb2

    event = feedback_pb2.FeedbackEvent(feedback_id=uuid.uuid4().hex, trace_id=trace.trace_id,
                                       request_id=trace.request_id, user_id="u")
    event.feedback.kind = feedback_pb2.FEEDBACK_KIND_THUMBS
    event.feedback.thumbs = feedback_pb2.THUMBS_UP if up else feedback_pb2.THUMBS_DOWN
    return stamp(event, "gateway")


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
