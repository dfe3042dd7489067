"""What every data-design transform shares: its input context and small helpers on examples.

A design is a named transform on curated SFT examples (``flywheel.v1.SftExample``). It returns
the examples that replace its input, in the same message format (OpenAI chat messages, tool
calls and tool results included), with the design's name appended to ``transforms`` and any
loss masks it needs in ``masks``. A design that does not apply returns its input unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flywheel.errors import FlywheelError
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.examples_pb2 import LossMask, SftExample
from flywheel.v1.trace_pb2 import Trace


class DesignError(FlywheelError):
    """A design was misconfigured or named unknown transforms."""


@dataclass(frozen=True)
class DesignContext:
    """What a design may need beyond the example itself.

    Attributes:
        trace: the redacted trace the example came from (context documents, tags), if known.
        original_answer: for corrections, the answer the model gave before it was corrected
            (the messages after the last user turn).
    """

    trace: Trace | None = None
    original_answer: Sequence[ChatMessage] = field(default_factory=tuple)


class Design(Protocol):
    """A per-example transform: ``apply`` returns the examples that replace ``example``."""

    name: str

    def apply(self, example: SftExample, ctx: DesignContext) -> list[SftExample]: ...


def copy_example(example: SftExample) -> SftExample:
    """A deep copy, so a design never mutates its input."""
    out = SftExample()
    out.CopyFrom(example)
    return out


def with_transform(example: SftExample, name: str) -> SftExample:
    """Append ``name`` to the example's transforms (once) and return the example."""
    if name not in example.transforms:
        example.transforms.append(name)
    return example


def last_assistant_index(messages: Sequence[ChatMessage]) -> int | None:
    """Index of the final assistant message, or None when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            return index
    return None


def last_user_index(messages: Sequence[ChatMessage]) -> int | None:
    """Index of the final user message, or None when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return None


def is_plain_text_answer(message: ChatMessage) -> bool:
    """True for an assistant message with text and no tool calls."""
    return message.role == "assistant" and bool(message.content) and not message.tool_calls


def final_text_answer(messages: Sequence[ChatMessage]) -> str | None:
    """The text of the final assistant message when it is a plain text answer."""
    index = last_assistant_index(messages)
    if index is None or not is_plain_text_answer(messages[index]):
        return None
    return messages[index].content


def mask(message_index: int, start: int, end: int, weight: float) -> LossMask:
    """One loss-mask span over ``messages[message_index].content[start:end]``."""
    return LossMask(message_index=message_index, char_start=start, char_end=end, weight=weight)


def drop_masks_for(example: SftExample, indices: Iterable[int]) -> None:
    """Remove the masks that point at any of ``indices`` (their message text changed)."""
    gone = set(indices)
    keep = [m for m in example.masks if m.message_index not in gone]
    del example.masks[:]
    example.masks.extend(keep)
