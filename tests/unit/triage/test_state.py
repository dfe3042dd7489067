"""Join-state encoding and reducers."""

from __future__ import annotations

import pytest

from flywheel.services.triage.logic import state as st
from flywheel.services.triage.logic.feedback import FeedbackItem
from flywheel.services.triage.logic.state import StateDecodeError, TriageState


def _item(i: str = "e1", kind: str = "thumbs", thumbs: int = -1) -> FeedbackItem:
    return FeedbackItem(i, kind, thumbs, at=5.0)


def test_round_trip() -> None:
    state = TriageState(partition=3, status=st.DECIDED, trace=b"\x0a\x01x", trace_event_id="e",
                        trace_at=1.5, seen_at=2.0, due_at=3.0, expires_at=9.0,
                        report={"q": {"score": 1.0}}, feedback=(_item(),),
                        uncertainty={"k": 5}, verdict={"v": {"route": "annotate"}},
                        queued_at=4.0, revision=2, route="annotate", decision_id="d",
                        decided_at=8.0, redecide=False)
    assert TriageState.from_bytes(state.to_bytes()) == state
    empty = TriageState(partition=0)
    assert TriageState.from_bytes(empty.to_bytes()) == empty


def test_rejects_foreign_bytes() -> None:
    with pytest.raises(StateDecodeError):
        TriageState.from_bytes(b"{}")
    with pytest.raises(StateDecodeError):
        TriageState.from_bytes(b"FT1\x00\x00\x00\x05{bad}")


def test_feedback_before_trace_then_trace() -> None:
    s = st.new_state(2, now=100.0, late_window_s=50.0)
    assert s.status == st.WAITING_TRACE and s.expires_at == 150.0
    s, added = st.with_feedback(s, _item(), 101.0, strong=True)
    assert added and s.status == st.WAITING_TRACE and len(s.feedback) == 1
    s = st.with_trace(s, b"t", "ev", 90.0, {"x": 1}, 102.0, hold_s=10.0, late_window_s=50.0)
    assert s.status == st.PENDING and s.due_at == 112.0 and s.expires_at == 152.0
    s = st.with_trace(st.new_state(0, 0, 1), b"t", "ev", 0, {}, 5.0, 10.0, 1.0, decide_now=True)
    assert s.due_at == 5.0


def test_strong_feedback_makes_a_pending_trace_due() -> None:
    s = st.with_trace(st.new_state(0, 0, 100), b"t", "ev", 0, {}, 0.0, 10.0, 100.0)
    weak, _ = st.with_feedback(s, _item("a", "thumbs", 1), 2.0, strong=False)
    assert weak.due_at == 10.0
    strong, _ = st.with_feedback(s, _item("b"), 3.0, strong=True)
    assert strong.due_at == 3.0


def test_feedback_on_a_decided_trace_asks_for_a_redecision() -> None:
    s = st.with_trace(st.new_state(0, 0, 100), b"t", "ev", 0, {}, 0.0, 10.0, 100.0)
    s = st.decided(s, "judge", "d1", 1, 11.0, {"k": 0})
    assert s.status == st.DECIDED and s.revision == 1 and s.uncertainty == {"k": 0}
    s2, added = st.with_feedback(s, _item(), 20.0, strong=False)
    assert added and s2.status == st.PENDING and s2.redecide and s2.due_at == 20.0
    back = st.unchanged_after_redecide(s2)
    assert back.status == st.DECIDED and not back.redecide and back.revision == 1


def test_feedback_on_a_queued_trace_requeues_it() -> None:
    s = st.with_trace(st.new_state(0, 0, 100), b"t", "ev", 0, {}, 0.0, 10.0, 100.0)
    s = st.queued(s, {"v": {}}, 5.0)
    assert s.status == st.QUEUED
    s2, _ = st.with_feedback(s, _item(), 6.0, strong=False)
    assert s2.status == st.PENDING and s2.verdict is None and s2.due_at == 6.0


def test_duplicate_feedback_changes_nothing() -> None:
    s = st.new_state(0, 0, 100)
    s, _ = st.with_feedback(s, _item(), 1.0, strong=False)
    again, added = st.with_feedback(s, _item(), 2.0, strong=True)
    assert not added and again == s
