"""Topic administration against a real broker: idempotent creation, partitions, end offsets,
and the `flywheel topics` commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from flywheel.events.topics import TOPICS, get_topic
from flywheel.kafka.admin import create_topics, describe_topics
from flywheel.kafka.producer import make_producer, produce_sync


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flywheel.cli.main", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_create_twice_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    first = create_topics(kafka_bootstrap, topic_prefix)
    assert first == {spec.full_name(topic_prefix): "created" for spec in TOPICS.values()}
    second = create_topics(kafka_bootstrap, topic_prefix)
    assert second == {name: "exists" for name in first}
    rows = {row["short"]: row for row in describe_topics(kafka_bootstrap, topic_prefix)}
    for short, spec in TOPICS.items():
        assert rows[short]["exists"]
        assert rows[short]["partitions"] == spec.partitions
        assert rows[short]["end_offset"] == 0


def test_describe_reports_missing_topics(kafka_bootstrap: str, topic_prefix: str) -> None:
    created = create_topics(kafka_bootstrap, topic_prefix, specs=[get_topic("models.releases")])
    assert created == {f"{topic_prefix}.models.releases.v1": "created"}
    rows = {row["short"]: row for row in describe_topics(kafka_bootstrap, topic_prefix)}
    assert set(rows) == set(TOPICS)
    assert rows["models.releases"]["exists"]
    missing = [short for short, row in rows.items() if not row["exists"]]
    assert sorted(missing) == sorted(set(TOPICS) - {"models.releases"})
    assert all(rows[s]["partitions"] == 0 and rows[s]["end_offsets"] == {} for s in missing)


def test_list_shows_partitions_and_end_offsets(kafka_bootstrap: str, topic_prefix: str) -> None:
    create_topics(kafka_bootstrap, topic_prefix)
    topic = get_topic("traces.raw").full_name(topic_prefix)
    producer = make_producer(kafka_bootstrap)
    try:
        per_partition = {0: 3, 2: 5, 5: 1}
        for partition, count in per_partition.items():
            for i in range(count):
                producer.send(topic, key=f"k{i}".encode(), value=b"v", partition=partition)
        producer.flush(timeout=30)
        meta = produce_sync(producer, get_topic("deadletter").full_name(topic_prefix), "e-1", "x")
        assert meta.offset == 0
    finally:
        producer.close()

    rows = {row["short"]: row for row in describe_topics(kafka_bootstrap, topic_prefix)}
    raw = rows["traces.raw"]
    assert raw["partitions"] == 6
    assert raw["end_offsets"] == {0: 3, 1: 0, 2: 5, 3: 0, 4: 0, 5: 1}
    assert raw["end_offset"] == 9
    assert rows["deadletter"]["end_offset"] == 1

    done = _cli("topics", "list", "--json", FLYWHEEL_KAFKA_BOOTSTRAP=kafka_bootstrap,
                FLYWHEEL_TOPIC_PREFIX=topic_prefix)
    assert done.returncode == 0, done.stderr
    listed = {row["short"]: row for row in json.loads(done.stdout)}
    assert listed["traces.raw"]["end_offset"] == 9
    assert listed["traces.raw"]["end_offsets"] == {"0": 3, "1": 0, "2": 5, "3": 0, "4": 0, "5": 1}
    assert listed["traces.raw"]["topic"] == topic


def test_cli_create_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    env = {"FLYWHEEL_KAFKA_BOOTSTRAP": kafka_bootstrap, "FLYWHEEL_TOPIC_PREFIX": topic_prefix}
    first = _cli("topics", "create", **env)
    assert first.returncode == 0, first.stderr
    assert f"{len(TOPICS)} created, 0 already existed" in first.stdout
    second = _cli("topics", "create", **env)
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(TOPICS)} already existed" in second.stdout
    table = _cli("topics", "list", **env)
    assert table.returncode == 0, table.stderr
    assert "missing" not in table.stdout


def test_committed_offsets_of_one_group(kafka_bootstrap: str, topic_prefix: str) -> None:
    """What triage asks after a restart: the offsets its group committed, per partition."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from flywheel.kafka.lag import committed_offsets
    from flywheel.services.triage.app import CommittedOffsets

    create_topics(kafka_bootstrap, topic_prefix, [TOPICS["traces.raw"]])
    topic = TOPICS["traces.raw"].full_name(topic_prefix)
    group = f"{topic_prefix}-committed-test"
    assert committed_offsets(kafka_bootstrap, group) == {}
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 2), TopicPartition(topic, 5)])
        consumer.commit({TopicPartition(topic, 2): OffsetAndMetadata(17, "", -1),
                         TopicPartition(topic, 5): OffsetAndMetadata(3, "", -1)})
    finally:
        consumer.close()
    assert committed_offsets(kafka_bootstrap, group) == {(topic, 2): 17, (topic, 5): 3}
    # triage's cached reader over it (one read for every partition asked within a second)
    reader = CommittedOffsets(kafka_bootstrap, group)
    assert asyncio.run(reader.get(topic, 2)) == 17
    assert asyncio.run(reader.get(topic, 0)) is None
