"""Event output of the preferences service: a publisher port, its Kafka adapter, dead letters.

Services publish by topic short name; the adapter resolves the full name from the settings.
``MemoryPublisher`` stands in for Kafka in unit tests (an injected port, not a patch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message

from flywheel.errors import DependencyUnavailable
from flywheel.events.codec import encode
from flywheel.events.topics import get_topic
from flywheel.kafka.admin import create_topics
from flywheel.kafka.deadletter import HeadersArg, attempt_from_headers, build_dead_letter
from flywheel.logging import get_logger
from flywheel.settings import Settings
from flywheel.v1.pipeline_pb2 import DeadLetter

log = get_logger(__name__)

SERVICE = "preferences"


class Publisher(Protocol):
    """Sends one event to a registered topic and returns once the broker acknowledged it."""

    async def publish(self, topic: str, key: str, event: Message) -> None: ...


@dataclass
class MemoryPublisher:
    """Keeps published events in a list: ``(topic short name, key, event)``."""

    sent: list[tuple[str, str, Message]] = field(default_factory=list)
    fail: bool = False

    async def publish(self, topic: str, key: str, event: Message) -> None:
        if self.fail:
            raise DependencyUnavailable("memory publisher set to fail")
        get_topic(topic)
        self.sent.append((topic, key, event))


class KafkaPublisher:
    """aiokafka producer with ``acks=all`` and idempotence; one per process."""

    def __init__(self, settings: Settings, client_id: str = SERVICE) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka(), client_id=self._client_id, acks="all",
            enable_idempotence=True, linger_ms=2, request_timeout_ms=15_000)
        await _retry_start(self._producer.start, self._settings.startup_timeout_s)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: str, key: str, event: Message) -> None:
        if self._producer is None:
            raise DependencyUnavailable("the Kafka producer is not started")
        await self._producer.send_and_wait(self._settings.topic(topic), encode(event),
                                           key=key.encode())


async def _retry_start(start, timeout_s: float) -> None:  # noqa: ANN001
    """Start a client, retrying with backoff until ``timeout_s`` (the broker may be booting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.2
    while True:
        try:
            await start()
            return
        except Exception as exc:  # aiokafka raises several unrelated types while booting
            if loop.time() + delay > deadline:
                raise DependencyUnavailable(f"Kafka did not answer in {timeout_s}s: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def ensure_topics(settings: Settings, shorts: list[str]) -> None:
    """Create the registry topics ``shorts`` when missing (consumers need them to exist).

    Blocking (kafka-python admin): call from a worker thread.
    """
    create_topics(settings.kafka(), settings.topic_prefix, specs=[get_topic(s) for s in shorts])


def dead_letter(source_topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, error: BaseException, headers: HeadersArg = None) -> DeadLetter:
    """A dead-letter event for a message this service gave up on (stable id per record)."""
    return build_dead_letter(service=SERVICE, source_topic=source_topic, partition=partition,
                             offset=offset, key=key, value=value, error=error,
                             attempt=attempt_from_headers(headers))
