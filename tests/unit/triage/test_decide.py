"""The decision: validation, signals, every default rule, sampling need, and emitted records."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from flywheel.events.codec import decode, encode
from flywheel.services.triage import samples
from flywheel.services.triage.logic.decide import (
    SchemaViolation,
    Verdict,
    build_signals,
    decide,
    detect_intent,
    eval_bucket,
    ingest_report,
    needs_sampling,
    prepare_trace,
    validate_feedback,
    validate_trace,
)
from flywheel.services.triage.logic.dedupe import NOT_DUPLICATE, DuplicateVerdict, MinHashConfig
from flywheel.services.triage.logic.feedback import item_from_event, summarise
from flywheel.services.triage.logic.policy import load_policy, parse_policy
from flywheel.services.triage.logic.records import (
    FEEDBACK_IDS_TAG,
    ROUTE_NAMES,
    build_annotation_task,
    build_decision,
    build_preference_request,
    decision_id,
    trace_with_feedback,
)
from flywheel.services.triage.logic.redact import Redactor, redact_trace
from flywheel.services.triage.logic.uncertainty import UncertaintyResult, assess_uncertainty
from flywheel.v1 import annotation_pb2, common_pb2, feedback_pb2, trace_pb2

POLICY = load_policy()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def _report(trace, dup=NOT_DUPLICATE):
    redacted, counts = redact_trace(trace, Redactor())
    return ingest_report(prepare_trace(redacted, counts, POLICY, MinHashConfig(), 0.0), dup)


def _route(trace, *, feedback=(), unc=None, dup=NOT_DUPLICATE, tid=None, policy=POLICY) -> Verdict:
    tid = tid or trace.trace_id
    items = [item_from_event(samples.feedback_event(tid, kind, **kw), 1.0) for kind, kw in feedback]
    report = _report(trace, dup)
    return decide(build_signals(tid, report, summarise(items), unc), report, policy)


def _tid_with_bucket(low: bool) -> str:
    i = 0
    while True:
        tid = f"trace-{i}"
        if (eval_bucket(tid) < 0.1) == low:
            return tid
        i += 1


@pytest.fixture
def rng() -> random.Random:
    return random.Random(42)


def test_validation() -> None:
    trace = samples.chat_trace(random.Random(1), "t1")
    validate_trace(trace, b"t1")
    validate_trace(trace, None)
    with pytest.raises(SchemaViolation, match="key"):
        validate_trace(trace, b"other")
    with pytest.raises(SchemaViolation, match="trace_id"):
        validate_trace(trace_pb2.Trace(messages=[trace.messages[0]]), None)
    with pytest.raises(SchemaViolation, match="neither"):
        validate_trace(trace_pb2.Trace(trace_id="x"), None)
    event = samples.feedback_event("t1", "thumbs", thumbs="up")
    validate_feedback(event, b"t1")
    with pytest.raises(SchemaViolation):
        validate_feedback(feedback_pb2.FeedbackEvent(trace_id="t1"), None)
    with pytest.raises(SchemaViolation):
        validate_feedback(event, b"t2")


def test_duplicates_are_dropped(rng: random.Random) -> None:
    v = _route(samples.chat_trace(rng), dup=DuplicateVerdict("exact", "first", 1.0))
    assert (v.route, v.rule) == ("drop", "duplicate")
    assert v.reasons[0] == "duplicate:exact:first"


def test_system_failures_go_to_the_system_eval(rng: random.Random) -> None:
    for failure in ("tool_timeout", "tool_http_500"):
        v = _route(samples.agent_trace(rng, failure=failure),
                   feedback=[("thumbs", {"thumbs": "down"})])
        assert v.route == "system_eval"
        assert any(r.startswith("failure:system:") for r in v.reasons)


def test_model_failures_feed_annotation_or_eval(rng: random.Random) -> None:
    low, high = _tid_with_bucket(True), _tid_with_bucket(False)
    v = _route(samples.agent_trace(rng, high, failure="invented_tool"))
    assert (v.route, v.annotation_kind) == ("annotate", "correct")
    v = _route(samples.agent_trace(rng, low, failure="wrong_answer"))
    assert v.route == "eval_candidate" and v.rule == "model_failure_eval"


def test_corrections_become_sft(rng: random.Random) -> None:
    v = _route(samples.chat_trace(rng, correct=False),
               feedback=[("correction", {"correction": "The right answer."})])
    assert (v.route, v.rule) == ("sft_candidate", "user_correction")


def test_negative_feedback_goes_to_people(rng: random.Random) -> None:
    v = _route(samples.chat_trace(rng, _tid_with_bucket(False), correct=False),
               feedback=[("thumbs", {"thumbs": "down"})])
    assert (v.route, v.rule) == ("annotate", "negative_feedback")


def test_unusable_answers_are_dropped(rng: random.Random) -> None:
    v = _route(samples.chat_trace(rng, answer=""))
    assert (v.route, v.rule) == ("drop", "unusable_answer")


def test_positive_feedback_becomes_sft(rng: random.Random) -> None:
    v = _route(samples.chat_trace(rng, _tid_with_bucket(False)),
               feedback=[("thumbs", {"thumbs": "up"})])
    assert (v.route, v.rule) == ("sft_candidate", "positive_feedback")


def test_uncertainty_routes(rng: random.Random) -> None:
    tid = _tid_with_bucket(False)
    trace = samples.chat_trace(rng, tid)
    high = assess_uncertainty(["a", "b", "c", "d", "e"], "x")
    assert _route(trace, unc=high).route == "annotate"
    mid = assess_uncertainty(["x", "x", "x", "y", "x"], "x")
    v = _route(trace, unc=mid)
    assert (v.route, v.rule) == ("preference", "ask_user")
    low = assess_uncertainty(["x"] * 5, "x")
    assert _route(trace, unc=low).rule == "confident_success"
    unavailable = assess_uncertainty(None, "x", model_unavailable=True)
    v = _route(trace, unc=unavailable)
    assert v.route == "judge" and "model_unavailable" in v.reasons


def test_eval_holdout(rng: random.Random) -> None:
    tid = next(f"h{i}" for i in range(10_000) if eval_bucket(f"h{i}") < 0.05)
    assert _route(samples.chat_trace(rng, tid)).route == "eval_candidate"


def test_policy_change_needs_no_code(rng: random.Random) -> None:
    custom = parse_policy({"version": "strict-1", "rules": [
        {"name": "pii_is_dropped", "route": "drop", "when": {"pii_total": {"gt": 0}}},
        {"name": "rest", "route": "sft_candidate"}]})
    assert _route(samples.chat_trace(rng, pii="email"), policy=custom).rule == "pii_is_dropped"
    assert _route(samples.chat_trace(rng), policy=custom).route == "sft_candidate"


def test_needs_sampling_only_after_cheap_filters(rng: random.Random) -> None:
    def signals(trace, dup=NOT_DUPLICATE, unc=None):
        return build_signals(trace.trace_id, _report(trace, dup), summarise([]), unc)
    good = samples.chat_trace(rng)
    assert needs_sampling(signals(good), POLICY)
    assert not needs_sampling(signals(good, DuplicateVerdict("exact", "x", 1)), POLICY)
    assert not needs_sampling(signals(samples.agent_trace(rng, failure="tool_timeout")), POLICY)
    assert not needs_sampling(signals(good, unc=assess_uncertainty(["a", "b"], "a")), POLICY)


def test_signals_cover_the_schema(rng: random.Random) -> None:
    from flywheel.services.triage.logic.policy import SIGNALS
    s = build_signals("t", _report(samples.chat_trace(rng)), summarise([]), None)
    assert set(s) == set(SIGNALS)
    for name, typ in SIGNALS.items():
        assert isinstance(s[name], typ if typ is not float else (int, float)), name


def test_intent() -> None:
    trace = samples.trace_from_messages("t", [{"role": "user", "content": "Please cancel order 12"}],
                                        rng=random.Random(0))
    assert detect_intent(trace, POLICY.intents) == "cancel_order"
    trace.tags["intent"] = "billing.refund"
    assert detect_intent(trace, POLICY.intents) == "billing.refund"


def test_decision_record(rng: random.Random) -> None:
    trace = samples.chat_trace(rng, "t-1", pii="email")
    fb = samples.feedback_event("t-1", "thumbs", thumbs="down")
    item = item_from_event(fb, 1.0)
    report = _report(trace)
    redacted, _ = redact_trace(trace, Redactor())
    verdict = decide(build_signals("t-1", report, summarise([item]), None), report, POLICY)
    full = trace_with_feedback(redacted.SerializeToString(), (item,))
    d = build_decision(full, verdict, report, 2, decision_id("t-1", 1), POLICY.version,
                       UncertaintyResult(model_unavailable=True), NOW)
    back = decode(encode(d), "TriageDecision")
    assert back.decision_id == decision_id("t-1", 2) == back.envelope.event_id
    assert back.revision == 2 and back.supersedes_decision_id == decision_id("t-1", 1)
    assert ROUTE_NAMES[back.route] == verdict.route and back.policy_version == POLICY.version
    assert back.pii_counts["email"] == 1 and "@" not in back.trace.messages[1].content
    assert back.trace.feedback[-1].thumbs == feedback_pb2.THUMBS_DOWN
    assert back.trace.tags[FEEDBACK_IDS_TAG] == fb.envelope.event_id
    assert back.uncertainty.model_unavailable
    assert dict(back.scores)["quality"] == 1.0 and list(back.reasons) == list(verdict.reasons)


def test_decision_ids_are_deterministic() -> None:
    assert decision_id("t", 1) == decision_id("t", 1) != decision_id("t", 2)


def test_annotation_task_and_preference_request(rng: random.Random) -> None:
    trace = samples.agent_trace(rng, "t-9", failure="wrong_answer")
    report = _report(trace)
    verdict = Verdict("annotate", "model_failure", ("rule:model_failure",), {"quality": 1.0},
                      0.7, "correct")
    d = build_decision(trace, verdict, report, 1, "", "v", None, NOW)
    task = build_annotation_task(d, "correct", "g1", NOW)
    assert task.kind == annotation_pb2.ANNOTATION_KIND_CORRECT and task.decision_id == d.decision_id
    assert task.envelope.event_id == task.task_id and task.priority == 0.7
    d.failure_source = common_pb2.FAILURE_SOURCE_UNKNOWN
    assert build_annotation_task(d, "rate", "g1", NOW).kind == \
        annotation_pb2.ANNOTATION_KIND_CLASSIFY_FAILURE
    req = build_preference_request(d, "Another answer.", "", 72, NOW)
    assert req.answer_a.messages[0].content == trace.messages[-1].content
    assert req.answer_b.messages[0].content == "Another answer."
    assert req.prompt[-1].role == "tool" and req.user_id == trace.user_id
    assert req.expires_at.seconds > int(NOW.timestamp())
