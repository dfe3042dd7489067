"""Prompt erasure: a detailed system prompt is replaced by the generic one, nothing else moves."""

from __future__ import annotations

from flywheel.designs.base import DesignContext
from flywheel.designs.prompt_erasure import PromptErasure, PromptErasureConfig
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.examples_pb2 import LossMask, SftExample
from flywheel.v1.trace_pb2 import Trace

DETAILED = ("You are a careful support agent. First find the order number in the question, "
            "then check the intent, then copy the number digit by digit into the reply, and "
            "finally re-read the reply to make sure the number matches the question exactly.")


def _example(system: str) -> SftExample:
    return SftExample(
        messages=[ChatMessage(role="system", content=system),
                  ChatMessage(role="user", content="Where is order 123?"),
                  ChatMessage(role="assistant", content="Order 123 has shipped.")],
        masks=[LossMask(message_index=2, char_start=0, char_end=5, weight=0.0)],
        source="thumbs_up", transforms=["pam"])


def test_detailed_prompt_is_replaced_and_recorded() -> None:
    design = PromptErasure(PromptErasureConfig(generic_system_prompt="You are helpful.",
                                               min_chars=100))
    source = _example(DETAILED)
    [out] = design.apply(source, DesignContext())
    assert [(m.role, m.content) for m in out.messages] == [
        ("system", "You are helpful."), ("user", "Where is order 123?"),
        ("assistant", "Order 123 has shipped.")]
    assert list(out.transforms) == ["pam", "prompt_erasure"]
    assert [(m.message_index, m.char_start, m.char_end, m.weight) for m in out.masks] == [
        (2, 0, 5, 0.0)]
    assert source.messages[0].content == DETAILED  # the input is not mutated


def test_short_prompt_is_left_alone() -> None:
    source = _example("You are the support assistant of Northwind Outfitters.")
    [out] = PromptErasure(PromptErasureConfig(min_chars=200)).apply(source, DesignContext())
    assert out is source
    assert list(out.transforms) == ["pam"]


def test_tagged_trace_marks_a_short_prompt_as_detailed() -> None:
    trace = Trace(tags={"system_prompt": "detailed"})
    [out] = PromptErasure().apply(_example("Think step by step."), DesignContext(trace=trace))
    assert out.messages[0].content == "You are a helpful assistant."
    assert "prompt_erasure" in out.transforms


def test_no_system_message_means_nothing_to_erase() -> None:
    example = SftExample(messages=[ChatMessage(role="user", content="hi"),
                                   ChatMessage(role="assistant", content="hello")])
    assert PromptErasure().apply(example, DesignContext()) == [example]
