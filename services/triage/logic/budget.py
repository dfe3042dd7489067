"""Budgets for the routes that cost people's time: a token bucket and a priority queue.

Each budgeted route (``annotate``, ``preference``) has a bucket that refills at
``per_hour / 3600`` tokens a second up to ``bucket_size``. Items that the policy sends to the
route wait in a priority queue. On every tick the worker asks the bucket for as many tokens
as it has queued items; the granted number of highest-priority items go to the route. This is a
streaming priority selection: within the budget, the most uncertain items of the recent stream
go first. An item that waits longer than ``max_wait_s``, or is pushed out of a full queue by
higher-priority items, takes the ``overflow_route`` (the LLM judge by default).

:func:`grant_tokens` is the pure bucket arithmetic; the shared bucket (across workers) runs the
same arithmetic inside Redis (:mod:`flywheel.services.triage.redis_store`).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_at: float


def grant_tokens(state: BucketState | None, now: float, rate_per_s: float, size: float,
                 wanted: int) -> tuple[int, BucketState]:
    """Refill the bucket to ``now`` and take up to ``wanted`` whole tokens.

    Returns:
        The number granted and the new bucket state.
    """
    if state is None:
        state = BucketState(size, now)
    tokens = min(size, state.tokens + max(0.0, now - state.updated_at) * rate_per_s)
    granted = max(0, min(wanted, int(tokens)))
    return granted, BucketState(tokens - granted, now)


@dataclass(frozen=True)
class QueuedItem:
    """One trace waiting for a budgeted route."""

    trace_id: str
    route: str
    priority: float
    enqueued_at: float


@dataclass(frozen=True)
class Selection:
    """What one tick decided: items that got the route, items that overflowed."""

    granted: list[QueuedItem]
    overflow: list[QueuedItem]


class PriorityQueue:
    """Highest priority first; ties go to the item that waited longest. Removal is lazy."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._heap: list[tuple[float, float, int, str]] = []
        self._items: dict[str, QueuedItem] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self._items

    def items(self) -> list[QueuedItem]:
        return list(self._items.values())

    def push(self, item: QueuedItem) -> list[QueuedItem]:
        """Add (or re-prioritise) an item; returns the items evicted from a full queue."""
        self._items[item.trace_id] = item
        heapq.heappush(self._heap, (-item.priority, item.enqueued_at, next(self._seq), item.trace_id))
        evicted = []
        while len(self._items) > self.capacity:
            lowest = min(self._items.values(), key=lambda i: (i.priority, -i.enqueued_at))
            evicted.append(self._items.pop(lowest.trace_id))
        return evicted

    def remove(self, trace_id: str) -> QueuedItem | None:
        return self._items.pop(trace_id, None)

    def pop_top(self, n: int) -> list[QueuedItem]:
        """Remove and return the ``n`` highest-priority items."""
        out: list[QueuedItem] = []
        while self._heap and len(out) < n:
            neg_prio, enq, _, trace_id = heapq.heappop(self._heap)
            item = self._items.get(trace_id)
            if item is None or item.priority != -neg_prio or item.enqueued_at != enq:
                continue  # removed or re-prioritised since
            del self._items[trace_id]
            out.append(item)
        return out

    def expire(self, now: float, max_wait_s: float) -> list[QueuedItem]:
        """Remove and return the items that waited longer than ``max_wait_s``."""
        old = [i for i in self._items.values() if now - i.enqueued_at > max_wait_s]
        for item in old:
            del self._items[item.trace_id]
        return old


def select(queue: PriorityQueue, granted: int, now: float, max_wait_s: float) -> Selection:
    """Give ``granted`` slots to the best queued items, then expire the ones that waited too long."""
    chosen = queue.pop_top(granted)
    return Selection(chosen, queue.expire(now, max_wait_s))
