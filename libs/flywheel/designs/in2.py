"""Information-intensive long-context training (IN2, An et al. 2024, "Make Your LLM Fully
Utilize the Context").

IN2 synthesises long-context question-answer examples whose answer needs information that
sits in a short segment placed anywhere in a long context (fine-grained awareness), or in
several segments that must be combined (integration). The long context is made of other,
unrelated segments, so the model cannot find the answer by position.

Facts are (segment, question, answer) triples, e.g. a retrieved document, the user's question
and the answer that it supported. Fillers are other segments. Everything is deterministic for
a seed.

Formats (user message; the assistant message is the answer)::

    <segment> ... <segment>            # the context: fillers with the fact segment(s) inside

    Question: <question>               # one fact
    Questions:\\n1. <q1>\\n2. <q2>     # several facts; the answer is "1. <a1>\\n2. <a2>"
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from flywheel.designs.base import DesignError
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.examples_pb2 import Lineage, SftExample

NAME = "in2"
SEGMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class In2Fact:
    """One segment with a question it answers."""

    segment: str
    question: str
    answer: str
    intent: str = ""
    lineage: Lineage = field(default_factory=Lineage)


@dataclass(frozen=True)
class In2Config:
    """Args:
        enabled: switch for this design.
        examples_per_batch: how many examples to synthesise per batch.
        context_chars: target length of the long context in characters.
        multi_share: share of examples that combine several segments.
        max_segments: most fact segments in one multi-segment example (at least 2).
        system_prompt: optional system message for the synthesised examples.
        instruction: the line above the question(s).
    """

    enabled: bool = False
    examples_per_batch: int = 8
    context_chars: int = 4000
    multi_share: float = 0.3
    max_segments: int = 3
    system_prompt: str = ""
    instruction: str = "Answer from the context above."

    def __post_init__(self) -> None:
        if self.examples_per_batch < 0 or self.context_chars < 1:
            raise ValueError("in2.examples_per_batch must be >= 0 and context_chars >= 1")
        if not 0.0 <= self.multi_share <= 1.0:
            raise ValueError("in2.multi_share must be in [0, 1]")
        if self.max_segments < 2:
            raise ValueError("in2.max_segments must be at least 2")


def build_context(needles: Sequence[str], fillers: Sequence[str], context_chars: int,
                  rng: random.Random) -> tuple[str, list[int]]:
    """Fillers (in random order) up to ``context_chars`` with each needle inserted at a random
    position; returns the context and the segment index of each needle."""
    pool = [f for f in fillers if f not in needles]
    rng.shuffle(pool)
    chosen: list[str] = []
    size = sum(len(n) for n in needles)
    for filler in pool:
        if size >= context_chars:
            break
        chosen.append(filler)
        size += len(filler) + len(SEGMENT_SEPARATOR)
    segments = list(chosen)
    for needle in needles:
        segments.insert(rng.randint(0, len(segments)), needle)
    positions = [segments.index(n) for n in needles]
    return SEGMENT_SEPARATOR.join(segments), positions


def _merged_lineage(facts: Sequence[In2Fact]) -> Lineage:
    out = Lineage()
    for fact in facts:
        for name in ("trace_ids", "labeller_ids", "user_ids", "event_ids"):
            target = getattr(out, name)
            for value in getattr(fact.lineage, name):
                if value not in target:
                    target.append(value)
    if len(facts) == 1:
        out.topic, out.partition, out.offset = (facts[0].lineage.topic,
                                                facts[0].lineage.partition,
                                                facts[0].lineage.offset)
    return out


def _example(facts: Sequence[In2Fact], fillers: Sequence[str], config: In2Config,
             rng: random.Random) -> SftExample:
    context, _ = build_context([f.segment for f in facts], fillers, config.context_chars, rng)
    if len(facts) == 1:
        question = f"{config.instruction}\nQuestion: {facts[0].question}"
        answer = facts[0].answer
    else:
        question = config.instruction + "\nQuestions:\n" + "\n".join(
            f"{i}. {f.question}" for i, f in enumerate(facts, start=1))
        answer = "\n".join(f"{i}. {f.answer}" for i, f in enumerate(facts, start=1))
    messages = [ChatMessage(role="system", content=config.system_prompt)] \
        if config.system_prompt else []
    messages += [ChatMessage(role="user", content=f"{context}{SEGMENT_SEPARATOR}{question}"),
                 ChatMessage(role="assistant", content=answer)]
    intents = sorted({f.intent for f in facts if f.intent})
    return SftExample(messages=messages, source=NAME, transforms=[NAME],
                      intent=intents[0] if len(intents) == 1 else "",
                      lineage=_merged_lineage(facts))


def synthesize(facts: Sequence[In2Fact], fillers: Sequence[str], config: In2Config,
               seed: int) -> list[SftExample]:
    """``config.examples_per_batch`` long-context examples from ``facts`` and ``fillers``.

    Single-segment examples use each fact in turn; a ``multi_share`` of the examples combine
    2..``max_segments`` distinct facts (when there are at least two). Fillers are the given
    segments plus the segments of the other facts.

    Raises:
        DesignError: when there are no facts to build from.
    """
    if config.examples_per_batch == 0:
        return []
    if not facts:
        raise DesignError("in2 needs at least one fact")
    rng = random.Random(seed)
    pool = list(fillers) + [f.segment for f in facts]
    out: list[SftExample] = []
    for index in range(config.examples_per_batch):
        if len(facts) >= 2 and rng.random() < config.multi_share:
            k = rng.randint(2, min(config.max_segments, len(facts)))
            chosen = rng.sample(list(facts), k)
        else:
            chosen = [facts[index % len(facts)]]
        out.append(_example(chosen, pool, config, rng))
    return out
