"""Task kinds and label values (pure): validation, agreement values, settling a task, events.

A label's value is a small dict stored in ``Label.value`` and mirrored on ``AnnotationLabel``:

========================  ============================================================
kind                      value
========================  ============================================================
``rate``                  ``rating`` 0-4 (very bad, bad, moderate, good, excellent)
``correct``               ``answer`` (the written answer) and ``corrected_messages``
``pairwise``              ``choice``: ``a``, ``b`` or ``tie``
``classify_failure``      ``failure_source``: ``model``, ``system`` or ``unknown``;
                          optional ``failure_kind`` (snake_case)
any                       ``unusable`` true (with a ``reason``) instead of the above
========================  ============================================================
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flywheel.events.codec import from_dict
from flywheel.events.envelope import stamp
from flywheel.v1 import annotation_pb2, common_pb2
from flywheel.v1.annotation_pb2 import AnnotationLabel

from .errors import InvalidLabel

RATE = "rate"
CORRECT = "correct"
PAIRWISE = "pairwise"
CLASSIFY_FAILURE = "classify_failure"
KINDS: tuple[str, ...] = (RATE, CORRECT, PAIRWISE, CLASSIFY_FAILURE)

RATING_LABELS: tuple[str, ...] = ("very bad", "bad", "moderate", "good", "excellent")
CHOICES: tuple[str, ...] = ("a", "b", "tie")
FAILURE_SOURCES: tuple[str, ...] = ("model", "system", "unknown")
UNUSABLE = "unusable"

KIND_TO_PROTO = {
    RATE: annotation_pb2.ANNOTATION_KIND_RATE,
    CORRECT: annotation_pb2.ANNOTATION_KIND_CORRECT,
    PAIRWISE: annotation_pb2.ANNOTATION_KIND_PAIRWISE,
    CLASSIFY_FAILURE: annotation_pb2.ANNOTATION_KIND_CLASSIFY_FAILURE,
}
PROTO_TO_KIND = {v: k for k, v in KIND_TO_PROTO.items()}
_CHOICE_TO_PROTO = {"a": common_pb2.CHOICE_A, "b": common_pb2.CHOICE_B, "tie": common_pb2.CHOICE_TIE}
_SOURCE_TO_PROTO = {"model": common_pb2.FAILURE_SOURCE_MODEL,
                    "system": common_pb2.FAILURE_SOURCE_SYSTEM,
                    "unknown": common_pb2.FAILURE_SOURCE_UNKNOWN}
_LABELLER_TO_PROTO = {"human": annotation_pb2.LABELLER_TYPE_HUMAN,
                      "judge": annotation_pb2.LABELLER_TYPE_JUDGE,
                      "teacher": annotation_pb2.LABELLER_TYPE_TEACHER,
                      "reviewer": annotation_pb2.LABELLER_TYPE_REVIEWER}
_SNAKE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WS = re.compile(r"\s+")


def rating_from(value: Any) -> int:
    """A 0-4 rating from an int or a scale word (``"good"`` -> 3).

    Raises:
        InvalidLabel: anything else.
    """
    if isinstance(value, str) and value.strip().lower() in RATING_LABELS:
        return RATING_LABELS.index(value.strip().lower())
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4:
        return value
    raise InvalidLabel("rating must be 0-4 (very bad, bad, moderate, good, excellent)")


def validate_label(kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The stored value of a label of ``kind`` from what a person (or model) submitted.

    Raises:
        InvalidLabel: a field is missing or out of range for the kind.
    """
    reason = str(raw.get("reason") or "").strip()[:2000]
    if raw.get("unusable"):
        return {"unusable": True, "reason": reason}
    value: dict[str, Any] = {"reason": reason} if reason else {}
    if kind == RATE:
        if raw.get("rating") is None:
            raise InvalidLabel("a rate task needs a rating 0-4 (or unusable)")
        value["rating"] = rating_from(raw["rating"])
    elif kind == CORRECT:
        answer = str(raw.get("answer") or "").strip()
        if not answer:
            raise InvalidLabel("a correct task needs the written answer (or unusable)")
        value["answer"] = answer[:20_000]
    elif kind == PAIRWISE:
        choice = str(raw.get("choice") or "").strip().lower()
        if choice not in CHOICES:
            raise InvalidLabel("a pairwise task needs choice a, b or tie (or unusable)")
        value["choice"] = choice
    elif kind == CLASSIFY_FAILURE:
        source = str(raw.get("failure_source") or "").strip().lower()
        if source not in FAILURE_SOURCES:
            raise InvalidLabel("a classify_failure task needs failure_source model, system or "
                               "unknown (or unusable)")
        value["failure_source"] = source
        failure_kind = str(raw.get("failure_kind") or "").strip().lower()
        if failure_kind:
            if not _SNAKE.match(failure_kind):
                raise InvalidLabel("failure_kind must be snake_case, e.g. wrong_tool")
            value["failure_kind"] = failure_kind
    else:
        raise InvalidLabel(f"unknown task kind {kind!r}")
    return value


def agreement_value(kind: str, value: Mapping[str, Any]) -> Hashable:
    """What two labels of ``kind`` must share to agree."""
    if value.get("unusable"):
        return UNUSABLE
    if kind == RATE:
        return int(value["rating"])
    if kind == PAIRWISE:
        return str(value["choice"])
    if kind == CLASSIFY_FAILURE:
        return str(value["failure_source"])
    return _WS.sub(" ", str(value.get("answer", ""))).strip().lower()


def metric_for(kind: str) -> Literal["ordinal", "nominal"]:
    """The agreement metric of a kind: ratings are ordinal, the rest categories."""
    return "ordinal" if kind == RATE else "nominal"


# -- settling a task --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What a task's human labels settle: ``pending``, ``done``, ``unusable`` or ``in_review``."""

    status: str
    final_label_id: str | None = None


def decide(kind: str, required: int, labels: Sequence[tuple[str, Mapping[str, Any]]]) -> Decision:
    """Settle a task from its human labels ``(label_id, value)``, oldest first.

    Fewer than ``required`` labels: still pending. All agreeing: the newest label is final
    (``unusable`` when they agree the item is unusable). Otherwise: a reviewer decides.
    """
    if len(labels) < required:
        return Decision("pending")
    values = {agreement_value(kind, value) for _, value in labels}
    if len(values) > 1:
        return Decision("in_review")
    label_id, value = labels[-1]
    return Decision(UNUSABLE if value.get("unusable") else "done", label_id)


def corrected_conversation(messages: Sequence[Mapping[str, Any]], answer: str) -> list[dict[str, Any]]:
    """The conversation up to the last user turn, then the corrected assistant answer."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    head = [dict(m) for m in messages[: last_user + 1]]
    return head + [{"role": "assistant", "content": answer}]


# -- the event --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRecord:
    """A stored label with what its event needs."""

    label_id: str
    task_id: str | None
    trace_id: str
    kind: str
    labeller_type: str
    labeller_id: str
    value: Mapping[str, Any]
    guideline_version: str | None
    prompt_version: str | None
    is_final: bool
    created_at: datetime
    model_name: str = ""
    app_id: str = ""


def label_event(record: LabelRecord, producer: str = "annotation") -> AnnotationLabel:
    """The ``AnnotationLabel`` of a stored label, with its lineage."""
    value = record.value
    event = AnnotationLabel(
        label_id=record.label_id, task_id=record.task_id or "", trace_id=record.trace_id,
        kind=KIND_TO_PROTO.get(record.kind, annotation_pb2.ANNOTATION_KIND_UNSPECIFIED),
        unusable=bool(value.get("unusable")), reason=str(value.get("reason", "")),
        guideline_version=record.guideline_version or "", is_final=record.is_final,
        prompt_version=record.prompt_version or "")
    event.labeller.id = record.labeller_id
    event.labeller.type = _LABELLER_TO_PROTO[record.labeller_type]
    event.labeller.model_name = record.model_name
    if "rating" in value:
        event.rating = int(value["rating"])
    if "choice" in value:
        event.choice = _CHOICE_TO_PROTO[value["choice"]]
    if "failure_source" in value:
        event.failure_source = _SOURCE_TO_PROTO[value["failure_source"]]
        event.failure_kind = str(value.get("failure_kind", ""))
    for message in value.get("corrected_messages", []):
        event.corrected_messages.add().CopyFrom(from_dict(message, common_pb2.ChatMessage))
    event.labelled_at.FromDatetime(record.created_at)
    return stamp(event, producer, app_id=record.app_id)
