"""Budget token bucket and the streaming priority selection."""

from __future__ import annotations

from flywheel.services.triage.logic.budget import (
    BucketState,
    PriorityQueue,
    QueuedItem,
    grant_tokens,
    select,
)


def test_bucket_starts_full_and_refills() -> None:
    granted, state = grant_tokens(None, 0.0, rate_per_s=1.0, size=5, wanted=10)
    assert granted == 5 and state.tokens == 0
    granted, state = grant_tokens(state, 2.5, 1.0, 5, 10)
    assert granted == 2 and abs(state.tokens - 0.5) < 1e-9
    granted, state = grant_tokens(state, 100.0, 1.0, 5, 1)
    assert granted == 1 and state.tokens == 4  # capped at the bucket size
    assert grant_tokens(BucketState(3.0, 0.0), 0.0, 1.0, 5, 0)[0] == 0


def _q(*items: tuple[str, float, float], capacity: int = 100) -> PriorityQueue:
    q = PriorityQueue(capacity)
    for tid, prio, at in items:
        q.push(QueuedItem(tid, "annotate", prio, at))
    return q


def test_most_uncertain_first() -> None:
    q = _q(("a", 0.2, 0), ("b", 0.9, 1), ("c", 0.5, 2))
    assert [i.trace_id for i in q.pop_top(2)] == ["b", "c"]
    assert len(q) == 1 and "a" in q


def test_ties_go_to_the_oldest() -> None:
    q = _q(("late", 0.5, 10), ("early", 0.5, 1))
    assert q.pop_top(1)[0].trace_id == "early"


def test_reprioritise_and_remove() -> None:
    q = _q(("a", 0.1, 0), ("b", 0.5, 0))
    q.push(QueuedItem("a", "annotate", 0.9, 0))
    assert [i.trace_id for i in q.pop_top(1)] == ["a"]
    assert q.remove("b") is not None and len(q) == 0 and q.pop_top(5) == []


def test_full_queue_evicts_the_lowest() -> None:
    q = _q(("a", 0.3, 0), ("b", 0.6, 0), capacity=2)
    evicted = q.push(QueuedItem("c", "annotate", 0.9, 0))
    assert [i.trace_id for i in evicted] == ["a"]
    assert {i.trace_id for i in q.items()} == {"b", "c"}


def test_select_grants_then_expires() -> None:
    q = _q(("a", 0.9, 0), ("b", 0.8, 0), ("c", 0.1, 0), ("d", 0.2, 95))
    chosen = select(q, granted=2, now=100, max_wait_s=60)
    assert [i.trace_id for i in chosen.granted] == ["a", "b"]
    assert [i.trace_id for i in chosen.overflow] == ["c"]
    assert [i.trace_id for i in q.items()] == ["d"]
