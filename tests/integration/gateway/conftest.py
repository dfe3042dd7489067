"""Gateway integration fixtures: the real app under uvicorn on a free port, wired to the
session's Kafka broker and Redis, with API keys in a SQLite file.

``start_gateway(**gateway_overrides)`` starts one (topics created, a key made) and returns a
``LiveGateway``; ``read_topic`` reads a topic back with ``read_committed`` until every expected
key arrived or a deadline passes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from flywheel.db.engine import make_engine, migrate
from flywheel.events.topics import TOPICS
from flywheel.kafka.admin import create_topics
from flywheel.keys import create_key
from flywheel.services.gateway.app import create_app
from flywheel.services.gateway.config import GatewaySettings
from flywheel.settings import Settings
from flywheel.stack.process import free_port


class LiveServer:
    """uvicorn serving an ASGI app in a thread of this process (lifespan included)."""

    def __init__(self, app, port: int) -> None:  # noqa: ANN001
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                access_log=False, lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base_url = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 60.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class LiveGateway:
    base_url: str
    key: str
    app_id: str
    settings: Settings
    server: LiveServer

    def headers(self, content_type: str = "application/json") -> dict[str, str]:
        return {"x-api-key": self.key, "content-type": content_type}

    def topic(self, short: str) -> str:
        return self.settings.topic(short)


def read_topic(bootstrap: str, topic: str, expect_keys: set[str] | None = None,
               timeout_s: float = 30.0, settle_s: float = 1.0) -> list:
    """Every committed record of ``topic``; waits until ``expect_keys`` all arrived (then reads
    ``settle_s`` longer to catch duplicates) or the deadline."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed",
                             client_id=f"reader-{uuid.uuid4().hex[:6]}")
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records, settle_until = [], None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
            seen = {r.key.decode() for r in records}
            if expect_keys is not None and expect_keys <= seen:
                settle_until = settle_until or time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
        return records
    finally:
        consumer.close()


@pytest.fixture
def start_gateway(make_settings, kafka_bootstrap, topic_prefix, sqlite_url,  # noqa: ANN001
                  ) -> Iterator[Callable[..., LiveGateway]]:
    started: list[LiveServer] = []
    migrate(sqlite_url)
    create_topics(kafka_bootstrap, topic_prefix, [TOPICS["traces.raw"], TOPICS["feedback.events"]])
    engine = make_engine(sqlite_url)

    def start(settings: Settings | None = None, **gateway_overrides) -> LiveGateway:  # noqa: ANN003
        settings = settings or make_settings(service_name="gateway")
        values = {"rate_per_s": 100_000.0, "rate_burst": 100_000, "produce_deadline_s": 5.0,
                  **gateway_overrides}
        created = create_key(engine, "shop")
        server = LiveServer(create_app(settings, GatewaySettings(**values)), free_port()).start()
        started.append(server)
        return LiveGateway(server.base_url, created.plain, created.app_id, settings, server)

    yield start
    for server in started:
        server.stop()
    engine.dispose()
