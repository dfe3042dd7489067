"""Pure decisions of the preferences service: which model answers second, how the two answers
are shown, when a request expires, what a posted choice means, and the answer event.

Nothing here touches a socket, a database or a clock it was not given.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from flywheel.events.codec import from_dict
from flywheel.events.envelope import stamp
from flywheel.v1 import common_pb2
from flywheel.v1.preference_pb2 import PreferenceAnswer

from .errors import InvalidAnswer

RATING_FIELDS = ("helpfulness", "correctness", "style")
TIE = "tie"
_WS = re.compile(r"\s+")


# -- the second answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """The model id to ask for the second answer, at which temperature, and why."""

    model: str
    temperature: float
    role: Literal["canary", "release"]


def choose_second_model(listing: Sequence[Mapping[str, Any]], original_version: str,
                        fallback_model: str, canary_temperature: float,
                        sample_temperature: float) -> ModelChoice:
    """The canary when one is live (and did not give the first answer), else a sample of the
    release.

    Args:
        listing: ``GET /models`` entries; the serving service marks live versions with
            ``role`` ``stable``/``canary`` and ids ``<line>:<version>``. Other endpoints list
            plain ids, and then ``fallback_model`` is sampled.
        original_version: version of the model that gave the first answer.
        fallback_model: model id to sample when the listing names no stable version.
    """
    canary = next((m for m in listing if m.get("role") == "canary"), None)
    if canary is not None and split_model_id(str(canary["id"]))[1] != original_version:
        return ModelChoice(str(canary["id"]), canary_temperature, "canary")
    stable = next((m for m in listing if m.get("role") == "stable"), None)
    model = str(stable["id"]) if stable is not None else fallback_model
    return ModelChoice(model, sample_temperature, "release")


def split_model_id(model_id: str, header_version: str = "") -> tuple[str, str]:
    """``"line:7"`` -> ``("line", "7")``; a plain id keeps the version from the header."""
    name, sep, version = model_id.partition(":")
    return (name, version) if sep else (model_id, header_version)


def answer_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The comparable text of an answer: every assistant content and tool call, normalised."""
    parts: list[str] = []
    for message in messages:
        if message.get("role", "assistant") != "assistant":
            continue
        parts.append(_WS.sub(" ", str(message.get("content") or "")).strip())
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            parts.append(f"{fn.get('name', '')}({_WS.sub('', str(fn.get('arguments', '')))})")
    return "\n".join(p for p in parts if p)


def answers_differ(first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]]) -> bool:
    """Whether two answers differ once whitespace is normalised (asking about twins is waste)."""
    return answer_text(first) != answer_text(second)


# -- the pending request ----------------------------------------------------------------------


def new_answer_id() -> str:
    return "ans_" + uuid.uuid4().hex[:16]


def display_order(rng: random.Random) -> list[str]:
    """Which of answer ``a`` (the original) and ``b`` (the second) is shown first."""
    return ["a", "b"] if rng.random() < 0.5 else ["b", "a"]


def expiry(now: datetime, requested: datetime | None, ttl_s: float, max_ttl_s: float) -> datetime:
    """When a request stops being shown: the requested time, else now + ttl, never past max."""
    latest = now + timedelta(seconds=max_ttl_s)
    when = requested if requested is not None and requested > now else now + timedelta(seconds=ttl_s)
    return min(when, latest)


def budget_key(user_id: str, now: datetime) -> str:
    """Redis key counting the questions asked to ``user_id`` on ``now``'s UTC day."""
    return f"fw:pref:budget:{user_id}:{now:%Y%m%d}"


def pending_view(request_id: str, trace_id: str, user_id: str, payload: Mapping[str, Any],
                 created_at: datetime, expires_at: datetime) -> dict[str, Any]:
    """The request as apps see it (API and webhooks): answers in display order."""
    answers = payload["answers"]
    return {
        "request_id": request_id,
        "trace_id": trace_id,
        "user": user_id,
        "app_id": payload.get("app_id") or None,
        "prompt": payload.get("prompt", []),
        "answers": [answers[side] for side in payload["display"]],
        "created_at": created_at.isoformat(),
        "expires_at": expires_at.isoformat(),
    }


# -- the posted answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A posted answer mapped onto the stored request."""

    choice: int  # common_pb2.Choice
    chosen_side: str  # "a" or "b" ("a" on a tie, as the event schema prescribes)
    position_of_chosen: int
    ratings: dict[str, dict[str, int]]  # side -> {field: 1..7}
    shown: list[str]  # sides in the order the user saw them


def resolve_answer(payload: Mapping[str, Any], chosen: str,
                   ratings: Mapping[str, Mapping[str, int | None]] | None = None,
                   shown_order: Sequence[str] | None = None) -> Resolved:
    """Map ``chosen`` (an answer id or ``"tie"``) and per-answer ratings onto sides a/b.

    Raises:
        InvalidAnswer: an id that is not one of the two answers, a bad ``shown_order`` or a
            rating outside 1-7.
    """
    side_of = {payload["answers"][s]["answer_id"]: s for s in ("a", "b")}
    shown = list(payload["display"])
    if shown_order is not None:
        if sorted(shown_order) != sorted(side_of):
            raise InvalidAnswer("shown_order must list both answer ids once")
        shown = [side_of[i] for i in shown_order]
    if chosen == TIE:
        choice, side = common_pb2.CHOICE_TIE, "a"
    elif chosen in side_of:
        side = side_of[chosen]
        choice = common_pb2.CHOICE_A if side == "a" else common_pb2.CHOICE_B
    else:
        raise InvalidAnswer(f"chosen must be one of the answer ids or {TIE!r}")
    by_side: dict[str, dict[str, int]] = {}
    for answer_id, values in (ratings or {}).items():
        if answer_id not in side_of:
            raise InvalidAnswer(f"ratings name an unknown answer {answer_id!r}")
        by_side[side_of[answer_id]] = _check_ratings(values)
    return Resolved(choice, side, shown.index(side), by_side, shown)


def _check_ratings(values: Mapping[str, int | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in values.items():
        if name not in RATING_FIELDS:
            raise InvalidAnswer(f"unknown rating {name!r}; use {', '.join(RATING_FIELDS)}")
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 7:
            raise InvalidAnswer(f"rating {name} must be an integer from 1 to 7")
        out[name] = value
    return out


def answer_event(*, request_id: str, trace_id: str, user_id: str, payload: Mapping[str, Any],
                 resolved: Resolved, reason: str, answered_at: datetime,
                 producer: str = "preferences") -> PreferenceAnswer:
    """The ``PreferenceAnswer`` for a resolved choice, with copies of prompt and answers."""
    answers = payload["answers"]
    chosen, rejected = answers[resolved.chosen_side], answers[_other(resolved.chosen_side)]
    event = PreferenceAnswer(request_id=request_id, trace_id=trace_id, user_id=user_id,
                             chosen=resolved.choice, position_of_chosen=resolved.position_of_chosen,
                             reason=reason)
    event.chosen_model.CopyFrom(from_dict(chosen.get("model", {}), common_pb2.ModelRef))
    event.rejected_model.CopyFrom(from_dict(rejected.get("model", {}), common_pb2.ModelRef))
    for side, target in (("a", event.ratings_a), ("b", event.ratings_b)):
        for name, value in resolved.ratings.get(side, {}).items():
            setattr(target, name, value)
    event.answered_at.FromDatetime(answered_at)
    _messages(event.prompt, payload.get("prompt", []))
    _messages(event.chosen_messages, chosen.get("messages", []))
    _messages(event.rejected_messages, rejected.get("messages", []))
    return stamp(event, producer, app_id=payload.get("app_id") or "")


def _other(side: str) -> str:
    return "b" if side == "a" else "a"


def _messages(target: Any, messages: Sequence[Mapping[str, Any]]) -> None:
    for message in messages:
        target.add().CopyFrom(from_dict(message, common_pb2.ChatMessage))
