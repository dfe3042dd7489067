"""Event builders for curator tests: traces, decisions, tasks, labels and preference answers.

Loaded by file path from the curator conftests (``curator_builders``) so unit and integration
tests share them however pytest is started.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flywheel.demo import shop
from flywheel.events.envelope import stamp
from flywheel.v1.annotation_pb2 import (
    AnnotationKind,
    AnnotationLabel,
    AnnotationTask,
    Labeller,
    LabellerType,
)
from flywheel.v1.common_pb2 import (
    Answer,
    ChatMessage,
    Choice,
    FailureSource,
    FunctionCall,
    ModelRef,
    Ratings,
    ToolCall,
    ToolDefinition,
)
from flywheel.v1.feedback_pb2 import Feedback, FeedbackKind, Thumbs
from flywheel.v1.preference_pb2 import PreferenceAnswer
from flywheel.v1.trace_pb2 import ContextDocument, Outcome, OutcomeStatus, Trace
from flywheel.v1.triage_pb2 import Route, TriageDecision

SYSTEM = shop.SYSTEM_PROMPT
MODEL = ModelRef(name="shop-assistant", version="1")


def msg(role: str, content: str = "", **kw: Any) -> ChatMessage:
    return ChatMessage(role=role, content=content, **kw)


def tool_call_msg(name: str, arguments: dict[str, Any], call_id: str = "call_0") -> ChatMessage:
    return ChatMessage(role="assistant", tool_calls=[ToolCall(
        id=call_id, type="function",
        function=FunctionCall(name=name, arguments=json.dumps(arguments)))])


def shop_tools() -> list[ToolDefinition]:
    return [ToolDefinition(name=t["function"]["name"], description=t["function"]["description"],
                           parameters_json=json.dumps(t["function"]["parameters"]))
            for t in shop.TOOLS]


def make_trace(trace_id: str, question: str, answer: Sequence[ChatMessage] | str, *,
               user: str = "u1", system: bool = True, history: Sequence[ChatMessage] = (),
               tools: Sequence[ToolDefinition] = (), docs: Sequence[ContextDocument] = (),
               feedback: Sequence[Feedback] = (), outcome: Outcome | None = None) -> Trace:
    answers = [msg("assistant", answer)] if isinstance(answer, str) else list(answer)
    messages = ([msg("system", SYSTEM)] if system else []) + list(history) + [msg("user", question)]
    trace = Trace(trace_id=trace_id, session_id=f"s-{trace_id}", user_id=user, app_id="shop",
                  model=MODEL, messages=messages + answers, tools=list(tools),
                  context_documents=list(docs), feedback=list(feedback))
    if outcome is not None:
        trace.outcome.CopyFrom(outcome)
    return stamp(trace, "gateway")


def thumbs(up: bool = True) -> Feedback:
    return Feedback(kind=FeedbackKind.FEEDBACK_KIND_THUMBS,
                    thumbs=Thumbs.THUMBS_UP if up else Thumbs.THUMBS_DOWN)


def rating(value: int) -> Feedback:
    return Feedback(kind=FeedbackKind.FEEDBACK_KIND_RATING,
                    ratings=Ratings(helpfulness=value, correctness=value, style=value))


def correction(text: str) -> Feedback:
    return Feedback(kind=FeedbackKind.FEEDBACK_KIND_CORRECTION, corrected_answer=text)


def failure(source: int, kind: str = "wrong_tool") -> Outcome:
    return Outcome(status=OutcomeStatus.OUTCOME_STATUS_FAILURE, failure_source=source,
                   failure_kind=kind)


def make_decision(trace: Trace, route: int = Route.ROUTE_SFT_CANDIDATE, *, revision: int = 1,
                  intent: str = "", scores: dict[str, float] | None = None,
                  failure_source: int = FailureSource.FAILURE_SOURCE_UNSPECIFIED
                  ) -> TriageDecision:
    decision = TriageDecision(decision_id=f"d-{trace.trace_id}-{revision}",
                              trace_id=trace.trace_id, revision=revision, route=route,
                              intent=intent, scores=scores or {}, failure_source=failure_source)
    decision.trace.CopyFrom(trace)
    return stamp(decision, "triage")


def make_task(trace: Trace, kind: int = AnnotationKind.ANNOTATION_KIND_CORRECT, *,
              task_id: str | None = None, intent: str = "",
              candidates: Sequence[Sequence[ChatMessage]] = ()) -> AnnotationTask:
    task = AnnotationTask(task_id=task_id or f"task-{trace.trace_id}", trace_id=trace.trace_id,
                          kind=kind, intent=intent,
                          candidates=[Answer(answer_id=f"a{i}", messages=list(c), model=MODEL)
                                      for i, c in enumerate(candidates)])
    task.trace.CopyFrom(trace)
    return stamp(task, "triage")


def make_label(trace_id: str, kind: int, *, task_id: str = "", labeller: str = "ann-1",
               labeller_type: int = LabellerType.LABELLER_TYPE_HUMAN, rating: int | None = None,
               corrected: Sequence[ChatMessage] = (), choice: int = Choice.CHOICE_UNSPECIFIED,
               failure_source: int = FailureSource.FAILURE_SOURCE_UNSPECIFIED,
               label_id: str | None = None) -> AnnotationLabel:
    label = AnnotationLabel(label_id=label_id or f"l-{trace_id}-{kind}-{labeller}",
                            task_id=task_id or f"task-{trace_id}", trace_id=trace_id, kind=kind,
                            labeller=Labeller(id=labeller, type=labeller_type),
                            corrected_messages=list(corrected), choice=choice,
                            failure_source=failure_source, is_final=True)
    if rating is not None:
        label.rating = rating
    return stamp(label, "annotation")


def make_preference(trace_id: str, prompt: Sequence[ChatMessage], chosen: str, rejected: str, *,
                    user: str = "u9", choice: int = Choice.CHOICE_A) -> PreferenceAnswer:
    answer = PreferenceAnswer(request_id=f"r-{trace_id}", trace_id=trace_id, user_id=user,
                              chosen=choice, chosen_model=ModelRef(name="shop", version="2"),
                              rejected_model=ModelRef(name="shop", version="1"),
                              prompt=list(prompt),
                              chosen_messages=[msg("assistant", chosen)],
                              rejected_messages=[msg("assistant", rejected)])
    return stamp(answer, "preferences")


def shop_decision(q: shop.Question, trace_id: str, answer: str | None = None, *,
                  user: str = "u1", route: int = Route.ROUTE_SFT_CANDIDATE,
                  feedback: Sequence[Feedback] = ()) -> TriageDecision:
    trace = make_trace(trace_id, q.text, answer if answer is not None else shop.reference_answer(q),
                       user=user, feedback=feedback)
    return make_decision(trace, route, intent=q.intent)


# -- records and batch content for writer tests --------------------------------------------------

LINE = "shop-assistant"


def sft_record(i: int, user: str = "u1") -> Any:
    """A pooled SFT record for ``question i`` / ``answer i`` from ``user``."""
    from flywheel.services.curator.logic.examples import Candidate
    from flywheel.services.curator.logic.formats import seal_sft
    from flywheel.services.curator.logic.records import record_from_candidate
    from flywheel.v1.examples_pb2 import Lineage, SftExample

    ex = SftExample(messages=[msg("user", f"question {i}"), msg("assistant", f"answer {i}")],
                    source="correction", intent="refund",
                    lineage=Lineage(trace_ids=[f"t{i}"], topic="flywheel.annotation.labels.v1",
                                    partition=1, offset=100 + i, labeller_ids=["ann-1"],
                                    user_ids=[user], event_ids=[f"e{i}"]))
    return record_from_candidate(Candidate("sft", seal_sft(ex), 1.0, f"question {i}", f"t{i}"),
                                 received_at=1000.0 + i, origin="label")


def batch_content(records: Sequence[Any], **kw: Any) -> Any:
    """BatchContent of SFT ``records`` with a one-row eval set, unless overridden."""
    from flywheel.services.curator.logic.writer import BatchContent

    kw.setdefault("eval_rows", [{"example_id": "eval_1", "prompt": [], "reference": []}])
    return BatchContent(model_line=LINE, sft=list(records), dpo=[], cut_reason="sft_count",
                        designs=["prompt_erasure"], **kw)
