"""Synchronous kafka-python producers for CLIs, tools and tests.

Streaming services produce through Faust/aiokafka; this is for code that is not on an event
loop (the CLI, seeders, tests)::

    producer = make_producer(settings)
    produce_sync(producer, settings.topic("traces.raw"), key=b"t-1", value=payload)
    producer.close()
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from flywheel.errors import DependencyUnavailable
from flywheel.settings import Settings

# acks=all with idempotence: retries cannot duplicate or reorder within a partition. Retries
# are bounded by the delivery timeout rather than a count, a small linger batches bursts.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "retry_backoff_ms": 100,
    "request_timeout_ms": 15_000,
    "delivery_timeout_ms": 30_000,
    "max_block_ms": 15_000,
    "bootstrap_timeout_ms": 15_000,
    "reconnect_backoff_max_ms": 1_000,
}


def make_producer(settings_or_bootstrap: Settings | str, **overrides: Any) -> KafkaProducer:
    """A KafkaProducer with acks="all" for a Settings object or a bootstrap string.

    Raises:
        ConfigError: no broker is configured (from ``Settings.kafka()``).
        DependencyUnavailable: the broker did not answer in time.
    """
    if isinstance(settings_or_bootstrap, Settings):
        bootstrap = settings_or_bootstrap.kafka()
        overrides.setdefault("client_id", f"{settings_or_bootstrap.service_name}-producer")
    else:
        bootstrap = settings_or_bootstrap
    config = {**PRODUCER_DEFAULTS, **overrides}
    try:
        return KafkaProducer(bootstrap_servers=bootstrap, **config)
    except KafkaError as exc:
        raise DependencyUnavailable(f"Kafka at {bootstrap} is unreachable: {exc}") from None


def _as_bytes(data: Any, serializer: Any) -> Any:
    # Strings are sent as UTF-8 unless the producer was built with its own serializer.
    if serializer is None and isinstance(data, str):
        return data.encode("utf-8")
    return data


def produce_sync(producer: KafkaProducer, topic: str, key: Any, value: Any, timeout_s: float = 10.0,
                 headers: list[tuple[str, bytes]] | None = None) -> RecordMetadata:
    """Send one record and wait for the broker's acknowledgement (partition and offset)."""
    try:
        key = _as_bytes(key, producer.config.get("key_serializer"))
        value = _as_bytes(value, producer.config.get("value_serializer"))
        future = producer.send(topic, key=key, value=value, headers=headers)
        return future.get(timeout=timeout_s)
    except KafkaError as exc:
        raise DependencyUnavailable(
            f"producing to {topic} failed: {type(exc).__name__}: {exc}") from None
