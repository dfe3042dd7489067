"""Redis state of the gateway: rate limits, idempotency claims and OTLP spans on hold.

One Lua script admits a request in a single round trip: it takes a token from the API key's
bucket (the algorithm of :func:`flywheel.rediskit.take_tokens`) and, only when that succeeds,
claims every event id of the request. The script takes several requests of one app at once,
in order, so the gateway admits every request that arrived in one event-loop iteration with
one call (:class:`~flywheel.services.gateway.ingest.AdmitBatcher`). A claim has two states:

- ``pending:<request token>`` while the request writes to the broker, expiring after
  ``pending_ttl_s`` so a crashed gateway cannot block an id for long;
- ``done`` once the broker acknowledged, kept for the idempotency window.

A second request with an id that is ``done`` gets "duplicate"; with an id that is ``pending``
it gets "in flight" (409, retry) rather than "duplicate", because the first write may still
fail, and telling the retry "duplicate" would then lose the event. A failed write releases only
its own pending claims (compare-and-delete), so a retry goes through.

Keys carry the app id in a hash tag (``{app}``) so one request's keys share a cluster slot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aredis

from .resp import Script, ScriptConnection, supports

NEW, DONE, PENDING = "new", "done", "pending"

_ADMIT = """
local now = tonumber(ARGV[1])
local pending_ms = tonumber(ARGV[2])
local out = {}
local k = 1
local a = 3
while a <= #ARGV do
  local rate = tonumber(ARGV[a])
  local burst = tonumber(ARGV[a + 1])
  local token = ARGV[a + 2]
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  local bucket = KEYS[k]
  local state = redis.call('HMGET', bucket, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local allowed = tokens >= 1
  if allowed then tokens = tokens - 1 end
  redis.call('HSET', bucket, 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', bucket, math.ceil(burst / rate * 1000) + 1000)
  if allowed then
    out[#out + 1] = 1
    out[#out + 1] = '0'
    out[#out + 1] = n
    for i = k + 1, k + n do
      if redis.call('SET', KEYS[i], token, 'NX', 'PX', pending_ms) then
        out[#out + 1] = 'new'
      elseif redis.call('GET', KEYS[i]) == 'done' then
        out[#out + 1] = 'done'
      else
        out[#out + 1] = 'pending'
      end
    end
  else
    out[#out + 1] = 0
    out[#out + 1] = tostring((1 - tokens) / rate)
    out[#out + 1] = 0
  end
  k = k + n + 1
end
return out
"""

_RELEASE = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
"""

_COMMIT = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[1]) end
return #KEYS
"""


@dataclass(frozen=True)
class AdmitRequest:
    """One request to admit: a token from ``key_id``'s bucket, then a claim per id."""

    key_id: str
    kind: str
    ids: list[str]
    token: str
    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class Admission:
    """The outcome of admitting one request: allowed, and each id's claim state."""

    allowed: bool
    retry_after_s: float
    states: list[str]


class Coordination(Protocol):
    """What the gateway needs from Redis (an in-memory fake implements it in unit tests)."""

    async def admit(self, app_id: str, requests: list[AdmitRequest], *,
                    pending_ttl_s: float) -> list[Admission]:
        """Admit the requests of one app in order (as if one after the other); one Admission
        each. A refused request claims nothing."""
        ...

    async def commit(self, app_id: str, kind: str, ids: list[str], window_s: int) -> None: ...

    async def release(self, app_id: str, kind: str, ids: list[str], token: str) -> None: ...

    async def hold_spans(self, app_id: str, trace_id: str, spans: dict[str, bytes],
                         due_at: float, ttl_s: float) -> None: ...

    async def held_spans(self, app_id: str, trace_ids: list[str]) -> dict[str, list[bytes]]: ...

    async def drop_held(self, app_id: str, trace_ids: list[str]) -> None: ...

    async def take_due(self, now: float, limit: int) -> list[tuple[str, str]]: ...

    async def postpone(self, app_id: str, trace_id: str, due_at: float) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _claim_key(app_id: str, kind: str, event_id: str) -> str:
    return f"fw:idem:{{{app_id}}}:{kind}:{event_id}"


def _bucket_key(app_id: str, key_id: str) -> str:
    return f"fw:rate:{{{app_id}}}:key:{key_id}"


def _hold_key(app_id: str, trace_id: str) -> str:
    return f"fw:otlp:{{{app_id}}}:hold:{trace_id}"


_DUE_KEY = "fw:otlp:due"
_SEP = "\x1f"


class RedisCoordination:
    """:class:`Coordination` over ``redis.asyncio``."""

    def __init__(self, client: aredis.Redis, url: str | None = None) -> None:
        """``client`` serves every call; with the ``redis://`` ``url`` of the same server, the
        per-request scripts (admit, commit, release) go over a pipelined connection instead
        (:mod:`~flywheel.services.gateway.resp`), which costs a fraction of the CPU."""
        self.client = client
        self._pipe = ScriptConnection(url) if url and supports(url) else None
        self._scripts = {source: (client.register_script(source), Script(source))
                         for source in (_ADMIT, _RELEASE, _COMMIT)}

    async def _run(self, source: str, keys: list[str], args: list) -> Any:
        through_client, script = self._scripts[source]
        if self._pipe is not None:
            return await self._pipe.run(script, keys, args)
        return await through_client(keys=keys, args=args)

    async def admit(self, app_id: str, requests: list[AdmitRequest], *,
                    pending_ttl_s: float) -> list[Admission]:
        keys: list[str] = []
        args: list[object] = [time.time(), int(pending_ttl_s * 1000)]
        for r in requests:
            keys.append(_bucket_key(app_id, r.key_id))
            keys.extend(_claim_key(app_id, r.kind, i) for i in r.ids)
            args.extend((r.rate_per_s, r.burst, r.token, len(r.ids)))
        result = await self._run(_ADMIT, keys, args)
        admissions, pos = [], 0
        for _ in requests:
            allowed, retry, count = bool(int(result[pos])), float(result[pos + 1]), int(result[pos + 2])
            states = [s.decode() if isinstance(s, bytes) else str(s)
                      for s in result[pos + 3:pos + 3 + count]]
            admissions.append(Admission(allowed, retry, states))
            pos += 3 + count
        return admissions

    async def commit(self, app_id: str, kind: str, ids: list[str], window_s: int) -> None:
        if ids:
            await self._run(_COMMIT, [_claim_key(app_id, kind, i) for i in ids], [window_s])

    async def release(self, app_id: str, kind: str, ids: list[str], token: str) -> None:
        if ids:
            await self._run(_RELEASE, [_claim_key(app_id, kind, i) for i in ids], [token])

    async def hold_spans(self, app_id: str, trace_id: str, spans: dict[str, bytes],
                         due_at: float, ttl_s: float) -> None:
        key = _hold_key(app_id, trace_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=spans)
            pipe.expire(key, int(ttl_s) + 1)
            pipe.zadd(_DUE_KEY, {f"{app_id}{_SEP}{trace_id}": due_at}, nx=True)
            await pipe.execute()

    async def held_spans(self, app_id: str, trace_ids: list[str]) -> dict[str, list[bytes]]:
        if not trace_ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for trace_id in trace_ids:
                pipe.hvals(_hold_key(app_id, trace_id))
            found = await pipe.execute()
        return {t: list(v) for t, v in zip(trace_ids, found) if v}

    async def drop_held(self, app_id: str, trace_ids: list[str]) -> None:
        if not trace_ids:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for trace_id in trace_ids:
                pipe.delete(_hold_key(app_id, trace_id))
                pipe.zrem(_DUE_KEY, f"{app_id}{_SEP}{trace_id}")
            await pipe.execute()

    async def take_due(self, now: float, limit: int) -> list[tuple[str, str]]:
        """Traces whose hold expired, each claimed by exactly one caller (ZREM decides)."""
        members = await self.client.zrangebyscore(_DUE_KEY, "-inf", now, start=0, num=limit)
        taken = []
        for member in members:
            if await self.client.zrem(_DUE_KEY, member):
                app_id, _, trace_id = member.decode().partition(_SEP)
                taken.append((app_id, trace_id))
        return taken

    async def postpone(self, app_id: str, trace_id: str, due_at: float) -> None:
        await self.client.zadd(_DUE_KEY, {f"{app_id}{_SEP}{trace_id}": due_at})

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()
        await self.client.aclose()
