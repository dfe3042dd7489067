"""Feedback: turn explicit and implicit signals into items, join them to traces, summarise them.

Explicit feedback is thumbs, 1-7 ratings, comments and corrections; implicit feedback is the
user asking for a new answer (regenerate), rephrasing the question right after the answer, or
abandoning the session. Items come from three places: ``FeedbackEvent`` messages (keyed by
trace id, so co-partitioned with the traces), ``Trace.feedback`` (inline), and the conversation
itself (a user turn that repeats the previous question in other words is a rephrase).

The join keeps feedback that arrives before its trace, or up to the late window after it;
items are deduplicated by their event id, so a redelivered event changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from flywheel.v1 import feedback_pb2

THUMBS = "thumbs"
RATING = "rating"
COMMENT = "comment"
CORRECTION = "correction"
REGENERATE = "regenerate"
REPHRASE = "rephrase"
PREFERENCE = "preference"
ABANDON = "abandon"

KIND_NAMES: dict[int, str] = {
    feedback_pb2.FEEDBACK_KIND_THUMBS: THUMBS,
    feedback_pb2.FEEDBACK_KIND_RATING: RATING,
    feedback_pb2.FEEDBACK_KIND_COMMENT: COMMENT,
    feedback_pb2.FEEDBACK_KIND_CORRECTION: CORRECTION,
    feedback_pb2.FEEDBACK_KIND_REGENERATE: REGENERATE,
    feedback_pb2.FEEDBACK_KIND_REPHRASE: REPHRASE,
    feedback_pb2.FEEDBACK_KIND_PREFERENCE: PREFERENCE,
    feedback_pb2.FEEDBACK_KIND_ABANDON: ABANDON,
}
# Contribution of each kind to the feedback score in [-1, 1] (thumbs and ratings are signed).
KIND_WEIGHTS: dict[str, float] = {CORRECTION: -1.0, REGENERATE: -0.6, REPHRASE: -0.5,
                                  ABANDON: -0.4, COMMENT: 0.0, PREFERENCE: 0.0}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FeedbackItem:
    """One piece of feedback in the join state.

    ``item_id`` is the FeedbackEvent's event id, ``inline:<n>`` or ``implicit:<kind>``;
    ``payload`` is the redacted ``Feedback`` message (bytes) attached to the emitted trace.
    """

    item_id: str
    kind: str
    thumbs: int = 0
    rating: float = 0.0
    at: float = 0.0
    source: str = "event"
    payload: bytes = b""
    feedback_id: str = ""
    corrected: bool = False
    origin: str = ""  # "topic|partition|offset" of the FeedbackEvent, for dead letters

    def to_json(self) -> dict:
        out = {"id": self.item_id, "k": self.kind, "at": self.at, "src": self.source}
        if self.corrected:
            out["c"] = 1
        if self.origin:
            out["o"] = self.origin
        if self.thumbs:
            out["t"] = self.thumbs
        if self.rating:
            out["r"] = self.rating
        if self.payload:
            out["p"] = self.payload.hex()
        if self.feedback_id:
            out["fid"] = self.feedback_id
        return out

    @classmethod
    def from_json(cls, d: dict) -> "FeedbackItem":
        return cls(d["id"], d["k"], d.get("t", 0), d.get("r", 0.0), d.get("at", 0.0),
                   d.get("src", "event"), bytes.fromhex(d.get("p", "")), d.get("fid", ""),
                   bool(d.get("c")), d.get("o", ""))


@dataclass(frozen=True)
class FeedbackSummary:
    """Counts and the combined score of a trace's feedback."""

    items: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    rating_mean: float = 0.0
    has_rating: bool = False
    has_correction: bool = False
    regenerated: bool = False
    rephrased: bool = False
    abandoned: bool = False
    score: float = 0.0
    kinds: tuple[str, ...] = field(default_factory=tuple)

    @property
    def negative(self) -> bool:
        return (self.thumbs_down > 0 or self.has_correction or self.regenerated
                or self.rephrased or (self.has_rating and self.rating_mean <= 3.0))

    @property
    def positive(self) -> bool:
        return not self.negative and (self.thumbs_up > 0 or
                                      (self.has_rating and self.rating_mean >= 5.0))


def _mean_rating(r) -> float:
    given = [v for v in (r.helpfulness, r.correctness, r.style) if 1 <= v <= 7]
    return round(sum(given) / len(given), 3) if given else 0.0


def item_from_feedback(fb, item_id: str, at: float, source: str, feedback_id: str = "") -> FeedbackItem:
    """A join item from a (redacted) ``Feedback`` payload."""
    kind = KIND_NAMES.get(fb.kind, COMMENT)
    thumbs = {feedback_pb2.THUMBS_UP: 1, feedback_pb2.THUMBS_DOWN: -1}.get(fb.thumbs, 0)
    if kind == COMMENT and thumbs:
        kind = THUMBS
    rating = _mean_rating(fb.ratings) if fb.HasField("ratings") else 0.0
    return FeedbackItem(item_id, kind, thumbs, rating, at, source,
                        fb.SerializeToString(deterministic=True), feedback_id,
                        corrected=kind == CORRECTION or bool(fb.corrected_answer.strip()))


def item_from_event(event, at: float, origin: str = "") -> FeedbackItem:
    """A join item from a (redacted) ``FeedbackEvent``; its payload is the whole event."""
    item = item_from_feedback(event.feedback, event.envelope.event_id, at, "event",
                              event.feedback_id)
    return FeedbackItem(item.item_id, item.kind, item.thumbs, item.rating, item.at, item.source,
                        event.SerializeToString(deterministic=True), item.feedback_id,
                        item.corrected, origin)


def inline_items(trace, at: float) -> list[FeedbackItem]:
    """Items for the feedback that arrived inside the trace."""
    return [item_from_feedback(fb, f"inline:{i}", at, "inline") for i, fb in enumerate(trace.feedback)]


def _similar(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def implicit_items(trace, at: float, rephrase_similarity: float = 0.5) -> list[FeedbackItem]:
    """A rephrase found inside the conversation: after an assistant answer, the next user turn
    asks the previous question again in other words (not identical, word overlap high)."""
    previous_user = ""
    answered = False
    for m in trace.messages:
        if m.role == "user":
            if answered and previous_user and m.content.strip() != previous_user.strip() \
                    and _similar(m.content, previous_user) >= rephrase_similarity:
                return [FeedbackItem("implicit:rephrase", REPHRASE, at=at, source="implicit")]
            previous_user, answered = m.content, False
        elif m.role == "assistant" and m.content:
            answered = True
    return []


def add_item(items: Sequence[FeedbackItem], item: FeedbackItem) -> tuple[list[FeedbackItem], bool]:
    """Reducer: ``items`` plus ``item`` unless an item with its id is already there."""
    if any(i.item_id == item.item_id for i in items):
        return list(items), False
    return [*items, item], True


def within_window(trace_at: float, feedback_at: float, window_s: float) -> bool:
    """Feedback before the trace always joins; after it, only within ``window_s`` seconds."""
    return feedback_at - trace_at <= window_s


def is_strong(item: FeedbackItem, strong_kinds: Iterable[str]) -> bool:
    """Strong feedback ends the hold early. ``thumbs_down``/``thumbs_up`` name the two thumbs."""
    kinds = set(strong_kinds)
    if item.kind == THUMBS:
        return ("thumbs_down" in kinds and item.thumbs < 0) or ("thumbs_up" in kinds and item.thumbs > 0)
    if item.kind == RATING and "low_rating" in kinds:
        return 0 < item.rating <= 2.5
    return item.kind in kinds


def _contribution(item: FeedbackItem) -> float | None:
    if item.corrected:
        return -1.0
    if item.thumbs:
        return float(item.thumbs)
    if item.rating:
        return max(-1.0, min(1.0, (item.rating - 4.0) / 3.0))
    weight = KIND_WEIGHTS.get(item.kind)
    return weight if weight else None


def summarise(items: Sequence[FeedbackItem]) -> FeedbackSummary:
    """Counts and a score in [-1, 1]: the mean contribution of the scoring items."""
    if not items:
        return FeedbackSummary()
    ratings = [i.rating for i in items if i.rating]
    contributions = [c for c in map(_contribution, items) if c is not None]
    return FeedbackSummary(
        items=len(items),
        thumbs_up=sum(i.thumbs > 0 for i in items),
        thumbs_down=sum(i.thumbs < 0 for i in items),
        rating_mean=round(sum(ratings) / len(ratings), 3) if ratings else 0.0,
        has_rating=bool(ratings),
        has_correction=any(i.corrected for i in items),
        regenerated=any(i.kind == REGENERATE for i in items),
        rephrased=any(i.kind == REPHRASE for i in items),
        abandoned=any(i.kind == ABANDON for i in items),
        score=round(sum(contributions) / len(contributions), 4) if contributions else 0.0,
        kinds=tuple(sorted({i.kind for i in items})),
    )

