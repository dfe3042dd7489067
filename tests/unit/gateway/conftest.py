"""Gateway unit fixtures: in-memory fakes at the Kafka and Redis boundary, SQLite for keys.

The fakes implement the gateway's ``EventWriter`` and ``Coordination`` protocols with the
same observable behaviour as the real ones (claim states, token bucket, hold set), so the
handlers, validation and error mapping run unchanged without any network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from flywheel.db.engine import make_engine, migrate
from flywheel.keys import create_key
from flywheel.services.gateway.app import Backends, create_app
from flywheel.services.gateway.config import GatewaySettings
from flywheel.services.gateway.coordination import DONE, NEW, PENDING, Admission
from flywheel.services.gateway.errors import BrokerUnavailable
from flywheel.services.gateway.writer import Record
from flywheel.settings import Settings


class FakeWriter:
    """Records what would go to Kafka; ``fail`` makes every write a broker timeout."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.writes: list[list[Record]] = []
        self.fail = False
        self.delay_s = 0.0
        self.started = self.stopped = False

    async def start(self, timeout_s: float = 30.0) -> None:
        self.started = True

    async def write(self, records, deadline_s, on_late_success=None) -> None:  # noqa: ANN001
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise BrokerUnavailable("the broker did not acknowledge in time", 1)
        self.writes.append(list(records))
        self.records.extend(records)

    async def ping(self, timeout_s: float) -> None:
        if self.fail:
            raise BrokerUnavailable("down", 1)

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeCoordination:
    """In-memory twin of RedisCoordination (same claim states and token bucket)."""

    claims: dict[str, tuple[str, float]] = field(default_factory=dict)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    held: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    due: dict[tuple[str, str], float] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("redis down")

    async def admit(self, app_id, requests, *, pending_ttl_s):  # noqa: ANN001, ANN201
        self._check()
        return [self._admit_one(app_id, r.key_id, r.kind, r.ids, r.token, r.rate_per_s, r.burst,
                                pending_ttl_s) for r in requests]

    def _admit_one(self, app_id, key_id, kind, ids, token, rate_per_s, burst,  # noqa: ANN001
                   pending_ttl_s) -> Admission:
        now = time.time()
        tokens, ts = self.buckets.get(f"{app_id}:{key_id}", (burst, now))
        tokens = min(burst, tokens + max(0.0, now - ts) * rate_per_s)
        if tokens < 1:
            self.buckets[f"{app_id}:{key_id}"] = (tokens, now)
            return Admission(False, (1 - tokens) / rate_per_s, [])
        self.buckets[f"{app_id}:{key_id}"] = (tokens - 1, now)
        states = []
        for event_id in ids:
            key = f"{app_id}:{kind}:{event_id}"
            value = self.claims.get(key)
            if value is None or value[1] < now:
                self.claims[key] = (token, now + pending_ttl_s)
                states.append(NEW)
            else:
                states.append(DONE if value[0] == "done" else PENDING)
        return Admission(True, 0.0, states)

    async def commit(self, app_id, kind, ids, window_s) -> None:  # noqa: ANN001
        self._check()
        for event_id in ids:
            self.claims[f"{app_id}:{kind}:{event_id}"] = ("done", time.time() + window_s)

    async def release(self, app_id, kind, ids, token) -> None:  # noqa: ANN001
        self._check()
        for event_id in ids:
            key = f"{app_id}:{kind}:{event_id}"
            if self.claims.get(key, ("", 0))[0] == token:
                del self.claims[key]

    async def hold_spans(self, app_id, trace_id, spans, due_at, ttl_s) -> None:  # noqa: ANN001
        self._check()
        self.held.setdefault((app_id, trace_id), {}).update(spans)
        self.due.setdefault((app_id, trace_id), due_at)

    async def held_spans(self, app_id, trace_ids):  # noqa: ANN001, ANN201
        self._check()
        return {t: list(self.held[(app_id, t)].values()) for t in trace_ids
                if (app_id, t) in self.held}

    async def drop_held(self, app_id, trace_ids) -> None:  # noqa: ANN001
        for trace_id in trace_ids:
            self.held.pop((app_id, trace_id), None)
            self.due.pop((app_id, trace_id), None)

    async def take_due(self, now, limit):  # noqa: ANN001, ANN201
        taken = [k for k, at in self.due.items() if at <= now][:limit]
        for key in taken:
            del self.due[key]
        return taken

    async def postpone(self, app_id, trace_id, due_at) -> None:  # noqa: ANN001
        self.due[(app_id, trace_id)] = due_at

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        pass


@dataclass
class GatewayHarness:
    client: TestClient
    writer: FakeWriter
    coordination: FakeCoordination
    key: str
    app_id: str
    engine: object

    def headers(self, content_type: str = "application/json", **extra: str) -> dict[str, str]:
        return {"x-api-key": self.key, "content-type": content_type, **extra}


@pytest.fixture
def keys_engine(tmp_path):  # noqa: ANN001, ANN201
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def make_harness(tmp_path, engine, **gw_overrides) -> Iterator[GatewayHarness]:  # noqa: ANN001
    settings = Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:9", topic_prefix="unit",
                        redis_url="redis://127.0.0.1:9/0", database_url="sqlite://", env="test")
    gw = GatewaySettings(**{"rate_per_s": 1000.0, "rate_burst": 1000, "max_batch_count": 50,
                            "max_body_bytes": 200_000, "otlp_hold_s": 0.2, **gw_overrides})
    writer, coordination = FakeWriter(), FakeCoordination()
    created = create_key(engine, "shop")
    app = create_app(settings, gw, backends=Backends(writer, coordination, engine))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield GatewayHarness(client, writer, coordination, created.plain, created.app_id, engine)


@pytest.fixture
def gateway(tmp_path, keys_engine) -> Iterator[GatewayHarness]:  # noqa: ANN001
    yield from make_harness(tmp_path, keys_engine)
