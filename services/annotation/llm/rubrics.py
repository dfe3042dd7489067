"""Rubric prompts of the judge and the teacher, how tasks are rendered into them, and how
replies are parsed back into label values (pure).

A prompt is a ``system`` and a ``user`` template. Templates may use ``{guideline}``,
``{conversation}`` (the conversation before the final answer), ``{answer}`` (the final
answer), ``{answer_a}``/``{answer_b}`` (pairwise candidates) and ``{steps}`` (agent steps and
outcome). The first versions below are seeded; new versions go through the prompt lab.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LLMUnavailable
from ..kinds import CLASSIFY_FAILURE, CORRECT, PAIRWISE, RATE, rating_from, validate_label
from .client import parse_json_object

JUDGE = "judge"
TEACHER = "teacher"
JUDGE_KINDS: tuple[str, ...] = (RATE, PAIRWISE, CLASSIFY_FAILURE)
TEACHER_KINDS: tuple[str, ...] = (CORRECT,)


@dataclass(frozen=True)
class Prompt:
    """One version of a rubric prompt."""

    role: str
    kind: str
    version: str
    system: str
    user: str

    def render(self, fields: Mapping[str, str]) -> tuple[str, str]:
        values: defaultdict[str, str] = defaultdict(str, fields)
        return self.system.format_map(values), self.user.format_map(values)

    def to_text(self) -> str:
        return json.dumps({"system": self.system, "user": self.user})

    @classmethod
    def from_text(cls, role: str, kind: str, version: str, text: str) -> "Prompt":
        data = json.loads(text)
        return cls(role, kind, version, data["system"], data["user"])


_SCALE = ("0 very bad: wrong, harmful or ignores the question; 1 bad: mostly wrong or misses "
          "the key fact; 2 moderate: partly right or vague; 3 good: correct and complete with "
          "small issues; 4 excellent: correct, complete, concise and friendly")

DEFAULT_PROMPTS: dict[tuple[str, str], Prompt] = {
    (JUDGE, RATE): Prompt(
        JUDGE, RATE, "judge-rate-1",
        "You are a strict, impartial evaluator of customer-support assistants. " + _SCALE + ".",
        "Guideline:\n{guideline}\n\nConversation:\n{conversation}\n\nFinal answer:\n{answer}\n\n"
        "Rate the final answer on the five-step scale (0 very bad, 1 bad, 2 moderate, 3 good, "
        "4 excellent). Reply with JSON only: "
        '{{"reason": "<one sentence>", "rating": <0-4>}}'),
    (JUDGE, PAIRWISE): Prompt(
        JUDGE, PAIRWISE, "judge-pairwise-1",
        "You are a strict, impartial evaluator comparing two assistant answers. Do not let the "
        "order of the answers or their length influence you.",
        "Guideline:\n{guideline}\n\nConversation:\n{conversation}\n\nAnswer A:\n{answer_a}\n\n"
        "Answer B:\n{answer_b}\n\nGive your reasons first, then choose. Reply with JSON only: "
        '{{"reasons": "<why>", "choice": "A" | "B" | "tie"}}'),
    (JUDGE, CLASSIFY_FAILURE): Prompt(
        JUDGE, CLASSIFY_FAILURE, "judge-classify_failure-1",
        "You diagnose failed agent runs: was the model or the system around it at fault?",
        "Guideline:\n{guideline}\n\nConversation:\n{conversation}\n\nAgent steps and outcome:\n"
        "{steps}\n\nReply with JSON only: "
        '{{"reason": "<why>", "failure_source": "model" | "system" | "unknown", '
        '"failure_kind": "<snake_case>"}}'),
    (TEACHER, CORRECT): Prompt(
        TEACHER, CORRECT, "teacher-correct-1",
        "You are an expert customer-support agent who writes the ideal assistant reply.",
        "Guideline:\n{guideline}\n\nConversation:\n{conversation}\n\nThe assistant answered:\n"
        "{answer}\n\nWrite the answer the assistant should have given to the user's last "
        "message. Reply with the answer text only."),
}


# -- rendering --------------------------------------------------------------------------------


def render_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """A conversation as plain text, tool calls and tool results included."""
    lines = []
    for message in messages:
        role = str(message.get("role", "")).upper()
        if message.get("content"):
            name = f" {message['name']}" if role == "TOOL" and message.get("name") else ""
            lines.append(f"{role}{name}: {message['content']}")
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            lines.append(f"{role} calls {fn.get('name', '')}({fn.get('arguments', '')})")
    return "\n".join(lines)


def split_final_answer(messages: Sequence[Mapping[str, Any]]
                       ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """``(context, final answer)``: the answer is everything after the last user message."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return list(messages[: last_user + 1]), list(messages[last_user + 1:])


def render_steps(trace: Mapping[str, Any]) -> str:
    lines = []
    for step in trace.get("steps", []):
        error = step.get("error", {})
        detail = f" error={error.get('type', '')} {error.get('message', '')}" if error else ""
        lines.append(f"- {step.get('kind', '')} {step.get('name', '')} "
                     f"status={step.get('status', '')}{detail}")
    outcome = trace.get("outcome", {})
    if outcome:
        lines.append(f"outcome: {outcome.get('status', '')} {outcome.get('failure_kind', '')} "
                     f"{outcome.get('detail', '')}".rstrip())
    return "\n".join(lines) or "(no steps recorded)"


def task_fields(payload: Mapping[str, Any], guideline: str,
                answer_override: str | None = None) -> dict[str, str]:
    """The template fields of a task (its payload is the AnnotationTask in JSON mapping)."""
    trace = payload.get("trace", {})
    context, final = split_final_answer(trace.get("messages", []))
    candidates = payload.get("candidates", [])
    answer = answer_override if answer_override is not None else render_messages(final)
    return {
        "guideline": guideline,
        "conversation": render_messages(context),
        "answer": answer or "(no answer)",
        "answer_a": render_messages(candidates[0].get("messages", [])) if candidates else "",
        "answer_b": render_messages(candidates[1].get("messages", [])) if len(candidates) > 1 else "",
        "steps": render_steps(trace),
    }


# -- parsing ----------------------------------------------------------------------------------


def parse_reply(kind: str, reply: str) -> dict[str, Any]:
    """A label value from a judge or teacher reply.

    Raises:
        LLMUnavailable: the reply does not hold a valid label for the kind.
    """
    try:
        if kind == CORRECT:
            return validate_label(kind, {"answer": reply.strip()})
        data = parse_json_object(reply)
        reason = str(data.get("reason") or data.get("reasons") or "")
        if kind == RATE:
            return validate_label(kind, {"rating": rating_from(data.get("rating")),
                                         "reason": reason})
        if kind == PAIRWISE:
            return validate_label(kind, {"choice": str(data.get("choice", "")).strip().lower(),
                                         "reason": reason})
        return validate_label(kind, {"failure_source": data.get("failure_source"),
                                     "failure_kind": data.get("failure_kind") or "",
                                     "reason": reason})
    except LLMUnavailable:
        raise
    except Exception as exc:  # InvalidLabel and friends: the model broke the rubric
        raise LLMUnavailable(f"unusable {kind} reply: {exc}") from exc
