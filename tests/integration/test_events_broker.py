"""Every topic carries its event through a real Kafka broker byte for byte.

For each topic in the registry the golden sample of its event is produced with kafka-python
(``acks="all"``) to a topic under a unique prefix, read back from the partition and offset the
broker acknowledged, and compared with the sample. Uses the ``kafka_bootstrap`` and
``topic_prefix`` fixtures from tests/conftest.py.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from google.protobuf.message import Message

from flywheel.events.codec import decode, decode_topic_value, encode
from flywheel.events.topics import TOPICS, TopicSpec

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1"
DEADLINE_S = 30.0


def _golden(spec: TopicSpec) -> Message:
    name = spec.event_type.rpartition(".")[2]
    return decode((GOLDEN / f"{name}.bin").read_bytes(), spec.event_type)


def _record_key(spec: TopicSpec, msg: Message) -> bytes:
    """The topic's key field, from the event or (for event_id) its envelope."""
    if spec.key in msg.DESCRIPTOR.fields_by_name:
        return str(getattr(msg, spec.key)).encode()
    return str(getattr(msg.envelope, spec.key)).encode()


def _create_topics(bootstrap: str, prefix: str) -> None:
    try:
        from flywheel.kafka.admin import create_topics
    except ImportError:
        create_topics = None
    if create_topics is not None:
        create_topics(bootstrap, prefix)
        return
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{prefix}-admin")
    try:
        admin.create_topics(
            [NewTopic(spec.full_name(prefix), spec.partitions, 1, topic_configs=spec.config())
             for spec in TOPICS.values()],
            timeout_ms=int(DEADLINE_S * 1000),
        )
    finally:
        admin.close()


def _read_one(bootstrap: str, topic: str, partition: int, offset: int, group: str):
    """The record at topic/partition/offset, polled until a deadline."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(tp, []):
                if record.offset == offset:
                    return record
        raise AssertionError(f"no record at {topic}[{partition}]@{offset} in {DEADLINE_S}s")
    finally:
        consumer.close()


def test_every_topic_round_trips_its_golden_event(kafka_bootstrap: str, topic_prefix: str) -> None:
    from kafka import KafkaProducer

    _create_topics(kafka_bootstrap, topic_prefix)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             client_id=f"{topic_prefix}-producer")
    try:
        sent = {}
        for short, spec in TOPICS.items():
            msg = _golden(spec)
            future = producer.send(spec.full_name(topic_prefix), key=_record_key(spec, msg),
                                   value=encode(msg))
            sent[short] = (msg, future)
        producer.flush(timeout=DEADLINE_S)
        acked = {short: (msg, fut.get(timeout=DEADLINE_S)) for short, (msg, fut) in sent.items()}
    finally:
        producer.close()

    group = f"{topic_prefix}-reader-{uuid.uuid4().hex[:8]}"
    for short, (msg, meta) in acked.items():
        spec = TOPICS[short]
        record = _read_one(kafka_bootstrap, meta.topic, meta.partition, meta.offset, group)
        assert record.key == _record_key(spec, msg), short
        assert record.value == encode(msg), f"{short}: bytes changed on the way"
        assert decode_topic_value(record.topic, record.value, prefix=topic_prefix) == msg, short
