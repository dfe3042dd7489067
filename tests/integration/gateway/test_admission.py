"""Admission against a real Redis: several requests in one script call, and the batcher that
collects the requests of one event-loop iteration into that call."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aredis

from flywheel.services.gateway.coordination import (
    DONE,
    NEW,
    PENDING,
    AdmitRequest,
    RedisCoordination,
)
from flywheel.services.gateway.ingest import AdmitBatcher


class CountingCoordination(RedisCoordination):
    """The real Redis coordination, counting its admission calls."""

    def __init__(self, client: aredis.Redis) -> None:
        super().__init__(client)
        self.calls: list[int] = []

    async def admit(self, app_id, requests, *, pending_ttl_s):  # noqa: ANN001, ANN201
        self.calls.append(len(requests))
        return await super().admit(app_id, requests, pending_ttl_s=pending_ttl_s)


def _request(ids: list[str], key_id: str = "k1", burst: int = 100) -> AdmitRequest:
    return AdmitRequest(key_id, "traces", ids, uuid.uuid4().hex, 0.001, burst)


def test_one_call_admits_several_requests_in_order(redis_url: str) -> None:  # noqa: ANN001
    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url)
        coordination = RedisCoordination(client)
        app = f"app-{uuid.uuid4().hex[:8]}"
        try:
            await coordination.commit(app, "traces", ["written"], 60)
            first = await coordination.admit(app, [
                _request(["a", "b"], burst=2),
                _request(["b", "written", "c"], burst=2),   # b: claimed by the first, pending
                _request(["d"], burst=2),                   # the bucket of k1 is empty: refused
                _request(["d"], key_id="k2", burst=2),      # another key's bucket
            ], pending_ttl_s=30)
            assert [a.allowed for a in first] == [True, True, False, True]
            assert first[0].states == [NEW, NEW]
            assert first[1].states == [PENDING, DONE, NEW]
            assert first[2].states == [] and first[2].retry_after_s > 1
            assert first[3].states == [NEW]   # the refused request claimed nothing
            assert await client.get(f"fw:idem:{{{app}}}:traces:d") is not None
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_requests_of_one_loop_iteration_share_one_call(redis_url: str) -> None:  # noqa: ANN001
    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url)
        coordination = CountingCoordination(client)
        batcher = AdmitBatcher(coordination, pending_ttl_s=30)
        apps = [f"app-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        try:
            futures = [batcher.admit(apps[i % 2], _request([f"t{i}", "same"])) for i in range(6)]
            admissions = await asyncio.gather(*futures)
            assert sorted(coordination.calls) == [3, 3]   # one call per app
            # per app, the first request claimed "same"; the later ones see it pending
            assert [a.states for a in admissions[:2]] == [[NEW, NEW], [NEW, NEW]]
            assert all(a.states == [NEW, PENDING] for a in admissions[2:])
            later = await batcher.admit(apps[0], _request(["t9"]))
            assert later.states == [NEW] and coordination.calls[-1] == 1
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_failed_call_fails_every_request_in_it() -> None:
    async def scenario() -> None:
        client = aredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
        batcher = AdmitBatcher(RedisCoordination(client), pending_ttl_s=30)
        futures = [batcher.admit("app", _request([f"t{i}"])) for i in range(3)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results), results
        await client.aclose()

    asyncio.run(scenario())


