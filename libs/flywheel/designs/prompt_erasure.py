"""Prompt erasure (Orca-2, Mitra et al. 2023).

A careful answer was often produced under a detailed system prompt that spelled out a
strategy ("think step by step, check the order number, then ..."). Training the student on
that prompt teaches it to follow instructions it will not get in production. Prompt erasure
keeps the answer and replaces the detailed system prompt with a generic one, so the model
learns the strategy itself rather than the instructions.

Which system prompts count as detailed: those at least ``min_chars`` long, and any system
prompt of a trace tagged ``system_prompt=detailed``. Shorter prompts are left alone, because
they are what the model sees in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.designs.base import DesignContext, copy_example, with_transform
from flywheel.v1.examples_pb2 import SftExample

NAME = "prompt_erasure"
GENERIC_SYSTEM_PROMPT = "You are a helpful assistant."
DETAILED_TAG = ("system_prompt", "detailed")


@dataclass(frozen=True)
class PromptErasureConfig:
    """Args:
        enabled: switch for this design.
        generic_system_prompt: the prompt that replaces a detailed one.
        min_chars: a system prompt at least this long counts as detailed.
    """

    enabled: bool = True
    generic_system_prompt: str = GENERIC_SYSTEM_PROMPT
    min_chars: int = 200

    def __post_init__(self) -> None:
        if self.min_chars < 1:
            raise ValueError("prompt_erasure.min_chars must be at least 1")
        if not self.generic_system_prompt.strip():
            raise ValueError("prompt_erasure.generic_system_prompt must not be empty")


def _tagged_detailed(ctx: DesignContext) -> bool:
    key, value = DETAILED_TAG
    return ctx.trace is not None and ctx.trace.tags.get(key) == value


class PromptErasure:
    """Replace a detailed system prompt (message 0) with the generic one."""

    name = NAME

    def __init__(self, config: PromptErasureConfig | None = None) -> None:
        self.config = config or PromptErasureConfig()

    def applies(self, example: SftExample, ctx: DesignContext) -> bool:
        """True when the example opens with a detailed system prompt."""
        if not example.messages or example.messages[0].role not in ("system", "developer"):
            return False
        content = example.messages[0].content
        if content == self.config.generic_system_prompt:
            return False
        return len(content) >= self.config.min_chars or _tagged_detailed(ctx)

    def apply(self, example: SftExample, ctx: DesignContext) -> list[SftExample]:
        """The example with its system prompt erased, or the input when it does not apply.

        Masks stay valid: they index assistant messages, and the system message keeps index 0.
        """
        if not self.applies(example, ctx):
            return [example]
        out = copy_example(example)
        out.messages[0].role = "system"
        out.messages[0].content = self.config.generic_system_prompt
        return [with_transform(out, NAME)]
