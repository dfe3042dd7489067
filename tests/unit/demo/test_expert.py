"""The simulated expert answers the annotation service's real rubric prompts correctly."""

from __future__ import annotations

import json
import random

from fastapi.testclient import TestClient

from flywheel.demo import shop
from flywheel.demo.expert import Expert, QuestionBook, create_expert_app
from flywheel.services.annotation.llm.rubrics import DEFAULT_PROMPTS, parse_reply, task_fields


def _task(q: shop.Question, answer: str, candidates: list[str] | None = None,
          steps: list[dict] | None = None) -> dict:
    messages = shop.question_messages(q) + [{"role": "assistant", "content": answer}]
    trace = {"messages": messages, "steps": steps or []}
    if steps:
        trace["outcome"] = {"status": "OUTCOME_STATUS_FAILURE"}
    return {"trace": trace,
            "candidates": [{"messages": [{"role": "assistant", "content": c}]}
                           for c in candidates or []]}


def _ask(expert: Expert, role: str, kind: str, payload: dict) -> dict:
    prompt = DEFAULT_PROMPTS[(role, kind)]
    system, user = prompt.render(task_fields(payload, "guideline"))
    return parse_reply(kind, expert.reply(system, user))


def _setup(noise: float = 0.0) -> tuple[Expert, shop.Question]:
    book = QuestionBook()
    q = shop.sample_question(random.Random(3), intent=shop.ORDER_STATUS)
    book.add(q)
    return Expert(book, seed=1, noise=noise), q


def test_rates_correct_answer_excellent_and_wrong_answer_low() -> None:
    expert, q = _setup()
    good = _ask(expert, "judge", "rate", _task(q, shop.reference_answer(q)))
    bad = _ask(expert, "judge", "rate", _task(q, shop.wrong_answer(q, random.Random(0))))
    assert good["rating"] == 4
    assert bad["rating"] <= 1


def test_pairwise_picks_the_correct_side_in_either_position() -> None:
    expert, q = _setup()
    right, wrong = shop.reference_answer(q), shop.wrong_answer(q, random.Random(0))
    assert _ask(expert, "judge", "pairwise", _task(q, right, [right, wrong]))["choice"] == "a"
    assert _ask(expert, "judge", "pairwise", _task(q, right, [wrong, right]))["choice"] == "b"


def test_teacher_writes_the_canonical_reply() -> None:
    expert, q = _setup()
    label = _ask(expert, "teacher", "correct", _task(q, "no idea"))
    assert label["answer"] == shop.reference_answer(q)


def test_failure_attribution_from_steps() -> None:
    expert, q = _setup()
    timeout = [{"kind": "STEP_KIND_TOOL_CALL", "name": "lookup_order", "status": "STEP_STATUS_TIMEOUT",
                "error": {"type": "TimeoutError", "message": "tool timeout"}}]
    wrong = [{"kind": "STEP_KIND_TOOL_CALL", "name": "issue_refund", "status": "STEP_STATUS_OK"}]
    assert _ask(expert, "judge", "classify_failure",
                _task(q, "x", steps=timeout))["failure_source"] == "system"
    assert _ask(expert, "judge", "classify_failure",
                _task(q, "x", steps=wrong))["failure_source"] == "model"


def test_noise_flips_some_ratings() -> None:
    expert, q = _setup(noise=0.5)
    ratings = [_ask(expert, "judge", "rate", _task(q, shop.reference_answer(q)))["rating"]
               for _ in range(40)]
    assert 4 in ratings and min(ratings) <= 1


def test_openai_surface() -> None:
    expert, q = _setup()
    client = TestClient(create_expert_app(expert))
    prompt = DEFAULT_PROMPTS[("teacher", "correct")]
    system, user = prompt.render(task_fields(_task(q, "?"), "g"))
    body = client.post("/v1/chat/completions", json={
        "model": "x", "messages": [{"role": "system", "content": system},
                                   {"role": "user", "content": user}]}).json()
    assert body["choices"][0]["message"]["content"] == shop.reference_answer(q)
    assert json.loads(json.dumps(client.get("/v1/models").json()))["data"][0]["id"]
