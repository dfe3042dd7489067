"""The per-user daily question budget, kept in Redis.

``fw:pref:budget:<user>:<YYYYMMDD>`` (UTC day) counts the questions asked to a user that day;
it expires two days later. Taking from the budget is one atomic script, so replicas never ask
a user more than the limit, however they interleave.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aredis

from .logic import budget_key

BUDGET_TTL_S = 2 * 86_400

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


async def take_question(client: aredis.Redis, user_id: str, now: datetime, limit: int) -> bool:
    """Count one question for ``user_id`` today; False when the day's budget is spent."""
    return bool(await client.eval(_TAKE, 1, budget_key(user_id, now), limit, BUDGET_TTL_S))


async def give_back(client: aredis.Redis, user_id: str, now: datetime) -> None:
    """Return a question that was counted but never asked (the second answer failed)."""
    key = budget_key(user_id, now)
    if int(await client.decr(key)) < 0:
        await client.set(key, 0, ex=BUDGET_TTL_S)


async def used_today(client: aredis.Redis, user_id: str, now: datetime) -> int:
    return int(await client.get(budget_key(user_id, now)) or 0)
