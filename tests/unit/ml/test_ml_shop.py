"""The shop world: determinism, exact-match checking, agent outcomes, feedback noise."""

from __future__ import annotations

import json
import random
import re

from flywheel.demo import shop


def test_questions_are_deterministic_per_seed():
    assert shop.sample_questions(50, seed=3) == shop.sample_questions(50, seed=3)
    assert shop.sample_questions(50, seed=3) != shop.sample_questions(50, seed=4)
    assert shop.heldout_set() == shop.heldout_set()
    assert len(shop.heldout_set(40)) == 40


def test_heldout_uses_eval_templates_and_covers_every_intent():
    held = shop.heldout_set(200)
    assert {q.intent for q in held} == set(shop.INTENTS)
    assert all(q.template_id.split("/")[1] == "eval" for q in held)
    train_texts = {t for tr, _ in shop.TEMPLATES.values() for t in tr}
    eval_texts = {t for _, ev in shop.TEMPLATES.values() for t in ev}
    assert not train_texts & eval_texts


def test_order_questions_carry_a_three_or_four_digit_number():
    for q in shop.sample_questions(300, seed=1):
        if q.intent in shop.ORDER_INTENTS:
            assert re.fullmatch(r"[1-9]\d{2,3}", q.order_number or "")
            assert q.order_number in q.text
            assert q.order_number in shop.reference_answer(q)
        else:
            assert q.order_number is None
        if q.intent == shop.CHANGE_ADDRESS:
            assert q.address and q.address in q.text


def test_is_correct_is_exact_after_whitespace_normalisation():
    q = shop.Question(shop.ORDER_STATUS, "Where is my order 4821?", "4821")
    assert shop.reference_answer(q) == "Order 4821 has shipped and arrives within 3 business days."
    assert shop.is_correct("  Order 4821 has shipped and\narrives within 3  business days. ", q)
    assert not shop.is_correct("Order 4812 has shipped and arrives within 3 business days.", q)
    assert not shop.is_correct("order 4821 has shipped and arrives within 3 business days.", q)
    assert not shop.is_correct("Order 4821 has shipped and arrives within 3 business days", q)


def test_wrong_answers_are_never_correct():
    rng = random.Random(0)
    for q in shop.sample_questions(300, seed=2):
        assert not shop.is_correct(shop.wrong_answer(q, rng), q)


def test_agent_reference_episode_succeeds():
    rng = random.Random(5)
    for _ in range(40):
        task = shop.sample_agent_task(rng)
        messages = shop.agent_messages(task)
        call = messages[2]["tool_calls"][0]["function"]
        result = shop.call_tool(task, call["name"], json.loads(call["arguments"]), rng, failure_rate=0)
        assert result.status == "ok" and "error" not in json.loads(result.content)
        outcome = shop.judge_episode(task, [(call["name"], json.loads(call["arguments"]))],
                                     [result], messages[-1]["content"])
        assert outcome.success, outcome


def test_agent_failures_are_attributed():
    q = shop.Question(shop.CANCEL_ORDER, "Please cancel order 812.", "812")
    task = shop.agent_task(q)
    ok = shop.ToolResult("ok", "{}", 10)
    answer = shop.reference_answer(q)
    wrong_tool = shop.judge_episode(task, [("lookup_order", {"order_number": "812"})], [ok], answer)
    assert (wrong_tool.failure_source, wrong_tool.failure_kind) == ("model", "wrong_tool")
    wrong_arg = shop.judge_episode(task, [("cancel_order", {"order_number": "821"})], [ok], answer)
    assert (wrong_arg.failure_source, wrong_arg.failure_kind) == ("model", "bad_arguments")
    timeout = shop.judge_episode(task, [("cancel_order", {"order_number": "812"})],
                                 [shop.ToolResult("timeout", "{}", 5000)], "")
    assert (timeout.failure_source, timeout.failure_kind) == ("system", "tool_timeout")
    wrong_order = shop.call_tool(task, "cancel_order", {"order_number": "999"}, random.Random(0), 0)
    assert json.loads(wrong_order.content) == {"error": "order not found"}


def test_tools_fail_at_about_the_configured_rate():
    rng, task = random.Random(1), shop.agent_task(shop.sample_question(random.Random(2)))
    results = [shop.call_tool(task, task.tool, task.arguments, rng, failure_rate=0.2) for _ in range(2000)]
    failed = sum(r.status != "ok" for r in results) / len(results)
    assert 0.16 < failed < 0.24
    assert {r.status for r in results} == {"ok", "timeout", "http_500"}


def test_noisy_feedback_is_mostly_right_and_deterministic():
    def thumbs(seed: int) -> list[tuple[bool, str | None]]:
        rng, out = random.Random(seed), []
        for q in shop.sample_questions(2000, seed=9):
            answer = shop.reference_answer(q) if rng.random() < 0.5 else shop.wrong_answer(q, rng)
            fb = shop.noisy_feedback(answer, q, rng)
            out.append((shop.is_correct(answer, q), fb.thumbs if fb else None))
        return out

    first = thumbs(1)
    assert first == thumbs(1)
    given = [(ok, t) for ok, t in first if t is not None]
    assert 0.3 < len(given) / len(first) < 0.5
    agree = sum((t == "up") == ok for ok, t in given) / len(given)
    assert 0.85 < agree < 0.97


def test_noisy_preference_prefers_the_correct_answer():
    rng, picks = random.Random(3), []
    for q in shop.sample_questions(1000, seed=4):
        pref = shop.noisy_preference(shop.reference_answer(q), shop.wrong_answer(q, rng), q, rng)
        picks.append(pref.choice)
    answered = [p for p in picks if p is not None]
    assert 0.7 < len(answered) / len(picks) < 0.9
    assert 0.85 < answered.count("a") / len(answered) < 0.95


def test_played_episodes_attribute_failures():
    rng = random.Random(7)
    outcomes = []
    for _ in range(400):
        task = shop.sample_agent_task(rng)
        assistant = shop.scripted_assistant(task, rng, wrong_tool_rate=0.1, wrong_argument_rate=0.1,
                                            wrong_answer_rate=0.0)
        episode = shop.play_episode(task, assistant, rng, failure_rate=0.1)
        assert [m["role"] for m in episode.messages] == ["system", "user", "assistant", "tool", "assistant"]
        outcomes.append(episode.outcome)
    kinds = {o.failure_kind for o in outcomes if not o.success}
    assert {"wrong_tool", "bad_arguments", "tool_timeout", "tool_http_500"} <= kinds
    assert all(o.failure_source == "system" for o in outcomes if o.failure_kind.startswith("tool_"))
    assert 0.65 < sum(o.success for o in outcomes) / len(outcomes) < 0.85


def test_perfect_assistant_always_succeeds_without_tool_failures():
    rng = random.Random(8)
    for _ in range(50):
        task = shop.sample_agent_task(rng)
        assistant = shop.scripted_assistant(task, rng, wrong_tool_rate=0, wrong_argument_rate=0,
                                            wrong_answer_rate=0)
        assert shop.play_episode(task, assistant, rng, failure_rate=0).outcome.success
