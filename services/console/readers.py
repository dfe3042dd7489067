"""Incremental readers of the ``deadletter`` and ``pipeline.health`` topics.

A :class:`TopicScanner` remembers where it stopped in each partition, so the console reads
each record once however often the page is loaded; a first scan starts at most
``max_per_partition`` records before the end. ``flywheel status`` uses a fresh scanner, which
reads the same records and so reports the same counts.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import timezone
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from flywheel.errors import EventDecodeError, UnknownTopicError
from flywheel.events.codec import decode
from flywheel.events.topics import resolve_topic
from flywheel.v1.pipeline_pb2 import DeadLetter, PipelineHealth

from .logic import DeadLetterTally, keep_latest_health

MAX_ERROR_CHARS = 300


class TopicScanner:
    """Reads the records appended to one topic since the previous :meth:`scan`."""

    def __init__(self, bootstrap: str, topic: str, *, max_per_partition: int,
                 timeout_s: float = 8.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.max_per_partition = max_per_partition
        self.timeout_s = timeout_s
        self.positions: dict[int, int] = {}
        self._consumer: KafkaConsumer | None = None

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            timeout_ms = int(self.timeout_s * 1000)
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                client_id=f"flywheel-console-{uuid.uuid4().hex[:6]}",
                request_timeout_ms=max(timeout_ms, 5000), reconnect_backoff_max_ms=1000,
                max_poll_records=2000)
        return self._consumer

    def _starts(self, consumer: KafkaConsumer, tps: list[TopicPartition]
                ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        starts = {}
        for tp in tps:
            start = self.positions.get(tp.partition)
            if start is None or start < begins[tp] or start > ends[tp]:
                start = max(begins[tp], ends[tp] - self.max_per_partition)
            if start < ends[tp]:
                starts[tp] = start
            else:
                self.positions[tp.partition] = ends[tp]
        return starts, ends

    def scan(self, handle: Callable[[ConsumerRecord], None]) -> int:
        """Hand every new record to ``handle``; returns how many were read."""
        consumer = self._client()
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            return 0
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        starts, ends = self._starts(consumer, tps)
        if not starts:
            return 0
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        read, pending = 0, set(starts)
        deadline = time.monotonic() + self.timeout_s
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    if record.offset < ends[tp]:
                        handle(record)
                        read += 1
            for tp in list(pending):
                position = consumer.position(tp)
                self.positions[tp.partition] = min(position, ends[tp])
                if position >= ends[tp]:
                    pending.discard(tp)
        return read

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None


def _short(topic: str, prefix: str) -> str:
    try:
        return resolve_topic(topic, prefix).short
    except UnknownTopicError:
        return topic


def dead_letter_view(letter: DeadLetter, prefix: str) -> dict[str, Any]:
    """A dead letter without its payload, for counting and listing."""
    failed = letter.failed_at.ToDatetime(tzinfo=timezone.utc) if letter.HasField("failed_at") \
        else None
    return {"event_id": letter.envelope.event_id, "error_type": letter.error_type,
            "error_message": letter.error_message[:MAX_ERROR_CHARS], "service": letter.service,
            "source_topic": _short(letter.source_topic, prefix), "partition": letter.partition,
            "offset": letter.offset, "attempt": letter.attempt,
            "failed_at": failed.isoformat() if failed else None}


def health_view(event: PipelineHealth) -> dict[str, Any]:
    """A pipeline.health event as plain values (``at`` in epoch seconds)."""
    at = event.envelope.occurred_at.ToDatetime(tzinfo=timezone.utc) \
        if event.envelope.HasField("occurred_at") else None
    return {"service": event.service or event.envelope.producer, "instance": event.instance,
            "at": at.timestamp() if at else None, "window_seconds": event.window_seconds,
            "counters": dict(sorted(event.counters.items())),
            "gauges": dict(sorted(event.gauges.items()))}


class DeadLetterReader:
    """Tallies the ``deadletter`` topic incrementally."""

    def __init__(self, bootstrap: str, prefix: str, topic: str, *, max_per_partition: int,
                 timeout_s: float) -> None:
        self.prefix = prefix
        self.tally = DeadLetterTally()
        self.scanner = TopicScanner(bootstrap, topic, max_per_partition=max_per_partition,
                                    timeout_s=timeout_s)

    def _add(self, record: ConsumerRecord) -> None:
        try:
            self.tally.add(dead_letter_view(decode(record.value or b"", DeadLetter), self.prefix))
        except EventDecodeError:
            self.tally.add(None)

    def refresh(self) -> dict[str, Any]:
        self.scanner.scan(self._add)
        return self.tally.as_dict()

    def close(self) -> None:
        self.scanner.close()


class HealthReader:
    """Keeps the newest ``pipeline.health`` event of every (service, instance)."""

    def __init__(self, bootstrap: str, topic: str, *, max_per_partition: int,
                 timeout_s: float) -> None:
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}
        self.undecodable = 0
        self.scanner = TopicScanner(bootstrap, topic, max_per_partition=max_per_partition,
                                    timeout_s=timeout_s)

    def _add(self, record: ConsumerRecord) -> None:
        try:
            keep_latest_health(self.latest, health_view(decode(record.value or b"",
                                                               PipelineHealth)))
        except EventDecodeError:
            self.undecodable += 1

    def refresh(self) -> list[dict[str, Any]]:
        self.scanner.scan(self._add)
        return [self.latest[k] for k in sorted(self.latest)]

    def close(self) -> None:
        self.scanner.close()
