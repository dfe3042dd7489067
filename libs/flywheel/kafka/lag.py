"""Consumer lag from the broker: committed offsets per group and partition against end offsets."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError


@dataclass(frozen=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - max(self.committed, 0))

    def as_dict(self) -> dict:
        return {**asdict(self), "lag": self.lag}


def lag_rows(committed: dict[str, dict[tuple[str, int], int]],
             end_offsets: dict[tuple[str, int], int]) -> list[LagRow]:
    """Join committed offsets (group → (topic, partition) → offset) with end offsets."""
    rows = []
    for group, offsets in sorted(committed.items()):
        for (topic, partition), offset in sorted(offsets.items()):
            rows.append(LagRow(group, topic, partition, offset,
                               end_offsets.get((topic, partition), offset)))
    return rows


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, by (topic, partition), on the real broker."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="flywheel-committed",
                             request_timeout_ms=10000)
    try:
        for attempt in range(20):  # the broker creates its offsets topic on first use
            try:
                offsets = admin.list_group_offsets([group]).get(group, {})
                break
            except CoordinatorNotAvailableError:
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()
            if meta.offset >= 0}


def consumer_lag(bootstrap: str, group_prefix: str = "", topic_prefix: str = "") -> list[LagRow]:
    """Lag of every consumer group (optionally filtered by prefixes) on the real broker."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="flywheel-lag",
                             request_timeout_ms=10000)
    try:
        groups = [g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()]
        groups = sorted(g for g in groups if g.startswith(group_prefix))
        committed: dict[str, dict[tuple[str, int], int]] = {}
        if groups:
            for group, offsets in admin.list_group_offsets(groups).items():
                committed[group] = {
                    (tp.topic, tp.partition): meta.offset
                    for tp, meta in offsets.items()
                    if tp.topic.startswith(topic_prefix) and meta.offset >= 0
                }
    finally:
        admin.close()
    partitions = {TopicPartition(t, p) for offs in committed.values() for (t, p) in offs}
    end: dict[tuple[str, int], int] = {}
    if partitions:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            for tp, offset in consumer.end_offsets(list(partitions)).items():
                end[(tp.topic, tp.partition)] = offset
        finally:
            consumer.close()
    return lag_rows(committed, end)
