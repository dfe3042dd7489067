"""Uncertainty from sampled answers and token log-probabilities."""

from __future__ import annotations

import math
import random

import pytest

from flywheel.services.triage import samples
from flywheel.services.triage.logic.uncertainty import (
    UncertaintyResult,
    answer_entropy,
    assess_uncertainty,
    disagreement,
    logprob_uncertainty,
    parse_answers,
    pick_alternative,
    prompt_messages,
    sampling_request,
)
from flywheel.v1 import trace_pb2


def test_agreement_gives_zero() -> None:
    answers = ["Order 12 shipped.", "order 12 shipped", "Order 12  shipped!"]
    assert disagreement(answers) == 0.0 and answer_entropy(answers) == 0.0


def test_disagreement_and_entropy() -> None:
    answers = ["a", "a", "b", "c"]
    assert disagreement(answers) == 0.5
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert answer_entropy(answers) == pytest.approx(expected)


def test_numbers_matter() -> None:
    assert disagreement(["Order 12 shipped.", "Order 13 shipped."]) == 0.5


def test_assess_combines_samples_and_logprobs() -> None:
    r = assess_uncertainty(["x", "y", "z", "x", "x"], "x")
    assert r.k == 5 and r.measured and r.disagreement == 0.4
    assert r.score == pytest.approx(r.entropy / math.log(5), abs=1e-3)
    assert r.alternative in ("y", "z")
    lp = trace_pb2.LogprobStats(token_count=10, mean_entropy=1.6)
    r = assess_uncertainty(["x", "x"], "x", lp)
    assert r.score == pytest.approx(0.8) and r.logprob_score == pytest.approx(0.8)


def test_assess_without_samples() -> None:
    r = assess_uncertainty(None, "x", model_unavailable=True)
    assert r.model_unavailable and not r.measured and r.score == 0.0
    lp = trace_pb2.LogprobStats(token_count=5, mean_logprob=-0.5)
    r = assess_uncertainty(None, "x", lp, model_unavailable=True)
    assert r.measured and r.source == "logprobs"
    assert r.score == pytest.approx(1 - math.exp(-0.5), abs=1e-3)


def test_logprob_uncertainty() -> None:
    assert logprob_uncertainty(None) is None
    assert logprob_uncertainty(trace_pb2.LogprobStats()) is None
    assert logprob_uncertainty(trace_pb2.LogprobStats(token_count=3, mean_entropy=5)) == 1.0


def test_pick_alternative() -> None:
    assert pick_alternative(["A.", "a", "b", "b"], "a") == "b"
    assert pick_alternative(["a", "A"], "a") == ""


def test_result_json_round_trip() -> None:
    r = UncertaintyResult(5, 0.4, 1.1, 0.7, False, True, "model", 0.2, "alt")
    assert UncertaintyResult.from_json(r.to_json()) == r
    assert UncertaintyResult.from_json(None) is None


def test_request_and_response_shapes() -> None:
    trace = samples.agent_trace(random.Random(3))
    msgs = prompt_messages(trace)
    assert msgs[-1]["role"] == "tool" and msgs[-2]["tool_calls"][0]["type"] == "function"
    body = sampling_request(trace, 5, "", 0.8, 64)
    assert body["n"] == 5 and body["model"] == "support-assistant" and body["temperature"] == 0.8
    # Triage's probes must not come back to triage as served traces.
    assert body["metadata"] == {"flywheel_trace": "off"}
    resp = {"choices": [{"message": {"content": "a"}}, {"message": {"content": None, "tool_calls": [
        {"function": {"name": "lookup_order", "arguments": "{}"}}]}}]}
    assert parse_answers(resp) == ["a", "lookup_order({})"]
    assert parse_answers({}) == []
