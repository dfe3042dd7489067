"""What annotators and scripts see of a task (pure): the conversation, the candidates (without
the models that wrote them, so choices stay blind), agent steps, the guideline and the lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .kinds import CHOICES, FAILURE_SOURCES, RATING_LABELS, LabelRecord
from .llm.rubrics import split_final_answer
from .queue import Lease
from .store import TaskView


def task_public(task: TaskView) -> dict[str, Any]:
    trace = task.payload.get("trace", {})
    context, final = split_final_answer(trace.get("messages", []))
    return {
        "task_id": task.task_id,
        "trace_id": task.trace_id,
        "kind": task.kind,
        "priority": task.priority,
        "required_annotators": task.required,
        "status": task.status,
        "intent": task.payload.get("intent", ""),
        "reasons": task.payload.get("reasons", []),
        "conversation": context,
        "answer": final,
        "candidates": [{"label": side.upper(), "messages": c.get("messages", [])}
                       for side, c in zip(("a", "b"), task.payload.get("candidates", []))],
        "steps": trace.get("steps", []),
        "outcome": trace.get("outcome", {}),
        "context_documents": trace.get("context_documents", []),
        "guideline_version": task.guideline_version,
    }


def claim_view(task: TaskView, lease: Lease, guideline: tuple[str, str] | None) -> dict[str, Any]:
    return {
        "task": task_public(task),
        "lease": {"token": lease.token, "expires_in_s": round(lease.ttl_ms / 1000, 3)},
        "guideline": None if guideline is None else {"version": guideline[0],
                                                     "text": guideline[1]},
        "choices": choices_for(task.kind),
    }


def choices_for(kind: str) -> dict[str, Any]:
    """The values a label of ``kind`` takes, with their keyboard shortcuts."""
    if kind == "rate":
        return {"rating": [{"value": i, "label": name, "key": str(i + 1)}
                           for i, name in enumerate(RATING_LABELS)]}
    if kind == "pairwise":
        return {"choice": [{"value": c, "label": c.upper() if c != "tie" else "tie",
                            "key": c[0] if c != "tie" else "t"} for c in CHOICES]}
    if kind == "classify_failure":
        return {"failure_source": [{"value": s, "label": s, "key": s[0]} for s in FAILURE_SOURCES]}
    return {}


def label_public(record: LabelRecord, usernames: Mapping[str, str] | None = None) -> dict[str, Any]:
    names = usernames or {}
    return {
        "label_id": record.label_id,
        "labeller_type": record.labeller_type,
        "labeller": names.get(record.labeller_id, record.labeller_id),
        "value": {k: v for k, v in record.value.items() if k != "corrected_messages"},
        "is_final": record.is_final,
        "guideline_version": record.guideline_version,
        "prompt_version": record.prompt_version,
        "created_at": record.created_at.isoformat(),
    }


def labels_public(records: Sequence[LabelRecord], usernames: Mapping[str, str] | None = None
                  ) -> list[dict[str, Any]]:
    return [label_public(r, usernames) for r in records]
