"""The model registry in SQL: model lines, versions, their status history and lineage.

A version row is created in ``training`` when a job starts and leaves that status exactly
once: to ``candidate`` or ``rejected`` (the gate's verdict) or to ``failed`` (with the reason).
``canary``, ``released`` and ``rolled_back`` are set later by release decisions. Every change
appends ``{"status", "at", "reason", ...}`` to ``status_history``.

Fencing: the job's Redis lock token is stored in ``hyperparameters["job"]["fencing_token"]``
and every transition out of ``training`` is conditional on the row still being ``training``
with that token. A trainer that lost its lock (it stalled past the lease and another trainer
took over and marked its version abandoned) therefore cannot overwrite the registry.

The current release of a line is its newest ``released`` version; a line without one starts
from the base model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from flywheel.db.engine import session_scope
from flywheel.db.models import DatasetBatch, ModelLine, ModelStatus, ModelVersion
from flywheel.db.types import utcnow
from flywheel.errors import FlywheelError
from flywheel.services.trainer.logic.planning import DONE_STATUSES, Attempt


class RegistryError(FlywheelError):
    """A registry row is missing or cannot change as asked."""


class FencedOut(RegistryError):
    """The version left ``training`` or belongs to another lock holder: this job is stale."""


@dataclass(frozen=True)
class ReleaseRef:
    """Where a new version starts: the current release, or the base model (``version`` None)."""

    line: str
    version: int | None
    model_dir: Path
    base_model: str
    batch_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchFiles:
    """The files of an earlier batch, for slices and replay."""

    batch_id: str
    version: int
    sft_path: str
    dpo_path: str


def status_of(row: ModelVersion) -> str:
    return str(getattr(row.status, "value", row.status))


def _entry(status: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    entry = {"status": status, "at": utcnow().isoformat(), "reason": reason}
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


# -- lines and releases ---------------------------------------------------------------------------


def ensure_line(engine: Engine, line: str, base_model: str) -> None:
    """Create the model line when it does not exist yet."""
    with session_scope(engine) as s:
        if s.get(ModelLine, line) is None:
            s.add(ModelLine(line=line, base_model=base_model))
    # Two trainers may race here; the loser's insert fails on the primary key, which is fine.


def current_release(engine: Engine, line: str, base_dir: Path) -> ReleaseRef:
    """The newest ``released`` version of ``line``, else the base model at ``base_dir``."""
    with session_scope(engine) as s:
        row = s.execute(select(ModelVersion).where(
            ModelVersion.line == line, ModelVersion.status == ModelStatus.RELEASED)
            .order_by(ModelVersion.version.desc()).limit(1)).scalars().first()
        if row is None or not row.merged_path:
            return ReleaseRef(line, None, Path(base_dir), str(base_dir))
        return ReleaseRef(line, row.version, Path(row.merged_path), row.base_model,
                          tuple(row.batch_ids or ()))


#: Statuses a new version may start from: gated and not (yet) turned down.
START_STATUSES = (ModelStatus.CANDIDATE, ModelStatus.CANARY, ModelStatus.RELEASED)


def start_point(engine: Engine, line: str, base_dir: Path, mode: str = "newest") -> ReleaseRef:
    """Where the next version of ``line`` starts.

    ``release``: the current release (``current_release``). ``newest``: the newest version
    that passed its gate and was not turned down since (``candidate``, ``canary`` or
    ``released``), newer than the release and descending from it (its batches extend the
    release's); the release when there is none. Batches that arrive while a candidate waits
    for export or sits in canary then build on it instead of becoming its siblings.
    """
    if mode not in ("newest", "release"):
        raise ValueError(f"unknown start point mode {mode!r} (newest or release)")
    release = current_release(engine, line, base_dir)
    if mode == "release":
        return release
    with session_scope(engine) as s:
        query = (select(ModelVersion)
                 .where(ModelVersion.line == line, ModelVersion.status.in_(START_STATUSES))
                 .order_by(ModelVersion.version.desc()))
        if release.version is not None:
            query = query.where(ModelVersion.version > release.version)
        for row in s.execute(query).scalars():
            lineage = tuple(row.batch_ids or ())
            if not row.merged_path or lineage[:len(release.batch_ids)] != release.batch_ids:
                continue
            return ReleaseRef(line, row.version, Path(row.merged_path), row.base_model, lineage)
    return release


# -- versions -------------------------------------------------------------------------------------


def get_version(engine: Engine, line: str, version: int) -> ModelVersion | None:
    with session_scope(engine) as s:
        return s.get(ModelVersion, (line, version))


def list_versions(engine: Engine, line: str | None = None) -> list[ModelVersion]:
    """Every version, by line then version number."""
    with session_scope(engine) as s:
        query = select(ModelVersion).order_by(ModelVersion.line, ModelVersion.version)
        if line:
            query = query.where(ModelVersion.line == line)
        return list(s.execute(query).scalars())


def own_batch(row: ModelVersion) -> str:
    """The batch a version was trained on in its own job (the last of its lineage)."""
    return (row.batch_ids or [""])[-1]


def attempts_for_batch(engine: Engine, line: str, batch_id: str) -> list[Attempt]:
    """Every version whose own job trained ``batch_id``, oldest first."""
    out = []
    for row in list_versions(engine, line):
        if own_batch(row) == batch_id:
            kind = ""
            if row.status_history:
                kind = str(row.status_history[-1].get("kind") or "")
            out.append(Attempt(row.version, status_of(row), kind))
    return out


def start_version(engine: Engine, *, line: str, parent: ReleaseRef, batch_id: str,
                  hyperparameters: Mapping[str, Any], token: int,
                  earlier: Sequence[str] = ()) -> int:
    """Insert the next version of ``line`` in ``training`` and return its number.

    Its lineage is the parent's batches, then ``earlier`` (batches trained in the same job),
    then ``batch_id`` (the job's own batch, last).
    """
    for _ in range(5):
        try:
            with session_scope(engine) as s:
                current = s.execute(select(func.max(ModelVersion.version))
                                    .where(ModelVersion.line == line)).scalar()
                version = (current or 0) + 1
                hyper = {**hyperparameters, "job": {**dict(hyperparameters.get("job", {})),
                                                    "fencing_token": token}}
                s.add(ModelVersion(
                    line=line, version=version, parent_version=parent.version,
                    base_model=parent.base_model,
                    batch_ids=[*parent.batch_ids, *earlier, batch_id],
                    hyperparameters=hyper, status=ModelStatus.TRAINING,
                    status_history=[_entry("training", f"batch {batch_id}", token=token)]))
            return version
        except IntegrityError:
            continue  # another writer took the number; try the next one
    raise RegistryError(f"could not allocate a version of {line}")


def _fenced_row(s: Any, line: str, version: int, token: int) -> ModelVersion:
    row = s.get(ModelVersion, (line, version))
    if row is None:
        raise RegistryError(f"{line} v{version} does not exist")
    held = (row.hyperparameters or {}).get("job", {}).get("fencing_token")
    if status_of(row) != "training" or held != token:
        raise FencedOut(f"{line} v{version} is {status_of(row)} (token {held}, ours {token}): "
                        "another trainer took over")
    return row


def update_training(engine: Engine, line: str, version: int, token: int, *,
                    hyperparameters: Mapping[str, Any] | None = None) -> None:
    """Merge fields into a version that is still ``training`` under ``token``."""
    with session_scope(engine) as s:
        row = _fenced_row(s, line, version, token)
        if hyperparameters:
            row.hyperparameters = {**(row.hyperparameters or {}), **hyperparameters}
        s.add(row)


def finish_version(engine: Engine, line: str, version: int, token: int, *, passed: bool,
                   metrics: Mapping[str, Any], adapter_path: str, merged_path: str,
                   artifact_hash: str, reason: str,
                   hyperparameters: Mapping[str, Any] | None = None) -> ModelVersion:
    """Record the gate's verdict: ``candidate`` when it passed, else ``rejected``.

    Raises:
        FencedOut: the version is no longer this job's.
    """
    status = ModelStatus.CANDIDATE if passed else ModelStatus.REJECTED
    with session_scope(engine) as s:
        row = _fenced_row(s, line, version, token)
        row.metrics = dict(metrics)
        row.adapter_path, row.merged_path, row.artifact_hash = adapter_path, merged_path, artifact_hash
        if hyperparameters:
            row.hyperparameters = {**(row.hyperparameters or {}), **hyperparameters}
        row.status = status
        row.status_history = [*(row.status_history or []), _entry(status.value, reason, token=token)]
        s.add(row)
        return row


def fail_version(engine: Engine, line: str, version: int, reason: str, *, kind: str = "error",
                 token: int | None = None, metrics: Mapping[str, Any] | None = None) -> bool:
    """Mark a ``training`` version failed with ``reason``; False when it already left training.

    With ``token``, only the holder of that token may fail it.
    """
    with session_scope(engine) as s:
        try:
            row = (_fenced_row(s, line, version, token) if token is not None
                   else s.get(ModelVersion, (line, version)))
        except FencedOut:
            return False
        if row is None or status_of(row) != "training":
            return False
        row.status = ModelStatus.FAILED
        row.failure_reason = reason
        if metrics:
            row.metrics = {**(row.metrics or {}), **metrics}
        row.status_history = [*(row.status_history or []), _entry("failed", reason, kind=kind,
                                                                  token=token)]
        s.add(row)
        return True


def untrained(engine: Engine, line: str, batch_ids: Sequence[str]) -> set[str]:
    """The ``batch_ids`` no finished version of ``line`` holds in its lineage (failed and
    ``training`` versions do not count)."""
    finished = [ModelStatus(status) for status in DONE_STATUSES]
    with session_scope(engine) as s:
        lineages = s.execute(select(ModelVersion.batch_ids).where(
            ModelVersion.line == line, ModelVersion.status.in_(finished))).scalars()
        held = {b for lineage in lineages for b in (lineage or ())}
    return {b for b in batch_ids if b not in held}


def training_versions(engine: Engine, line: str) -> list[int]:
    """Versions of ``line`` in ``training`` (called under the line's lock: a dead job's)."""
    with session_scope(engine) as s:
        return list(s.execute(select(ModelVersion.version).where(
            ModelVersion.line == line, ModelVersion.status == ModelStatus.TRAINING)).scalars())


def abandon_versions(engine: Engine, line: str, versions: Iterable[int], token: int) -> list[int]:
    """Fail versions left in ``training`` by a trainer whose lock expired (it died)."""
    done = []
    for version in versions:
        reason = (f"abandoned: the trainer running it stopped and its lock expired "
                  f"(taken over with fencing token {token})")
        if fail_version(engine, line, version, reason, kind="abandoned"):
            done.append(version)
    return done


def set_status(engine: Engine, line: str, version: int, status: ModelStatus | str,
               reason: str | None = None) -> ModelVersion:
    """Set any status (release decisions), appending to the history."""
    status = ModelStatus(status)
    with session_scope(engine) as s:
        row = s.get(ModelVersion, (line, version))
        if row is None:
            raise RegistryError(f"{line} v{version} does not exist")
        row.status = status
        row.status_history = [*(row.status_history or []), _entry(status.value, reason)]
        s.add(row)
        return row


# -- batches --------------------------------------------------------------------------------------


def stored_batch(engine: Engine, batch_ref: str, line: str | None = None) -> dict[str, Any] | None:
    """The announcement a version recorded for a batch (id or unique prefix of >= 6 chars)."""
    found: dict[str, dict[str, Any]] = {}
    for row in list_versions(engine, line):
        event = (row.hyperparameters or {}).get("batch") or {}
        batch_id = event.get("batch_id", "")
        if batch_id == batch_ref or (len(batch_ref) >= 6 and batch_id.startswith(batch_ref)):
            found[batch_id] = event
    if len(found) > 1:
        raise RegistryError(f"several batches match {batch_ref!r}: {', '.join(sorted(found))}")
    return next(iter(found.values()), None)


def dataset_batch(engine: Engine, batch_ref: str,
                  line: str | None = None) -> DatasetBatch | None:
    """The curator's row of a batch (id or unique prefix of >= 6 characters)."""
    with session_scope(engine) as s:
        row = s.get(DatasetBatch, batch_ref)
        if row is not None or len(batch_ref) < 6:
            return row
        query = select(DatasetBatch).where(DatasetBatch.batch_id.startswith(batch_ref))
        if line:
            query = query.where(DatasetBatch.model_line == line)
        rows = list(s.execute(query).scalars())
        if len(rows) > 1:
            raise RegistryError(f"several batches match {batch_ref!r}")
        return rows[0] if rows else None


def batch_files(engine: Engine, batch_ids: Sequence[str]) -> list[BatchFiles]:
    """SFT/DPO paths of earlier batches, from the recorded announcements or the curator's rows.

    Batches whose files are unknown are left out.
    """
    known: dict[str, BatchFiles] = {}
    for row in list_versions(engine):
        event = (row.hyperparameters or {}).get("batch") or {}
        if event.get("batch_id") in batch_ids:
            known[event["batch_id"]] = BatchFiles(event["batch_id"], int(event.get("version", 0)),
                                                  event.get("sft_path", ""),
                                                  event.get("dpo_path", ""))
    missing = [b for b in batch_ids if b not in known]
    if missing:
        with session_scope(engine) as s:
            for row in s.execute(select(DatasetBatch).where(DatasetBatch.batch_id.in_(missing))).scalars():
                known[row.batch_id] = BatchFiles(row.batch_id, row.version, row.sft_path or "",
                                                 row.dpo_path or "")
    return [known[b] for b in batch_ids if b in known]


def manifest_path(artifacts_root: Path, line: str, batch_id: str) -> Path:
    """Where the curator writes a batch's manifest."""
    return Path(artifacts_root) / "datasets" / line / "manifests" / f"{batch_id}.json"


def batch_event_from_row(row: DatasetBatch, artifacts_root: Path) -> Any:
    """The datasets.batches announcement of a batch the curator recorded in SQL."""
    from flywheel.v1.datasets_pb2 import DatasetBatch as DatasetBatchEvent

    manifest = row.manifest or {}
    eval_file = (manifest.get("files") or {}).get("eval") or {}
    root = Path(artifacts_root)
    return DatasetBatchEvent(
        batch_id=row.batch_id, model_line=row.model_line, version=row.version,
        sft_path=row.sft_path or "", dpo_path=row.dpo_path or "",
        manifest_path=str(manifest_path(root, row.model_line, row.batch_id)),
        content_hash=str(manifest.get("content_hash", "")),
        eval_set_path=str(root / eval_file["path"]) if eval_file.get("path") else "",
        eval_set_hash=str(eval_file.get("sha256", "")),
        counts={k: int(v) for k, v in (row.counts or {}).items()},
        replay_share=float(row.replay_share or 0.0))


def find_batch(engine: Engine, batch_ref: str, artifacts_root: Path,
               line: str | None = None) -> Any:
    """A batch announcement by id (or prefix): as a version recorded it, else the curator's row.

    Raises:
        RegistryError: no batch, or several, match.
    """
    from flywheel.events.codec import from_dict
    from flywheel.v1.datasets_pb2 import DatasetBatch as DatasetBatchEvent

    stored = stored_batch(engine, batch_ref, line)
    if stored is not None:
        return from_dict(stored, DatasetBatchEvent)
    row = dataset_batch(engine, batch_ref, line)
    if row is None:
        raise RegistryError(f"no batch matches {batch_ref!r} (neither trained before nor "
                            "recorded by the curator)")
    return batch_event_from_row(row, artifacts_root)


def resolve_version(engine: Engine, ref: str, line: str | None = None) -> ModelVersion:
    """A version by ``LINE:VERSION``, ``VERSION`` (``vN`` too) with ``line`` or a single line,
    or ``latest`` / ``release`` (the newest version / the current release).

    Raises:
        RegistryError: nothing or several versions match.
    """
    name, _, number = ref.rpartition(":")
    line = name or line
    rows = list_versions(engine, line)
    if line is None and len({r.line for r in rows}) > 1:
        raise RegistryError(f"several model lines ({', '.join(sorted({r.line for r in rows}))}):"
                            " use LINE:VERSION or --line")
    if not rows:
        raise RegistryError(f"no versions{f' of {line}' if line else ''} yet")
    if number == "latest":
        return rows[-1]
    if number == "release":
        released = [r for r in rows if status_of(r) == "released"]
        if not released:
            raise RegistryError("no released version yet")
        return released[-1]
    try:
        wanted = int(number.lstrip("v"))
    except ValueError:
        raise RegistryError(f"not a version: {ref!r} (LINE:VERSION, VERSION, latest, release)") \
            from None
    match = [r for r in rows if r.version == wanted]
    if not match:
        raise RegistryError(f"no version {ref!r}")
    return match[0]
