"""Kafka's default partition of a keyed record, as the Java client computes it.

``partition_for(key, count)`` is ``(murmur2(key) & 0x7fffffff) % count``, the choice of the
Java producer, aiokafka's and kafka-python's ``DefaultPartitioner``, so a record written in a
batch we build ourselves lands on the same partition as one sent with ``send(key=...)``. The
hash reads the key in 32-bit little-endian words at once instead of byte by byte, which makes
it several times faster than the libraries' pure-Python versions for the same result.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The 32-bit MurmurHash2 of ``data`` (Kafka's ``Utils.murmur2``), unsigned."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = words << 2
        if tail >= 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, count: int) -> int:
    """The partition (0 to ``count - 1``) Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % count


__all__ = ["murmur2", "partition_for"]
