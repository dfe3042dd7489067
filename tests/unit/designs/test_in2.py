"""IN2: long contexts with the answer segment anywhere, or several segments combined."""

from __future__ import annotations

import random

import pytest

from flywheel.designs.base import DesignError
from flywheel.designs.in2 import In2Config, In2Fact, build_context, synthesize
from flywheel.v1.examples_pb2 import Lineage

FILLERS = [f"Filler paragraph number {i} about hiking boots and tents." for i in range(40)]
FACTS = [
    In2Fact("The Oslo store opens at 10.", "When does the Oslo store open?", "At 10.",
            "opening_hours", Lineage(trace_ids=["t1"], user_ids=["u1"])),
    In2Fact("Tents have a five year warranty.", "How long is the tent warranty?",
            "Five years.", "warranty", Lineage(trace_ids=["t2"], user_ids=["u2"])),
]


def test_build_context_is_deterministic_and_places_the_needle() -> None:
    text, positions = build_context(["NEEDLE"], FILLERS, 500, random.Random(3))
    again, _ = build_context(["NEEDLE"], FILLERS, 500, random.Random(3))
    assert text == again
    segments = text.split("\n\n")
    assert segments[positions[0]] == "NEEDLE"
    assert segments.count("NEEDLE") == 1
    assert 500 <= len(text) < 600


def test_needle_lands_everywhere_across_seeds() -> None:
    positions = {build_context(["N"], FILLERS[:5], 10_000, random.Random(s))[1][0]
                 for s in range(200)}
    assert positions == {0, 1, 2, 3, 4, 5}


def test_single_segment_example_exact_format() -> None:
    config = In2Config(enabled=True, examples_per_batch=1, context_chars=1, multi_share=0.0,
                       instruction="Use the context.")
    [ex] = synthesize(FACTS[:1], [], config, seed=0)
    assert [(m.role, m.content) for m in ex.messages] == [
        ("user", "The Oslo store opens at 10.\n\nUse the context.\n"
                 "Question: When does the Oslo store open?"),
        ("assistant", "At 10.")]
    assert list(ex.transforms) == ["in2"] and ex.source == "in2"
    assert ex.intent == "opening_hours"
    assert list(ex.lineage.trace_ids) == ["t1"] and list(ex.lineage.user_ids) == ["u1"]


def test_multi_segment_example_combines_every_fact() -> None:
    config = In2Config(enabled=True, examples_per_batch=1, context_chars=2000, multi_share=1.0,
                       max_segments=2, system_prompt="Read carefully.")
    [ex] = synthesize(FACTS, FILLERS, config, seed=5)
    system, user, assistant = ex.messages
    assert system.content == "Read carefully."
    for fact in FACTS:
        assert fact.segment in user.content
    order = sorted(FACTS, key=lambda f: user.content.index(f.question))
    assert assistant.content == "\n".join(f"{i}. {f.answer}" for i, f in enumerate(order, 1))
    assert user.content.index("Questions:\n1. ") > max(user.content.index(f.segment)
                                                       for f in FACTS)
    assert sorted(ex.lineage.trace_ids) == ["t1", "t2"]
    assert ex.intent == ""  # two intents: none is claimed
    assert len(user.content) > 2000


def test_synthesize_count_and_determinism() -> None:
    config = In2Config(enabled=True, examples_per_batch=6, context_chars=800)
    first = synthesize(FACTS, FILLERS, config, seed=42)
    assert len(first) == 6
    assert first == synthesize(FACTS, FILLERS, config, seed=42)
    assert first != synthesize(FACTS, FILLERS, config, seed=43)


def test_errors() -> None:
    with pytest.raises(DesignError):
        synthesize([], FILLERS, In2Config(enabled=True), seed=0)
    assert synthesize([], FILLERS, In2Config(enabled=True, examples_per_batch=0), seed=0) == []
    with pytest.raises(ValueError):
        In2Config(max_segments=1)
