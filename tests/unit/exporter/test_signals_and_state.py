"""Signal reducers (traces, feedback, preferences) and the release state of a line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flywheel.events.envelope import stamp
from flywheel.services.exporter.logic.releases import (
    LineState,
    ReleaseRow,
    ReleaseRuleError,
    fold_releases,
    plan_promote,
    plan_rollback,
)
from flywheel.services.exporter.logic.signals import (
    FeedbackRecord,
    ServedRecord,
    SignalBook,
    feedback_record,
    preference_record,
    served_record,
)
from flywheel.v1 import common_pb2, feedback_pb2, preference_pb2, trace_pb2

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _served(i: int, version: str, *, failed: bool = False, line: str = "shop",
            at: datetime = T0) -> ServedRecord:
    return ServedRecord(f"e{i}", f"t{i}", f"r{i}", line, version, at, failed)


def test_feedback_joins_the_version_that_answered() -> None:
    book = SignalBook("shop")
    book.add_trace(_served(1, "2"))
    book.add_trace(_served(2, "1", failed=True))
    book.add_feedback(FeedbackRecord("f1", "t1", "r1", "down", 2.0))
    book.add_feedback(FeedbackRecord("f2", "t2", "", "up", None))
    two, one = book.signals("2"), book.signals("1")
    assert (two.requests, two.thumbs_down, two.ratings, two.rating_sum) == (1, 1, 1, 2.0)
    assert (one.requests, one.errors, one.thumbs_up) == (1, 1, 1)


def test_early_feedback_waits_for_its_trace() -> None:
    book = SignalBook("shop")
    book.add_feedback(FeedbackRecord("f1", "t9", "r9", "down"))
    assert book.pending_feedback == 1
    book.add_trace(_served(9, "3"))
    assert book.signals("3").thumbs_down == 1
    assert book.pending_feedback == 0


def test_reducers_are_idempotent_and_filter_line_and_window() -> None:
    book = SignalBook("shop", since=T0)
    for _ in range(3):
        book.add_trace(_served(1, "2"))
        book.add_feedback(FeedbackRecord("f1", "t1", "r1", "down"))
    book.add_trace(_served(2, "2", line="other"))
    book.add_trace(_served(3, "2", at=T0 - timedelta(minutes=1)))
    assert book.signals("2").requests == 1
    assert book.signals("2").thumbs_down == 1


def test_head_to_head_counts_both_directions() -> None:
    from flywheel.services.exporter.logic.signals import PreferenceRecord

    book = SignalBook("shop")
    book.add_preference(PreferenceRecord("p1", "shop", "2", "1"))
    book.add_preference(PreferenceRecord("p2", "shop", "2", "1"))
    book.add_preference(PreferenceRecord("p3", "shop", "1", "2"))
    book.add_preference(PreferenceRecord("p4", "shop", "1", "2", tie=True, ratings={"1": 6.0, "2": 5.0}))
    h2h = book.head_to_head("2", "1")
    assert (h2h.wins, h2h.losses, h2h.ties) == (2, 1, 1)
    assert book.signals("2").rating_sum == 5.0


def test_records_from_protobuf_events() -> None:
    trace = trace_pb2.Trace(trace_id="t1", request_id="r1", model=common_pb2.ModelRef(name="shop", version="4"))
    trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE
    trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_MODEL
    rec = served_record(stamp(trace, "test"))
    assert rec is not None and rec.failed and rec.version == "4" and rec.occurred_at.tzinfo is not None
    trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_SYSTEM
    assert not served_record(trace).failed
    assert served_record(trace_pb2.Trace(trace_id="x")) is None

    fb = feedback_pb2.FeedbackEvent(trace_id="t1", request_id="r1")
    fb.feedback.thumbs = feedback_pb2.THUMBS_DOWN
    fb.feedback.ratings.helpfulness = 2
    fb.feedback.ratings.correctness = 4
    rec = feedback_record(stamp(fb, "test"))
    assert rec.thumbs == "down" and rec.rating == 3.0
    assert feedback_record(feedback_pb2.FeedbackEvent(trace_id="t")) is None

    answer = preference_pb2.PreferenceAnswer(chosen=common_pb2.CHOICE_B)
    answer.chosen_model.name, answer.chosen_model.version = "shop", "5"
    answer.rejected_model.name, answer.rejected_model.version = "shop", "4"
    answer.ratings_a.helpfulness = 3
    answer.ratings_b.helpfulness = 6
    rec = preference_record(stamp(answer, "test"))
    assert (rec.chosen_version, rec.rejected_version, rec.tie) == ("5", "4", False)
    assert rec.ratings == {"4": 3.0, "5": 6.0}


# -- release state ----------------------------------------------------------------------------

def test_fold_release_log() -> None:
    rows = [ReleaseRow("canary", 1, T0), ReleaseRow("promote", 1, T0), ReleaseRow("canary", 2, T0),
            ReleaseRow("rollback", 2, T0), ReleaseRow("canary", 3, T0 + timedelta(hours=1))]
    state = fold_releases(rows)
    assert (state.stable, state.canary, state.canary_since) == (1, 3, T0 + timedelta(hours=1))
    state = fold_releases([*rows, ReleaseRow("promote", 3), ReleaseRow("rollback", 3)])
    assert (state.stable, state.canary) == (1, None)
    assert fold_releases([ReleaseRow("promote", 1), ReleaseRow("rollback", 1)]).stable == 0


def test_plans() -> None:
    state = LineState(stable=1, canary=2, promoted=(1,))
    assert plan_promote(state, None).version == 2
    promote_other = plan_promote(state, 3)
    assert promote_other.replaces_canary == 2
    back = plan_rollback(state)
    assert (back.version, back.serves_after) == (2, 1)
    release_back = plan_rollback(LineState(stable=3, promoted=(1, 3)))
    assert (release_back.version, release_back.serves_after) == (3, 1)
    with pytest.raises(ReleaseRuleError):
        plan_promote(LineState(stable=1, promoted=(1,)), None)
    with pytest.raises(ReleaseRuleError):
        plan_rollback(LineState())
    with pytest.raises(ReleaseRuleError):
        plan_rollback(state, 7)
