"""Known figures for the console tests: events on the broker, rows in SQL, keys in Redis.

``seed(settings)`` writes them under the settings' topic prefix, database and Redis and
returns what the console must show. The browser test loads this module by path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from flywheel.db.engine import make_engine, migrate, session_scope
from flywheel.db.models import DatasetBatch, ModelLine, ModelVersion, Release
from flywheel.events.codec import encode
from flywheel.events.envelope import stamp
from flywheel.events.topics import get_topic
from flywheel.kafka.admin import create_topics
from flywheel.kafka.deadletter import build_dead_letter
from flywheel.kafka.producer import make_producer
from flywheel.settings import Settings
from flywheel.v1.pipeline_pb2 import PipelineHealth
from flywheel.v1.trace_pb2 import Trace

LINE = "shop-assistant"
TRACES = 12
DEAD_LETTERS = {"EventDecodeError": 3, "RedactionError": 2}
DEADLETTER_PARTITIONS = get_topic("deadletter").partitions
COMMITTED = 5  # offsets committed by the triage group on traces.raw, in total
LABEL_QUEUE, REVIEW_QUEUE = 4, 1
BUDGETS = [1, 3, 2]  # questions asked today to three users (daily limit 3)
METRIC = {1: 0.61, 2: 0.74, 3: 0.81, 4: 0.52}


@dataclass
class Expected:
    traces: int = TRACES
    dead_letters: dict[str, int] = field(default_factory=lambda: dict(DEAD_LETTERS))
    lag_total: int = TRACES - COMMITTED
    label_queue: int = LABEL_QUEUE
    review_queue: int = REVIEW_QUEUE
    questions: int = sum(BUDGETS)
    users: int = len(BUDGETS)
    release: int = 2
    canary: int = 3
    batches: int = 3
    pool_sft: int = 20
    group: str = ""


def _trace(i: int) -> Trace:
    trace = Trace(trace_id=f"tr-{i:03d}-{uuid.uuid4().hex[:6]}", session_id="s-1", app_id="shop")
    trace.messages.add(role="user", content=f"where is order {1000 + i}?")
    trace.messages.add(role="assistant", content=f"Order {1000 + i} ships tomorrow.")
    return stamp(trace, "gateway")


def produce_events(settings: Settings) -> list[Trace]:
    """Traces, dead letters and two pipeline.health events, acknowledged by the broker."""
    producer = make_producer(settings)
    traces = [_trace(i) for i in range(TRACES)]
    try:
        for trace in traces:
            producer.send(settings.topic("traces.raw"), key=trace.trace_id.encode(),
                          value=encode(trace))
        offset = 0
        for reason, n in DEAD_LETTERS.items():
            for _ in range(n):
                dl = build_dead_letter(service="triage", source_topic=settings.topic("traces.raw"),
                                       partition=0, offset=offset, key=b"k", value=b"\x00bad",
                                       error_type=reason, error_message=f"{reason} at {offset}")
                # Round-robin over the partitions so every partition holds some: the tail
                # tests count one line per partition.
                producer.send(settings.topic("deadletter"), key=dl.envelope.event_id.encode(),
                              value=encode(dl), partition=offset % DEADLETTER_PARTITIONS)
                offset += 1
        for service, counters, gauges in (("triage", {"processed": 12}, {"queued.annotate": 2.0}),
                                          ("curator", {"pooled_sft": 20}, {"pool.sft": 20.0,
                                                                          "pool.dpo": 4.0})):
            event = PipelineHealth(service=service, instance=f"{service}-1", window_seconds=10.0)
            event.counters.update(counters)
            event.gauges.update(gauges)
            producer.send(settings.topic("pipeline.health"), key=service.encode(),
                          value=encode(stamp(event, service)))
        producer.flush(timeout=30)
    finally:
        producer.close()
    return traces


def commit_triage_offsets(settings: Settings) -> str:
    """Commit ``COMMITTED`` offsets in total on traces.raw for the triage group; its id."""
    group = f"{settings.topic_prefix}-triage"
    topic = settings.topic("traces.raw")
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka(), group_id=group,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        ends = consumer.end_offsets(tps)
        left, offsets = COMMITTED, {}
        for tp in tps:
            take = min(left, ends[tp])
            offsets[tp] = OffsetAndMetadata(take, "", -1)
            left -= take
        assert left == 0, "not enough traces to commit"
        consumer.assign(tps)
        consumer.commit(offsets)
    finally:
        consumer.close()
    return group


def seed_database(url: str) -> None:
    """Three batches, four model versions and a release log (v1, v2 promoted; v3 canary)."""
    migrate(url)
    engine = make_engine(url)
    t0 = datetime.now(timezone.utc) - timedelta(hours=5)
    try:
        with session_scope(engine) as s:
            s.add(ModelLine(line=LINE, base_model="tiny"))
            s.flush()
            for v in (1, 2, 3):
                s.add(DatasetBatch(batch_id=f"b{v}" + "0" * 62, model_line=LINE, version=v,
                                   status="announced", counts={"sft": 60 + v, "dpo": 10 * v,
                                                               "replay": 4 * v},
                                   created_at=t0 + timedelta(hours=v)))
            for v in (1, 2, 3, 4):
                status = {1: "released", 2: "released", 3: "canary", 4: "rejected"}[v]
                # The trainer's spelling: eval.<metric>, the release's score, the gate.
                s.add(ModelVersion(line=LINE, version=v, parent_version=v - 1 or None,
                                   base_model="tiny", status=status,
                                   metrics={"eval.exact_match": METRIC[v],
                                            "release.eval.exact_match": METRIC.get(v - 1, 0.0),
                                            "forgetting": 0.01 * v, "parity_max_diff": 2e-5,
                                            "gate": {"passed": v != 4,
                                                     "reasons": [] if v != 4 else
                                                     ["eval.exact_match below the release"]}},
                                   status_history=[{"status": status, "share": 0.1}]
                                   if status == "canary" else [],
                                   created_at=t0 + timedelta(hours=v, minutes=30)))
            s.flush()
            for v, action, hours in ((1, "promote", 1.8), (2, "promote", 2.8),
                                     (3, "canary", 3.8)):
                s.add(Release(line=LINE, version=v, action=action, actor="exporter",
                              created_at=t0 + timedelta(hours=hours)))
    finally:
        engine.dispose()


def seed_redis(url: str) -> None:
    """Annotation queue, judge calibration for two criteria, today's preference budgets."""
    client = redis.Redis.from_url(url)
    try:
        client.zadd("fw:ann:queue:label", {f"at-{i}": float(i) for i in range(LABEL_QUEUE)})
        client.zadd("fw:ann:queue:review", {f"rv-{i}": 1.0 for i in range(REVIEW_QUEUE)})
        client.hset("fw:calibration:rate", mapping={
            "agreement": "0.72", "statistic": "cohen_kappa", "kappa": "0.72", "percent": "0.8",
            "n": "40", "window": "200", "threshold": "0.6", "low": "0"})
        client.hset("fw:calibration:pairwise", mapping={
            "agreement": "0.41", "statistic": "cohen_kappa", "kappa": "0.41", "percent": "0.6",
            "n": "25", "window": "200", "threshold": "0.6", "low": "1"})
        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        for i, used in enumerate(BUDGETS):
            client.set(f"fw:pref:budget:u{i}:{day}", used, ex=3600)
    finally:
        client.close()


def clear_redis(url: str) -> None:
    """Remove what ``seed_redis`` wrote (the session's Redis is shared between tests)."""
    client = redis.Redis.from_url(url)
    try:
        for pattern in ("fw:ann:queue:*", "fw:calibration:*", "fw:pref:budget:*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def seed(settings: Settings) -> Expected:
    """Everything above; returns the figures the console must show."""
    create_topics(settings.kafka(), settings.topic_prefix)
    produce_events(settings)
    expected = Expected(group=commit_triage_offsets(settings))
    seed_database(settings.database())
    clear_redis(settings.redis())
    seed_redis(settings.redis())
    return expected
