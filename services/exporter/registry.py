"""The exporter's side of the SQL model registry: version rows, statuses and the release log.

The trainer creates a version row and moves it to ``candidate``; from there the exporter and
the release controller move it to ``failed`` (the export or parity gate failed), ``canary``,
``released`` or ``rolled_back``. Every change appends ``{"status", "at", "reason", "actor"}``
to ``status_history``; every release action appends a ``releases`` row (who and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from flywheel.db.models import ModelLine, ModelStatus, ModelVersion, Release
from flywheel.db.types import utcnow
from flywheel.errors import FlywheelError
from flywheel.services.exporter.logic.releases import LineState, ReleaseRow, fold_releases


class RegistryError(FlywheelError):
    """A registry row is missing or cannot change as asked."""


def status_of(row: ModelVersion) -> str:
    return str(getattr(row.status, "value", row.status))


def history_entry(status: str, reason: str | None, actor: str | None = None,
                  **extra: Any) -> dict[str, Any]:
    entry = {"status": status, "at": utcnow().isoformat(), "reason": reason}
    if actor:
        entry["actor"] = actor
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def set_status(row: ModelVersion, status: ModelStatus, reason: str | None, actor: str | None = None,
               **extra: Any) -> None:
    """Change a row's status and append the change to its history (caller commits)."""
    row.status = status
    row.status_history = [*(row.status_history or []), history_entry(status.value, reason, actor, **extra)]
    if status in (ModelStatus.FAILED, ModelStatus.ROLLED_BACK):
        row.failure_reason = reason
    row.updated_at = utcnow()


def ensure_candidate(session: Session, *, line: str, version: int, base_model: str,
                     parent_version: int | None, adapter_path: str | None, merged_path: str | None,
                     batch_ids: list[str], metrics: Mapping[str, float]) -> ModelVersion:
    """The version's row, created as ``candidate`` when the trainer did not write it."""
    if session.get(ModelLine, line) is None:
        session.add(ModelLine(line=line, base_model=base_model or "unknown"))
        session.flush()
    row = session.get(ModelVersion, (line, version))
    if row is None:
        row = ModelVersion(
            line=line, version=version, parent_version=parent_version or None,
            base_model=base_model or "unknown", adapter_path=adapter_path or None,
            merged_path=merged_path or None, batch_ids=list(batch_ids), metrics=dict(metrics),
            status=ModelStatus.CANDIDATE,
            status_history=[history_entry("candidate", "registered from models.candidates", "exporter")],
        )
        session.add(row)
        session.flush()
    return row


def release_rows(session: Session, line: str) -> list[ReleaseRow]:
    """The line's release log, oldest first."""
    rows = session.execute(
        select(Release).where(Release.line == line).order_by(Release.created_at)
    ).scalars()
    return [ReleaseRow(str(getattr(r.action, "value", r.action)), r.version, r.created_at) for r in rows]


def line_state(session: Session, line: str) -> LineState:
    """Who serves the line now, folded from its release log."""
    return fold_releases(release_rows(session, line))


def require_version(session: Session, line: str, version: int) -> ModelVersion:
    row = session.get(ModelVersion, (line, version))
    if row is None:
        raise RegistryError(f"{line} has no version {version}")
    return row


def merge_metrics(row: ModelVersion, extra: Mapping[str, Any]) -> None:
    row.metrics = {**(row.metrics or {}), **extra}
