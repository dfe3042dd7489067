"""Quality heuristics: one test per flag, and clean answers stay clean."""

from __future__ import annotations

import random

import pytest

from flywheel.services.triage import samples
from flywheel.services.triage.logic.quality import (
    QualityConfig,
    assess_quality,
    dominant_script,
    is_gibberish,
    repetition_ratio,
)

CFG = QualityConfig()


def _trace(answer: str, question: str = "Where is my order 1234? Please tell me soon."):
    return samples.trace_from_messages("t", [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}],
                                       rng=random.Random(0))


def test_clean_answer_scores_one() -> None:
    r = assess_quality(_trace("Order 1234 has shipped and arrives within 3 business days."), CFG)
    assert r.score == 1.0 and r.flags == ()


def test_empty_answer() -> None:
    r = assess_quality(_trace("   "), CFG)
    assert r.flags == ("empty_answer",) and r.score == 0.0


def test_tool_call_only_answer_is_not_empty() -> None:
    trace = samples.trace_from_messages("t", [
        {"role": "user", "content": "Where is order 12?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}]},
    ], rng=random.Random(0))
    assert "empty_answer" not in assess_quality(trace, CFG).flags


@pytest.mark.parametrize("answer,flag", [
    ("k", "too_short"),
    ("word " * 2000, "too_long"),
    ("Your order has shipped and it will arrive within three business days, but first you need to "
     "confirm the address and", "truncated"),
    ("Here is the code:\n```python\nprint(1)\n", "truncated"),
    ("I'm sorry, but I can't help with that request.", "refusal"),
    ("As an AI language model, I cannot look up orders.", "refusal"),
    ("I cannot assist with that.", "refusal"),
    ("the order the order the order the order the order the order the order the order", "repetitive"),
    ("%%%% #### 1234 5678 ---- //// ==== ++++ 9999 0000", "gibberish"),
    ("Ваш заказ отправлен и прибудет в течение трех рабочих дней.", "language_mismatch"),
])
def test_flags(answer: str, flag: str) -> None:
    r = assess_quality(_trace(answer), CFG)
    assert flag in r.flags
    assert r.score < 1.0


def test_finish_reason_length_means_truncated() -> None:
    trace = _trace("Order 1234 has shipped.")
    trace.tags["finish_reason"] = "length"
    assert "truncated" in assess_quality(trace, CFG).flags


def test_helpers() -> None:
    assert repetition_ratio("a b c d e f g h i j") == 0.0
    assert repetition_ratio("line\nline\nline\nline") == 0.75
    assert dominant_script("Hello there friend") == "latin"
    assert dominant_script("こんにちは、注文はいつ届きますか") == "cjk"
    assert dominant_script("hi") is None
    assert not is_gibberish("A perfectly normal sentence about an order.")
    assert is_gibberish("x" * 10 + "\ufffd" + "y" * 20)


def test_shop_replies_are_clean() -> None:
    rng = random.Random(5)
    for _ in range(200):
        r = assess_quality(samples.chat_trace(rng), CFG)
        assert r.flags == (), r
