"""Live signals per model version, reduced from traces, feedback and preference answers.

The release controller reads ``traces.raw`` (which version answered which request),
``feedback.events`` (thumbs and ratings about a trace or request) and ``preference.answers``
(which of two versions a user preferred) and folds them into a :class:`SignalBook`.
Feedback names a trace or request, not a version, so it is joined through the traces seen;
feedback that arrives before its trace waits in a bounded buffer. Every reducer is
idempotent on the event id (at-least-once delivery).

    book = SignalBook("shop-assistant")
    book.add_trace(served_record(trace))
    book.add_feedback(feedback_record(event))
    book.add_preference(preference_record(answer))
    book.signals("3"), book.head_to_head("3", "2")
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .decide import HeadToHead, VersionSignals

MAX_TRACKED = 200_000
MAX_PENDING = 20_000


@dataclass(frozen=True)
class ServedRecord:
    """One answered request of a model line."""

    event_id: str
    trace_id: str
    request_id: str
    line: str
    version: str
    occurred_at: datetime | None = None
    failed: bool = False


@dataclass(frozen=True)
class FeedbackRecord:
    """Thumbs and/or a rating about a trace (or one request of it)."""

    event_id: str
    trace_id: str
    request_id: str = ""
    thumbs: str | None = None  # "up" | "down"
    rating: float | None = None


@dataclass(frozen=True)
class PreferenceRecord:
    """A user's choice between two versions; ratings per version when given."""

    event_id: str
    line: str
    chosen_version: str
    rejected_version: str
    tie: bool = False
    ratings: dict[str, float] = field(default_factory=dict)


# -- protobuf -> records ----------------------------------------------------------------------

def _mean_rating(ratings: Any) -> float | None:
    values = [v for v in (ratings.helpfulness, ratings.correctness, ratings.style) if v > 0]
    return sum(values) / len(values) if values else None


def served_record(trace: Any) -> ServedRecord | None:
    """The version and outcome of a ``Trace``; None when it names no model version.

    A failure counts against the model unless it is attributed to the system around it.
    """
    from flywheel.v1 import common_pb2, trace_pb2

    if not trace.model.version:
        return None
    failed = (trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
              and trace.outcome.failure_source != common_pb2.FAILURE_SOURCE_SYSTEM)
    when = trace.envelope.occurred_at.ToDatetime(tzinfo=timezone.utc) if trace.envelope.HasField("occurred_at") else None
    return ServedRecord(trace.envelope.event_id, trace.trace_id, trace.request_id, trace.model.name,
                        trace.model.version, when, failed)


def feedback_record(event: Any) -> FeedbackRecord | None:
    """Thumbs and rating of a ``FeedbackEvent``; None for feedback of other kinds."""
    from flywheel.v1 import feedback_pb2

    fb = event.feedback
    thumbs = {feedback_pb2.THUMBS_UP: "up", feedback_pb2.THUMBS_DOWN: "down"}.get(fb.thumbs)
    rating = _mean_rating(fb.ratings) if fb.HasField("ratings") else None
    if thumbs is None and rating is None:
        return None
    return FeedbackRecord(event.envelope.event_id, event.trace_id, event.request_id, thumbs, rating)


def preference_record(answer: Any) -> PreferenceRecord | None:
    """The versions of a ``PreferenceAnswer``; None when either answer has no version."""
    from flywheel.v1 import common_pb2

    chosen, rejected = answer.chosen_model, answer.rejected_model
    if not chosen.version or not rejected.version:
        return None
    # On a tie (and for CHOICE_A) the chosen answer is A; otherwise B.
    a_version = rejected.version if answer.chosen == common_pb2.CHOICE_B else chosen.version
    b_version = chosen.version if answer.chosen == common_pb2.CHOICE_B else rejected.version
    ratings: dict[str, float] = {}
    for version, given in ((a_version, answer.ratings_a), (b_version, answer.ratings_b)):
        value = _mean_rating(given)
        if value is not None and version not in ratings:
            ratings[version] = value
    return PreferenceRecord(answer.envelope.event_id, chosen.name or rejected.name, chosen.version,
                            rejected.version, answer.chosen == common_pb2.CHOICE_TIE, ratings)


# -- the book ---------------------------------------------------------------------------------

class _Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        while len(self) > self.limit:
            self.popitem(last=False)


class SignalBook:
    """Counts per version of one line since ``since`` (None: everything)."""

    def __init__(self, line: str, since: datetime | None = None, *, max_tracked: int = MAX_TRACKED,
                 max_pending: int = MAX_PENDING) -> None:
        self.line = line
        self.since = since
        self._versions: dict[str, VersionSignals] = {}
        self._pairs: dict[tuple[str, str], HeadToHead] = {}
        self._answered_by = _Bounded(max_tracked)  # trace or request id -> version
        self._seen = _Bounded(max_tracked)
        self._pending = _Bounded(max_pending)  # feedback waiting for its trace

    def _first_time(self, event_id: str) -> bool:
        if not event_id:
            return True
        if event_id in self._seen:
            return False
        self._seen.put(event_id, True)
        return True

    def _bump(self, version: str, **deltas: float) -> None:
        current = self._versions.get(version) or VersionSignals(version)
        self._versions[version] = replace(current, **{k: getattr(current, k) + v for k, v in deltas.items()})

    def add_trace(self, rec: ServedRecord | None) -> None:
        """Count an answered request (ignores other lines and traces before the window)."""
        if rec is None or rec.line != self.line:
            return
        if self.since is not None and rec.occurred_at is not None and rec.occurred_at < self.since:
            return
        if not self._first_time(rec.event_id):
            return
        self._bump(rec.version, requests=1, errors=int(rec.failed))
        for key in (rec.request_id, rec.trace_id):
            if key:
                self._answered_by.put(key, rec.version)
                waiting = self._pending.pop(key, None)
                for fb in waiting or ():
                    self._apply_feedback(fb, rec.version)

    def add_feedback(self, rec: FeedbackRecord | None) -> None:
        """Count thumbs and a rating against the version that answered (or hold it)."""
        if rec is None or not self._first_time(rec.event_id):
            return
        key = rec.request_id if rec.request_id in self._answered_by else rec.trace_id
        version = self._answered_by.get(key)
        if version is None:
            wait_key = rec.request_id or rec.trace_id
            self._pending.put(wait_key, [*self._pending.get(wait_key, []), rec])
            return
        self._apply_feedback(rec, version)

    def _apply_feedback(self, rec: FeedbackRecord, version: str) -> None:
        deltas: dict[str, float] = {}
        if rec.thumbs == "up":
            deltas["thumbs_up"] = 1
        elif rec.thumbs == "down":
            deltas["thumbs_down"] = 1
        if rec.rating is not None:
            deltas.update(ratings=1, rating_sum=rec.rating, rating_sq_sum=rec.rating * rec.rating)
        self._bump(version, **deltas)

    def add_preference(self, rec: PreferenceRecord | None) -> None:
        """Count a head-to-head choice and any ratings given with it."""
        if rec is None or (rec.line and rec.line != self.line) or not self._first_time(rec.event_id):
            return
        for version, rating in rec.ratings.items():
            self._bump(version, ratings=1, rating_sum=rating, rating_sq_sum=rating * rating)
        if rec.chosen_version == rec.rejected_version:
            return
        key = (rec.chosen_version, rec.rejected_version)
        current = self._pairs.get(key) or HeadToHead()
        self._pairs[key] = replace(current, ties=current.ties + 1) if rec.tie else \
            replace(current, wins=current.wins + 1)

    def signals(self, version: str) -> VersionSignals:
        return self._versions.get(version) or VersionSignals(version)

    def head_to_head(self, canary: str, release: str) -> HeadToHead:
        """Choices between two versions from the canary's side (ties counted once)."""
        won = self._pairs.get((canary, release)) or HeadToHead()
        lost = self._pairs.get((release, canary)) or HeadToHead()
        return HeadToHead(wins=won.wins, losses=lost.wins, ties=won.ties + lost.ties)

    @property
    def pending_feedback(self) -> int:
        return sum(len(v) for v in self._pending.values())
