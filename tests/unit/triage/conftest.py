"""In-memory stand-ins for the engine's I/O: state store, producer, duplicate store, budgets."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from flywheel.events.codec import decode
from flywheel.kafka.deadletter import DeadLetterSender
from flywheel.services.triage.engine import Topics, TriageEngine
from flywheel.services.triage.logic.budget import grant_tokens
from flywheel.services.triage.logic.dedupe import judge_duplicate
from flywheel.services.triage.logic.policy import Policy, load_policy
from flywheel.services.triage.logic.records import ROUTE_NAMES
from flywheel.services.triage.metrics import TriageMetrics
from flywheel.services.triage.model_client import SamplingPool
from flywheel.services.triage.settings import TriageSettings
from flywheel.settings import Settings

PARTITIONS = 6


class MemStore:
    """The join state as a dict; ``changelog`` records every write like the table's topic."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog: list[tuple[int, str, Any]] = []
        self.gates: list = []

    def get(self, key):
        return self.data.get(key)

    def put(self, key, value, after=()) -> None:
        self.data[key] = value
        self.changelog.append((value.partition, key, value))
        self.gates.extend(after)

    def delete(self, key, partition) -> None:
        self.data.pop(key, None)
        self.changelog.append((partition, key, None))

    def drop_local(self, key) -> None:
        self.data.pop(key, None)

    def items(self):
        return list(self.data.items())

    def __len__(self) -> int:
        return len(self.data)

    async def flush(self) -> None:
        return None

    async def drain(self) -> None:
        return None


class Outbox:
    """Collects sent records; ``send`` returns an already delivered future."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic, key, value, partition=None, timestamp=None, headers=None):
        self.records.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[bytes, bytes]]:
        return [(k, v) for t, k, v in self.records if t == topic]


class MemDuplicates:
    """First occurrence wins, in memory, with the same verdict logic as the Redis store."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.owners: dict[str, str] = {}
        self.signatures: dict[str, bytes] = {}
        self.threshold = threshold

    async def check(self, items):
        out = []
        for tid, fp in items:
            exact = self.owners.setdefault("x:" + fp.exact, tid)
            bands = [self.owners.setdefault("b:" + b, tid) for b in fp.bands]
            self.signatures[tid] = fp.signature
            out.append(judge_duplicate(tid, exact, bands, self.signatures, fp.signature, self.threshold))
        return out


class MemBudgets:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    async def grant(self, route, wanted, per_hour, size, now):
        granted, self.state[route] = grant_tokens(self.state.get(route), now, per_hour / 3600, size, wanted)
        return granted


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = None


@dataclass
class FakeEvent:
    message: FakeMessage


@dataclass
class Clock:
    t: float = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class FakeSampler:
    """Stands in for ModelSampler: fixed answers, or None (endpoint down)."""

    def __init__(self, answers: list[str] | None) -> None:
        self.answers = answers
        self.calls = 0

        class _Breaker:
            failures = 0

            @staticmethod
            def is_open() -> bool:
                return False
        self.breaker = _Breaker()

    async def sample(self, trace):
        self.calls += 1
        return self.answers

    async def aclose(self) -> None:
        return None


@dataclass
class Harness:
    engine: TriageEngine
    store: MemStore
    out: Outbox
    clock: Clock
    settings: Settings
    owned: set[int] = field(default_factory=lambda: set(range(PARTITIONS)))
    offsets: dict[str, int] = field(default_factory=dict)

    def event(self, topic_short: str, key: bytes | None, value: bytes, partition: int | None = None) -> FakeEvent:
        topic = self.settings.topic(topic_short)
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        if partition is None:
            partition = (sum(key) if key else 0) % PARTITIONS
        return FakeEvent(FakeMessage(topic, partition, offset, key, value))

    async def feed(self, *events: FakeEvent) -> None:
        await self.engine.on_batch(list(events))

    async def tick(self, advance: float = 0.0) -> None:
        self.clock.t += advance
        await self.engine.on_tick()
        await asyncio.sleep(0)

    def decisions(self) -> list:
        return [decode(v, "TriageDecision") for _, v in self.out.on(self.settings.topic("traces.triaged"))]

    def routes(self) -> dict[str, str]:
        return {d.trace_id: ROUTE_NAMES[d.route] for d in self.decisions()}

    def deadletters(self) -> list:
        return [decode(v, "DeadLetter") for _, v in self.out.on(self.settings.topic("deadletter"))]

    def tasks(self) -> list:
        return [decode(v, "AnnotationTask") for _, v in self.out.on(self.settings.topic("annotation.tasks"))]

    def preference_requests(self) -> list:
        return [decode(v, "PreferenceRequest")
                for _, v in self.out.on(self.settings.topic("preference.requests"))]


@pytest.fixture
def make_harness():
    """Build an engine on in-memory fakes: ``make_harness(policy=..., sampler=..., **tset)``."""

    async def _make(policy: Policy | None = None, sampler: FakeSampler | None = None,
                    store: MemStore | None = None, **overrides: Any) -> Harness:
        settings = Settings(topic_prefix="unit", kafka_bootstrap=None, redis_url=None)
        values = {"hold_s": 10.0, "late_window_s": 100.0, "model_url": "", "tick_interval_s": 0.5}
        values.update(overrides)
        tset = TriageSettings(**values)
        out = Outbox()
        clock = Clock()
        store = store or MemStore()
        harness_owned = set(range(PARTITIONS))
        engine = TriageEngine(
            topics=Topics(raw=settings.topic("traces.raw"), feedback=settings.topic("feedback.events"),
                          triaged=settings.topic("traces.triaged"),
                          preference=settings.topic("preference.requests"),
                          annotation=settings.topic("annotation.tasks"),
                          health=settings.topic("pipeline.health")),
            tset=tset, policy=policy or load_policy(), store=store, send=out.send,
            deadletters=DeadLetterSender(settings, "triage", producer=out),
            dedupe=MemDuplicates(), budgets=MemBudgets(),
            sampling=SamplingPool(sampler, 4, clock=clock), metrics=TriageMetrics(),
            owned=lambda: harness_owned, clock=clock)
        await engine.on_recovered()
        return Harness(engine, store, out, clock, settings, harness_owned)

    return _make


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)
