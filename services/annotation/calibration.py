"""Calibration of the judge against people, per criterion over a sliding window.

The judge also labels a sample of tasks that people settled (``calibration_rate``, chosen by a
hash of the task id so replicas agree). Each (human final value, judge value) pair is pushed
onto a window, and the window's agreement is published for triage and the console:

* ``fw:calibration:<criterion>``: a hash with
  ``agreement`` (Cohen's kappa over the window, quadratic-weighted for ratings; the percent
  agreement when kappa is undefined), ``kappa``, ``percent``, ``n`` (pairs in the window),
  ``window``, ``threshold``, ``low`` (``1`` when ``n >= calibration_min_pairs`` and
  ``agreement < threshold``: send more items to people), ``updated_at`` (ISO UTC);
* ``fw:calibration:<criterion>:pairs``: the window itself, newest first, JSON ``[human, judge]``.

Criteria are the kinds the judge labels: ``rate``, ``pairwise``, ``classify_failure``.
Triage reads ``HGET fw:calibration:rate agreement`` (or ``low``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aredis

from flywheel.agreement import cohen_kappa

from .kinds import CLASSIFY_FAILURE, PAIRWISE, RATE, metric_for

CRITERIA: tuple[str, ...] = (RATE, PAIRWISE, CLASSIFY_FAILURE)


def calibration_key(criterion: str) -> str:
    return f"fw:calibration:{criterion}"


def pairs_key(criterion: str) -> str:
    return f"fw:calibration:{criterion}:pairs"


def should_calibrate(task_id: str, rate: float) -> bool:
    """Whether the judge re-labels this human-settled task (a stable hash sample)."""
    if rate <= 0:
        return False
    bucket = int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return bucket < rate


def window_summary(criterion: str, pairs: Sequence[tuple[Hashable, Hashable]], threshold: float,
                   min_pairs: int, window: int) -> dict[str, Any]:
    """The agreement of a window of (human, judge) pairs and whether it is low."""
    n = len(pairs)
    humans = [h for h, _ in pairs]
    judges = [j for _, j in pairs]
    weights = "quadratic" if metric_for(criterion) == "ordinal" and all(
        isinstance(v, int) for v in humans + judges) else None
    kappa = cohen_kappa(humans, judges, weights=weights) if n else None
    percent = sum(h == j for h, j in pairs) / n if n else None
    value = kappa if kappa is not None else percent
    return {
        "criterion": criterion,
        "agreement": None if value is None else round(value, 4),
        "statistic": "cohen_kappa" if kappa is not None else "percent",
        "kappa": None if kappa is None else round(kappa, 4),
        "percent": None if percent is None else round(percent, 4),
        "n": n, "window": window, "threshold": threshold,
        "low": bool(value is not None and n >= min_pairs and value < threshold),
    }


async def record_pair(client: aredis.Redis, criterion: str, human: Hashable, judge: Hashable, *,
                      window: int, threshold: float, min_pairs: int) -> dict[str, Any]:
    """Push one pair onto the criterion's window and republish its agreement."""
    key = pairs_key(criterion)
    async with client.pipeline(transaction=True) as pipe:
        pipe.lpush(key, json.dumps([human, judge]))
        pipe.ltrim(key, 0, window - 1)
        pipe.lrange(key, 0, window - 1)
        _, _, raw = await pipe.execute()
    pairs = [tuple(json.loads(item)) for item in raw]
    summary = window_summary(criterion, pairs, threshold, min_pairs, window)
    summary["updated_at"] = datetime.now(timezone.utc).isoformat()
    await client.hset(calibration_key(criterion), mapping=_redis_mapping(summary))
    return summary


def _redis_mapping(summary: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in summary.items():
        if isinstance(value, bool):
            out[name] = "1" if value else "0"
        else:
            out[name] = "" if value is None else str(value)
    return out


async def read_all(client: aredis.Redis) -> list[dict[str, Any]]:
    """The published calibration of every criterion that has one."""
    rows = []
    for criterion in CRITERIA:
        raw = await client.hgetall(calibration_key(criterion))
        if raw:
            rows.append({_text(k): _text(v) for k, v in raw.items()})
    return rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
