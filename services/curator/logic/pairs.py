"""Preference pairs: from user choices, pairwise labels, corrections and rating gaps.

Every pair is a TRL conversational preference row: the shared ``prompt`` messages, then the
``chosen`` and ``rejected`` continuations. Continuations are whole turns, so an agent turn
keeps its tool calls and tool results on both sides, and the tools list goes with the pair.

Rating gaps: answers to the same normalised prompt that were rated on a common 0-1 scale
(annotation ratings 0-4 divided by 4; end-user 1-7 ratings mapped by (r - 1) / 6) form a pair
when their scores differ by at least ``min_gap``; the better one is chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.services.curator.logic.formats import (
    canonical_json,
    message_proto,
    messages_dicts,
    seal_dpo,
    tool_dict,
    tool_proto,
)
from flywheel.v1.common_pb2 import ChatMessage, ModelRef, ToolDefinition
from flywheel.v1.examples_pb2 import DpoExample, Lineage


def same_turn(a: Sequence[ChatMessage], b: Sequence[ChatMessage]) -> bool:
    """True when two continuations are the same messages (whitespace at the ends ignored)."""
    def norm(msgs: Sequence[ChatMessage]) -> str:
        rows = messages_dicts(msgs)
        for row in rows:
            row["content"] = row["content"].strip()
        return canonical_json(rows)
    return norm(a) == norm(b)


def build_pair(prompt: Sequence[ChatMessage], chosen: Sequence[ChatMessage],
               rejected: Sequence[ChatMessage], *, tools: Sequence[ToolDefinition] = (),
               source: str, intent: str = "", lineage: Lineage | None = None,
               chosen_model: ModelRef | None = None, rejected_model: ModelRef | None = None,
               transforms: Iterable[str] = ()) -> DpoExample | None:
    """A sealed DPO example, or None when a side is empty or both sides are the same."""
    if not prompt or not chosen or not rejected or same_turn(chosen, rejected):
        return None
    example = DpoExample(prompt=list(prompt), chosen=list(chosen), rejected=list(rejected),
                         tools=list(tools), source=source, intent=intent,
                         transforms=list(transforms))
    if lineage is not None:
        example.lineage.CopyFrom(lineage)
    if chosen_model is not None:
        example.chosen_model.CopyFrom(chosen_model)
    if rejected_model is not None:
        example.rejected_model.CopyFrom(rejected_model)
    return seal_dpo(example)


@dataclass(frozen=True)
class RatedAnswer:
    """An answer to a prompt with a score on the common 0-1 scale, kept for rating gaps."""

    prompt: tuple[ChatMessage, ...]
    answer: tuple[ChatMessage, ...]
    score: float
    tools: tuple[ToolDefinition, ...] = ()
    model: ModelRef = field(default_factory=ModelRef)
    intent: str = ""
    trace_id: str = ""
    user_id: str = ""
    labeller_id: str = ""
    event_id: str = ""
    topic: str = ""
    partition: int = 0
    offset: int = 0

    def answer_key(self) -> str:
        """Identity of the answer text (ratings of the same answer are merged by it)."""
        return canonical_json([{**m, "content": m["content"].strip()}
                               for m in messages_dicts(self.answer)])

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": messages_dicts(self.prompt), "answer": messages_dicts(self.answer),
                "score": self.score, "tools": [tool_dict(t) for t in self.tools],
                "model": {"name": self.model.name, "version": self.model.version},
                "intent": self.intent, "trace_id": self.trace_id, "user_id": self.user_id,
                "labeller_id": self.labeller_id, "event_id": self.event_id,
                "topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RatedAnswer":
        model = data.get("model") or {}
        return cls(
            prompt=tuple(message_proto(m) for m in data.get("prompt", [])),
            answer=tuple(message_proto(m) for m in data.get("answer", [])),
            score=float(data["score"]),
            tools=tuple(tool_proto(t) for t in data.get("tools", [])),
            model=ModelRef(name=model.get("name", ""), version=model.get("version", "")),
            intent=data.get("intent", ""), trace_id=data.get("trace_id", ""),
            user_id=data.get("user_id", ""), labeller_id=data.get("labeller_id", ""),
            event_id=data.get("event_id", ""), topic=data.get("topic", ""),
            partition=int(data.get("partition", 0)), offset=int(data.get("offset", 0)),
        )


def _pair_lineage(better: RatedAnswer, worse: RatedAnswer, newest: RatedAnswer) -> Lineage:
    def uniq(values: Iterable[str]) -> list[str]:
        return sorted({v for v in values if v})
    return Lineage(
        trace_ids=uniq([better.trace_id, worse.trace_id]),
        topic=newest.topic, partition=newest.partition, offset=newest.offset,
        labeller_ids=uniq([better.labeller_id, worse.labeller_id]),
        user_ids=uniq([better.user_id, worse.user_id]),
        event_ids=uniq([better.event_id, worse.event_id]),
    )


def rating_gap_pairs(new: RatedAnswer, earlier: Sequence[RatedAnswer], min_gap: float,
                     source: str = "rating_gap") -> list[DpoExample]:
    """Pairs between ``new`` and every earlier answer whose score differs by ``min_gap`` or more.

    The better-rated answer is chosen; the prompt and tools are the chosen answer's.
    """
    pairs: list[DpoExample] = []
    for other in earlier:
        if other.answer_key() == new.answer_key() or abs(new.score - other.score) < min_gap:
            continue
        better, worse = (new, other) if new.score > other.score else (other, new)
        pair = build_pair(better.prompt, better.answer, worse.answer, tools=better.tools,
                          source=source, intent=better.intent or worse.intent,
                          lineage=_pair_lineage(better, worse, new),
                          chosen_model=better.model, rejected_model=worse.model)
        if pair is not None:
            pairs.append(pair)
    return pairs


def add_rated(earlier: Sequence[RatedAnswer], new: RatedAnswer,
              limit: int = 16) -> list[RatedAnswer]:
    """Table reducer: keep the newest rating per answer and at most ``limit`` answers."""
    kept = [r for r in earlier if r.answer_key() != new.answer_key()]
    kept.append(new)
    return kept[-limit:]
