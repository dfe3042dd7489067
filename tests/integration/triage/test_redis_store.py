"""The shared duplicate store and budget buckets on a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aredis

from flywheel.services.triage.logic.dedupe import MinHashConfig, fingerprint
from flywheel.services.triage.redis_store import BudgetBuckets, DuplicateStore

CFG = MinHashConfig()
LONG = ("I ordered a green tent and a pair of hiking boots last month, the tracking page still "
        "says pending and nobody answered my two messages, where is my order 4821?")


@pytest.fixture
async def client(redis_url: str):
    c = aredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


def _store(client, ns: str | None = None) -> DuplicateStore:
    return DuplicateStore(client, ns or uuid.uuid4().hex, ttl_s=3600, threshold=0.8)


async def test_first_occurrence_wins_in_one_batch_and_across_calls(client) -> None:
    store = _store(client)
    a = fingerprint("user: Where is my order 12?\nassistant: It shipped.", CFG)
    b = fingerprint("user: where is my order 12\nassistant: it shipped", CFG)
    near_a = fingerprint("user: Hi, " + LONG + "\nassistant: Order 4821 has shipped.", CFG)
    near_b = fingerprint("user: Hello, " + LONG + "\nassistant: Order 4821 has shipped.", CFG)
    other = fingerprint("user: Where is my order 13?\nassistant: It shipped.", CFG)
    v = await store.check([("a", a), ("b", b), ("near-a", near_a)])
    assert [x.kind for x in v] == ["none", "exact", "none"] and v[1].of == "a"
    v = await store.check([("near-b", near_b), ("other", other)])
    assert v[0].kind == "near" and v[0].of == "near-a" and v[0].similarity >= 0.8
    assert not v[1].is_duplicate
    # A redelivery finds its own claims: not a duplicate of itself.
    assert not (await store.check([("a", a)]))[0].is_duplicate


async def test_duplicates_link_to_the_root(client) -> None:
    store = _store(client)
    fp = fingerprint("user: return policy?\nassistant: 30 days.", CFG)
    await store.check([("root", fp)])
    assert (await store.check([("second", fp)]))[0].of == "root"
    assert (await store.check([("third", fp)]))[0].of == "root"


async def test_two_workers_racing_agree_on_one_first(client) -> None:
    ns = uuid.uuid4().hex
    fp = fingerprint("user: same question\nassistant: same answer", CFG)
    w1, w2 = _store(client, ns), _store(client, ns)
    r1, r2 = await asyncio.gather(w1.check([("x1", fp)]), w2.check([("x2", fp)]))
    kinds = sorted([r1[0].kind, r2[0].kind])
    assert kinds == ["exact", "none"]


async def test_empty_texts_are_never_duplicates(client) -> None:
    store = _store(client)
    empty = fingerprint("", CFG)
    assert [v.kind for v in await store.check([("e1", empty), ("e2", empty)])] == ["none", "none"]


async def test_budget_bucket_is_shared(client) -> None:
    ns = uuid.uuid4().hex
    b1, b2 = BudgetBuckets(client, ns), BudgetBuckets(client, ns)
    assert await b1.grant("annotate", 5, per_hour=3600, size=3, now=100.0) == 3
    assert await b2.grant("annotate", 5, per_hour=3600, size=3, now=100.0) == 0
    assert await b2.grant("annotate", 5, per_hour=3600, size=3, now=102.0) == 2
    assert await b1.grant("preference", 0, per_hour=10, size=3, now=0.0) == 0
