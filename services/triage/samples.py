"""Realistic triage inputs from the demo shop world: chat and agent traces, feedback events.

Used by the triage tests, the benchmark and demos to script mixes of traces (correct and wrong
answers, agent runs that fail because of the model or the system, PII, duplicates) and feedback
(thumbs, ratings, corrections, regenerations)::

    rng = random.Random(7)
    trace = chat_trace(rng, "t-1", correct=False, pii="email")
    fb = feedback_event("t-1", "thumbs", thumbs="down")
    key, value = record(trace)        # ready for traces.raw
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timezone

from flywheel.demo import shop
from flywheel.events.codec import encode, from_dict
from flywheel.events.envelope import stamp
from flywheel.v1 import common_pb2, feedback_pb2, trace_pb2

APP_ID = "northwind-support"
MODEL = ("support-assistant", "7")
PII_SNIPPETS: dict[str, str] = {
    "email": "My email is {first}.{last}@example.com.",
    "phone": "Call me at +1 (415) 555-{n4}.",
    "credit_card": "Charge my card 4111 1111 1111 1111.",
    "iban": "My IBAN is DE89 3704 0044 0532 0130 00.",
    "ip_address": "I am writing from 192.168.{n1}.{n2}.",
    "national_id": "My SSN is 219-09-{n4}.",
    "api_key": "Here is my key sk-proj-{key}.",
}
_FIRST = ("anna", "ben", "chen", "dana", "emil", "farah", "gus", "hana")
_LAST = ("smith", "garcia", "nguyen", "kowalski", "okafor", "rossi", "svensson", "tanaka")
FAILURES_MODEL = ("wrong_tool", "bad_arguments", "invented_tool", "wrong_answer")
FAILURES_SYSTEM = ("tool_timeout", "tool_http_500")


def new_id(rng: random.Random | None = None) -> str:
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def pii_text(kind: str, rng: random.Random) -> str:
    """A sentence holding one PII value of ``kind`` (see :data:`PII_SNIPPETS`)."""
    return PII_SNIPPETS[kind].format(first=rng.choice(_FIRST), last=rng.choice(_LAST),
                                     n4=f"{rng.randint(0, 9999):04d}", n1=rng.randint(0, 255),
                                     n2=rng.randint(1, 254),
                                     key="".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789")
                                                 for _ in range(32)))


def _stamp(msg, when: datetime | None, event_id: str | None = None):
    return stamp(msg, "gateway", event_id=event_id, occurred_at=when or datetime.now(timezone.utc))


def trace_from_messages(trace_id: str, messages: list[dict], *, rng: random.Random,
                        user_id: str | None = None, tools: list[dict] | None = None,
                        outcome: trace_pb2.Outcome | None = None,
                        occurred_at: datetime | None = None,
                        tags: dict[str, str] | None = None) -> trace_pb2.Trace:
    """A stamped Trace from OpenAI-shaped messages."""
    trace = from_dict({"messages": messages}, trace_pb2.Trace)
    trace.trace_id = trace_id
    trace.session_id = f"s-{trace_id}"
    trace.user_id = user_id if user_id is not None else f"u-{rng.randint(1, 500)}"
    trace.app_id = APP_ID
    trace.request_id = f"r-{trace_id}"
    trace.source = trace_pb2.TRACE_SOURCE_GATEWAY
    trace.model.name, trace.model.version = MODEL
    for tool in tools or []:
        fn = tool["function"]
        trace.tools.add(name=fn["name"], description=fn["description"],
                        parameters_json=json.dumps(fn["parameters"]))
    if outcome is not None:
        trace.outcome.CopyFrom(outcome)
    for k, v in (tags or {}).items():
        trace.tags[k] = v
    return _stamp(trace, occurred_at)


def chat_trace(rng: random.Random, trace_id: str | None = None, *, correct: bool = True,
               pii: str | None = None, question: shop.Question | None = None,
               answer: str | None = None, occurred_at: datetime | None = None,
               user_id: str | None = None) -> trace_pb2.Trace:
    """A support chat: system prompt, user question (optionally with PII), assistant answer."""
    q = question or shop.sample_question(rng)
    text = q.text if pii is None else f"{q.text} {pii_text(pii, rng)}"
    reply = answer if answer is not None else (
        shop.reference_answer(q) if correct else shop.wrong_answer(q, rng))
    messages = shop.question_messages(shop.Question(q.intent, text, q.order_number, q.address,
                                                    q.template_id))
    messages.append({"role": "assistant", "content": reply})
    return trace_from_messages(trace_id or new_id(rng), messages, rng=rng, user_id=user_id,
                               occurred_at=occurred_at, tags={"intent": q.intent})


def _outcome(failure: str | None) -> trace_pb2.Outcome:
    if failure is None:
        return trace_pb2.Outcome(status=trace_pb2.OUTCOME_STATUS_SUCCESS)
    return trace_pb2.Outcome(status=trace_pb2.OUTCOME_STATUS_FAILURE, failure_kind="",
                             detail="reported by the agent runtime")


def agent_trace(rng: random.Random, trace_id: str | None = None, *, failure: str | None = None,
                report_source: bool = False, occurred_at: datetime | None = None) -> trace_pb2.Trace:
    """An agent episode with one tool call. ``failure`` is one of :data:`FAILURES_MODEL` or
    :data:`FAILURES_SYSTEM` (None: success). The outcome says *that* it failed; unless
    ``report_source`` it does not say whose fault it was (triage must find out)."""
    task = shop.sample_agent_task(rng)
    tool, args, final = task.tool, dict(task.arguments), task.final_answer
    status = "ok"
    if failure == "wrong_tool":
        tool = next(t["function"]["name"] for t in shop.TOOLS if t["function"]["name"] != task.tool)
    elif failure == "bad_arguments":
        args = {"order_id": "unknown"}
    elif failure == "invented_tool":
        tool = "lookup_customer_history"
    elif failure == "wrong_answer":
        final = shop.wrong_answer(task.question, rng)
    elif failure in FAILURES_SYSTEM:
        status = "timeout" if failure == "tool_timeout" else "http_500"
    result = shop.call_tool(task, tool, args, rng, failure_rate=0.0)
    if status != "ok":
        result = shop.ToolResult(status, json.dumps({"error": "timeout" if status == "timeout"
                                                     else "HTTP 500"}), 5000)
        final = "Sorry, I could not reach the order system, please try again later."
    messages = shop.question_messages(task.question) + [
        shop.tool_call_message(tool, args),
        {"role": "tool", "tool_call_id": "call_0", "name": tool, "content": result.content},
        {"role": "assistant", "content": final},
    ]
    outcome = _outcome(failure)
    if report_source and failure:
        outcome.failure_source = (common_pb2.FAILURE_SOURCE_SYSTEM if failure in FAILURES_SYSTEM
                                  else common_pb2.FAILURE_SOURCE_MODEL)
        outcome.failure_kind = failure
    return trace_from_messages(trace_id or new_id(rng), messages, rng=rng, tools=shop.TOOLS,
                               outcome=outcome, occurred_at=occurred_at,
                               tags={"intent": task.question.intent})


_KINDS = {
    "thumbs": feedback_pb2.FEEDBACK_KIND_THUMBS, "rating": feedback_pb2.FEEDBACK_KIND_RATING,
    "comment": feedback_pb2.FEEDBACK_KIND_COMMENT, "correction": feedback_pb2.FEEDBACK_KIND_CORRECTION,
    "regenerate": feedback_pb2.FEEDBACK_KIND_REGENERATE, "rephrase": feedback_pb2.FEEDBACK_KIND_REPHRASE,
    "abandon": feedback_pb2.FEEDBACK_KIND_ABANDON,
}


def feedback_event(trace_id: str, kind: str, *, thumbs: str | None = None, rating: int = 0,
                   correction: str = "", comment: str = "", user_id: str = "u-1",
                   occurred_at: datetime | None = None,
                   event_id: str | None = None) -> feedback_pb2.FeedbackEvent:
    """A stamped FeedbackEvent of ``kind`` (thumbs, rating, comment, correction, regenerate,
    rephrase, abandon)."""
    fb = feedback_pb2.Feedback(kind=_KINDS[kind], comment=comment, corrected_answer=correction)
    if thumbs:
        fb.thumbs = feedback_pb2.THUMBS_UP if thumbs == "up" else feedback_pb2.THUMBS_DOWN
    if rating:
        fb.ratings.helpfulness = fb.ratings.correctness = rating
    when = occurred_at or datetime.now(timezone.utc)
    fb.given_at.FromDatetime(when)
    event = feedback_pb2.FeedbackEvent(feedback_id=new_id(), trace_id=trace_id, user_id=user_id,
                                       feedback=fb)
    return _stamp(event, when, event_id)


def record(msg) -> tuple[bytes, bytes]:
    """(key, value) for a Trace or FeedbackEvent: keyed by trace id, binary Protobuf."""
    return msg.trace_id.encode(), encode(msg)
