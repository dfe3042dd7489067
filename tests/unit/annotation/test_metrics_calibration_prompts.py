"""Agreement per kind and annotator, judge calibration windows, prompt scoring, rubric parsing,
password hashing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flywheel.services.annotation import metrics
from flywheel.services.annotation.auth import Principal, check_password, hash_password
from flywheel.services.annotation.calibration import should_calibrate, window_summary
from flywheel.services.annotation.errors import Forbidden, LLMUnavailable
from flywheel.services.annotation.kinds import LabelRecord
from flywheel.services.annotation.llm.prompts import (
    evaluation_report,
    item_match,
    slices_of,
    token_f1,
)
from flywheel.services.annotation.llm.rubrics import (
    DEFAULT_PROMPTS,
    parse_reply,
    render_messages,
    task_fields,
)

NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


def _label(task: str, who: str, rating: int, kind: str = "rate", final: bool = False,
           labeller_type: str = "human") -> LabelRecord:
    return LabelRecord(f"{task}-{who}", task, f"tr-{task}", kind, labeller_type, who,
                       {"rating": rating}, "g-1", None, final, NOW)


def test_agreement_by_kind_and_annotator() -> None:
    labels = [_label("t1", "ana", 4), _label("t1", "bob", 4, final=True),
              _label("t2", "ana", 1), _label("t2", "bob", 1, final=True),
              _label("t3", "ana", 3), _label("t3", "bob", 0),
              _label("t3", "rev", 2, final=True, labeller_type="reviewer"),
              _label("t4", "ana", 2, final=True),
              _label("t5", "judge:x", 4, labeller_type="judge")]
    [rate] = metrics.by_kind(labels)
    assert rate["statistic"] == "cohen_kappa" and rate["units"] == 3 and rate["raters"] == 2
    assert rate["percent_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    rows = {r["annotator_id"]: r for r in metrics.by_annotator(labels)}
    assert "judge:x" not in rows and "rev" not in rows
    assert rows["ana"]["labels"] == 4 and rows["ana"]["pairs"] == 3
    assert rows["ana"]["kappa"] == rows["bob"]["kappa"]
    assert rows["ana"]["matches_final"] == pytest.approx(2 / 3, abs=1e-4)


def test_calibration_window_flags_low_agreement_only_with_enough_pairs() -> None:
    good = [(4, 4), (0, 0), (2, 2), (3, 4), (1, 1)]
    summary = window_summary("rate", good, threshold=0.6, min_pairs=4, window=200)
    assert summary["statistic"] == "cohen_kappa" and summary["agreement"] > 0.8
    assert not summary["low"] and summary["n"] == 5
    bad = [(4, 0), (0, 4), (4, 1), (1, 4)]
    assert window_summary("rate", bad, 0.6, 4, 200)["low"]
    assert not window_summary("rate", bad, 0.6, 10, 200)["low"]
    same = window_summary("pairwise", [("a", "a"), ("a", "a")], 0.6, 1, 200)
    assert same["statistic"] == "percent" and same["agreement"] == 1.0
    rate = sum(should_calibrate(f"task-{i}", 0.25) for i in range(2000)) / 2000
    assert 0.2 < rate < 0.3 and should_calibrate("x", 1.0) and not should_calibrate("x", 0.0)


def test_prompt_scoring_and_report() -> None:
    assert item_match("rate", {"rating": 3}, {"rating": 4})
    assert not item_match("rate", {"rating": 1}, {"rating": 4})
    assert item_match("pairwise", {"choice": "a"}, {"choice": "a"})
    assert item_match("correct", {"answer": "Order 12 has shipped."},
                      {"answer": "Order 12 has shipped today."})
    assert not item_match("rate", {"unusable": True}, {"rating": 2})
    assert token_f1("a b c", "a b c") == 1.0 and token_f1("a", "b") == 0.0
    rows = ([{"match": True, "slices": {"intent": "refund"}}] * 12
            + [{"match": False, "slices": {"intent": "warranty"}}] * 10
            + [{"match": True, "slices": {"intent": "warranty"}}] * 2)
    report = evaluation_report(rows, pass_rate=0.5, slice_min_rate=0.5)
    assert report["n"] == 24 and report["slices"]["intent"]["warranty"]["n"] == 12
    assert report["failing_slices"] == ["intent=warranty"] and not report["passed"]
    assert evaluation_report(rows[:12], 0.5, 0.5)["passed"]


def test_slices_of_a_task() -> None:
    payload = {"intent": "refund", "trace": {"messages": [
        {"role": "user", "content": "x" * 300},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]}}
    assert slices_of(payload) == {"intent": "refund", "length": "medium", "tool_use": "tools"}
    assert slices_of({}) == {"intent": "unknown", "length": "short", "tool_use": "no_tools"}


def test_rubric_rendering_and_reply_parsing() -> None:
    payload = {"trace": {"messages": [{"role": "user", "content": "Where is order 12?"},
                                      {"role": "assistant", "content": "It shipped."}]},
               "candidates": [{"messages": [{"role": "assistant", "content": "A text"}]},
                              {"messages": [{"role": "assistant", "content": "B text"}]}]}
    fields = task_fields(payload, "be strict")
    assert fields["conversation"] == "USER: Where is order 12?"
    assert fields["answer"] == "ASSISTANT: It shipped." and fields["answer_b"] == "ASSISTANT: B text"
    system, user = DEFAULT_PROMPTS[("judge", "rate")].render(fields)
    assert "be strict" in user and "It shipped." in user and "{" in user
    assert parse_reply("rate", 'Here: ```json\n{"reason": "fine", "rating": "good"}\n```') == {
        "rating": 3, "reason": "fine"}
    assert parse_reply("pairwise", '{"reasons": "B is right", "choice": "B"}')["choice"] == "b"
    assert parse_reply("correct", " The answer. ") == {"answer": "The answer."}
    for bad in ("no json", '{"rating": 9}', "[1, 2]"):
        with pytest.raises(LLMUnavailable):
            parse_reply("rate", bad)
    assert "calls lookup(" in render_messages(
        [{"role": "assistant", "tool_calls": [{"function": {"name": "lookup", "arguments": "{}"}}]}])


def test_passwords_are_salted_scrypt_hashes() -> None:
    stored = hash_password("hunter2-hunter2")
    assert stored.startswith("scrypt$") and "hunter2" not in stored
    assert stored != hash_password("hunter2-hunter2")  # salted
    assert check_password("hunter2-hunter2", stored)
    assert not check_password("hunter3-hunter3", stored)
    assert not check_password("x", "md5$abc")


def test_roles_are_ordered() -> None:
    Principal("1", "rev", "reviewer").require("annotator")
    with pytest.raises(Forbidden):
        Principal("1", "ana", "annotator").require("reviewer")
