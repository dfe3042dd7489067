"""Batches on disk and in SQL, and the crash-safe announcement protocol.

Layout under the artifact root (``<data_dir>/artifacts``)::

    datasets/<model_line>/sft/<sha256>.jsonl        TRL conversational SFT rows
    datasets/<model_line>/dpo/<sha256>.jsonl        TRL conversational preference rows
    datasets/<model_line>/eval/<sha256>.jsonl       the eval set when the batch was cut
    datasets/<model_line>/manifests/<batch_id>.json the manifest; batch_id = its SHA-256

Every file is named by the SHA-256 of its bytes and written through a temporary file and one
``rename``, so a file is either absent or complete, and writing equal content twice is a
no-op. The batch id is the hash of the manifest (which holds the version, the file hashes and
the lineage of every example).

Protocol (each step idempotent; the SQL commit is the point of no return)::

    1. write the files and the manifest
    2. record the batch in SQL as ``written`` (with its examples and links) -- commit
    3. remove its examples from the pool table
    4. announce it on datasets.batches (deterministic event id)
    5. mark it ``announced``

A crash before 2 leaves only unreferenced files; the examples are still in the pool and the
next cut writes the batch again (same content gives the same files). A crash after 2 leaves a
``written`` batch that :func:`announce_pending` announces on restart with the same id and
content hash, before any new batch is cut; examples already recorded are screened out of the
pool, so they cannot go into a second batch. A crash between 4 and 5 announces the batch
twice with the same event id, which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from flywheel.db.engine import session_scope
from flywheel.db.models import (
    BatchExample,
    BatchStatus,
    DatasetBatch,
    Example,
    ExampleKind,
    ModelLine,
)
from flywheel.errors import FlywheelError
from flywheel.events.codec import to_dict
from flywheel.events.envelope import new_envelope
from flywheel.services.curator.logic.batching import batch_seed, shuffle_rows
from flywheel.services.curator.logic.formats import canonical_json, eval_row
from flywheel.services.curator.logic.records import ExampleRecord
from flywheel.v1 import datasets_pb2
from flywheel.v1.examples_pb2 import EvalExample

MANIFEST_SCHEMA = "flywheel.dataset_batch.v1"
PRODUCER = "curator"
_IN_CHUNK = 500


class BatchWriteError(FlywheelError):
    """A batch could not be written or recorded."""


@dataclass(frozen=True)
class FileRef:
    """A content-addressed file: absolute path, path relative to the artifact root, hash, rows."""

    path: Path
    rel: str
    sha256: str
    rows: int

    def manifest_entry(self) -> dict[str, Any]:
        return {"path": self.rel, "sha256": self.sha256, "rows": self.rows}


@dataclass(frozen=True)
class BatchContent:
    """Everything a batch is made of, before it has a version or an id."""

    model_line: str
    sft: Sequence[ExampleRecord]
    dpo: Sequence[ExampleRecord]
    replay_sft: Sequence[ExampleRecord] = ()
    replay_dpo: Sequence[ExampleRecord] = ()
    eval_rows: Sequence[Mapping[str, Any]] = ()
    designs: Sequence[str] = ()
    dropped: Mapping[str, int] = field(default_factory=dict)
    deferred: Mapping[str, int] = field(default_factory=dict)
    cut_reason: str = ""
    policy: Mapping[str, Any] = field(default_factory=dict)
    supersedes: str = ""

    def new_records(self) -> list[ExampleRecord]:
        return list(self.sft) + list(self.dpo)

    def deduplicated(self) -> "BatchContent":
        """A copy in which every example appears once (first occurrence, new before replay)."""
        seen: set[str] = set()

        def keep(records: Sequence[ExampleRecord]) -> list[ExampleRecord]:
            out = []
            for record in records:
                if record.key not in seen:
                    seen.add(record.key)
                    out.append(record)
            return out

        return replace(self, sft=keep(self.sft), dpo=keep(self.dpo),
                       replay_sft=keep(self.replay_sft), replay_dpo=keep(self.replay_dpo))

    def replay_records(self) -> list[ExampleRecord]:
        return list(self.replay_sft) + list(self.replay_dpo)


# -- files ----------------------------------------------------------------------------------------


def jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One JSON object per line, keys sorted, unicode kept."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary sibling, fsync, then rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_content_addressed(root: Path, rel_dir: str, rows: Sequence[Mapping[str, Any]],
                            suffix: str = ".jsonl") -> FileRef:
    """Write rows as JSONL named by their SHA-256 (kept as is when it already exists)."""
    data = jsonl_bytes(rows)
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{rel_dir}/{digest}{suffix}"
    path = root / rel
    if not (path.exists() and path.stat().st_size == len(data)):
        write_atomic(path, data)
    return FileRef(path, rel, digest, len(rows))


def batch_content_hash(files: Mapping[str, FileRef | None]) -> str:
    """SHA-256 over the hashes of the batch files (sft, dpo, eval; absent ones are empty)."""
    text = "".join(f"{k}:{files[k].sha256 if files.get(k) else ''}\n"
                   for k in ("sft", "dpo", "eval"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- manifest -------------------------------------------------------------------------------------


def _nested_counts(records: Iterable[ExampleRecord], attr: str) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for r in records:
        out.setdefault(r.kind, Counter())[getattr(r, attr) or "unknown"] += 1
    return {kind: dict(sorted(c.items())) for kind, c in sorted(out.items())}


def batch_counts(content: BatchContent) -> dict[str, int]:
    counts = {"sft": len(content.sft), "dpo": len(content.dpo),
              "replay_sft": len(content.replay_sft), "replay_dpo": len(content.replay_dpo),
              "eval": len(content.eval_rows)}
    counts["replay"] = counts["replay_sft"] + counts["replay_dpo"]
    return counts


def replay_share_of(content: BatchContent) -> float:
    total = len(content.new_records()) + len(content.replay_records())
    return round(len(content.replay_records()) / total, 6) if total else 0.0


def build_manifest(content: BatchContent, version: int,
                   files: Mapping[str, FileRef | None]) -> dict[str, Any]:
    """The manifest: counts, sources, intents, transforms, hashes, and per-example lineage."""
    everything = content.new_records() + content.replay_records()
    transforms = Counter(t for r in content.new_records() for t in r.transforms)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "model_line": content.model_line,
        "version": version,
        "content_hash": batch_content_hash(files),
        "files": {k: (ref.manifest_entry() if ref else None) for k, ref in files.items()},
        "counts": batch_counts(content),
        "sources": _nested_counts(content.new_records(), "source"),
        "intents": _nested_counts(content.new_records(), "intent"),
        "transforms": dict(sorted(transforms.items())),
        "designs_enabled": list(content.designs),
        "dropped": dict(sorted(content.dropped.items())),
        "deferred": dict(sorted(content.deferred.items())),
        "replay_share": replay_share_of(content),
        "cut_reason": content.cut_reason,
        "policy": dict(content.policy),
        "examples": [r.lineage_entry(replay=False) for r in content.new_records()]
        + [r.lineage_entry(replay=True) for r in content.replay_records()],
    }
    if content.supersedes:
        manifest["supersedes"] = content.supersedes
    manifest["labellers"] = sorted({i for r in everything for i in r.labeller_ids})
    return manifest


def manifest_id(manifest: Mapping[str, Any]) -> str:
    """The batch id: SHA-256 of the canonical manifest."""
    return hashlib.sha256(canonical_json(manifest).encode()).hexdigest()


# -- the store ------------------------------------------------------------------------------------


def _chunks(values: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def record_from_example_row(row: Example) -> ExampleRecord:
    """An ExampleRecord rebuilt from its SQL row (for replay and rewriting)."""
    payload = row.payload or {}
    return ExampleRecord(
        kind=str(row.kind.value if hasattr(row.kind, "value") else row.kind),
        example_id=row.example_id, content_hash=row.content_hash, row=payload.get("row", {}),
        event=payload.get("event", {}), source=row.source, intent=row.intent or "",
        quality=float(payload.get("quality", 0.0)), prompt_text=payload.get("prompt_text", ""),
        transforms=tuple(row.transforms or ()), trace_ids=tuple(row.trace_ids or ()),
        user_ids=tuple(row.user_ids or ()), labeller_ids=tuple(row.labeller_ids or ()),
        event_ids=tuple(payload.get("event_ids", ())), topic=row.kafka_topic or "",
        partition=row.kafka_partition or 0, offset=row.kafka_offset or 0,
        received_at=float(payload.get("received_at", 0.0)), origin=payload.get("origin", ""),
        origin_trace=payload.get("origin_trace", ""),
    )


class BatchStore:
    """Batches, examples and the eval set in SQL, and batch files under the artifact root."""

    def __init__(self, engine: Engine, artifacts_root: Path) -> None:
        self.engine = engine
        self.root = Path(artifacts_root).resolve()

    # -- paths

    def line_dir(self, model_line: str) -> str:
        return f"datasets/{model_line}"

    def manifest_path(self, model_line: str, batch_id: str) -> Path:
        return self.root / self.line_dir(model_line) / "manifests" / f"{batch_id}.json"

    # -- model lines, examples, eval set

    def ensure_model_line(self, line: str, base_model: str, description: str = "") -> None:
        """Create the model line row when missing (a batch needs it)."""
        with session_scope(self.engine) as s:
            if s.get(ModelLine, line) is None:
                s.add(ModelLine(line=line, base_model=base_model, description=description or None))

    def batched_hashes(self, hashes: Iterable[str]) -> set[str]:
        """The given content hashes that already belong to a recorded training example."""
        wanted = sorted(set(hashes))
        found: set[str] = set()
        with session_scope(self.engine) as s:
            for chunk in _chunks(wanted):
                rows = s.execute(select(Example.content_hash).where(
                    Example.kind.in_([ExampleKind.SFT, ExampleKind.DPO]),
                    Example.content_hash.in_(chunk)))
                found.update(r[0] for r in rows)
        return found

    def add_eval(self, example: EvalExample, prompt_text: str, source: str) -> str:
        """Store an eval example: ``added``, ``updated`` (a reference filled in) or ``exists``."""
        payload = {"row": eval_row(example), "event": to_dict(example), "prompt_text": prompt_text}
        lin = example.lineage
        with session_scope(self.engine) as s:
            row = s.get(Example, example.example_id)
            if row is not None:
                if not row.payload.get("row", {}).get("reference") and example.reference:
                    row.payload = payload
                    s.add(row)
                    return "updated"
                return "exists"
            s.add(Example(example_id=example.example_id, kind=ExampleKind.EVAL, source=source,
                          intent=example.intent or None, content_hash=example.content_hash,
                          payload=payload, trace_ids=list(lin.trace_ids),
                          user_ids=list(lin.user_ids), kafka_topic=lin.topic or None,
                          kafka_partition=lin.partition, kafka_offset=lin.offset,
                          labeller_ids=list(lin.labeller_ids), transforms=[]))
        return "added"

    def eval_prompts(self) -> list[tuple[str, str]]:
        """(example id, normalised prompt) of every eval example."""
        with session_scope(self.engine) as s:
            rows = s.execute(select(Example).where(Example.kind == ExampleKind.EVAL)).scalars()
            return [(r.example_id, r.payload.get("prompt_text", "")) for r in rows]

    def trained_prompts(self) -> list[tuple[str, str]]:
        """(example id, normalised prompt) of every example in a batch."""
        with session_scope(self.engine) as s:
            rows = s.execute(select(Example).where(
                Example.kind.in_([ExampleKind.SFT, ExampleKind.DPO]))).scalars()
            return [(r.example_id, r.payload.get("prompt_text", "")) for r in rows]

    def eval_rows(self, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The eval set as rows, ordered by example id."""
        skip = set(exclude)
        with session_scope(self.engine) as s:
            rows = s.execute(select(Example).where(Example.kind == ExampleKind.EVAL)
                          .order_by(Example.example_id)).scalars()
            return [r.payload["row"] for r in rows if r.example_id not in skip]

    def replay_candidates(self, model_line: str, kind: str) -> list[ExampleRecord]:
        """Examples of ``kind`` that earlier batches of the line introduced."""
        with session_scope(self.engine) as s:
            rows = s.execute(
                select(Example).join(BatchExample, BatchExample.example_id == Example.example_id)
                .join(DatasetBatch, DatasetBatch.batch_id == BatchExample.batch_id)
                .where(DatasetBatch.model_line == model_line,
                       DatasetBatch.status != BatchStatus.SUPERSEDED,
                       BatchExample.replay.is_(False), Example.kind == ExampleKind(kind))
                .order_by(Example.example_id)).scalars().unique()
            return [record_from_example_row(r) for r in rows]

    # -- batches

    def batch(self, batch_id: str) -> DatasetBatch | None:
        with session_scope(self.engine) as s:
            return s.get(DatasetBatch, batch_id)

    def batches(self, model_line: str | None = None) -> list[DatasetBatch]:
        with session_scope(self.engine) as s:
            query = select(DatasetBatch).order_by(DatasetBatch.model_line, DatasetBatch.version)
            if model_line:
                query = query.where(DatasetBatch.model_line == model_line)
            return list(s.execute(query).scalars())

    def unannounced(self, model_line: str) -> list[DatasetBatch]:
        """Batches recorded but not announced, oldest first (forget replacements excluded)."""
        with session_scope(self.engine) as s:
            rows = s.execute(select(DatasetBatch).where(
                DatasetBatch.model_line == model_line,
                DatasetBatch.status == BatchStatus.WRITTEN).order_by(DatasetBatch.version))
            return [r for r in rows.scalars() if not (r.manifest or {}).get("supersedes")]

    def mark_announced(self, batch_id: str) -> None:
        with session_scope(self.engine) as s:
            row = s.get(DatasetBatch, batch_id)
            if row is not None and row.status == BatchStatus.WRITTEN:
                row.status = BatchStatus.ANNOUNCED
                row.announced_at = datetime.now(timezone.utc)
                s.add(row)

    def _files(self, content: BatchContent) -> dict[str, FileRef | None]:
        seed = batch_seed(content.new_records())
        line = self.line_dir(content.model_line)
        sft = shuffle_rows(list(content.sft) + list(content.replay_sft), seed)
        dpo = shuffle_rows(list(content.dpo) + list(content.replay_dpo), seed)
        return {
            "sft": write_content_addressed(self.root, f"{line}/sft", [r.row for r in sft])
            if sft else None,
            "dpo": write_content_addressed(self.root, f"{line}/dpo", [r.row for r in dpo])
            if dpo else None,
            "eval": write_content_addressed(self.root, f"{line}/eval", list(content.eval_rows))
            if content.eval_rows else None,
        }

    def write(self, content: BatchContent) -> DatasetBatch:
        """Steps 1 and 2: write the files and record the batch as ``written``.

        Idempotent: a live batch of the line with the same content hash is returned as is.

        Raises:
            BatchWriteError: the batch is empty or could not be recorded.
        """
        content = content.deduplicated()
        if not content.new_records():
            raise BatchWriteError("a batch needs at least one new example")
        files = self._files(content)
        for attempt in range(3):
            try:
                return self._record(content, files)
            except IntegrityError as exc:  # another writer took the version: retry
                if attempt == 2:
                    raise BatchWriteError(f"cannot record batch: {exc.orig}") from None
        raise AssertionError("unreachable")

    def _same_content(self, s: Any, line: str, content_hash: str) -> DatasetBatch | None:
        rows = s.execute(select(DatasetBatch).where(DatasetBatch.model_line == line,
                                                 DatasetBatch.status != BatchStatus.SUPERSEDED))
        for row in rows.scalars():
            if (row.manifest or {}).get("content_hash") == content_hash:
                return row
        return None

    def _record(self, content: BatchContent, files: dict[str, FileRef | None]) -> DatasetBatch:
        line = content.model_line
        with session_scope(self.engine) as s:
            existing = self._same_content(s, line, batch_content_hash(files))
            if existing is not None:
                return existing
            current = s.execute(select(func.max(DatasetBatch.version))
                             .where(DatasetBatch.model_line == line)).scalar()
            version = (current or 0) + 1
            manifest = build_manifest(content, version, files)
            batch_id = manifest_id(manifest)
            write_atomic(self.manifest_path(line, batch_id),
                         (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
            row = DatasetBatch(
                batch_id=batch_id, model_line=line, version=version, status=BatchStatus.WRITTEN,
                sft_path=str(files["sft"].path) if files["sft"] else None,
                dpo_path=str(files["dpo"].path) if files["dpo"] else None,
                manifest=manifest, counts=manifest["counts"], sources=manifest["sources"],
                transforms=sorted(manifest["transforms"]),
                replay_share=manifest["replay_share"])
            s.add(row)
            s.flush()
            self._link(s, batch_id, content)
        return row

    def _link(self, s: Any, batch_id: str, content: BatchContent) -> None:
        for record in content.new_records():
            existing = s.execute(select(Example).where(
                Example.kind == ExampleKind(record.kind),
                Example.content_hash == record.content_hash)).scalars().first()
            example_id = existing.example_id if existing is not None else record.example_id
            if existing is None:
                s.add(_example_row(record, batch_id))
                s.flush()
            s.add(BatchExample(batch_id=batch_id, example_id=example_id, replay=False))
        for record in content.replay_records():
            s.add(BatchExample(batch_id=batch_id, example_id=record.example_id, replay=True))

    def batch_records(self, batch_id: str) -> tuple[list[ExampleRecord], list[ExampleRecord]]:
        """(new, replayed) records of a batch, from SQL."""
        with session_scope(self.engine) as s:
            rows = s.execute(select(Example, BatchExample.replay)
                          .join(BatchExample, BatchExample.example_id == Example.example_id)
                          .where(BatchExample.batch_id == batch_id)
                          .order_by(Example.example_id)).all()
            new = [record_from_example_row(e) for e, replay in rows if not replay]
            old = [record_from_example_row(e) for e, replay in rows if replay]
            return new, old


def _example_row(record: ExampleRecord, batch_id: str) -> Example:
    payload = {"row": record.row, "event": record.event, "quality": record.quality,
               "prompt_text": record.prompt_text, "event_ids": list(record.event_ids),
               "received_at": record.received_at, "origin": record.origin,
               "origin_trace": record.origin_trace}
    return Example(example_id=record.example_id, kind=ExampleKind(record.kind),
                   source=record.source, intent=record.intent or None,
                   content_hash=record.content_hash, payload=payload,
                   trace_ids=list(record.trace_ids), user_ids=list(record.user_ids),
                   kafka_topic=record.topic or None, kafka_partition=record.partition,
                   kafka_offset=record.offset, labeller_ids=list(record.labeller_ids),
                   transforms=list(record.transforms), batch_id=batch_id)


# -- the announcement -----------------------------------------------------------------------------


def announcement_event_id(batch_id: str) -> str:
    """The same event id every time a batch is announced, so consumers can deduplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flywheel:datasets.batches:{batch_id}"))


def batch_event(row: DatasetBatch, store: BatchStore) -> datasets_pb2.DatasetBatch:
    """The datasets.batches event for a recorded batch (absolute local file paths)."""
    manifest = row.manifest or {}
    files = manifest.get("files", {})
    eval_file = files.get("eval") or {}
    created = row.created_at or datetime.now(timezone.utc)
    event = datasets_pb2.DatasetBatch(
        batch_id=row.batch_id, model_line=row.model_line, version=row.version,
        sft_path=row.sft_path or "", dpo_path=row.dpo_path or "",
        manifest_path=str(store.manifest_path(row.model_line, row.batch_id)),
        content_hash=manifest.get("content_hash", ""),
        eval_set_path=str(store.root / eval_file["path"]) if eval_file else "",
        eval_set_hash=eval_file.get("sha256", "") if eval_file else "",
        counts={k: int(v) for k, v in (row.counts or {}).items()},
        replay_share=float(row.replay_share or 0.0))
    event.created_at.FromDatetime(created.astimezone(timezone.utc))
    event.envelope.CopyFrom(new_envelope(event, PRODUCER, event_id=announcement_event_id(
        row.batch_id), occurred_at=created))
    return event


Announce = Callable[[datasets_pb2.DatasetBatch], Awaitable[None]]
Runner = Callable[..., Awaitable[Any]]


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def announce_pending(store: BatchStore, model_line: str, announce: Announce,
                           run: Runner = _in_thread) -> list[str]:
    """Steps 4-5 for every batch left ``written`` (after a crash); returns their ids."""
    done = []
    for row in await run(store.unannounced, model_line):
        await announce(batch_event(row, store))
        await run(store.mark_announced, row.batch_id)
        done.append(row.batch_id)
    return done


async def publish_batch(store: BatchStore, content: BatchContent, announce: Announce,
                        on_recorded: Callable[[DatasetBatch], Awaitable[None]] | None = None,
                        run: Runner = _in_thread) -> DatasetBatch:
    """The whole protocol: pending announcements first, then write, record, release, announce."""
    await announce_pending(store, content.model_line, announce, run)
    row = await run(store.write, content)
    if on_recorded is not None:
        await on_recorded(row)
    await announce(batch_event(row, store))
    await run(store.mark_announced, row.batch_id)
    return row
