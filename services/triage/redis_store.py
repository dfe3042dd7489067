"""Redis-backed shared state for triage: duplicate first occurrences and route budgets.

Why Redis for duplicates: the two input topics are partitioned by trace id, so two copies of
the same conversation usually land on different partitions, and maybe different workers. A
Faust table is partition-local and cannot answer "has any partition seen this before?". Redis
is shared by every worker and outlives them, and ``SET key value NX GET`` is atomic: the first
trace to claim an exact key or an LSH band bucket owns it, every later one reads the owner's id
back in the same round trip. That gives "first occurrence wins" across partitions, workers and
restarts without a coordinator. Claims are idempotent (a redelivered trace finds its own id).
Keys expire after the dedupe horizon (policy ``dedupe.ttl_days``).

All calls for one stream batch go in one pipeline (a second, smaller one for near-duplicate
candidates), so Redis costs one or two round trips per batch, not per trace.

Budgets are token buckets kept in Redis too, refilled and taken atomically by a Lua script, so
all workers share one hourly budget per route.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import redis.asyncio as aredis
from redis.exceptions import RedisError

from flywheel.errors import DependencyUnavailable
from flywheel.services.triage.logic.dedupe import (
    NOT_DUPLICATE,
    DuplicateVerdict,
    Fingerprint,
    judge_duplicate,
)

_GRANT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or size
local ts = tonumber(state[2]) or now
tokens = math.min(size, tokens + math.max(0, now - ts) * rate)
local granted = math.min(wanted, math.floor(tokens))
if granted < 0 then granted = 0 end
redis.call('HSET', key, 'tokens', tostring(tokens - granted), 'ts', tostring(now))
redis.call('EXPIRE', key, 7 * 86400)
return granted
"""


async def with_retry(op, what: str, attempts: int = 5, base_delay_s: float = 0.2):
    """Run an async Redis operation, retrying transient errors with exponential backoff.

    Raises:
        DependencyUnavailable: Redis still failed after ``attempts`` tries.
    """
    for attempt in range(attempts):
        try:
            return await op()
        except (RedisError, OSError) as exc:
            if attempt == attempts - 1:
                raise DependencyUnavailable(f"redis: {what} failed {attempts} times: {exc}") from exc
            await asyncio.sleep(base_delay_s * 2**attempt)
    raise AssertionError("unreachable")


# One call per batch, JSON in and out (one argument and one reply instead of ~20 per trace: the
# Python client's per-element packing and parsing would otherwise cost more than the dedupe).
# For each trace: claim the exact key and every band bucket (SET NX GET: the first claimant owns
# the key), store the signature, and answer with the exact owner plus, for every other owner
# found, its signature and its own first occurrence (root).
_CLAIM = """
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local items = cjson.decode(ARGV[3])
local out = {}
for n, item in ipairs(items) do
  local tid, exact, sig, bands = item[1], item[2], item[3], item[4]
  local owner = redis.call('SET', ns .. ':x:' .. exact, tid, 'NX', 'GET', 'EX', ttl)
  local res = {owner or ''}
  local seen = {}
  if owner then seen[owner] = true end
  local others = {}
  if owner and owner ~= tid then others[1] = owner end
  for _, band in ipairs(bands) do
    local o = redis.call('SET', ns .. ':b:' .. band, tid, 'NX', 'GET', 'EX', ttl)
    if o and o ~= tid and not seen[o] then
      seen[o] = true
      others[#others + 1] = o
    end
  end
  redis.call('SET', ns .. ':s:' .. tid, sig, 'EX', ttl)
  for _, o in ipairs(others) do
    res[#res + 1] = {o, redis.call('GET', ns .. ':s:' .. o) or '', redis.call('GET', ns .. ':r:' .. o) or ''}
  end
  out[n] = res
end
return cjson.encode(out)
"""


class DuplicateStore:
    """First occurrences of exact keys and LSH band buckets, shared by all workers."""

    def __init__(self, client: aredis.Redis, namespace: str, ttl_s: int, threshold: float) -> None:
        self.client = client
        self.ns = f"fw:triage:{namespace}:dup"
        self.ttl_s = max(1, int(ttl_s))
        self.threshold = threshold
        self._claim = client.register_script(_CLAIM)

    async def check(self, items: Sequence[tuple[str, Fingerprint]]) -> list[DuplicateVerdict]:
        """Claim each trace's keys and say, in order, which traces repeat an earlier one.

        A trace compared with itself (a redelivery) is never a duplicate.
        """
        live = [(tid, fp) for tid, fp in items if not fp.empty]
        if not live:
            return [NOT_DUPLICATE] * len(items)
        payload = json.dumps([[tid, fp.exact, fp.signature.hex(), list(fp.bands)]
                              for tid, fp in live], separators=(",", ":"))
        raw = await with_retry(lambda: self._claim(keys=[], args=[self.ns, self.ttl_s, payload]),
                               "duplicate check")
        verdicts: dict[str, DuplicateVerdict] = {}
        for (tid, fp), reply in zip(live, json.loads(raw)):
            exact = reply[0] or None
            owners, signatures, roots = [], {}, {}
            for owner, sig_hex, root in reply[1:]:
                owners.append(owner)
                if sig_hex:
                    signatures[owner] = bytes.fromhex(sig_hex)
                if root:
                    roots[owner] = root
            verdicts[tid] = judge_duplicate(tid, exact, owners, signatures, fp.signature,
                                            self.threshold, roots)
        roots = {tid: v.of for tid, v in verdicts.items() if v.is_duplicate}
        if roots:
            await with_retry(lambda: self._record_roots(roots), "duplicate roots")
        return [verdicts.get(tid, NOT_DUPLICATE) for tid, _ in items]

    async def _record_roots(self, roots: dict[str, str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for tid, root in roots.items():
            pipe.set(f"{self.ns}:r:{tid}", root.encode(), ex=self.ttl_s)
        await pipe.execute()


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class BudgetBuckets:
    """One token bucket per budgeted route, shared by all workers."""

    def __init__(self, client: aredis.Redis, namespace: str) -> None:
        self.client = client
        self.ns = f"fw:triage:{namespace}:budget"
        self._script = client.register_script(_GRANT)

    async def grant(self, route: str, wanted: int, per_hour: float, size: float, now: float) -> int:
        """Take up to ``wanted`` tokens from the route's bucket; returns how many were granted."""
        if wanted <= 0:
            return 0
        rate = per_hour / 3600.0
        return int(await with_retry(
            lambda: self._script(keys=[f"{self.ns}:{route}"], args=[rate, size, now, wanted]),
            f"budget {route}"))
