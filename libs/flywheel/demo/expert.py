"""The demo's simulated expert: an OpenAI-compatible endpoint acting as LLM judge and teacher.

It stands in for a strong model of another family than the generator. It knows the shop world
(every question the simulated users asked is registered with it), so it rates answers,
chooses between two answers, attributes agent failures and writes the canonical reply, with
a little noise like a real judge. The annotation service talks to it exactly as it would to
any OpenAI-compatible model: ``POST /v1/chat/completions``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from flywheel.demo import shop

EXPERT_MODEL = "northwind-expert-1"
# The judge answers from the same simulated knowledge but is named as another family: the
# annotation service refuses a judge that grades a teacher of its own family.
JUDGE_MODEL = "harbor-judge-1"
MODELS = (EXPERT_MODEL, JUDGE_MODEL)

_USER_LINE = re.compile(r"^USER: (.*)$", re.MULTILINE)
_SECTION = re.compile(r"\n\n(?=[A-Z][A-Za-z ]+:\n)")


class QuestionBook:
    """Every question the simulated users asked, by normalised text (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_text: dict[str, shop.Question] = {}

    def add(self, q: shop.Question) -> None:
        with self._lock:
            self._by_text[shop.normalize_answer(q.text)] = q

    def find(self, text: str) -> shop.Question | None:
        with self._lock:
            return self._by_text.get(shop.normalize_answer(text))


def _sections(text: str) -> dict[str, str]:
    """``Heading:\\nbody`` blocks of a rubric prompt, by heading."""
    out = {}
    for block in _SECTION.split("\n\n" + text):
        head, _, body = block.strip().partition(":\n")
        if body:
            # A section ends at the first blank line; what follows is the rubric's instruction.
            out[head.strip().lower()] = body.strip().split("\n\n")[0]
    return out


def _strip_role(answer: str) -> str:
    return re.sub(r"^ASSISTANT: ", "", answer.strip())


class Expert:
    """Grades and writes answers for the shop world with configurable noise."""

    def __init__(self, book: QuestionBook, seed: int = 0, noise: float = 0.05) -> None:
        self.book = book
        self.rng = random.Random(seed)
        self.noise = noise
        self.calls = 0

    def _question(self, conversation: str) -> shop.Question | None:
        users = _USER_LINE.findall(conversation)
        return self.book.find(users[-1]) if users else None

    def reply(self, system: str, user: str) -> str:
        self.calls += 1
        parts = _sections(user)
        q = self._question(parts.get("conversation", ""))
        if "ideal assistant reply" in system or "should have given" in user:
            return shop.reference_answer(q) if q else "I am sorry, I cannot help with that."
        if "answer a" in parts and "answer b" in parts:
            return self._pairwise(q, _strip_role(parts["answer a"]), _strip_role(parts["answer b"]))
        if "agent steps and outcome" in parts:
            return self._attribute(parts["agent steps and outcome"])
        return self._rate(q, _strip_role(parts.get("final answer", "")))

    def _flip(self) -> bool:
        return self.rng.random() < self.noise

    def _rate(self, q: shop.Question | None, answer: str) -> str:
        if q is None:
            return json.dumps({"reason": "unknown question", "rating": 2})
        ok = shop.is_correct(answer, q) != self._flip()
        close = q.order_number is not None and q.order_number in answer
        rating = 4 if ok else (1 if close else 0)
        return json.dumps({"reason": "matches policy" if ok else "wrong reply", "rating": rating})

    def _pairwise(self, q: shop.Question | None, a: str, b: str) -> str:
        if q is None:
            return json.dumps({"reasons": "unknown question", "choice": "tie"})
        ok_a, ok_b = shop.is_correct(a, q), shop.is_correct(b, q)
        choice = "tie" if ok_a == ok_b else ("A" if ok_a else "B")
        if choice != "tie" and self._flip():
            choice = "B" if choice == "A" else "A"
        return json.dumps({"reasons": "one answer follows policy", "choice": choice})

    def _attribute(self, steps: str) -> str:
        system = re.search(r"timeout|http_status=5\d\d|\b5\d\d\b|exception|unavailable",
                           steps, re.IGNORECASE)
        source = "system" if system else "model"
        if self._flip():
            source = "model" if source == "system" else "system"
        kind = "tool_timeout" if source == "system" else "wrong_tool"
        return json.dumps({"reason": "from the step log", "failure_source": source,
                           "failure_kind": kind})


class _ChatRequest(BaseModel):
    model: str = EXPERT_MODEL
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None


def create_expert_app(expert: Expert) -> FastAPI:
    """The OpenAI-compatible surface of the expert (chat completions and models)."""
    app = FastAPI(title="Northwind expert (simulated)")

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "demo"}
                                           for m in MODELS]}

    @app.post("/v1/chat/completions")
    def chat(req: _ChatRequest) -> dict:
        system = " ".join(str(m.get("content") or "") for m in req.messages
                          if m.get("role") == "system")
        user = str(next((m.get("content") for m in reversed(req.messages)
                         if m.get("role") == "user"), ""))
        text = expert.reply(system, user)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    return app
