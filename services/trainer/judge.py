"""The pairwise judge: which of two answers to a prompt is better.

``HttpJudge`` asks an OpenAI-compatible chat-completions endpoint (``FLYWHEEL_TRAINER_JUDGE_URL``,
e.g. ``http://judge:8000/v1``) and expects a reply starting with ``A``, ``B`` or ``TIE``. Each
comparison shows the two answers in a seeded random order, so a judge's position bias does
not favour the candidate or the release.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from flywheel.errors import FlywheelError

Verdict = Literal["a", "b", "tie"]
_VERDICT = re.compile(r"\b(A|B|TIE)\b", re.IGNORECASE)

JUDGE_INSTRUCTIONS = (
    "You compare two assistant answers to the same conversation. Judge correctness first, "
    "then helpfulness and style. Reply with exactly one word: A if answer A is better, B if "
    "answer B is better, TIE if they are equally good."
)


class JudgeError(FlywheelError):
    """The judge could not be asked or gave no usable verdict."""


class Judge(Protocol):
    def compare(self, prompt: Sequence[Mapping[str, Any]], answer_a: str, answer_b: str) -> Verdict:
        """Which answer is better: ``a``, ``b`` or ``tie``."""


def _transcript(prompt: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for message in prompt:
        content = message.get("content") or ""
        if message.get("tool_calls"):
            content += " " + json.dumps(message["tool_calls"], ensure_ascii=False)
        lines.append(f"{message.get('role', 'user')}: {content}")
    return "\n".join(lines)


def parse_verdict(text: str) -> Verdict:
    """The first A / B / TIE word of a judge reply.

    Raises:
        JudgeError: the reply names none of them.
    """
    match = _VERDICT.search(text or "")
    if match is None:
        raise JudgeError(f"judge reply has no verdict: {text[:80]!r}")
    return match.group(1).lower()  # type: ignore[return-value]


class HttpJudge:
    """A judge behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 30.0, client: Any = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)

    def compare(self, prompt: Sequence[Mapping[str, Any]], answer_a: str, answer_b: str) -> Verdict:
        import httpx

        body = {"model": self.model, "temperature": 0, "max_tokens": 4, "messages": [
            {"role": "system", "content": JUDGE_INSTRUCTIONS},
            {"role": "user", "content": f"Conversation:\n{_transcript(prompt)}\n\n"
                                        f"Answer A:\n{answer_a}\n\nAnswer B:\n{answer_b}"}]}
        try:
            response = self.client.post(self.url, json=body)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise JudgeError(f"judge at {self.url} failed: {type(exc).__name__}: {exc}") from None
        return parse_verdict(text)

    def close(self) -> None:
        self.client.close()


def judged_outcomes(judge: Judge, prompts: Sequence[Sequence[Mapping[str, Any]]],
                    candidate: Sequence[str], release: Sequence[str],
                    seed: int = 0) -> tuple[int, int, int, int]:
    """(wins, losses, ties, errors) of the candidate's answers against the release's.

    Equal answers are ties without asking; each comparison randomises which side is A.
    """
    rng = random.Random(seed)
    wins = losses = ties = errors = 0
    for prompt, cand, rel in zip(prompts, candidate, release):
        if cand.strip() == rel.strip():
            ties += 1
            continue
        swap = rng.random() < 0.5
        try:
            verdict = judge.compare(prompt, rel, cand) if swap else judge.compare(prompt, cand, rel)
        except JudgeError:
            errors += 1
            continue
        if verdict == "tie":
            ties += 1
        elif (verdict == "a") != swap:
            wins += 1
        else:
            losses += 1
    return wins, losses, ties, errors
