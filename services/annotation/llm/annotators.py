"""The LLM judge and the LLM teacher.

The judge labels tasks with a rubric prompt per kind (five-step rating, pairwise choice with
reasons, failure attribution). The teacher writes the answer for CORRECT tasks; the judge
(another family, checked by the settings) then rates that answer on the five-step scale, and
only a rating of ``teacher_min_rating`` (good) or more makes the teacher's label count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..kinds import RATE, rating_from
from .client import ChatClient
from .rubrics import Prompt, parse_reply, task_fields


@dataclass(frozen=True)
class ModelLabel:
    """A label value from a model, with the model and prompt version that produced it."""

    value: dict[str, Any]
    model: str
    prompt_version: str


class Judge:
    """Labels tasks with the judge model."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    @property
    def labeller_id(self) -> str:
        return f"judge:{self.client.model}"

    async def label(self, kind: str, payload: Mapping[str, Any], prompt: Prompt,
                    guideline: str) -> ModelLabel:
        """The judge's label of a task of ``kind``.

        Raises:
            LLMUnavailable: the endpoint failed or the reply broke the rubric.
        """
        system, user = prompt.render(task_fields(payload, guideline))
        reply = await self.client.chat(system, user, temperature=0.0)
        value = parse_reply(kind, reply)
        return ModelLabel({**value, "model_name": self.client.model}, self.client.model,
                          prompt.version)

    async def rate_answer(self, payload: Mapping[str, Any], answer: str, prompt: Prompt,
                          guideline: str) -> ModelLabel:
        """The judge's 0-4 rating of ``answer`` as the final answer of the task's conversation."""
        system, user = prompt.render(task_fields(payload, guideline, answer_override=answer))
        reply = await self.client.chat(system, user, temperature=0.0)
        value = parse_reply(RATE, reply)
        value["rating"] = rating_from(value["rating"])
        return ModelLabel({**value, "model_name": self.client.model}, self.client.model,
                          prompt.version)


class Teacher:
    """Writes answers with the (stronger) teacher model."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    @property
    def labeller_id(self) -> str:
        return f"teacher:{self.client.model}"

    async def write(self, kind: str, payload: Mapping[str, Any], prompt: Prompt,
                    guideline: str) -> ModelLabel:
        """The teacher's answer for a task (value ``{"answer": ...}``).

        Raises:
            LLMUnavailable: the endpoint failed or answered nothing.
        """
        system, user = prompt.render(task_fields(payload, guideline))
        reply = await self.client.chat(system, user, temperature=0.2, max_tokens=1024)
        value = parse_reply(kind, reply)
        return ModelLabel({**value, "model_name": self.client.model}, self.client.model,
                          prompt.version)
