"""Build the triage Faust app: topics, the join-state table, the engine and its dependencies.

``create_app(settings, triage_settings)`` wires everything and registers the agents; it does
not connect to anything (connections open when the worker starts), so it is safe in tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import faust
import redis.asyncio as aredis
from faust.serializers import codecs

from flywheel.events.topics import get_topic
from flywheel.kafka.deadletter import DeadLetterSender
from flywheel.kafka.faust_app import FaustOptions, make_faust_app
from flywheel.services.triage.agents import register_agents
from flywheel.services.triage.engine import Record, TriageEngine, Topics
from flywheel.services.triage.logic.policy import Policy, load_policy
from flywheel.services.triage.logic.state import TriageState
from flywheel.services.triage.metrics import TriageMetrics
from flywheel.services.triage.model_client import CircuitBreaker, ModelSampler, SamplerConfig, SamplingPool
from flywheel.services.triage.redis_store import BudgetBuckets, DuplicateStore
from flywheel.services.triage.settings import TriageSettings
from flywheel.settings import Settings

SERVICE = "triage"
TABLE = "join-state"
SOURCE_TOPICS = ("traces.raw", "feedback.events")


class _StateCodec(codecs.Codec):
    """Table values on the changelog: :meth:`TriageState.to_bytes`."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.to_bytes()

    def _loads(self, s: bytes) -> Any:
        return TriageState.from_bytes(s)


class _StateTable(faust.Table):
    """A table whose values (``value_type=None``) use :class:`_StateCodec` on the changelog;
    Faust otherwise derives serializers from types only."""

    def _serializer_from_type(self, typ: Any) -> Any:
        if typ is None:
            return _StateCodec()
        return super()._serializer_from_type(typ)


class FaustStateStore:
    """The engine's view of the Faust table.

    Writes update the table's store at once and queue a changelog record for the entry's own
    partition; :meth:`flush` hands the queued records to the producer. Faust's own table writes
    go through a small in-process buffer that throttles the stream once more than 100 records
    wait, which caps a table-heavy agent at a few hundred messages a second; sending through
    the producer directly lets aiokafka batch them. Durability is unchanged: the consumer
    flushes the producer before it commits offsets.

    A write may be gated on delivery futures (``after``): its changelog record is held back
    until they are done, so "decided" never becomes durable before the decision itself. A
    later write of the same key inherits the gate.
    """

    def __init__(self, app: faust.App, table: faust.Table) -> None:
        self.app = app
        self.table = table
        # Latest write per key since the last flush: a trace ingested and decided in the same
        # batch costs one changelog record, not two.
        self._pending: dict[str, tuple[int, TriageState | None, list]] = {}

    def get(self, key: str) -> TriageState | None:
        return self.table.data.get(key)

    def put(self, key: str, value: TriageState, after=()) -> None:
        self.table.data[key] = value
        self._queue(key, value.partition, value, after)

    def delete(self, key: str, partition: int) -> None:
        self.table.data.pop(key, None)
        self._queue(key, partition, None, ())

    def _queue(self, key: str, partition: int, value, after) -> None:
        previous = self._pending.get(key)
        gate = [f for f in previous[2] if not f.done()] if previous else []
        gate.extend(after)
        self._pending[key] = (partition, value, gate)

    def drop_local(self, key: str) -> None:
        self.table.data.pop(key, None)
        self._pending.pop(key, None)

    def items(self):
        return self.table.data.items()

    def __len__(self) -> int:
        return len(self.table.data)

    async def flush(self) -> None:
        """Hand the queued changelog records whose gates are done to the producer.

        Raises:
            Exception: a gating delivery failed (the decision was not written): the worker
                must stop rather than record the trace as decided.
        """
        if not self._pending:
            return
        ready, waiting = {}, {}
        for key, entry in self._pending.items():
            gate = entry[2]
            if all(f.done() for f in gate):
                for f in gate:
                    if f.exception() is not None:
                        raise f.exception()
                ready[key] = entry
            else:
                waiting[key] = entry
        self._pending = waiting
        topic = self.table.changelog_topic.get_topic_name()
        send = self.app.producer.send
        for key, (partition, value, _) in ready.items():
            await send(topic, _key_bytes(key), value.to_bytes() if value is not None else None,
                       partition, None, None)

    async def drain(self) -> None:
        """Wait for every gate, then flush everything (before partitions move away)."""
        gates = [f for _, _, gate in self._pending.values() for f in gate]
        if gates:
            await asyncio.gather(*gates, return_exceptions=True)
        await self.flush()


def _key_bytes(key: str) -> bytes:
    # The table's key serializer is JSON (key_type=str): recovery expects '"<trace id>"'.
    return json.dumps(key).encode()


@dataclass
class TriageService:
    """The app and the parts tests and ``main`` need to reach."""

    app: faust.App
    engine: TriageEngine
    table: faust.Table
    metrics: TriageMetrics
    tset: TriageSettings
    redis: aredis.Redis


def _topics(settings: Settings) -> Topics:
    return Topics(raw=settings.topic("traces.raw"), feedback=settings.topic("feedback.events"),
                  triaged=settings.topic("traces.triaged"),
                  preference=settings.topic("preference.requests"),
                  annotation=settings.topic("annotation.tasks"),
                  health=settings.topic("pipeline.health"))


def _sampling(tset: TriageSettings, policy: Policy) -> SamplingPool:
    if not tset.model_enabled or not policy.uncertainty.enabled:
        return SamplingPool(None, tset.model_concurrency)
    cfg = SamplerConfig(tset.model_url, tset.model_name, tset.k_samples, tset.model_timeout_s,
                        policy.uncertainty.temperature, policy.uncertainty.max_tokens,
                        tset.model_api_key.get_secret_value())
    return SamplingPool(ModelSampler(cfg, CircuitBreaker(tset.model_cooldown_s)),
                        tset.model_concurrency)


class RangeReader:
    """Reads a range of offsets of one partition with its own group-less consumer (used to
    re-read records Faust skipped around a rebalance)."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._consumer = None

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                              enable_auto_commit=False)
            await self._consumer.start()
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        out: list[Record] = []
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while await self._consumer.position(tp) < end:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"re-reading {topic}[{partition}] {start}-{end} timed out")
            batch = await self._consumer.getmany(tp, timeout_ms=500)
            out += [Record(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                    for r in batch.get(tp, []) if r.offset < end]
        return out

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class CommittedOffsets:
    """The triage group's committed offsets, for the engine's start-of-reading hole check:
    read with an admin client off the event loop, at most once a second for all partitions."""

    def __init__(self, bootstrap: str, group: str, max_age_s: float = 1.0) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.max_age_s = max_age_s
        self._offsets: dict[tuple[str, int], int] = {}
        self._read_at = -1e9

    async def get(self, topic: str, partition: int) -> int | None:
        from flywheel.kafka.lag import committed_offsets

        if time.monotonic() - self._read_at > self.max_age_s:
            self._offsets = await asyncio.to_thread(committed_offsets, self.bootstrap, self.group)
            self._read_at = time.monotonic()
        return self._offsets.get((topic, partition))


def _owned(app: faust.App, raw_topic: str):
    def owned() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == raw_topic}
    return owned


def create_app(settings: Settings, tset: TriageSettings | None = None,
               policy: Policy | None = None) -> TriageService:
    """The triage app with its agents registered (nothing connects until the worker starts)."""
    tset = tset or TriageSettings()
    policy = policy or load_policy(tset.policy_path)
    app = make_faust_app(settings, SERVICE, FaustOptions(version=tset.faust_version,
                                                         store=tset.store, web_port=tset.web_port))
    spec = get_topic("traces.raw")
    source = app.topic(*(settings.topic(s) for s in SOURCE_TOPICS), key_type=bytes,
                       value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=spec.partitions)
    table = app.tables.add(_StateTable(app, name=TABLE, partitions=spec.partitions, key_type=str,
                                       beacon=app.tables.beacon,
                                       help="Triage join state per trace id."))
    topics = _topics(settings)
    client = aredis.Redis.from_url(settings.redis(), decode_responses=False,
                                   socket_timeout=tset.redis_timeout_s, socket_connect_timeout=3)
    namespace = settings.topic_prefix
    metrics = TriageMetrics()
    reader = RangeReader(settings.kafka())

    async def send(topic: str, key: bytes, value: bytes, partition: int | None = None):
        return await app.producer.send(topic, key, value, partition, None, None)

    engine = TriageEngine(
        topics=topics, tset=tset, policy=policy, store=FaustStateStore(app, table), send=send,
        deadletters=DeadLetterSender(settings, SERVICE, app=app),
        dedupe=DuplicateStore(client, namespace, int(policy.dedupe.ttl_days * 86400),
                              policy.dedupe.near_threshold),
        budgets=BudgetBuckets(client, namespace), sampling=_sampling(tset, policy),
        metrics=metrics, owned=_owned(app, topics.raw),
        busy=lambda: bool(app.in_recovery), read_range=reader.read,
        committed_offset=CommittedOffsets(settings.kafka(), app.conf.id).get,
    )
    register_agents(app, source, table, engine, tset)

    @app.on_before_shutdown.connect
    async def close_clients(sender, **kwargs) -> None:  # noqa: ANN001
        await reader.close()
        await engine.sampling.aclose()
        await client.aclose()

    return TriageService(app, engine, table, metrics, tset, client)
