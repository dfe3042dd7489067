"""The annotation queue and its leases, in Redis.

Keys (``<q>`` is ``label`` for annotators or ``review`` for reviewers):

* ``fw:ann:queue:<q>``: sorted set of task ids scored by triage's priority (highest first);
* ``fw:ann:kind``: hash task id -> kind (claim filters on it);
* ``fw:ann:lease:<task_id>``: ``<annotator_id>|<token>``, expiring after the lease time; while
  it exists nobody else can claim the task, and when it expires the task is claimable again;
* ``fw:ann:holder:<q>:<annotator_id>``: the task an annotator holds (a second claim returns it);
* ``fw:ann:done:<task_id>``: set of annotators who labelled the task (never offered it again).

Claiming is one Lua script: it walks the queue from the top, skips leased tasks, tasks of
another kind and tasks the caller already labelled, and leases the first one left, so two
annotators never get the same task at once. Open tasks are re-added from SQL at start-up.
The script touches keys it computes itself, so it needs a single Redis, not a cluster.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis.asyncio as aredis

LABEL_QUEUE = "label"
REVIEW_QUEUE = "review"
KIND_KEY = "fw:ann:kind"
_SCAN_BATCH = 200

_CLAIM = """
local queue, kinds = KEYS[1], KEYS[2]
local who, token, lease_ms, kind, holder = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local held = redis.call('GET', holder)
if held then
  local current = redis.call('GET', 'fw:ann:lease:' .. held)
  if current and string.sub(current, 1, #who + 1) == who .. '|'
     and redis.call('ZSCORE', queue, held) then
    return {held, string.sub(current, #who + 2), redis.call('PTTL', 'fw:ann:lease:' .. held)}
  end
end
local start = 0
while true do
  local ids = redis.call('ZREVRANGE', queue, start, start + tonumber(ARGV[6]) - 1)
  if #ids == 0 then return false end
  for _, id in ipairs(ids) do
    if (kind == '' or redis.call('HGET', kinds, id) == kind)
       and redis.call('EXISTS', 'fw:ann:lease:' .. id) == 0
       and redis.call('SISMEMBER', 'fw:ann:done:' .. id, who) == 0 then
      redis.call('SET', 'fw:ann:lease:' .. id, who .. '|' .. token, 'PX', lease_ms)
      redis.call('SET', holder, id, 'PX', lease_ms)
      return {id, token, lease_ms}
    end
  end
  start = start + tonumber(ARGV[6])
end
"""

_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """A claimed task: who holds it, the lease token and how long it has left."""

    task_id: str
    annotator_id: str
    token: str
    ttl_ms: int


def _queue(name: str) -> str:
    return f"fw:ann:queue:{name}"


def _lease(task_id: str) -> str:
    return f"fw:ann:lease:{task_id}"


def _holder(queue: str, annotator_id: str) -> str:
    return f"fw:ann:holder:{queue}:{annotator_id}"


async def enqueue(client: aredis.Redis, task_id: str, priority: float, kind: str,
                  queue: str = LABEL_QUEUE) -> None:
    """Offer a task (again); its kind is remembered for filtered claims."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(KIND_KEY, task_id, kind)
        pipe.zadd(_queue(queue), {task_id: priority})
        await pipe.execute()


async def dequeue(client: aredis.Redis, task_id: str, queue: str = LABEL_QUEUE,
                  forget: bool = False) -> None:
    """Take a task off a queue; ``forget`` also drops its kind and who labelled it."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.zrem(_queue(queue), task_id)
        if forget:
            pipe.hdel(KIND_KEY, task_id)
            pipe.delete(f"fw:ann:done:{task_id}")
        await pipe.execute()


async def claim(client: aredis.Redis, annotator_id: str, lease_s: float, kind: str | None = None,
                queue: str = LABEL_QUEUE) -> Lease | None:
    """Lease the highest-priority task the annotator may take, or None when there is none."""
    token = secrets.token_urlsafe(12)
    found = await client.eval(_CLAIM, 2, _queue(queue), KIND_KEY, annotator_id, token,
                              int(lease_s * 1000), kind or "", _holder(queue, annotator_id),
                              _SCAN_BATCH)
    if not found:
        return None
    task_id, token, ttl = found
    return Lease(_text(task_id), annotator_id, _text(token), int(ttl))


async def lease_holder(client: aredis.Redis, task_id: str) -> tuple[str, str] | None:
    """``(annotator_id, token)`` of the current lease on a task, or None."""
    value = await client.get(_lease(task_id))
    if value is None:
        return None
    who, _, token = _text(value).partition("|")
    return who, token


async def release(client: aredis.Redis, task_id: str, annotator_id: str,
                  queue: str = LABEL_QUEUE) -> bool:
    """Drop the annotator's lease on a task (after submitting, or to give it back)."""
    return bool(await client.eval(_RELEASE, 2, _lease(task_id), _holder(queue, annotator_id),
                                  annotator_id, task_id))


async def mark_labelled(client: aredis.Redis, task_id: str, annotator_id: str) -> None:
    """Never offer the task to this annotator again."""
    await client.sadd(f"fw:ann:done:{task_id}", annotator_id)


async def depth(client: aredis.Redis, queue: str = LABEL_QUEUE) -> int:
    return int(await client.zcard(_queue(queue)))


async def clear(client: aredis.Redis) -> None:
    """Drop both queues and the kind index (before a rebuild from SQL); leases stay."""
    await client.delete(_queue(LABEL_QUEUE), _queue(REVIEW_QUEUE), KIND_KEY)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
