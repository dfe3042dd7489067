"""The join state kept per trace id in the triage table, its reducers and its byte encoding.

One value per trace id holds everything the decision needs and survives restarts through the
table's changelog: the redacted trace (bytes), the cheap-path report computed at ingest, the
feedback joined so far, the schedule (``due_at``), a verdict waiting for a budget slot, and the
last decision (revision, route, id). Feedback may create the entry before its trace exists.

Status moves ``waiting_trace`` -> ``pending`` -> (``queued`` ->) ``decided``; late feedback
that may change the route moves a decided entry back to ``pending`` with ``redecide`` set.
The entry expires (``expires_at``) once the late window has passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flywheel.errors import FlywheelError
from flywheel.services.triage.logic.feedback import FeedbackItem, add_item

WAITING_TRACE = "waiting_trace"
PENDING = "pending"
QUEUED = "queued"
DECIDED = "decided"

_MAGIC = b"FT1"


class StateDecodeError(FlywheelError):
    """A table value is not a triage state (corrupt changelog or another app's data)."""


@dataclass(frozen=True)
class TriageState:
    """Everything known about one trace id; immutable, updated through the reducers below."""

    partition: int
    status: str = WAITING_TRACE
    trace: bytes = b""
    trace_event_id: str = ""
    trace_at: float = 0.0
    seen_at: float = 0.0
    due_at: float = 0.0
    expires_at: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)
    feedback: tuple[FeedbackItem, ...] = ()
    uncertainty: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    queued_at: float = 0.0
    revision: int = 0
    route: str = ""
    decision_id: str = ""
    decided_at: float = 0.0
    redecide: bool = False

    @property
    def has_trace(self) -> bool:
        return bool(self.trace_event_id)

    def evolve(self, **changes: Any) -> "TriageState":
        """A copy with ``changes`` (``dataclasses.replace`` without its per-call introspection,
        which shows up at thousands of states a second)."""
        new = object.__new__(TriageState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def to_bytes(self) -> bytes:
        header = {k: v for k, v in self._header().items() if v not in (None, "", 0, 0.0, [], {}, False)}
        raw = json.dumps(header, separators=(",", ":"))
        if self.report:
            # The report never changes after ingest: splice in its cached JSON text.
            raw = raw[:-1] + ("," if len(raw) > 2 else "") + '"rp":' + _report_json(self.report) + "}"
        data = raw.encode()
        return _MAGIC + len(data).to_bytes(4, "big") + data + self.trace

    def _header(self) -> dict[str, Any]:
        return {
            "p": self.partition, "st": self.status, "eid": self.trace_event_id,
            "ta": self.trace_at, "sa": self.seen_at, "du": self.due_at, "ex": self.expires_at,
            "fb": [i.to_json() for i in self.feedback], "un": self.uncertainty,
            "vd": self.verdict, "qa": self.queued_at, "rv": self.revision, "ro": self.route,
            "did": self.decision_id, "da": self.decided_at, "rd": self.redecide,
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> "TriageState":
        """Raises:
            StateDecodeError: the bytes are not an encoded state.
        """
        if not data.startswith(_MAGIC) or len(data) < 7:
            raise StateDecodeError("not a triage state value")
        n = int.from_bytes(data[3:7], "big")
        try:
            h = json.loads(data[7:7 + n])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateDecodeError(f"corrupt triage state header: {exc}") from None
        return cls(
            partition=h.get("p", 0), status=h.get("st", WAITING_TRACE), trace=bytes(data[7 + n:]),
            trace_event_id=h.get("eid", ""), trace_at=h.get("ta", 0.0), seen_at=h.get("sa", 0.0),
            due_at=h.get("du", 0.0), expires_at=h.get("ex", 0.0), report=h.get("rp", {}),
            feedback=tuple(FeedbackItem.from_json(i) for i in h.get("fb", [])),
            uncertainty=h.get("un"), verdict=h.get("vd"), queued_at=h.get("qa", 0.0),
            revision=h.get("rv", 0), route=h.get("ro", ""), decision_id=h.get("did", ""),
            decided_at=h.get("da", 0.0), redecide=h.get("rd", False),
        )


_REPORT_JSON: dict[int, tuple[dict, str]] = {}


def _report_json(report: dict[str, Any]) -> str:
    """JSON text of a report, cached by identity (reports are not mutated after ingest)."""
    hit = _REPORT_JSON.get(id(report))
    if hit is not None and hit[0] is report:
        return hit[1]
    text = json.dumps(report, separators=(",", ":"))
    if len(_REPORT_JSON) > 100_000:
        _REPORT_JSON.clear()
    _REPORT_JSON[id(report)] = (report, text)
    return text


# -- reducers ------------------------------------------------------------------------------------

def new_state(partition: int, now: float, late_window_s: float) -> TriageState:
    """An empty entry, created by whichever of trace or feedback comes first."""
    return TriageState(partition=partition, seen_at=now, expires_at=now + late_window_s)


def with_trace(state: TriageState, trace_bytes: bytes, event_id: str, trace_at: float,
               report: dict[str, Any], now: float, hold_s: float, late_window_s: float,
               decide_now: bool = False) -> TriageState:
    """Attach the (redacted) trace and schedule its decision after the hold time."""
    return state.evolve(status=PENDING, trace=trace_bytes, trace_event_id=event_id,
                        trace_at=trace_at, report=report,
                        due_at=now if decide_now else now + hold_s,
                        expires_at=max(state.expires_at, now + late_window_s))


def with_feedback(state: TriageState, item: FeedbackItem, now: float, strong: bool) -> tuple[TriageState, bool]:
    """Add a feedback item (idempotent on its id); strong feedback makes the trace due now,
    and on an already decided trace asks for a re-decision."""
    items, added = add_item(state.feedback, item)
    if not added:
        return state, False
    state = state.evolve(feedback=tuple(items))
    if state.status == DECIDED:
        return state.evolve(status=PENDING, redecide=True, due_at=now), True
    if state.status == QUEUED:
        # The waiting verdict may no longer hold: decide again (the queue drops stale items).
        return state.evolve(status=PENDING, verdict=None, queued_at=0.0, due_at=now), True
    if strong and state.status == PENDING:
        return state.evolve(due_at=min(state.due_at, now)), True
    return state, True


def queued(state: TriageState, verdict: dict[str, Any], now: float) -> TriageState:
    """The verdict waits for a budget slot."""
    return state.evolve(status=QUEUED, verdict=verdict, queued_at=now)


def decided(state: TriageState, route: str, decision_id: str, revision: int, now: float,
            uncertainty: dict[str, Any] | None) -> TriageState:
    """Record an emitted decision."""
    return state.evolve(status=DECIDED, route=route, decision_id=decision_id, revision=revision,
                        decided_at=now, verdict=None, queued_at=0.0, redecide=False,
                        uncertainty=uncertainty if uncertainty is not None else state.uncertainty)


def unchanged_after_redecide(state: TriageState) -> TriageState:
    """Late feedback did not change the route: back to decided, nothing emitted."""
    return state.evolve(status=DECIDED, redecide=False, verdict=None, queued_at=0.0)
