"""Read a whole topic, from the beginning to its end offsets at call time.

For tools that look at what is on the broker (dead-letter listing, reconciliation, tests):
kafka-python without a consumer group, so reading never moves anybody's committed offsets.

    records = read_to_end("127.0.0.1:29092", "flywheel.traces.raw.v1", timeout_s=60)
"""

from __future__ import annotations

import time
from typing import Any


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60.0,
                client_id: str = "flywheel-reader") -> list[Any]:
    """Every record of ``topic`` (kafka-python ``ConsumerRecord``s), partition by partition.

    Raises:
        TimeoutError: the end offsets were not reached within ``timeout_s``.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, client_id=client_id)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                out += [r for r in records if r.offset < ends[tp]]
        return out
    finally:
        consumer.close()
