"""Per-source and per-intent caps, so that one source or one intent cannot flood a batch.

A cap is a share of a full batch (``capacity``: ``max_sft`` or ``max_dpo``). Examples over a
cap, or over the capacity itself, are deferred: they stay in the pool for a later batch.
Examples without an intent are not capped by intent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CapPolicy:
    """Args:
        max_source_share: most of a full batch one source may fill (0-1].
        max_intent_share: most of a full batch one intent may fill (0-1].
        source_shares: per-source overrides of ``max_source_share``.
    """

    max_source_share: float = 0.5
    max_intent_share: float = 0.5
    source_shares: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, share in [("max_source_share", self.max_source_share),
                            ("max_intent_share", self.max_intent_share),
                            *self.source_shares.items()]:
            if not 0.0 < share <= 1.0:
                raise ValueError(f"cap {name} must be in (0, 1], got {share}")

    def source_cap(self, source: str, capacity: int) -> int:
        share = self.source_shares.get(source, self.max_source_share)
        return max(1, math.floor(share * capacity))

    def intent_cap(self, capacity: int) -> int:
        return max(1, math.floor(self.max_intent_share * capacity))


@dataclass
class Capped:
    """Selected items (in input order) and why the others were deferred."""

    selected: list = field(default_factory=list)
    deferred: Counter = field(default_factory=Counter)


def apply_caps(items: Sequence[T], capacity: int, policy: CapPolicy,
               source_of: Callable[[T], str], intent_of: Callable[[T], str]) -> Capped:
    """Take items in order while the capacity and their source's and intent's caps allow."""
    out = Capped()
    per_source: Counter = Counter()
    per_intent: Counter = Counter()
    intent_cap = policy.intent_cap(capacity)
    for item in items:
        source, intent = source_of(item), intent_of(item)
        if len(out.selected) >= capacity:
            out.deferred["capacity"] += 1
        elif per_source[source] >= policy.source_cap(source, capacity):
            out.deferred["source_cap"] += 1
        elif intent and per_intent[intent] >= intent_cap:
            out.deferred["intent_cap"] += 1
        else:
            out.selected.append(item)
            per_source[source] += 1
            if intent:
                per_intent[intent] += 1
    return out
