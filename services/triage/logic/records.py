"""Build the events triage emits: TriageDecision, AnnotationTask, PreferenceRequest.

Ids are derived, not random: the decision id is a UUIDv5 of (trace id, revision) and is also the
envelope's event id, task and request ids derive from the decision id. A decision re-emitted
after a crash or a rebalance therefore carries the same event id, and consumers that are
idempotent on event ids see it once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from flywheel.events.envelope import SCHEMA_VERSION, stamp
from flywheel.v1 import annotation_pb2, common_pb2, feedback_pb2, preference_pb2, trace_pb2, triage_pb2
from flywheel.services.triage.logic.decide import Verdict
from flywheel.services.triage.logic.feedback import FeedbackItem
from flywheel.services.triage.logic.quality import final_answer
from flywheel.services.triage.logic.uncertainty import UncertaintyResult, prompt_messages

PRODUCER = "triage"
NAMESPACE = uuid.UUID("6f1d2c1e-5b0a-4c8e-9a57-0f3b7c1d9e21")
FEEDBACK_IDS_TAG = "flywheel.feedback_event_ids"

ROUTE_ENUM: dict[str, int] = {
    "drop": triage_pb2.ROUTE_DROP,
    "sft_candidate": triage_pb2.ROUTE_SFT_CANDIDATE,
    "preference": triage_pb2.ROUTE_PREFERENCE,
    "annotate": triage_pb2.ROUTE_ANNOTATE,
    "eval_candidate": triage_pb2.ROUTE_EVAL_CANDIDATE,
    "system_eval": triage_pb2.ROUTE_SYSTEM_EVAL,
    "judge": triage_pb2.ROUTE_JUDGE,
}
ROUTE_NAMES: dict[int, str] = {v: k for k, v in ROUTE_ENUM.items()}
_ANNOTATION_KINDS = {
    "rate": annotation_pb2.ANNOTATION_KIND_RATE,
    "correct": annotation_pb2.ANNOTATION_KIND_CORRECT,
    "pairwise": annotation_pb2.ANNOTATION_KIND_PAIRWISE,
    "classify_failure": annotation_pb2.ANNOTATION_KIND_CLASSIFY_FAILURE,
}
_FAILURE_SOURCES = {"model": common_pb2.FAILURE_SOURCE_MODEL,
                    "system": common_pb2.FAILURE_SOURCE_SYSTEM,
                    "unknown": common_pb2.FAILURE_SOURCE_UNKNOWN}


def decision_id(trace_id: str, revision: int) -> str:
    """The id (and event id) of a trace's decision of a given revision."""
    return str(uuid.uuid5(NAMESPACE, f"decision:{trace_id}:{revision}"))


def derived_id(kind: str, parent_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{parent_id}"))


def _feedback_payload(item: FeedbackItem) -> feedback_pb2.Feedback | None:
    if not item.payload:
        return None
    if item.source == "event":
        event = feedback_pb2.FeedbackEvent()
        event.ParseFromString(item.payload)
        return event.feedback
    fb = feedback_pb2.Feedback()
    fb.ParseFromString(item.payload)
    return fb


def trace_with_feedback(trace_bytes: bytes, items: tuple[FeedbackItem, ...]) -> trace_pb2.Trace:
    """The redacted trace with joined feedback events appended to ``feedback`` and their event
    ids listed in the ``flywheel.feedback_event_ids`` tag (inline feedback is already there)."""
    trace = trace_pb2.Trace()
    trace.ParseFromString(trace_bytes)
    joined = [i for i in items if i.source == "event"]
    for item in joined:
        fb = _feedback_payload(item)
        if fb is not None:
            trace.feedback.append(fb)
    if joined:
        trace.tags[FEEDBACK_IDS_TAG] = ",".join(i.item_id for i in joined)
    return trace


def _uncertainty(u: UncertaintyResult | None) -> triage_pb2.Uncertainty | None:
    if u is None:
        return None
    if u.model_unavailable and not u.measured:
        return triage_pb2.Uncertainty(model_unavailable=True)
    return triage_pb2.Uncertainty(k=u.k, disagreement=u.disagreement, entropy=u.entropy,
                                  model_unavailable=u.model_unavailable)


def build_decision(trace: trace_pb2.Trace, verdict: Verdict, report: dict[str, Any],
                   revision: int, supersedes: str, policy_version: str,
                   unc: UncertaintyResult | None, now: datetime) -> triage_pb2.TriageDecision:
    """The decision event for one trace (``trace`` is already redacted, feedback attached)."""
    did = decision_id(trace.trace_id, revision)
    dup = report["dup"]
    d = triage_pb2.TriageDecision(
        decision_id=did, trace_id=trace.trace_id, revision=revision,
        supersedes_decision_id=supersedes, route=ROUTE_ENUM[verdict.route],
        reasons=list(verdict.reasons), policy_version=policy_version,
        priority=verdict.priority, intent=report["intent"],
        duplicate_of=dup["of"] if dup["kind"] != "none" else "",
        failure_source=_FAILURE_SOURCES.get(report["att"]["source"], 0),
        failure_kind=report["att"]["kind"],
    )
    d.scores.update(verdict.scores)
    d.pii_counts.update({k: int(v) for k, v in report["pii"].items()})
    d.trace.CopyFrom(trace)
    proto_u = _uncertainty(unc)
    if proto_u is not None:
        d.uncertainty.CopyFrom(proto_u)
    _envelope(d, "flywheel.v1.TriageDecision", did, trace.trace_id, trace.app_id, now)
    return d


def _envelope(msg, event_type: str, event_id: str, trace_id: str, app_id: str,
              now: datetime) -> None:
    """Fill the envelope directly (the hot path: one per decision)."""
    env = msg.envelope
    env.event_id = event_id
    env.event_type = event_type
    env.schema_version = SCHEMA_VERSION
    env.producer = PRODUCER
    env.trace_id = trace_id
    env.app_id = app_id
    env.occurred_at.FromNanoseconds(int(now.timestamp() * 1e9))


def build_annotation_task(decision: triage_pb2.TriageDecision, kind: str | None,
                          guideline_version: str, now: datetime) -> annotation_pb2.AnnotationTask:
    """The annotation task for an ``annotate`` decision (one task per decision id)."""
    task_id = derived_id("task", decision.decision_id)
    failure_unknown = decision.failure_source == common_pb2.FAILURE_SOURCE_UNKNOWN
    task = annotation_pb2.AnnotationTask(
        task_id=task_id, trace_id=decision.trace_id, decision_id=decision.decision_id,
        kind=_ANNOTATION_KINDS["classify_failure" if failure_unknown else (kind or "rate")],
        priority=decision.priority, required_annotators=1, guideline_version=guideline_version,
        reasons=list(decision.reasons), intent=decision.intent,
    )
    task.trace.CopyFrom(decision.trace)
    return stamp(task, PRODUCER, trace_id=decision.trace_id, app_id=decision.trace.app_id,
                 event_id=task_id, occurred_at=now)


def build_preference_request(decision: triage_pb2.TriageDecision, alternative: str,
                             alternative_model: str, ttl_hours: float,
                             now: datetime) -> preference_pb2.PreferenceRequest:
    """Ask the trace's user to choose between the logged answer (A) and a sampled one (B)."""
    trace = decision.trace
    request_id = derived_id("preference", decision.decision_id)
    req = preference_pb2.PreferenceRequest(request_id=request_id, trace_id=trace.trace_id,
                                           user_id=trace.user_id)
    for m in prompt_messages(trace):
        req.prompt.add(role=m["role"], content=m["content"], name=m.get("name", ""),
                       tool_call_id=m.get("tool_call_id", ""))
    req.answer_a.answer_id = derived_id("answer-a", decision.decision_id)
    req.answer_a.messages.add(role="assistant", content=final_answer(trace))
    req.answer_a.model.CopyFrom(trace.model)
    req.answer_b.answer_id = derived_id("answer-b", decision.decision_id)
    req.answer_b.messages.add(role="assistant", content=alternative)
    req.answer_b.model.name = alternative_model or trace.model.name
    req.answer_b.model.version = "current"
    req.expires_at.FromDatetime(now.astimezone(timezone.utc) + timedelta(hours=ttl_hours))
    return stamp(req, PRODUCER, trace_id=trace.trace_id, app_id=trace.app_id,
                 event_id=request_id, occurred_at=now)
