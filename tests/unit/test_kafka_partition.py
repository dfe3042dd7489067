"""Our murmur2 partition choice against the Kafka clients' own DefaultPartitioners."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner as AioPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from flywheel.kafka.partition import murmur2, partition_for


def test_partition_for_matches_the_kafka_clients() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 90))) for _ in range(3000)]
    keys += [b"", b"a", b"ab", b"abc", b"abcd", "trace-é☃".encode()]
    for count in (1, 3, 6, 12, 50):
        parts = list(range(count))
        for key in keys:
            expected = AioPartitioner()(key, parts, parts)
            assert partition_for(key, count) == expected, (key, count)
            assert (kafka_python_murmur2(key) & 0x7FFFFFFF) % count == expected


def test_murmur2_known_values() -> None:
    # Values of org.apache.kafka.common.utils.Utils.murmur2 (as unsigned 32-bit numbers)
    # computed by the Kafka clients' implementations; a wrong word order or tail would move them.
    from aiokafka.partitioner import murmur2 as reference

    for key in (b"21", b"foobar", b"a-little-bit-long-string", b"\x00\xff\x10\x80\x7f"):
        assert murmur2(key) == reference(key) & 0xFFFFFFFF
    assert murmur2(b"21") != murmur2(b"12")
