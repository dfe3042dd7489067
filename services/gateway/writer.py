"""Writing events to Kafka: acks=all, a deadline, and no partly visible batch.

Why transactions. A request of several events is written in one Kafka transaction, so a
consumer reading with ``isolation_level=read_committed`` (what the triage service must use)
sees all of it or none of it. Without them, a batch spread over six partitions could land on
some partitions and not on others when the broker fails in the middle; the client would get
503 and retry, and the partitions that did get written would then carry those events twice.

Cost, and how it is kept down. A transaction costs the AddPartitionsToTxn and EndTxn round
trips and the commit markers, tens of milliseconds here. Batch requests therefore share
transactions ("group commit"): each of ``transaction_lanes`` transactional producers takes
every batch waiting when it is free and commits them together; a failed transaction fails
exactly the requests in it. A single-event request needs no transaction (one record is
written atomically) and goes through a plain idempotent producer with a short linger, which
keeps its latency low. ``FLYWHEEL_GATEWAY_ATOMIC_BATCHES=false`` sends batches the plain way
too, grouped in the same way (every batch waiting when the previous group is acknowledged goes
out together); ``make bench`` measures both.

Deadlines and outages. A write that is not acknowledged within the deadline fails with
:class:`BrokerUnavailable` (503), and its producer is abandoned before the answer goes out:
its sender task is cancelled and its pending records failed, so nothing of the request can be
delivered after the client was told 503 (a producer left to ``stop()`` would keep retrying and
deliver them once the broker is back, and the client's retry would then write them twice).
The next write starts a new producer; a transactional one keeps its transactional id, which
fences the old one, so the broker aborts its unfinished transaction. The one ambiguity left is
a broker that appended a record and died before answering: if such a record is acknowledged
after its deadline after all, ``on_late_success`` runs, so the gateway marks the id written and
the client's retry is answered as a duplicate rather than written twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from flywheel.errors import DependencyUnavailable
from flywheel.kafka.partition import partition_for
from flywheel.logging import get_logger

from .errors import BrokerUnavailable

log = get_logger(__name__)

LateSuccess = Callable[[], Awaitable[None]]
_STOP_GRACE_S = 5.0
_START_BACKOFF_S = 0.5


class Record(NamedTuple):
    """One Kafka record: topic, key and value bytes (a tuple: one is made per event)."""

    topic: str
    key: bytes
    value: bytes


class EventWriter(Protocol):
    """What the gateway needs from the broker (a fake implements it in unit tests)."""

    async def start(self, timeout_s: float = 30.0) -> None: ...

    async def write(self, records: list[Record], deadline_s: float,
                    on_late_success: LateSuccess | None = None) -> None: ...

    async def ping(self, timeout_s: float) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ProducerConfig:
    """aiokafka settings shared by the plain and transactional producers."""

    bootstrap: str
    client_id: str = "flywheel-gateway"
    linger_ms: int = 5
    request_timeout_ms: int = 5000
    max_batch_size: int = 256 * 1024
    max_request_size: int = 4 * 1024 * 1024
    transaction_timeout_ms: int = 30_000

    def make(self, transactional_id: str | None = None) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=0 if transactional_id else self.linger_ms,
            request_timeout_ms=self.request_timeout_ms,
            max_batch_size=self.max_batch_size,
            max_request_size=self.max_request_size,
            transactional_id=transactional_id,
            transaction_timeout_ms=self.transaction_timeout_ms,
            retry_backoff_ms=50,
        )


async def _stop_quietly(producer: AIOKafkaProducer, timeout_s: float = _STOP_GRACE_S) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout_s)
    except BaseException as exc:  # noqa: BLE001 - a broken producer may fail any way on stop
        log.warning("producer_stop_failed", error=type(exc).__name__)


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Stop a producer we gave up on without letting it deliver anything more.

    ``stop()`` alone would keep retrying pending records until they are delivered or expire,
    and a record delivered after the client was told 503 is exactly what must not happen. So
    the sender task is cancelled first and every pending record failed; then the producer is
    stopped. (Private attributes of aiokafka 0.14, which the project pins.)
    """
    sender = getattr(producer, "_sender", None)
    accumulator = getattr(producer, "_message_accumulator", None)
    try:
        if sender is not None:
            await asyncio.wait_for(sender.close(), _STOP_GRACE_S)
    except BaseException as exc:  # noqa: BLE001
        log.warning("producer_sender_cancel_failed", error=type(exc).__name__)
    if accumulator is not None:
        accumulator.fail_all(KafkaTimeoutError("abandoned after the write deadline"))
    await _stop_quietly(producer)


class _Slot:
    """One producer that is started on demand and replaced after a failure."""

    def __init__(self, config: ProducerConfig, transactional_id: str | None = None) -> None:
        self.config = config
        self.transactional_id = transactional_id
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task] = set()
        self._failed_at = -1e9

    async def get(self, timeout_s: float) -> AIOKafkaProducer:
        """The current producer, starting one if needed, within ``timeout_s`` in all.

        After a failed start, callers fail at once for ``_START_BACKOFF_S`` instead of each
        trying again: during an outage requests get their 503 fast.
        """
        producer = self.producer
        if producer is not None:
            return producer
        if time.monotonic() - self._failed_at < _START_BACKOFF_S:
            raise BrokerUnavailable("the broker was unreachable a moment ago", 1)
        async with asyncio.timeout(max(timeout_s, 0.01)):
            async with self._lock:
                if self.producer is None:
                    candidate = self.config.make(self.transactional_id)
                    try:
                        await candidate.start()
                    except BaseException:
                        self._failed_at = time.monotonic()
                        self._retire(candidate)
                        raise
                    self.producer = candidate
                return self.producer

    def discard(self, producer: AIOKafkaProducer) -> None:
        """Stop using ``producer`` (if it is still the current one) and abandon it."""
        if self.producer is producer:
            self.producer = None
            sender = getattr(producer, "_sender", None)
            task = getattr(sender, "sender_task", None)
            if task is not None:
                task.cancel()  # now, before the caller answers 503: no send after that answer
            self._retire(producer)

    def _retire(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.get_running_loop().create_task(_abandon(producer))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def close(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await _stop_quietly(producer)
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)


def _by_partition(records: list[Record], partitions: dict[str, list[int]]) -> dict:
    groups: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        all_parts = partitions[record.topic]
        part = all_parts[partition_for(record.key, len(all_parts))]
        groups.setdefault((record.topic, part), []).append(record)
    return groups


async def _send_all(producer: AIOKafkaProducer, records: list[Record]) -> list[asyncio.Future]:
    """Queue records; one record goes through ``send``, more through per-partition batches.

    The partition of a keyed record is the default murmur2 partitioner's choice, as ``send``
    would make it (:func:`flywheel.kafka.partition.partition_for`), so batch and single
    writes of one key land on the same partition.
    """
    if len(records) == 1:
        record = records[0]
        return [await producer.send(record.topic, record.value, key=record.key)]
    partitions = {}
    for topic in {r.topic for r in records}:
        partitions[topic] = sorted(await producer.partitions_for(topic))
    futures = []
    for (topic, part), group in _by_partition(records, partitions).items():
        batch = producer.create_batch()
        for record in group:
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=part))
                batch = producer.create_batch()
                if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                    raise BrokerUnavailable(f"a {len(record.value)}-byte record does not fit "
                                            "in a producer batch", 1)
        futures.append(await producer.send_batch(batch, topic, partition=part))
    return futures


@dataclass
class _Pending:
    records: list[Record]
    deadline_at: float
    on_late_success: LateSuccess | None = None
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _settle(group: list[_Pending], failure: BaseException | None = None) -> None:
    """Answer every request of a group written together: all failed, or all written."""
    for pending in group:
        if not pending.future.done():
            if failure is None:
                pending.future.set_result(None)
            else:
                pending.future.set_exception(failure)


class _TransactionLanes:
    """Transactional producers that commit waiting batch requests together (group commit)."""

    def __init__(self, config: ProducerConfig, lanes: int, max_group_records: int = 20_000,
                 cooldown_s: float = 0.005,
                 on_commit: Callable[[int], None] | None = None) -> None:
        base = f"{config.client_id}-{uuid.uuid4().hex[:12]}"
        self.on_commit = on_commit  # called with the number of requests in each committed group
        self.slots = [_Slot(config, f"{base}-{i}") for i in range(lanes)]
        self.cooldown_s = cooldown_s
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.max_group_records = max_group_records
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._lane(slot)) for slot in self.slots]

    async def write(self, records: list[Record], deadline_s: float) -> None:
        pending = _Pending(records, time.monotonic() + deadline_s)
        self.queue.put_nowait(pending)
        # The lane resolves every request by its deadline; the margin only guards against bugs.
        await asyncio.wait_for(asyncio.shield(pending.future), deadline_s + _STOP_GRACE_S)

    def _take_group(self, first: _Pending) -> list[_Pending]:
        group, count = [first], len(first.records)
        while count < self.max_group_records and not self.queue.empty():
            item = self.queue.get_nowait()
            group.append(item)
            count += len(item.records)
        return [g for g in group if not g.future.done()]

    async def _lane(self, slot: _Slot) -> None:
        while True:
            group = self._take_group(await self.queue.get())
            if not group:
                continue
            remaining = min(g.deadline_at for g in group) - time.monotonic()
            try:
                await self._commit(slot, [r for g in group for r in g.records], remaining)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure fails the whole group
                _settle(group, BrokerUnavailable(f"the broker did not commit the batch: "
                                                 f"{type(exc).__name__}", 1))
            else:
                _settle(group)
                if self.on_commit is not None:
                    self.on_commit(len(group))
            # The broker writes the commit markers after answering EndTxn; a transaction begun
            # on this producer before they are written gets CONCURRENT_TRANSACTIONS and aiokafka
            # backs off 20 ms (KAFKA-5477). Resting a few ms lets an idle lane take the next
            # group instead (queue getters are served in order), or the group grows meanwhile.
            if self.cooldown_s:
                await asyncio.sleep(self.cooldown_s)

    async def _commit(self, slot: _Slot, records: list[Record], remaining: float) -> None:
        started = time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed while queued")
        producer = await slot.get(remaining)
        remaining -= time.monotonic() - started
        try:
            await asyncio.wait_for(self._transaction(producer, records), max(remaining, 0.01))
        except BaseException:
            slot.discard(producer)  # a new producer with this transactional id fences this one
            raise

    @staticmethod
    async def _transaction(producer: AIOKafkaProducer, records: list[Record]) -> None:
        await producer.begin_transaction()
        futures = await _send_all(producer, records)
        await producer.commit_transaction()
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(slot.close() for slot in self.slots), return_exceptions=True)


class _PlainBatches:
    """Batch requests written without transactions, grouped: every request waiting when the
    previous group is acknowledged goes out in the next one, as one producer batch per
    partition. Sent one by one, concurrent requests would queue behind each other on the same
    partitions (the producer keeps one batch per partition waiting and each request's batch
    waits for the one before it to be sent), and under load the last ones passed the deadline.
    A group shares the earliest deadline of its requests and fails or succeeds as a whole."""

    def __init__(self, writer: KafkaEventWriter) -> None:
        self.writer = writer
        self.waiting: list[_Pending] = []
        self.task: asyncio.Task | None = None

    async def write(self, records: list[Record], deadline_s: float,
                    on_late_success: LateSuccess | None) -> None:
        pending = _Pending(records, time.monotonic() + deadline_s, on_late_success)
        self.waiting.append(pending)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.shield(pending.future)

    async def _run(self) -> None:
        while self.waiting:
            await asyncio.sleep(0)  # the requests of this loop iteration join the group
            group, self.waiting = [g for g in self.waiting if not g.future.done()], []
            if not group:
                continue
            callbacks = [g.on_late_success for g in group if g.on_late_success is not None]

            async def late_success(callbacks: list[LateSuccess] = callbacks) -> None:
                for callback in callbacks:
                    await callback()

            remaining = min(g.deadline_at for g in group) - time.monotonic()
            try:
                await self.writer._write_plain([r for g in group for r in g.records],
                                               max(remaining, 0.01), late_success)
            except BaseException as exc:  # noqa: BLE001 - the whole group fails together
                _settle(group, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                _settle(group)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class KafkaEventWriter:
    """:class:`EventWriter` over aiokafka (see the module docstring for the guarantees)."""

    def __init__(self, config: ProducerConfig, *, atomic_batches: bool = True,
                 lanes: int = 2, lane_cooldown_s: float = 0.005,
                 on_commit: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.plain = _Slot(config)
        self.lanes = _TransactionLanes(config, lanes, cooldown_s=lane_cooldown_s,
                                       on_commit=on_commit) if atomic_batches else None
        self.plain_batches = _PlainBatches(self)
        self._late: set[asyncio.Task] = set()

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect the plain producer (and start the lanes), retrying for up to ``timeout_s``.

        Raises:
            DependencyUnavailable: the broker did not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.plain.get(max(0.1, deadline - time.monotonic()))
                break
            except Exception as exc:  # noqa: BLE001 - any failure to connect: retry, bounded
                if time.monotonic() >= deadline:
                    raise DependencyUnavailable(
                        f"Kafka at {self.config.bootstrap} did not answer within "
                        f"{timeout_s:.0f}s: {type(exc).__name__}") from None
                log.warning("broker_not_ready_yet", error=type(exc).__name__)
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if self.lanes is not None:
            self.lanes.start()

    async def write(self, records: list[Record], deadline_s: float,
                    on_late_success: LateSuccess | None = None) -> None:
        """Write ``records`` and return once the broker acknowledged all of them.

        Raises:
            BrokerUnavailable: not acknowledged within ``deadline_s``; for a batch, nothing of
                it is visible to read_committed consumers.
        """
        if not records:
            return
        if len(records) > 1:
            if self.lanes is not None:
                await self.lanes.write(records, deadline_s)
            else:
                await self.plain_batches.write(records, deadline_s, on_late_success)
            return
        await self._write_plain(records, deadline_s, on_late_success)

    async def _write_plain(self, records: list[Record], deadline_s: float,
                           on_late_success: LateSuccess | None) -> None:
        started = time.monotonic()
        try:
            producer = await self.plain.get(deadline_s)
        except BaseException as exc:  # noqa: BLE001 - cannot connect: the broker is away
            raise BrokerUnavailable(f"cannot reach the broker: {type(exc).__name__}", 1) from None
        remaining = deadline_s - (time.monotonic() - started)
        acks: asyncio.Future | None = None
        try:
            async with asyncio.timeout(max(remaining, 0.01)):
                futures = await _send_all(producer, records)
                acks = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
                await asyncio.shield(acks)
        except BaseException as exc:
            self.plain.discard(producer)
            if acks is not None and on_late_success is not None:
                self._watch_late(acks, on_late_success)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise BrokerUnavailable(f"the broker did not acknowledge in time: "
                                    f"{type(exc).__name__}", 1) from None

    def _watch_late(self, acks: asyncio.Future, callback: LateSuccess) -> None:
        async def watch() -> None:
            try:
                await acks
            except BaseException:  # noqa: BLE001 - failed for good: nothing was written
                return
            log.warning("late_broker_ack")
            await callback()

        task = asyncio.get_running_loop().create_task(watch())
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def ping(self, timeout_s: float) -> None:
        """Fetch cluster metadata from the broker (not the cache) within ``timeout_s``."""
        producer = await self.plain.get(timeout_s)
        async with asyncio.timeout(timeout_s):
            ok = await producer.client.fetch_all_metadata()
        if ok is None or not ok.brokers():
            raise BrokerUnavailable("no broker in the cluster metadata", 1)

    async def stop(self) -> None:
        if self.lanes is not None:
            await self.lanes.stop()
        await self.plain_batches.stop()
        await self.plain.close()
        for task in list(self._late):
            task.cancel()
