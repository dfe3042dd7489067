"""The Faust-table adapter: coalesced changelog writes and writes gated on delivery."""

from __future__ import annotations

import asyncio

import pytest

from flywheel.services.triage.app import FaustStateStore
from flywheel.services.triage.logic.state import TriageState


class _Topic:
    def get_topic_name(self) -> str:
        return "p-triage-join-state-changelog"


class _Table:
    def __init__(self) -> None:
        self.data: dict = {}
        self.changelog_topic = _Topic()


class _Producer:
    def __init__(self) -> None:
        self.sent: list = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition))


class _App:
    def __init__(self) -> None:
        self.producer = _Producer()


def _store() -> tuple[FaustStateStore, _Producer]:
    app = _App()
    return FaustStateStore(app, _Table()), app.producer


async def test_writes_are_coalesced_per_key() -> None:
    store, producer = _store()
    store.put("t1", TriageState(partition=2, status="pending"))
    store.put("t1", TriageState(partition=2, status="decided"))
    store.delete("t2", 4)
    assert store.get("t1").status == "decided"
    await store.flush()
    assert [(k, p) for _, k, _, p in producer.sent] == [(b'"t1"', 2), (b'"t2"', 4)]
    assert TriageState.from_bytes(producer.sent[0][2]).status == "decided"
    assert producer.sent[1][2] is None
    await store.flush()
    assert len(producer.sent) == 2


async def test_gated_writes_wait_for_delivery() -> None:
    store, producer = _store()
    delivery = asyncio.get_running_loop().create_future()
    store.put("t1", TriageState(partition=1, status="decided"), after=[delivery])
    assert store.get("t1").status == "decided"  # visible at once in memory
    await store.flush()
    assert producer.sent == []
    # A later write of the same key inherits the gate.
    store.put("t1", TriageState(partition=1, status="pending"))
    await store.flush()
    assert producer.sent == []
    delivery.set_result(None)
    await store.flush()
    assert len(producer.sent) == 1 and TriageState.from_bytes(producer.sent[0][2]).status == "pending"


async def test_failed_delivery_stops_the_worker() -> None:
    store, producer = _store()
    delivery = asyncio.get_running_loop().create_future()
    delivery.set_exception(RuntimeError("broker gone"))
    store.put("t1", TriageState(partition=1, status="decided"), after=[delivery])
    with pytest.raises(RuntimeError):
        await store.flush()
    assert producer.sent == []


async def test_drain_waits_for_every_gate() -> None:
    store, producer = _store()
    delivery = asyncio.get_running_loop().create_future()
    store.put("t1", TriageState(partition=1), after=[delivery])
    asyncio.get_running_loop().call_later(0.01, delivery.set_result, None)
    await store.drain()
    assert len(producer.sent) == 1
    store.put("t2", TriageState(partition=1))
    store.drop_local("t2")
    await store.flush()
    assert len(producer.sent) == 1 and len(store) == 1
