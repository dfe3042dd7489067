"""Partial answer masking (PAM) for intrinsic self-correction (Zhang et al. 2024, "Learning to
Check").

From a correction (the model's initial answer and the corrected one) PAM builds one assistant
turn of the form::

    <initial answer>

    <self-verification>

    <corrected answer>

and masks the loss on the initial answer (weight 0 over its characters), so the model learns
to verify and revise an answer without learning to produce the wrong one. With
``include_confirmations`` a positive example also yields ``<answer>\\n\\n<confirmation>`` with
the answer masked, so that verification does not always end in a revision.

The PAM example is emitted next to the plain example unless ``replace`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.designs.base import (
    DesignContext,
    copy_example,
    drop_masks_for,
    final_text_answer,
    last_assistant_index,
    mask,
    with_transform,
)
from flywheel.v1.examples_pb2 import SftExample

NAME = "pam"
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PamConfig:
    """Args:
        enabled: switch for this design.
        verification: the self-verification text that follows a wrong initial answer.
        confirmation: the text that follows a right answer (with include_confirmations).
        include_confirmations: also build verify-and-confirm examples from positive examples.
        replace: emit only the PAM example instead of the plain example plus the PAM example.
    """

    enabled: bool = False
    verification: str = "Let me check that answer. It is not correct. The corrected answer:"
    confirmation: str = "Let me check that answer. It is correct."
    include_confirmations: bool = False
    replace: bool = False

    def __post_init__(self) -> None:
        if not self.verification.strip() or not self.confirmation.strip():
            raise ValueError("pam.verification and pam.confirmation must not be empty")


def self_correction_turn(initial: str, verification: str, corrected: str) -> tuple[str, int]:
    """The PAM assistant text and the length of the masked prefix (the initial answer)."""
    return f"{initial}{SEPARATOR}{verification}{SEPARATOR}{corrected}", len(initial)


class PartialAnswerMasking:
    """Build initial-answer -> verification -> corrected-answer turns with the initial masked."""

    name = NAME

    def __init__(self, config: PamConfig | None = None) -> None:
        self.config = config or PamConfig()

    def _build(self, example: SftExample, text: str, masked_chars: int) -> SftExample:
        out = copy_example(example)
        index = last_assistant_index(out.messages)
        assert index is not None  # callers checked final_text_answer
        out.messages[index].content = text
        drop_masks_for(out, [index])
        out.masks.append(mask(index, 0, masked_chars, 0.0))
        return with_transform(out, NAME)

    def apply(self, example: SftExample, ctx: DesignContext) -> list[SftExample]:
        """Plain example plus its PAM variant (or the PAM variant alone with ``replace``).

        Applies when the final assistant message is plain text and either the context holds
        a different plain-text original answer (a correction) or confirmations are enabled.
        """
        answer = final_text_answer(example.messages)
        if answer is None:
            return [example]
        initial = final_text_answer(list(ctx.original_answer)) if ctx.original_answer else None
        if initial is not None and initial.strip() != answer.strip():
            text, cut = self_correction_turn(initial, self.config.verification, answer)
        elif initial is None and self.config.include_confirmations:
            text, cut = f"{answer}{SEPARATOR}{self.config.confirmation}", len(answer)
        else:
            return [example]
        built = self._build(example, text, cut)
        return [built] if self.config.replace else [example, built]
