"""The scripted mix: traces and feedback with known expected outcomes, and how to check them.

Phases (each waits for the previous one's effects, so "first occurrence" is well defined):

A. feedback that arrives before its trace, feedback whose trace never comes, garbage bytes on
   both input topics, a trace without content (schema violation), a trace too long to redact;
B. the traces: clean chats, a chat with PII, agent runs failing because of the model and
   because of the system, a successful agent run, feedback-joined traces, an empty answer, an
   eval hold-out;
C. an exact and a near duplicate of phase-B traces, late feedback that changes a route, and
   feedback beyond the late window.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from flywheel.events.codec import decode, encode
from flywheel.services.triage import samples
from flywheel.services.triage.logic.decide import eval_bucket
from flywheel.services.triage.logic.records import FEEDBACK_IDS_TAG, ROUTE_NAMES
from flywheel.settings import Settings
from flywheel.v1 import trace_pb2

from .conftest import TopicReader, TriageWorker, produce

LATE_WINDOW_S = 20.0
MAX_TEXT_CHARS = 5000
NEAR_Q = ("I ordered a green tent and a pair of hiking boots last month, the tracking page still "
          "says pending and nobody answered my two messages, where is my order 4821?")
ORDER_REPLY = "Order 4821 has shipped and arrives within 3 business days."


def _tid(name: str, want_eval: bool = False) -> str:
    """A trace id for ``name`` whose eval bucket lands where the expectation needs it."""
    for i in range(10_000):
        tid = f"{name}-{i}"
        bucket = eval_bucket(tid)
        if (bucket < 0.05) if want_eval else (bucket >= 0.1):
            return tid
    raise AssertionError("unreachable")


def _chat(rng, tid, question=None, answer=None, **kw) -> trace_pb2.Trace:
    q = samples.shop.Question("order_status", question, "4821") if question else None
    return samples.chat_trace(rng, tid, question=q, answer=answer, **kw)


@dataclass
class Outcome:
    """What came out: final decision per trace id (highest revision), all decisions, DLs."""

    decisions: list = field(default_factory=list)
    final: dict[str, object] = field(default_factory=dict)
    deadletters: list = field(default_factory=list)
    tasks: list = field(default_factory=list)

    def routes(self) -> dict[str, str]:
        return {tid: ROUTE_NAMES[d.route] for tid, d in self.final.items()}

    def normalised(self) -> dict:
        """Comparable across runs: routes, duplicate links, revisions, dead-letter reasons."""
        return {
            "routes": self.routes(),
            "duplicate_of": {t: d.duplicate_of for t, d in self.final.items() if d.duplicate_of},
            "revisions": {t: d.revision for t, d in self.final.items()},
            "deadletters": sorted(Counter(d.error_type for d in self.deadletters).items()),
            "tasks": sorted({t.trace_id for t in self.tasks}),
        }


@dataclass
class Mix:
    """The inputs and what each should produce."""

    rng: random.Random
    expected: dict[str, str] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    feedback_ids: list[str] = field(default_factory=list)
    dl_reasons: Counter = field(default_factory=Counter)
    joined_feedback: dict[str, str] = field(default_factory=dict)  # feedback event id -> trace id

    @classmethod
    def build(cls, seed: int = 2026) -> "Mix":
        return cls(random.Random(seed))


def _trace_rec(mix: Mix, trace, route: str | None):
    if route is not None:
        mix.expected[trace.trace_id] = route
    mix.trace_ids.append(trace.trace_id)
    return ("traces.raw", *samples.record(trace))


def _fb_rec(mix: Mix, fb, joins: bool = True):
    mix.feedback_ids.append(fb.envelope.event_id)
    if joins:
        mix.joined_feedback[fb.envelope.event_id] = fb.trace_id
    return ("feedback.events", *samples.record(fb))


def phase_a(mix: Mix) -> list:
    rng = mix.rng
    recs = []
    early = _tid("early-correction")
    recs.append(_fb_rec(mix, samples.feedback_event(early, "correction",
                                                    correction="Order 4821 has shipped.")))
    recs.append(_fb_rec(mix, samples.feedback_event("ghost-trace", "thumbs", thumbs="up"), joins=False))
    mix.dl_reasons["OrphanFeedback"] += 1
    recs.append(("traces.raw", b"junk-1", b"\x00\xff not a protobuf"))
    recs.append(("feedback.events", b"junk-2", b"\xfe\xfe\xfe"))
    mix.dl_reasons["EventDecodeError"] += 2
    empty = samples.trace_from_messages(_tid("no-content"), [], rng=rng)
    recs.append(("traces.raw", *samples.record(empty)))
    mix.trace_ids.append(empty.trace_id)
    mix.dl_reasons["SchemaViolation"] += 1
    huge = _chat(rng, _tid("too-long"), question="Where is my order 4821? " + "x" * MAX_TEXT_CHARS)
    recs.append(("traces.raw", *samples.record(huge)))
    mix.trace_ids.append(huge.trace_id)
    mix.dl_reasons["RedactionError"] += 1
    return recs


def phase_b(mix: Mix) -> list:
    rng = mix.rng
    recs = []
    for i in range(6):
        recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid(f"clean-{i}")), "judge"))
    recs.append(_trace_rec(mix, _chat(rng, _tid("dup-a"), question="Where is my order 4821?",
                                      answer=ORDER_REPLY), "judge"))
    recs.append(_trace_rec(mix, _chat(rng, _tid("near-a"), question="Hi, " + NEAR_Q,
                                      answer=ORDER_REPLY), "judge"))
    pii = samples.chat_trace(rng, _tid("pii"))
    pii.messages[1].content += " Mail me at dana.okafor@example.com, card 4111 1111 1111 1111."
    recs.append(_trace_rec(mix, pii, "judge"))
    for failure in ("invented_tool", "bad_arguments"):
        recs.append(_trace_rec(mix, samples.agent_trace(rng, _tid(f"model-{failure}"),
                                                        failure=failure), "annotate"))
    for failure in ("tool_timeout", "tool_http_500"):
        recs.append(_trace_rec(mix, samples.agent_trace(rng, _tid(f"system-{failure}"),
                                                        failure=failure), "system_eval"))
    recs.append(_trace_rec(mix, samples.agent_trace(rng, _tid("agent-ok")), "judge"))
    recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid("early-correction")), "sft_candidate"))
    down = samples.chat_trace(rng, _tid("thumbs-down"), correct=False)
    recs.append(_trace_rec(mix, down, "annotate"))
    recs.append(_fb_rec(mix, samples.feedback_event(down.trace_id, "thumbs", thumbs="down")))
    recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid("late")), "annotate"))
    recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid("too-late")), "judge"))
    recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid("eval", want_eval=True)), "eval_candidate"))
    recs.append(_trace_rec(mix, samples.chat_trace(rng, _tid("empty"), answer=""), "drop"))
    return recs


def phase_c(mix: Mix, late_trace_at: datetime, too_late_trace_at: datetime) -> list:
    rng = mix.rng
    recs = []
    recs.append(_trace_rec(mix, _chat(rng, _tid("dup-b"), question="where is my order 4821",
                                      answer=ORDER_REPLY), "drop"))
    recs.append(_trace_rec(mix, _chat(rng, _tid("near-b"), question="Hello, " + NEAR_Q,
                                      answer=ORDER_REPLY), "drop"))
    # Event times decide the window: the user reacted 2 s after the answer, however slowly the
    # pipeline got there; the other one reacted long after the window closed.
    recs.append(_fb_rec(mix, samples.feedback_event(
        _tid("late"), "thumbs", thumbs="down", occurred_at=late_trace_at + timedelta(seconds=2))))
    too_late = samples.feedback_event(
        _tid("too-late"), "thumbs", thumbs="down",
        occurred_at=too_late_trace_at + timedelta(seconds=LATE_WINDOW_S + 60))
    recs.append(_fb_rec(mix, too_late, joins=False))
    mix.dl_reasons["FeedbackTooLate"] += 1
    return recs


def _collect(reader: TopicReader) -> Outcome:
    out = Outcome()
    out.decisions = reader.events("traces.triaged", "TriageDecision")
    for d in out.decisions:
        cur = out.final.get(d.trace_id)
        if cur is None or d.revision > cur.revision:
            out.final[d.trace_id] = d
    out.deadletters = reader.events("deadletter", "DeadLetter")
    out.tasks = reader.events("annotation.tasks", "AnnotationTask")
    return out


def run_mix(settings: Settings, reader: TopicReader, workers: list[TriageWorker],
            mix: Mix | None = None, timeout_s: float = 120.0) -> tuple[Mix, Outcome]:
    """Produce the three phases, waiting for each; returns the mix and what came out."""
    mix = mix or Mix.build()
    produce(settings, phase_a(mix))
    b = phase_b(mix)
    produce(settings, b)
    first = [t for t in mix.expected]
    reader.wait_for(lambda: set(first) <= set(_collect(reader).final), timeout_s,
                    "phase B decisions", workers)
    def occurred(name: str) -> datetime:
        trace = next(decode(v, "Trace") for _, k, v in b if k == _tid(name).encode())
        return trace.envelope.occurred_at.ToDatetime(tzinfo=timezone.utc)

    produce(settings, phase_c(mix, occurred("late"), occurred("too-late")))

    def done() -> bool:
        out = _collect(reader)
        reasons = Counter(d.error_type for d in out.deadletters)
        return (set(mix.expected) <= set(out.final)
                and out.final[_tid("late")].revision == 2
                and all(reasons[r] >= n for r, n in mix.dl_reasons.items()))

    reader.wait_for(done, timeout_s, "phase C decisions and dead letters", workers)
    time.sleep(1.0)
    reader.poll()
    return mix, _collect(reader)


def check_mix(mix: Mix, out: Outcome) -> None:
    """Every expectation of the scripted mix holds; nothing was lost."""
    routes = out.routes()
    wrong = {t: (routes.get(t), r) for t, r in mix.expected.items() if routes.get(t) != r}
    assert not wrong, f"routes (got, expected): {wrong}"
    final = out.final
    assert final[_tid("dup-b")].duplicate_of == _tid("dup-a")
    assert final[_tid("near-b")].duplicate_of == _tid("near-a")
    assert any(r.startswith("duplicate:near:") for r in final[_tid("near-b")].reasons)
    late = final[_tid("late")]
    first_late = next(d for d in out.decisions if d.trace_id == late.trace_id and d.revision == 1)
    assert late.supersedes_decision_id == first_late.decision_id
    pii = final[_tid("pii")]
    assert pii.pii_counts["email"] == 1 and pii.pii_counts["credit_card"] == 1
    for d in out.decisions:
        raw = encode(d)
        assert b"dana.okafor@example.com" not in raw and b"4111 1111 1111 1111" not in raw
    assert {t.trace_id for t in out.tasks} >= {t for t, r in mix.expected.items() if r == "annotate"}
    assert final[_tid("early-correction")].trace.tags[FEEDBACK_IDS_TAG]
    # Nothing lost: every trace id and every feedback event id is accounted for.
    dl_trace_ids = {d.envelope.trace_id for d in out.deadletters}
    dl_keys = {bytes(d.key) for d in out.deadletters}
    for tid in mix.trace_ids:
        assert tid in final or tid in dl_trace_ids or tid.encode() in dl_keys, tid
    joined = set()
    for d in out.decisions:
        joined |= set(filter(None, d.trace.tags.get(FEEDBACK_IDS_TAG, "").split(",")))
    dl_feedback = set()
    for d in out.deadletters:
        if d.source_topic.endswith("feedback.events.v1"):
            try:
                dl_feedback.add(decode(d.value, "FeedbackEvent").envelope.event_id)
            except Exception:  # noqa: BLE001 - the garbage record
                pass
    missing = [f for f in mix.feedback_ids if f not in joined and f not in dl_feedback]
    assert not missing, f"feedback lost: {missing}"
    reasons = Counter(d.error_type for d in out.deadletters)
    assert reasons == mix.dl_reasons, reasons
    for d in out.deadletters:
        assert d.source_topic and d.value and d.service == "triage"
