"""Partial answer masking: initial answer -> verification -> corrected answer, initial masked."""

from __future__ import annotations

import pytest

from flywheel.designs.base import DesignContext
from flywheel.designs.pam import PamConfig, PartialAnswerMasking
from flywheel.v1.common_pb2 import ChatMessage, FunctionCall, ToolCall
from flywheel.v1.examples_pb2 import LossMask, SftExample

VERIFY = "Let me check. It is wrong. Corrected:"


def _example(answer: str) -> SftExample:
    return SftExample(messages=[
        ChatMessage(role="system", content="You are the shop assistant."),
        ChatMessage(role="user", content="Cancel order 4512."),
        ChatMessage(role="assistant", content=answer)], source="correction")


def test_correction_gives_masked_self_correction_turn() -> None:
    design = PartialAnswerMasking(PamConfig(enabled=True, verification=VERIFY))
    initial = "Order 4521 is cancelled."
    plain = _example("Order 4512 is cancelled and you will not be charged.")
    ctx = DesignContext(original_answer=(ChatMessage(role="assistant", content=initial),))
    kept, built = design.apply(plain, ctx)
    assert kept is plain
    expected = ("Order 4521 is cancelled.\n\nLet me check. It is wrong. Corrected:\n\n"
                "Order 4512 is cancelled and you will not be charged.")
    assert built.messages[2].content == expected
    assert [(m.message_index, m.char_start, m.char_end, m.weight) for m in built.masks] == [
        (2, 0, len(initial), 0.0)]
    assert expected[: len(initial)] == initial
    assert list(built.transforms) == ["pam"]
    assert [m.content for m in built.messages[:2]] == [m.content for m in plain.messages[:2]]


def test_replace_emits_only_the_pam_example() -> None:
    design = PartialAnswerMasking(PamConfig(enabled=True, replace=True))
    ctx = DesignContext(original_answer=(ChatMessage(role="assistant", content="No."),))
    [built] = design.apply(_example("Yes."), ctx)
    assert built.messages[2].content.startswith("No.\n\n")
    assert built.messages[2].content.endswith("\n\nYes.")


def test_confirmation_masks_a_right_answer() -> None:
    design = PartialAnswerMasking(PamConfig(enabled=True, include_confirmations=True,
                                            confirmation="Checked: correct."))
    _, built = design.apply(_example("Order 4512 is cancelled."), DesignContext())
    assert built.messages[2].content == "Order 4512 is cancelled.\n\nChecked: correct."
    assert [(m.char_start, m.char_end, m.weight) for m in built.masks] == [(0, 24, 0.0)]


@pytest.mark.parametrize("original", [None, "Order 4512 is cancelled.  "])
def test_without_a_different_initial_answer_nothing_changes(original: str | None) -> None:
    design = PartialAnswerMasking(PamConfig(enabled=True))
    ctx = DesignContext(original_answer=(ChatMessage(role="assistant", content=original),)
                        if original else ())
    example = _example("Order 4512 is cancelled.")
    assert design.apply(example, ctx) == [example]


def test_tool_calling_answer_is_left_alone() -> None:
    example = _example("")
    example.messages[2].tool_calls.append(ToolCall(id="c1", type="function",
                                                   function=FunctionCall(name="cancel_order")))
    ctx = DesignContext(original_answer=(ChatMessage(role="assistant", content="No."),))
    assert PartialAnswerMasking(PamConfig(enabled=True)).apply(example, ctx) == [example]


def test_stale_masks_on_the_rewritten_message_are_replaced() -> None:
    example = _example("Yes.")
    example.masks.append(LossMask(message_index=2, char_start=0, char_end=2, weight=0.5))
    ctx = DesignContext(original_answer=(ChatMessage(role="assistant", content="No."),))
    _, built = PartialAnswerMasking(PamConfig(enabled=True)).apply(example, ctx)
    assert [(m.char_start, m.char_end, m.weight) for m in built.masks] == [(0, 3, 0.0)]
