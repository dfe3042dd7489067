"""SQL access of the annotation service (blocking: call from worker threads).

Tasks and labels are the durable facts; Redis only mirrors the open queue. Recording a label
locks the task row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers), then
upserts the label (one per task and labeller), settles the task from all its human labels and
commits, so concurrent submissions on one task cannot both miss the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from flywheel.db.engine import session_scope
from flywheel.db.models import AnnotationTask, Guideline, Label, LabellerType, TaskStatus
from flywheel.db.types import utcnow

from .errors import Conflict, NotFound
from .kinds import Decision, LabelRecord, decide

PRIORITY_SCALE = 1_000_000  # SQL keeps priority as an integer: triage's float x 1e6


@dataclass(frozen=True)
class TaskView:
    """A task as read from SQL."""

    task_id: str
    trace_id: str
    kind: str
    priority: float
    payload: dict[str, Any]
    required: int
    status: str
    guideline_version: str | None
    created_at: datetime


def _view(row: AnnotationTask) -> TaskView:
    return TaskView(row.task_id, row.trace_id, row.kind, row.priority / PRIORITY_SCALE,
                    row.payload, row.required_annotators, TaskStatus(row.status).value,
                    row.guideline_version, row.created_at)


def record_of(row: Label, app_id: str = "") -> LabelRecord:
    value = row.value or {}
    return LabelRecord(row.label_id, row.task_id, row.trace_id, row.kind,
                       LabellerType(row.labeller_type).value, row.labeller_id, value,
                       row.guideline_version, row.prompt_version, row.is_final, row.created_at,
                       model_name=str(value.get("model_name", "")), app_id=app_id)


# -- tasks ------------------------------------------------------------------------------------


def insert_task(engine: Engine, *, task_id: str, trace_id: str, kind: str, priority: float,
                payload: dict[str, Any], required: int, guideline_version: str | None) -> bool:
    """Store a new task; False when it exists already (a redelivery)."""
    with session_scope(engine) as session:
        if session.get(AnnotationTask, task_id) is not None:
            return False
        session.add(AnnotationTask(task_id=task_id, trace_id=trace_id, kind=kind,
                                   priority=int(round(priority * PRIORITY_SCALE)),
                                   payload=payload, required_annotators=required,
                                   guideline_version=guideline_version))
    return True


def get_task(engine: Engine, task_id: str) -> TaskView | None:
    with session_scope(engine) as session:
        row = session.get(AnnotationTask, task_id)
        return None if row is None else _view(row)


def open_tasks(engine: Engine) -> list[TaskView]:
    """Tasks still waiting for people (pending) or a reviewer (in review)."""
    with session_scope(engine) as session:
        rows = session.exec(select(AnnotationTask).where(
            AnnotationTask.status.in_([TaskStatus.PENDING, TaskStatus.IN_REVIEW])))
        return [_view(r) for r in rows]


def set_status(engine: Engine, task_id: str, status: str) -> None:
    with session_scope(engine) as session:
        row = session.get(AnnotationTask, task_id)
        if row is not None:
            row.status = TaskStatus(status)
            session.add(row)


def task_counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Tasks per kind and status."""
    with session_scope(engine) as session:
        rows = session.exec(select(AnnotationTask.kind, AnnotationTask.status, sa.func.count())
                            .group_by(AnnotationTask.kind, AnnotationTask.status))
        out: dict[str, dict[str, int]] = {}
        for kind, status, count in rows:
            out.setdefault(kind, {})[TaskStatus(status).value] = int(count)
        return out


# -- labels -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What recording a label did: the label, the task's decision, and the final label."""

    label: LabelRecord
    decision: Decision
    final: LabelRecord | None
    task: TaskView


def _upsert_label(session: Session, task: AnnotationTask | None, *, task_id: str | None,
                  trace_id: str, kind: str, labeller_type: str, labeller_id: str,
                  value: dict[str, Any], guideline_version: str | None,
                  prompt_version: str | None, is_final: bool) -> Label:
    row = None
    if task_id is not None:
        row = session.exec(select(Label).where(
            Label.task_id == task_id, Label.labeller_type == LabellerType(labeller_type),
            Label.labeller_id == labeller_id)).first()
    if row is None:
        row = Label(task_id=task_id, trace_id=trace_id, kind=kind,
                    labeller_type=LabellerType(labeller_type), labeller_id=labeller_id)
    row.value = dict(value)
    row.guideline_version = guideline_version
    row.prompt_version = prompt_version
    row.is_final = is_final
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    return row


def _locked_task(session: Session, task_id: str) -> AnnotationTask:
    row = session.exec(select(AnnotationTask).where(AnnotationTask.task_id == task_id)
                       .with_for_update()).first()
    if row is None:
        raise NotFound(f"no task {task_id!r}")
    return row


def _already(session: Session, task: AnnotationTask, labeller_type: str, labeller_id: str,
             expected: str) -> Recorded:
    """A retried submission returns what the first one recorded; anything else conflicts."""
    status = TaskStatus(task.status).value
    mine = session.exec(select(Label).where(
        Label.task_id == task.task_id, Label.labeller_type == LabellerType(labeller_type),
        Label.labeller_id == labeller_id)).first()
    if mine is None:
        raise Conflict(f"task {task.task_id!r} is {status}, not {expected}")
    final = session.exec(select(Label).where(Label.task_id == task.task_id,
                                             Label.is_final == True)).first()  # noqa: E712
    app_id = str(task.payload.get("app_id", ""))
    return Recorded(record_of(mine, app_id),
                    Decision(status, None if final is None else final.label_id),
                    None if final is None else record_of(final, app_id), _view(task))


def record_human_label(engine: Engine, task_id: str, annotator_id: str,
                       value: dict[str, Any]) -> Recorded:
    """Store a person's label and settle the task from all its human labels.

    Raises:
        NotFound: no such task.
        Conflict: the task is no longer waiting for labels.
    """
    with session_scope(engine) as session:
        task = _locked_task(session, task_id)
        if task.status != TaskStatus.PENDING:
            return _already(session, task, "human", annotator_id, "pending")
        label = _upsert_label(session, task, task_id=task_id, trace_id=task.trace_id,
                              kind=task.kind, labeller_type="human", labeller_id=annotator_id,
                              value=value, guideline_version=task.guideline_version,
                              prompt_version=None, is_final=False)
        humans = session.exec(select(Label).where(
            Label.task_id == task_id, Label.labeller_type == LabellerType.HUMAN)
            .order_by(Label.created_at)).all()
        decision = decide(task.kind, task.required_annotators,
                          [(h.label_id, h.value or {}) for h in humans])
        final = None
        if decision.final_label_id is not None:
            final_row = next(h for h in humans if h.label_id == decision.final_label_id)
            final_row.is_final = True
            session.add(final_row)
            final = final_row
        if decision.status != "pending":
            task.status = TaskStatus(decision.status)
            session.add(task)
        session.flush()
        app_id = str(task.payload.get("app_id", ""))
        return Recorded(record_of(label, app_id), decision,
                        None if final is None else record_of(final, app_id), _view(task))


def record_review(engine: Engine, task_id: str, reviewer_id: str,
                  value: dict[str, Any]) -> Recorded:
    """Store a reviewer's decision: final, and the task is settled by it.

    Raises:
        NotFound: no such task.
        Conflict: the task is not in review.
    """
    with session_scope(engine) as session:
        task = _locked_task(session, task_id)
        if task.status != TaskStatus.IN_REVIEW:
            return _already(session, task, "reviewer", reviewer_id, "in review")
        label = _upsert_label(session, task, task_id=task_id, trace_id=task.trace_id,
                              kind=task.kind, labeller_type="reviewer", labeller_id=reviewer_id,
                              value=value, guideline_version=task.guideline_version,
                              prompt_version=None, is_final=True)
        task.status = TaskStatus.UNUSABLE if value.get("unusable") else TaskStatus.DONE
        session.add(task)
        session.flush()
        record = record_of(label, str(task.payload.get("app_id", "")))
        return Recorded(record, Decision(TaskStatus(task.status).value, label.label_id), record,
                        _view(task))


def record_model_label(engine: Engine, *, task_id: str | None, trace_id: str, kind: str,
                       labeller_type: str, labeller_id: str, value: dict[str, Any],
                       guideline_version: str | None, prompt_version: str | None,
                       is_final: bool, settle: str | None = None, app_id: str = "") -> LabelRecord:
    """Store a judge or teacher label; ``settle`` sets the task's status in the same commit."""
    with session_scope(engine) as session:
        task = _locked_task(session, task_id) if task_id is not None else None
        label = _upsert_label(session, task, task_id=task_id, trace_id=trace_id, kind=kind,
                              labeller_type=labeller_type, labeller_id=labeller_id, value=value,
                              guideline_version=guideline_version, prompt_version=prompt_version,
                              is_final=is_final)
        if task is not None and settle is not None:
            task.status = TaskStatus(settle)
            session.add(task)
        if task is not None:
            app_id = str(task.payload.get("app_id", "")) or app_id
        return record_of(label, app_id)


def labels_for_task(engine: Engine, task_id: str) -> list[LabelRecord]:
    with session_scope(engine) as session:
        rows = session.exec(select(Label).where(Label.task_id == task_id)
                            .order_by(Label.created_at))
        return [record_of(r) for r in rows]


def human_labels(engine: Engine, kind: str | None = None) -> list[LabelRecord]:
    """Every label given by a person (annotators and reviewers), for agreement figures."""
    with session_scope(engine) as session:
        query = select(Label).where(Label.labeller_type.in_(
            [LabellerType.HUMAN, LabellerType.REVIEWER]), Label.task_id.is_not(None))
        if kind is not None:
            query = query.where(Label.kind == kind)
        return [record_of(r) for r in session.exec(query.order_by(Label.created_at))]


def settled_items(engine: Engine, kind: str, limit: int) -> list[tuple[TaskView, LabelRecord]]:
    """Tasks of ``kind`` settled by people, with their final human or reviewer label."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(AnnotationTask, Label)
            .join(Label, Label.task_id == AnnotationTask.task_id)
            .where(AnnotationTask.kind == kind, Label.is_final == True,  # noqa: E712
                   Label.labeller_type.in_([LabellerType.HUMAN, LabellerType.REVIEWER]))
            .order_by(AnnotationTask.created_at).limit(limit))
        return [(_view(t), record_of(lab)) for t, lab in rows]


# -- guidelines and other versioned documents -------------------------------------------------


def ensure_documents(engine: Engine, defaults: dict[str, tuple[str, str]]) -> None:
    """Insert ``kind -> (version, text)`` for every kind that has no document yet."""
    with session_scope(engine) as session:
        for kind, (version, text) in defaults.items():
            if session.exec(select(Guideline).where(Guideline.kind == kind)).first() is None:
                session.add(Guideline(kind=kind, version=version, text=text))


def get_document(engine: Engine, kind: str, version: str | None = None
                 ) -> tuple[str, str] | None:
    """``(version, text)`` of a document: the given version, else the newest."""
    with session_scope(engine) as session:
        if version is not None:
            row = session.get(Guideline, (kind, version))
        else:
            row = session.exec(select(Guideline).where(Guideline.kind == kind)
                               .order_by(Guideline.created_at.desc())).first()
        return None if row is None else (row.version, row.text)


def put_document(engine: Engine, kind: str, version: str, text: str,
                 overwrite: bool = False) -> None:
    """Store a document version.

    Raises:
        Conflict: the version exists and ``overwrite`` is off (versions are immutable).
    """
    with session_scope(engine) as session:
        row = session.get(Guideline, (kind, version))
        if row is not None and not overwrite:
            raise Conflict(f"{kind} version {version!r} exists; versions are immutable")
        if row is None:
            row = Guideline(kind=kind, version=version, text=text)
        row.text = text
        session.add(row)


def list_documents(engine: Engine, kind_prefix: str) -> list[tuple[str, str, datetime]]:
    """``(kind, version, created_at)`` of documents whose kind starts with ``kind_prefix``."""
    with session_scope(engine) as session:
        rows = session.exec(select(Guideline).where(Guideline.kind.startswith(kind_prefix))
                            .order_by(Guideline.kind, Guideline.created_at))
        return [(r.kind, r.version, r.created_at) for r in rows]
