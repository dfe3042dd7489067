"""Uncertainty (Active Prompting): disagreement and entropy over k sampled final answers.

The current model is asked the trace's prompt k times at a non-zero temperature. Answers are
compared after normalisation (case, whitespace and trailing punctuation do not count, numbers
do). ``disagreement`` is the share of answers outside the majority, ``entropy`` the Shannon
entropy (nats) of the distribution over distinct answers, normalised by ``ln k`` into the
score. When the trace carries token log-probabilities, their mean per-token entropy or mean
log-probability gives a second estimate; the score is the larger of the two.

This module is pure: it builds the request body and reads the response; the HTTP call lives
in :mod:`flywheel.services.triage.model_client`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_WS = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s.!?。]+$")


@dataclass(frozen=True)
class UncertaintyResult:
    """What the decision records (``flywheel.v1.Uncertainty``) plus the combined score."""

    k: int = 0
    disagreement: float = 0.0
    entropy: float = 0.0
    score: float = 0.0
    model_unavailable: bool = False
    measured: bool = False
    source: str = ""
    logprob_score: float | None = None
    alternative: str = ""

    def to_json(self) -> dict:
        return {"k": self.k, "d": self.disagreement, "e": self.entropy, "s": self.score,
                "u": self.model_unavailable, "m": self.measured, "src": self.source,
                "lp": self.logprob_score, "alt": self.alternative}

    @classmethod
    def from_json(cls, d: dict | None) -> "UncertaintyResult | None":
        if d is None:
            return None
        return cls(d["k"], d["d"], d["e"], d["s"], d["u"], d["m"], d["src"], d.get("lp"),
                   d.get("alt", ""))


def normalise_answer(text: str) -> str:
    """Compare answers modulo case, whitespace and trailing punctuation."""
    return _TRAILING.sub("", _WS.sub(" ", text).strip().casefold())


def disagreement(answers: Sequence[str]) -> float:
    """Share of answers that differ from the most common one (0 when all agree)."""
    if not answers:
        return 0.0
    counts = Counter(normalise_answer(a) for a in answers)
    return 1.0 - counts.most_common(1)[0][1] / len(answers)


def answer_entropy(answers: Sequence[str]) -> float:
    """Shannon entropy (nats) of the distribution over distinct normalised answers."""
    if not answers:
        return 0.0
    counts = Counter(normalise_answer(a) for a in answers)
    n = len(answers)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def logprob_uncertainty(stats) -> float | None:
    """0-1 uncertainty from ``LogprobStats``: mean token entropy when present (2 nats = 1.0),
    else 1 - exp(mean log-probability). None when the trace has no statistics."""
    if stats is None or stats.token_count <= 0:
        return None
    if stats.mean_entropy > 0:
        return round(min(1.0, stats.mean_entropy / 2.0), 4)
    if stats.mean_logprob < 0:
        return round(min(1.0, 1.0 - math.exp(stats.mean_logprob)), 4)
    return 0.0


def pick_alternative(answers: Sequence[str], current: str) -> str:
    """The most common sampled answer that differs from the trace's answer ("" if none)."""
    own = normalise_answer(current)
    counts = Counter(a for a in answers if normalise_answer(a) != own and a.strip())
    return counts.most_common(1)[0][0] if counts else ""


def assess_uncertainty(answers: Sequence[str] | None, current_answer: str, logprobs=None,
                       model_unavailable: bool = False, source: str = "model") -> UncertaintyResult:
    """Combine sampled answers (None: not sampled) and log-prob statistics into one result."""
    lp = logprob_uncertainty(logprobs)
    if not answers:
        return UncertaintyResult(model_unavailable=model_unavailable, measured=lp is not None,
                                 score=lp or 0.0, source="logprobs" if lp is not None else "",
                                 logprob_score=lp)
    k = len(answers)
    d = disagreement(answers)
    h = answer_entropy(answers)
    sample_score = h / math.log(k) if k > 1 else 0.0
    score = max(sample_score, lp) if lp is not None else sample_score
    return UncertaintyResult(k, round(d, 4), round(h, 4), round(score, 4), model_unavailable,
                             True, source, lp, pick_alternative(answers, current_answer))


def prompt_messages(trace) -> list[dict]:
    """The conversation up to the final assistant answer, OpenAI-shaped (tool calls kept)."""
    messages = list(trace.messages)
    last = max((i for i, m in enumerate(messages) if m.role == "assistant" and m.content),
               default=len(messages))
    out = []
    for m in messages[:last]:
        msg: dict = {"role": m.role, "content": m.content}
        if m.name:
            msg["name"] = m.name
        if m.tool_call_id:
            msg["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": c.type or "function",
                                  "function": {"name": c.function.name,
                                               "arguments": c.function.arguments}}
                                 for c in m.tool_calls]
        out.append(msg)
    return out


def sampling_request(trace, k: int, model: str, temperature: float, max_tokens: int) -> dict:
    """The OpenAI chat-completions body asking for ``k`` sampled answers to the trace's prompt.

    ``metadata.flywheel_trace = "off"`` keeps these internal samples out of ``traces.raw``:
    a Flywheel model server would otherwise feed triage's own probes back to triage.
    """
    return {"model": model or trace.model.name or "default", "messages": prompt_messages(trace),
            "n": k, "temperature": temperature, "max_tokens": max_tokens,
            "metadata": {"flywheel_trace": "off"}}


def parse_answers(body: dict) -> list[str]:
    """The choices' message contents from an OpenAI chat-completions response."""
    out = []
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif message.get("tool_calls"):
            calls = message["tool_calls"]
            out.append(" ".join(f"{c.get('function', {}).get('name')}"
                                f"({c.get('function', {}).get('arguments')})" for c in calls))
    return out
