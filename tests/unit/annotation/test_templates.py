"""The page's templates render every task kind, with shortcuts, without a server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flywheel.services.annotation.auth import Principal
from flywheel.services.annotation.kinds import RATING_LABELS
from flywheel.services.annotation.llm.rubrics import DEFAULT_PROMPTS
from flywheel.services.annotation.queue import Lease
from flywheel.services.annotation.store import TaskView
from flywheel.services.annotation.views import claim_view
from flywheel.services.annotation.web import TEMPLATES

WHO = Principal("a1", "ana", "reviewer")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


def _task(kind: str, status: str = "pending") -> TaskView:
    payload = {
        "intent": "refund",
        "trace": {"messages": [
            {"role": "user", "content": "Refund order 12 <please>"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "issue_refund", "arguments": "{\"order_number\": \"12\"}"}}]},
            {"role": "tool", "name": "issue_refund", "content": "{\"refund\": \"issued\"}"},
            {"role": "assistant", "content": "The refund for order 12 is on its way."}],
            "steps": [{"kind": "STEP_KIND_TOOL_CALL", "name": "issue_refund",
                       "status": "STEP_STATUS_TIMEOUT",
                       "error": {"type": "TimeoutError", "message": "slow"}}],
            "outcome": {"status": "OUTCOME_STATUS_FAILURE", "failure_kind": "tool_timeout"}},
        "candidates": [{"messages": [{"role": "assistant", "content": "first"}]},
                       {"messages": [{"role": "assistant", "content": "second"}]}],
    }
    return TaskView("at1", "tr1", kind, 0.7, payload, 1, status, "g-1", NOW)


def _render(name: str, **context) -> str:  # noqa: ANN003
    return TEMPLATES.get_template(name).render(who=WHO, **context)


@pytest.mark.parametrize(("kind", "expected"), [
    ("rate", ['data-key="1"', 'data-key="5"', "excellent"]),
    ("pairwise", ["Answer A", "Answer B", 'data-key="t"']),
    ("classify_failure", ['data-key="m"', "TimeoutError", "failure_kind"]),
    ("correct", ['name="answer"', "The refund for order 12 is on its way."]),
])
def test_task_page_renders_each_kind_with_shortcuts(kind: str, expected: list[str]) -> None:
    view = claim_view(_task(kind), Lease("at1", "a1", "tok", 120_000), ("g-1", "Be strict."))
    html = _render("task.html", view=view, rating_labels=RATING_LABELS)
    for text in expected + ['data-key="x"', "Be strict.", "data-label-form"]:
        assert text in html, text
    assert "&lt;please&gt;" in html  # user text is escaped


def test_review_page_lists_the_labels_so_far() -> None:
    view = claim_view(_task("rate", "in_review"), Lease("at1", "a1", "tok", 1000), None)
    view["labels"] = [{"labeller": "bob", "labeller_type": "human", "value": {"rating": 1}},
                      {"labeller": "cy", "labeller_type": "human", "value": {"rating": 4}}]
    html = _render("task.html", view=view, rating_labels=RATING_LABELS)
    assert 'name="review" value="1"' in html and "rating=4" in html


def test_stats_and_prompt_pages_render() -> None:
    html = _render("stats.html", threshold=0.6,
                   agreement={"by_kind": [{"kind": "rate", "statistic": "cohen_kappa",
                                           "value": 0.5, "units": 3, "raters": 2,
                                           "percent_agreement": 0.6}], "by_annotator": []},
                   calibration=[{"criterion": "rate", "agreement": "0.2", "statistic": "cohen_kappa",
                                 "n": "30", "low": "1", "updated_at": "now"}])
    assert "LOW: more to people" in html and "cohen kappa" in html
    prompt = DEFAULT_PROMPTS[("judge", "rate")]
    report = {"stage": "previewed", "active_version": "judge-rate-1",
              "preview": [{"conversation": "USER: hi", "human": {"rating": 3},
                           "active": {"rating": 3}, "candidate": None}],
              "evaluation": {"passed": False, "n": 600, "match_rate": 0.6, "pass_rate": 0.7,
                             "slice_min_rate": 0.5, "errors": 0, "all_available": False,
                             "failing_slices": ["intent=refund"],
                             "slices": {"intent": {"refund": {"n": 20, "match_rate": 0.4}}}}}
    html = _render("prompt.html", report=report, prompt=prompt)
    assert "Side by side" in html and "approve" in html and "intent=refund" in html
