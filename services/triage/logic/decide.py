"""The triage decision: from a trace and its signals to one route, with scores and reasons.

Two pure steps around the I/O the worker does:

1. :func:`prepare_trace` at ingest, after validation and redaction: fingerprint for duplicates,
   score quality, attribute failures, find the intent and implicit feedback. The worker then asks the shared
   duplicate store and stores :func:`ingest_report` in the join state.
2. :func:`decide` when the trace is due: :func:`build_signals` flattens the report, the joined
   feedback and the uncertainty into named signals, and the policy's first matching rule gives
   the route. :func:`needs_sampling` says whether the trace is worth model calls first.

The record builders (:mod:`flywheel.services.triage.logic.records`) turn a verdict into events.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from flywheel.errors import FlywheelError
from flywheel.services.triage.logic import attribution as attr
from flywheel.services.triage.logic import dedupe, feedback, quality
from flywheel.services.triage.logic.policy import Policy, Rule, matches
from flywheel.services.triage.logic.uncertainty import UncertaintyResult, logprob_uncertainty

MAX_TRACE_ID = 200


class SchemaViolation(FlywheelError):
    """A decodable event that breaks the contract (missing ids, key mismatch, no content)."""


# -- ingest --------------------------------------------------------------------------------------

def validate_trace(trace, key: bytes | None) -> None:
    """Raises:
        SchemaViolation: the trace has no usable id, content, or its record key differs.
    """
    if not trace.trace_id or len(trace.trace_id) > MAX_TRACE_ID:
        raise SchemaViolation("trace_id is empty or longer than 200 characters")
    if key is not None and key and key.decode("utf-8", "replace") != trace.trace_id:
        raise SchemaViolation("record key does not match trace_id (breaks co-partitioning)")
    if not trace.messages and not trace.steps:
        raise SchemaViolation("trace has neither messages nor agent steps")
    if trace.envelope.trace_id and trace.envelope.trace_id != trace.trace_id:
        raise SchemaViolation("envelope.trace_id differs from trace_id")


def validate_feedback(event, key: bytes | None) -> None:
    """Raises:
        SchemaViolation: the event has no trace id, no feedback, or its record key differs.
    """
    if not event.trace_id or len(event.trace_id) > MAX_TRACE_ID:
        raise SchemaViolation("feedback trace_id is empty or longer than 200 characters")
    if key is not None and key and key.decode("utf-8", "replace") != event.trace_id:
        raise SchemaViolation("record key does not match trace_id (breaks co-partitioning)")
    if not event.HasField("feedback") or not event.feedback.kind:
        raise SchemaViolation("feedback event without a feedback kind")


def detect_intent(trace, intents: dict[str, list[str]]) -> str:
    """The producer's ``intent`` tag, else the first policy intent whose phrase occurs in the
    last user message, else ``unknown``."""
    tagged = trace.tags.get("intent")
    if tagged:
        return tagged
    text = quality.last_user_text(trace).lower()
    for name, phrases in intents.items():
        if any(p in text for p in phrases):
            return name
    return "unknown"


def eval_bucket(trace_id: str) -> float:
    """A stable number in [0, 1) per trace id: deterministic eval splits."""
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Prepared:
    """A trace after the cheap, pure ingest work."""

    trace: Any  # the redacted flywheel.v1.Trace
    pii_counts: dict[str, int]
    fingerprint: dedupe.Fingerprint
    quality: quality.QualityReport
    attribution: attr.Attribution
    intent: str
    implicit: list[feedback.FeedbackItem] = field(default_factory=list)


def prepare_trace(redacted, pii_counts: dict[str, int], policy: Policy,
                  minhash: dedupe.MinHashConfig, now: float) -> Prepared:
    """Fingerprint, score and attribute one validated trace after its redaction
    (:func:`~flywheel.services.triage.logic.redact.redact_trace`, which must run first: a
    trace whose redaction raised is dead-lettered and never gets here)."""
    q = policy.quality
    report = quality.assess_quality(redacted, quality.QualityConfig(
        q.min_answer_chars, q.max_answer_chars, q.repetition_threshold, q.truncation_min_chars))
    return Prepared(
        trace=redacted,
        pii_counts=pii_counts,
        fingerprint=dedupe.fingerprint(dedupe.dedupe_text(redacted), minhash),
        quality=report,
        attribution=attr.attribute_failure(redacted),
        intent=detect_intent(redacted, policy.intents),
        implicit=feedback.implicit_items(redacted, now, policy.feedback.rephrase_similarity),
    )


def ingest_report(p: Prepared, dup: dedupe.DuplicateVerdict) -> dict[str, Any]:
    """The compact report stored in the join state (JSON-able)."""
    t = p.trace
    lp = logprob_uncertainty(t.logprobs) if t.HasField("logprobs") else None
    return {
        "pii": p.pii_counts,
        "dup": {"kind": dup.kind, "of": dup.of, "sim": dup.similarity},
        "q": {"score": p.quality.score, "flags": list(p.quality.flags),
              "chars": p.quality.answer_chars},
        "att": {"outcome": p.attribution.outcome, "source": p.attribution.source,
                "kind": p.attribution.kind, "detail": p.attribution.detail[:200]},
        "intent": p.intent,
        "agent": bool(t.steps) or any(m.tool_calls for m in t.messages),
        "user": bool(t.user_id),
        "app": t.app_id,
        "model": t.model.name,
        "lp": lp,
        "samples": [s.text for s in t.logprobs.samples] if t.HasField("logprobs") else [],
    }


# -- decision ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The route, the rule that chose it, why, the scores and the queue priority."""

    route: str
    rule: str
    reasons: tuple[str, ...]
    scores: dict[str, float]
    priority: float
    annotation_kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Verdict":
        return cls(d["route"], d["rule"], tuple(d["reasons"]), d["scores"], d["priority"],
                   d.get("annotation_kind"))


def build_signals(trace_id: str, report: dict[str, Any], summary: feedback.FeedbackSummary,
                  unc: UncertaintyResult | None, revision: int = 0) -> dict[str, Any]:
    """Every policy signal (:data:`~flywheel.services.triage.logic.policy.SIGNALS`) by name."""
    q, dup, att = report["q"], report["dup"], report["att"]
    flags = set(q["flags"])
    u = unc or UncertaintyResult()
    return {
        "duplicate": dup["kind"] != "none", "duplicate_kind": dup["kind"],
        "similarity": dup["sim"],
        "quality": q["score"], "empty_answer": "empty_answer" in flags,
        "too_short": "too_short" in flags, "too_long": "too_long" in flags,
        "truncated": "truncated" in flags, "repetitive": "repetitive" in flags,
        "refusal": "refusal" in flags, "gibberish": "gibberish" in flags,
        "language_mismatch": "language_mismatch" in flags, "answer_chars": q["chars"],
        "pii_total": sum(report["pii"].values()),
        "outcome": att["outcome"], "failure_source": att["source"] or "none",
        "failure_kind": att["kind"], "is_agent": report["agent"],
        "has_feedback": summary.items > 0, "feedback_score": summary.score,
        "thumbs_up": summary.thumbs_up, "thumbs_down": summary.thumbs_down,
        "has_rating": summary.has_rating, "rating_mean": summary.rating_mean,
        "has_correction": summary.has_correction, "regenerated": summary.regenerated,
        "rephrased": summary.rephrased, "abandoned": summary.abandoned,
        "negative_feedback": summary.negative, "positive_feedback": summary.positive,
        "uncertainty": u.score, "disagreement": u.disagreement, "entropy": u.entropy,
        "uncertainty_measured": u.measured, "model_unavailable": u.model_unavailable,
        "has_logprobs": report.get("lp") is not None,
        "has_alternative_answer": bool(u.alternative),
        "has_user": report["user"], "eval_bucket": eval_bucket(trace_id),
        "intent": report["intent"], "app_id": report["app"], "model_name": report["model"],
        "revision": revision,
    }


def needs_sampling(signals: dict[str, Any], policy: Policy) -> bool:
    """True when the trace passed the cheap filters and its uncertainty is not measured yet."""
    u = policy.uncertainty
    return u.enabled and not signals["uncertainty_measured"] and matches(u.sample_when, signals)


def _reasons(signals: dict[str, Any], report: dict[str, Any], rule: Rule) -> list[str]:
    out: list[str] = []
    if signals["duplicate"]:
        out.append(f"duplicate:{signals['duplicate_kind']}:{report['dup']['of']}")
    out.extend(f"quality:{f}" for f in report["q"]["flags"])
    if signals["failure_source"] != "none":
        out.append(f"failure:{signals['failure_source']}:{signals['failure_kind'] or 'unknown'}")
    if signals["has_feedback"]:
        kinds = [k for k in ("thumbs_down", "thumbs_up") if signals[k]]
        kinds += [k for k in ("has_correction", "regenerated", "rephrased", "abandoned") if signals[k]]
        out.append("feedback:" + (",".join(kinds) or "neutral"))
    if signals["model_unavailable"]:
        out.append("model_unavailable")
    elif signals["uncertainty_measured"]:
        out.append(f"uncertainty:{signals['uncertainty']:.2f}")
    out.append(f"rule:{rule.name}")
    return out


def _priority(rule: Rule, signals: dict[str, Any]) -> float:
    if rule.priority is not None:
        return float(signals[rule.priority])
    if signals["uncertainty_measured"]:
        return float(signals["uncertainty"])
    # Unmeasured (model down or not sampled): the worse the answer looks, the sooner.
    return round(max(1.0 - signals["quality"], -signals["feedback_score"],
                     0.5 if signals["failure_source"] == "model" else 0.0), 4)


def decide(signals: dict[str, Any], report: dict[str, Any], policy: Policy) -> Verdict:
    """Apply the policy: the first rule whose conditions hold gives the route."""
    rule = next(r for r in policy.rules if matches(r.when, signals))
    scores = {
        "quality": signals["quality"], "feedback": signals["feedback_score"],
        "uncertainty": signals["uncertainty"], "similarity": signals["similarity"],
        "pii": float(signals["pii_total"]), "eval_bucket": round(signals["eval_bucket"], 4),
    }
    priority = _priority(rule, signals)
    scores["priority"] = priority
    return Verdict(rule.route, rule.name, tuple(_reasons(signals, report, rule)), scores,
                   priority, rule.annotation_kind)
