"""What the console reads from SQL and Redis, as plain JSON-ready values (read only).

SQL: dataset batches (oldest first), model versions with their gate metrics (newest first),
the release log (oldest first) and annotation tasks per status. Redis: the annotation queue
depths (``fw:ann:queue:<q>``), the judge's calibration per criterion
(``fw:calibration:<criterion>``) and today's preference budgets
(``fw:pref:budget:<user>:<YYYYMMDD>``, summed without user ids) and the model lines being
trained now (the trainer's lock ``fw:lock:trainer:<line>``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from flywheel.db.models import AnnotationTask, DatasetBatch, ModelVersion, Release

from .logic import budget_summary, calibration_row

MAX_MODELS = 200
MAX_RELEASES = 2000
QUEUES = ("label", "review")
_SCAN_COUNT = 1000


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _batch(row: DatasetBatch) -> dict[str, Any]:
    counts = {k: int(v) for k, v in (row.counts or {}).items() if isinstance(v, (int, float))}
    return {"batch_id": row.batch_id, "model_line": row.model_line, "version": row.version,
            "status": str(row.status.value if hasattr(row.status, "value") else row.status),
            "counts": counts, "sft": counts.get("sft", 0), "dpo": counts.get("dpo", 0),
            "replay": counts.get("replay", 0), "replay_share": row.replay_share,
            "created_at": _iso(row.created_at), "announced_at": _iso(row.announced_at)}


def _gate(metrics: dict[str, Any]) -> dict[str, Any] | None:
    gate = metrics.get("gate")
    if not isinstance(gate, dict):
        return None
    return {"passed": bool(gate.get("passed")),
            "reasons": [str(r) for r in gate.get("reasons") or []][:10]}


def _model(row: ModelVersion) -> dict[str, Any]:
    raw = row.metrics or {}
    metrics = {k: v for k, v in raw.items()
               if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    status = str(row.status.value if hasattr(row.status, "value") else row.status)
    last = (row.status_history or [{}])[-1] if row.status_history else {}
    share = last.get("share") if isinstance(last, dict) and last.get("status") == status else None
    return {"line": row.line, "version": row.version, "parent_version": row.parent_version,
            "status": status, "metrics": metrics, "gate": _gate(raw),
            "canary_share": share if isinstance(share, (int, float)) else None,
            "failure_reason": row.failure_reason,
            "batches": len(row.batch_ids or []), "base_model": row.base_model,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}


def _release(row: Release) -> dict[str, Any]:
    return {"release_id": row.release_id, "line": row.line, "version": row.version,
            "action": str(row.action.value if hasattr(row.action, "value") else row.action),
            "actor": row.actor, "reason": row.reason, "created_at": _iso(row.created_at)}


def read_database(engine: Engine) -> dict[str, Any]:
    """Batches, model versions, releases and annotation task counts.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable or not migrated.
    """
    with Session(engine) as session:
        batches = session.exec(select(DatasetBatch).order_by(DatasetBatch.created_at,
                                                             DatasetBatch.version)).all()
        models = session.exec(select(ModelVersion).order_by(
            ModelVersion.created_at.desc(), ModelVersion.version.desc()).limit(MAX_MODELS)).all()
        releases = session.exec(select(Release).order_by(Release.created_at.desc())
                                .limit(MAX_RELEASES)).all()
        tasks = session.exec(select(AnnotationTask.status, sa.func.count())
                             .group_by(AnnotationTask.status)).all()
    return {"batches": [_batch(b) for b in batches], "models": [_model(m) for m in models],
            "releases": [_release(r) for r in reversed(releases)],
            "annotation_tasks": {str(getattr(s, "value", s)): int(n) for s, n in tasks}}


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def read_redis(client: Any, now: datetime, daily_budget: int) -> dict[str, Any]:
    """Annotation queue depths, judge calibration and today's preference budget use.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    queue = {q: int(client.zcard(f"fw:ann:queue:{q}")) for q in QUEUES}
    calibration = []
    for key in sorted(_text(k) for k in client.scan_iter(match="fw:calibration:*",
                                                          count=_SCAN_COUNT)):
        criterion = key.removeprefix("fw:calibration:")
        if ":" in criterion:  # fw:calibration:<criterion>:pairs, the window itself
            continue
        raw = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        calibration.append(calibration_row(criterion, raw))
    day = now.astimezone(timezone.utc).strftime("%Y%m%d")
    keys = list(client.scan_iter(match=f"fw:pref:budget:*:{day}", count=_SCAN_COUNT))
    used = []
    for start in range(0, len(keys), 500):
        for value in client.mget(keys[start:start + 500]):
            if value is not None:
                try:
                    used.append(int(_text(value)))
                except ValueError:
                    continue
    training = sorted(_text(k).removeprefix("fw:lock:trainer:")
                      for k in client.scan_iter(match="fw:lock:trainer:*", count=_SCAN_COUNT))
    return {"annotation": {"queue": queue, "calibration": calibration},
            "preferences": {"day": day, **budget_summary(used, daily_budget)},
            "training": training}
