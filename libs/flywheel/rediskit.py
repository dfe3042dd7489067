"""Redis helpers for short-lived coordination: idempotency keys, rate limits, leases, locks.

Durable facts live in SQL; Redis holds what may expire. Every helper takes a client, so
callers choose sync (``redis.Redis``) or async (``redis.asyncio.Redis``) themselves where the
helper exists in both forms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from flywheel.errors import FlywheelError
from flywheel.settings import Settings


class LockLost(FlywheelError):
    """A lock's fencing token is no longer the current one (it expired and was taken)."""


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis(), decode_responses=False,
                                socket_timeout=5, socket_connect_timeout=3)


def make_async_redis(settings: Settings) -> aredis.Redis:
    return aredis.Redis.from_url(settings.redis(), decode_responses=False,
                                 socket_timeout=5, socket_connect_timeout=3)


# --- idempotency ---------------------------------------------------------------------------

async def claim_once(client: aredis.Redis, namespace: str, key: str, ttl_s: int) -> bool:
    """True the first time ``key`` is seen in ``namespace`` within ``ttl_s``; False after."""
    return bool(await client.set(f"fw:idem:{namespace}:{key}", b"1", nx=True, ex=ttl_s))


async def release_claim(client: aredis.Redis, namespace: str, key: str) -> None:
    """Forget a claim (when the work it guarded failed and must be retried)."""
    await client.delete(f"fw:idem:{namespace}:{key}")


# --- rate limiting: a token bucket evaluated atomically in Redis ---------------------------

_BUCKET = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float


async def take_tokens(client: aredis.Redis, bucket: str, rate_per_s: float, burst: int,
                      cost: int = 1) -> RateDecision:
    """Take ``cost`` tokens from ``bucket``; refuse with the seconds until enough refill."""
    allowed, retry = await client.eval(_BUCKET, 1, f"fw:rate:{bucket}", rate_per_s, burst,
                                       time.time(), cost)
    return RateDecision(bool(int(allowed)), float(retry))


# --- locks with fencing tokens --------------------------------------------------------------

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class FencedLock:
    """A lease-based lock whose holder gets a monotonically increasing fencing token.

    A holder that dies stops extending, the key expires and the next holder gets a larger
    token; writers check ``is_current`` (or compare tokens in SQL) before committing, so a
    stale holder that wakes up late cannot overwrite newer work.
    """

    def __init__(self, client: redis.Redis, name: str, ttl_s: float = 30.0) -> None:
        self.client = client
        self.key = f"fw:lock:{name}"
        self.counter = f"fw:lockseq:{name}"
        self.ttl_ms = int(ttl_s * 1000)
        self.token: int | None = None

    def try_acquire(self) -> int | None:
        token = int(self.client.incr(self.counter))
        if self.client.set(self.key, str(token), nx=True, px=self.ttl_ms):
            self.token = token
            return token
        return None

    def acquire(self, timeout_s: float | None = None, poll_s: float = 0.2) -> int:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            token = self.try_acquire()
            if token is not None:
                return token
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"lock {self.key} still held after {timeout_s}s")
            time.sleep(poll_s)

    def extend(self) -> None:
        if self.token is None or not self.client.eval(_EXTEND, 1, self.key, str(self.token),
                                                      self.ttl_ms):
            raise LockLost(f"lock {self.key} lost (token {self.token})")

    def is_current(self) -> bool:
        value = self.client.get(self.key)
        return self.token is not None and value is not None and int(value) == self.token

    def release(self) -> None:
        if self.token is not None:
            self.client.eval(_RELEASE, 1, self.key, str(self.token))
            self.token = None

    def __enter__(self) -> "FencedLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
