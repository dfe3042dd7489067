"""Failure attribution: the model's fault versus the system's, from outcome, steps and messages."""

from __future__ import annotations

import random

import pytest

from flywheel.services.triage import samples
from flywheel.services.triage.logic.attribution import (
    MODEL,
    SYSTEM,
    attribute_failure,
    source_of_kind,
)
from flywheel.v1 import common_pb2, trace_pb2


@pytest.mark.parametrize("failure,source,kind", [
    ("wrong_tool", MODEL, "bad_arguments"),   # the wrong tool answers "order not found"
    ("bad_arguments", MODEL, "bad_arguments"),
    ("invented_tool", MODEL, "invented_tool"),
    ("wrong_answer", MODEL, "wrong_answer"),
    ("tool_timeout", SYSTEM, "tool_timeout"),
    ("tool_http_500", SYSTEM, "tool_http_5xx"),
])
def test_shop_agent_failures_are_attributed(failure: str, source: str, kind: str) -> None:
    rng = random.Random(11)
    for _ in range(20):
        a = attribute_failure(samples.agent_trace(rng, failure=failure))
        assert a.outcome == "failure" and a.source == source, (failure, a)
        if failure != "wrong_tool":
            assert a.kind == kind
        assert a.inferred


def test_success_has_no_attribution() -> None:
    a = attribute_failure(samples.agent_trace(random.Random(1)))
    assert a.outcome == "success" and a.source == "" and not a.failed


def test_declared_source_wins() -> None:
    trace = samples.agent_trace(random.Random(1), failure="tool_timeout")
    trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_MODEL
    trace.outcome.failure_kind = "bad_plan"
    a = attribute_failure(trace)
    assert (a.source, a.kind, a.inferred) == (MODEL, "bad_plan", False)


def test_known_failure_kind_implies_source() -> None:
    trace = samples.agent_trace(random.Random(1), failure="wrong_answer")
    trace.outcome.failure_kind = "rate_limited"
    assert attribute_failure(trace).source == SYSTEM
    assert source_of_kind("hallucination") == MODEL and source_of_kind("tool_http_503") == SYSTEM
    assert source_of_kind("weird") == ""


def _step_trace(*steps: trace_pb2.AgentStep, failed: bool = True) -> trace_pb2.Trace:
    trace = trace_pb2.Trace(trace_id="t", steps=list(steps))
    trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE if failed else trace_pb2.OUTCOME_STATUS_SUCCESS
    return trace


@pytest.mark.parametrize("step,source,kind", [
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, name="db",
                         status=trace_pb2.STEP_STATUS_TIMEOUT), SYSTEM, "tool_timeout"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, name="db", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="HTTPError", http_status=503)), SYSTEM, "tool_http_5xx"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, name="db", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="HTTPError", http_status=429)), SYSTEM, "rate_limited"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_RESULT, name="db", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="ConnectionResetError")), SYSTEM, "tool_exception"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, name="db", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="ValidationError")), MODEL, "bad_arguments"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, name="db", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="HTTPError", http_status=422)), MODEL, "bad_arguments"),
    (trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_PLAN, name="plan", status=trace_pb2.STEP_STATUS_ERROR,
                         error=trace_pb2.StepError(type="PlanError")), MODEL, "bad_plan"),
])
def test_step_evidence(step: trace_pb2.AgentStep, source: str, kind: str) -> None:
    a = attribute_failure(_step_trace(trace_pb2.AgentStep(status=trace_pb2.STEP_STATUS_OK), step))
    assert (a.source, a.kind) == (source, kind)


def test_first_evidence_decides() -> None:
    model_first = _step_trace(
        trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_PLAN, status=trace_pb2.STEP_STATUS_ERROR),
        trace_pb2.AgentStep(kind=trace_pb2.STEP_KIND_TOOL_CALL, status=trace_pb2.STEP_STATUS_TIMEOUT))
    assert attribute_failure(model_first).source == MODEL


def test_failure_without_evidence_is_a_wrong_answer() -> None:
    a = attribute_failure(_step_trace())
    assert (a.source, a.kind) == (MODEL, "wrong_answer")


def test_bad_json_and_missing_required_arguments() -> None:
    trace = samples.agent_trace(random.Random(3))
    trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE
    trace.messages[2].tool_calls[0].function.arguments = "{not json"
    assert attribute_failure(trace).kind == "bad_arguments"
    trace.messages[2].tool_calls[0].function.arguments = "{}"
    a = attribute_failure(trace)
    assert a.kind == "bad_arguments" and "missing" in a.detail


def test_unreported_outcome_with_system_error() -> None:
    trace = samples.agent_trace(random.Random(4), failure="tool_timeout")
    trace.ClearField("outcome")
    a = attribute_failure(trace)
    assert a.outcome == "unreported" and a.source == SYSTEM
