"""Reconcile what the pipeline was given with what it produced: ``flywheel demo reconcile``.

After a run (a demo, a chaos test, an incident) the question is not "did it crash" but "did
anything get lost or counted twice". This module answers it from the real broker and the real
files, with three checks:

1. **Traces**: every trace id on ``traces.raw`` has a decision on ``traces.triaged`` (the
   ``TriageDecision.trace_id``) or a dead letter (``DeadLetter`` whose source topic, partition
   and offset are one of the trace's records, or whose key is the trace id). A raw record that
   is not a trace at all must be dead-lettered by its coordinates. A trace whose records all
   lie at or past triage's committed offset is *queued* (not read yet: lag, a note), not
   missing.
2. **Labels**: every ``AnnotationLabel`` on ``annotation.labels`` went into at most one dataset
   batch. The curator records lineage per example in the batch manifest
   (``manifests/<batch_id>.json`` → ``examples[]``: ``event_ids``, ``topic``/``partition``/
   ``offset`` of the record the example was built from, ``replay``). A label is *in* a batch
   when one of the batch's new (not replayed) examples names the label's envelope event id.
   A label in no batch is *pending* (still pooled, skipped as unusable, or a duplicate of
   content that was already trained on): that is fine. A label in two or more batches is a
   problem when it was derived twice: the same derivation (example kind, source and design
   transforms) of one label appears in more than one batch, e.g. a label used once without
   its trace and again with it after a redelivery. Labels are identified by ``label_id`` (the
   annotation service may publish the same label again with a new event id).

   Two by-design exceptions:

   * A rating-gap pair joins an earlier rating with a newer one and names both in its
     ``event_ids``; the pair is attributed only to the label whose record it was built from
     (its lineage coordinates), so an older rating is not counted again.
   * One label yields several examples (the SFT target, the corrected-vs-original pair, design
     variants), pooled one after the other while each is acknowledged by the broker. The
     curator's batch timer may cut in between, so the label's *different* examples land in
     two consecutive batches. Nothing is trained twice; such labels are counted as ``split``
     and listed as a note, not a problem.
3. **Examples**: no training file holds the same example twice. Rows are identified by the
   curator's content hash (SHA-256 of the canonical JSON of the row, see
   ``services/curator/logic/formats.py``). Within one SFT or DPO file every hash appears once.
   Across batches a hash may appear as *new* in one batch only. Replay is by design: the
   curator mixes a share of earlier batches' examples into each batch (against forgetting)
   and marks them ``"replay": true`` in the manifest; such rows may repeat an earlier batch's
   row, but a replayed hash must have been introduced as new by some other batch. The rows of
   each file must also be exactly the examples its manifest lists.

Which batches count: manifests on disk whose batch was announced on ``datasets.batches`` or is
recorded in SQL and not superseded. A manifest superseded by a rewrite (``flywheel datasets
forget``) is skipped. A manifest that is neither announced nor recorded is an orphan left by a
crash between writing the files and the SQL commit (see ``services/curator/logic/writer.py``):
no trainer ever sees it, so it is listed as a note, not checked.

The checks are pure functions over decoded events and rows (:func:`check_traces`,
:func:`check_labels`, :func:`check_examples`, :func:`select_batches`); :func:`reconcile`
reads the broker (kafka-python, no consumer group, from the beginning to the end offsets),
the artifact files and the registry and runs them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from flywheel.errors import EventDecodeError, FlywheelError
from flywheel.events.codec import decode
from flywheel.logging import get_logger
from flywheel.services.curator.logic.formats import canonical_json, sha256_hex
from flywheel.settings import Settings
from flywheel.v1.annotation_pb2 import AnnotationLabel
from flywheel.v1.datasets_pb2 import DatasetBatch
from flywheel.v1.pipeline_pb2 import DeadLetter
from flywheel.v1.trace_pb2 import Trace
from flywheel.v1.triage_pb2 import TriageDecision

log = get_logger(__name__)

MAX_EXAMPLES = 20
"""Most example ids listed per kind of problem (the counts are always complete)."""
RATING_GAP_SOURCE = "rating_gap"
KINDS = ("sft", "dpo")

E = TypeVar("E", bound=Message)


class ReconcileError(FlywheelError):
    """The broker or the files could not be read."""


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Consumed(Generic[E]):
    """A record with its decoded event (None when the bytes are not the topic's event)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: E | None

    @property
    def coords(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def decode_records(records: Iterable[RawRecord], cls: type[E]) -> list[Consumed[E]]:
    """Decode every record as ``cls``; undecodable ones keep their coordinates, event None."""
    out: list[Consumed[E]] = []
    for r in records:
        try:
            event = decode(r.value or b"", cls)
        except EventDecodeError:
            event = None
        out.append(Consumed(r.topic, r.partition, r.offset, r.key, event))
    return out


@dataclass
class BatchData:
    """One batch on disk: its manifest and the rows of its SFT and DPO files.

    ``rows`` maps "sft"/"dpo" to the file's rows; ``file_problems`` lists files that are
    missing or do not match their content hash (their rows are then whatever could be read).
    """

    batch_id: str
    manifest: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    announced: bool = False
    file_problems: list[str] = field(default_factory=list)

    @property
    def version(self) -> int:
        return int(self.manifest.get("version") or 0)

    @property
    def examples(self) -> list[dict[str, Any]] | None:
        """The manifest's per-example lineage, or None when the manifest has none."""
        found = self.manifest.get("examples")
        return list(found) if isinstance(found, list) else None

    def label(self) -> str:
        return f"v{self.version}:{self.batch_id[:12]}"


# -- the report -------------------------------------------------------------------------------


@dataclass
class TraceCheck:
    raw_records: int = 0
    ingested: int = 0
    triaged: int = 0
    dead_lettered: int = 0
    undecodable: int = 0
    missing: int = 0
    missing_examples: list[str] = field(default_factory=list)
    # Not yet read by triage (at or past its consumer group's committed offset): consumer lag,
    # not loss. Only counted when the committed offsets were given.
    queued: int = 0


@dataclass
class LabelCheck:
    labels: int = 0
    undecodable: int = 0
    in_batches: int = 0
    pending: int = 0
    in_several_batches: int = 0
    several_examples: list[dict[str, Any]] = field(default_factory=list)
    split: int = 0
    split_examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExampleCheck:
    batches: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    replayed_rows: int = 0
    duplicates_within: list[dict[str, Any]] = field(default_factory=list)
    duplicates_across: list[dict[str, Any]] = field(default_factory=list)
    replay_without_origin: list[dict[str, Any]] = field(default_factory=list)
    manifest_mismatches: list[str] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)


@dataclass
class ReconcileReport:
    """The outcome of the three checks. ``ok`` is true when ``problems`` is empty."""

    line: str
    traces: TraceCheck = field(default_factory=TraceCheck)
    labels: LabelCheck = field(default_factory=LabelCheck)
    examples: ExampleCheck = field(default_factory=ExampleCheck)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


# -- check 1: traces --------------------------------------------------------------------------


def _dead_letter_index(dead_letters: Iterable[DeadLetter], topic: str
                       ) -> tuple[set[tuple[int, int]], set[str]]:
    """(partition, offset) and keys of the dead letters whose source is ``topic``."""
    coords: set[tuple[int, int]] = set()
    keys: set[str] = set()
    for dl in dead_letters:
        if dl.source_topic != topic:
            continue
        coords.add((dl.partition, dl.offset))
        if dl.key:
            keys.add(dl.key.decode("utf-8", "replace"))
    return coords, keys


def check_traces(raw: Sequence[Consumed[Trace]], decisions: Iterable[TriageDecision],
                 dead_letters: Iterable[DeadLetter], raw_topic: str,
                 committed: Mapping[int, int] | None = None) -> TraceCheck:
    """Every trace id on ``raw_topic`` is triaged or dead-lettered (see the module docstring).

    A trace that came in several records (a client's retry) counts once; it is accounted for
    when any of its records was dead-lettered or it has a decision. With ``committed`` (triage's
    committed offset per partition of ``raw_topic``), a trace with neither whose records all
    lie at or past that offset is *queued* (triage has not read it yet), not missing.
    """
    out = TraceCheck(raw_records=len(raw))
    triaged_ids = {d.trace_id or d.trace.trace_id for d in decisions}
    dl_coords, dl_keys = _dead_letter_index(dead_letters, raw_topic)
    records_of: dict[str, list[Consumed[Trace]]] = defaultdict(list)
    missing: list[str] = []
    for rec in raw:
        trace_id = rec.event.trace_id if rec.event is not None else ""
        if trace_id:
            records_of[trace_id].append(rec)
            continue
        out.undecodable += 1
        if (rec.partition, rec.offset) in dl_coords:
            out.dead_lettered += 1
        else:
            missing.append(rec.where())
    out.ingested = len(records_of)
    for trace_id, recs in records_of.items():
        if trace_id in triaged_ids:
            out.triaged += 1
        elif trace_id in dl_keys or any((r.partition, r.offset) in dl_coords for r in recs):
            out.dead_lettered += 1
        elif committed is not None and all(r.offset >= committed.get(r.partition, 0)
                                           for r in recs):
            out.queued += 1
        else:
            missing.append(trace_id)
    out.missing = len(missing)
    out.missing_examples = missing[:MAX_EXAMPLES]
    return out


# -- check 2: labels --------------------------------------------------------------------------


def _label_id(label: AnnotationLabel) -> str:
    return label.label_id or label.envelope.event_id


def _slot(entry: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """What one derivation of a label produces: example kind, source and design transforms."""
    return (str(entry.get("kind", "")), str(entry.get("source", "")),
            tuple(entry.get("transforms") or ()))


def check_labels(labels: Sequence[Consumed[AnnotationLabel]], batches: Sequence[BatchData]
                 ) -> LabelCheck:
    """Each label is derived into at most one batch (see the module docstring)."""
    out = LabelCheck()
    # label id -> its event ids and the coordinates of its records
    events: dict[str, set[str]] = defaultdict(set)
    coords_of: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    for rec in labels:
        if rec.event is None:
            out.undecodable += 1
            continue
        lid = _label_id(rec.event)
        if rec.event.envelope.event_id:
            events[lid].add(rec.event.envelope.event_id)
        coords_of[lid].add(rec.coords)
    label_of_event = {e: lid for lid, ids in events.items() for e in ids}
    out.labels = len(coords_of)

    # label id -> batch -> derivation slots of its new examples there
    found: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
    for batch in batches:
        for entry in batch.examples or []:
            if entry.get("replay"):
                continue
            where = (str(entry.get("topic", "")), int(entry.get("partition") or 0),
                     int(entry.get("offset") or 0))
            for event_id in entry.get("event_ids") or []:
                lid = label_of_event.get(event_id)
                if lid is None:
                    continue
                if entry.get("source") == RATING_GAP_SOURCE and where not in coords_of[lid]:
                    continue  # the earlier rating of a pair: attributed to the newer label
                found[lid][batch.label()].add(_slot(entry))
    out.in_batches = sum(1 for lid in coords_of if found.get(lid))
    out.pending = out.labels - out.in_batches
    several, split = [], []
    for lid, per_batch in sorted(found.items()):
        if len(per_batch) < 2:
            continue
        slots = Counter(slot for got in per_batch.values() for slot in got)
        item = {"label_id": lid, "batches": sorted(per_batch)}
        (several if any(n > 1 for n in slots.values()) else split).append(item)
    out.in_several_batches, out.split = len(several), len(split)
    out.several_examples = several[:MAX_EXAMPLES]
    out.split_examples = split[:MAX_EXAMPLES]
    return out


# -- check 3: examples ------------------------------------------------------------------------


def row_hash(row: Mapping[str, Any]) -> str:
    """The content hash of a training row, exactly as the curator computes it."""
    return sha256_hex(canonical_json(row))


def check_examples(batches: Sequence[BatchData]) -> ExampleCheck:
    """No example twice in a file, none new in two batches, replays point at an origin."""
    out = ExampleCheck(batches=len(batches), rows={k: 0 for k in KINDS})
    new_in: dict[tuple[str, str], list[str]] = defaultdict(list)
    replayed: dict[tuple[str, str], list[str]] = defaultdict(list)
    for batch in sorted(batches, key=lambda b: (b.version, b.batch_id)):
        out.file_problems += batch.file_problems
        listed = batch.examples
        for kind in KINDS:
            rows = batch.rows.get(kind) or []
            hashes = [row_hash(r) for r in rows]
            out.rows[kind] += len(hashes)
            for digest, n in sorted(Counter(hashes).items()):
                if n > 1:
                    out.duplicates_within.append({"batch": batch.label(), "kind": kind,
                                                  "content_hash": digest, "rows": n})
            if listed is None:  # no per-example lineage: every row counts as new
                for digest in set(hashes):
                    new_in[(kind, digest)].append(batch.label())
                continue
            entries = [e for e in listed if e.get("kind") == kind]
            replay_hashes = {e.get("content_hash") for e in entries if e.get("replay")}
            if Counter(hashes) != Counter(e.get("content_hash") for e in entries):
                out.manifest_mismatches.append(
                    f"{batch.label()} {kind}: the file's {len(hashes)} rows are not the "
                    f"{len(entries)} examples its manifest lists")
            out.replayed_rows += sum(1 for digest in hashes if digest in replay_hashes)
            for digest in set(hashes):
                if digest in replay_hashes:
                    replayed[(kind, digest)].append(batch.label())
                else:
                    new_in[(kind, digest)].append(batch.label())
    for (kind, digest), where in sorted(new_in.items()):
        if len(where) > 1:
            out.duplicates_across.append({"kind": kind, "content_hash": digest,
                                          "batches": sorted(where)})
    for (kind, digest), where in sorted(replayed.items()):
        if not new_in.get((kind, digest)):
            out.replay_without_origin.append({"kind": kind, "content_hash": digest,
                                              "batches": sorted(where)})
    return out


# -- which batches count ----------------------------------------------------------------------


@dataclass
class BatchSelection:
    live: list[BatchData] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    announced_missing: list[str] = field(default_factory=list)


def select_batches(on_disk: Sequence[BatchData], announced: Iterable[str],
                   recorded: Mapping[str, str] | None) -> BatchSelection:
    """Split the manifests on disk into live batches, superseded ones and orphans.

    Args:
        on_disk: every manifest found under the line's ``manifests/`` directory.
        announced: batch ids announced on ``datasets.batches`` for the line.
        recorded: batch id -> SQL status (``written``, ``announced``, ``superseded``), or None
            when the registry could not be read (then every unsuperseded manifest counts).
    """
    announced = set(announced)
    superseded = {str(b.manifest["supersedes"]) for b in on_disk if b.manifest.get("supersedes")}
    if recorded is not None:
        superseded |= {bid for bid, status in recorded.items() if status == "superseded"}
    out = BatchSelection()
    for batch in on_disk:
        batch.announced = batch.batch_id in announced
        if batch.batch_id in superseded or batch.manifest.get("superseded_by"):
            out.superseded.append(batch.batch_id)
        elif batch.announced or recorded is None or batch.batch_id in recorded:
            out.live.append(batch)
        else:
            out.orphans.append(batch.batch_id)
    present = {b.batch_id for b in on_disk}
    out.announced_missing = sorted(bid for bid in announced
                                   if bid not in present and bid not in superseded)
    return out


# -- all together -----------------------------------------------------------------------------


def build_report(line: str, *, raw: Sequence[Consumed[Trace]],
                 decisions: Iterable[TriageDecision], dead_letters: Sequence[DeadLetter],
                 raw_topic: str, labels: Sequence[Consumed[AnnotationLabel]],
                 selection: BatchSelection,
                 committed: Mapping[int, int] | None = None) -> ReconcileReport:
    """Run the three checks and collect their problems."""
    report = ReconcileReport(line=line)
    report.traces = check_traces(raw, decisions, dead_letters, raw_topic, committed)
    report.labels = check_labels(labels, selection.live)
    report.examples = check_examples(selection.live)
    t, lab, ex = report.traces, report.labels, report.examples
    p = report.problems
    if t.missing:
        p.append(f"{t.missing} trace(s) on traces.raw neither triaged nor dead-lettered, e.g. "
                 + ", ".join(t.missing_examples[:5]))
    if lab.in_several_batches:
        p.append(f"{lab.in_several_batches} label(s) derived into more than one batch, e.g. "
                 + ", ".join(f"{e['label_id']} in {'/'.join(e['batches'])}"
                             for e in lab.several_examples[:3]))
    for d in ex.duplicates_within[:MAX_EXAMPLES]:
        p.append(f"{d['batch']} {d['kind']}: example {d['content_hash'][:16]} "
                 f"appears {d['rows']} times in one file")
    for d in ex.duplicates_across[:MAX_EXAMPLES]:
        p.append(f"{d['kind']} example {d['content_hash'][:16]} is new in several batches: "
                 + ", ".join(d["batches"]))
    for d in ex.replay_without_origin[:MAX_EXAMPLES]:
        p.append(f"{d['kind']} example {d['content_hash'][:16]} is replayed in "
                 f"{', '.join(d['batches'])} but no batch introduced it")
    p += ex.manifest_mismatches[:MAX_EXAMPLES]
    p += ex.file_problems[:MAX_EXAMPLES]
    if selection.announced_missing:
        p.append(f"{len(selection.announced_missing)} announced batch(es) without a manifest, "
                 f"e.g. {', '.join(b[:12] for b in selection.announced_missing[:5])}")
    if lab.split:
        report.notes.append(f"{lab.split} label(s) split over consecutive batches (different "
                            "examples of one label, cut apart while pooled), e.g. "
                            + ", ".join(f"{e['label_id']} in {'/'.join(e['batches'])}"
                                        for e in lab.split_examples[:3]))
    if selection.orphans:
        report.notes.append(f"{len(selection.orphans)} manifest(s) neither announced nor "
                            "recorded (left by an interrupted write), not checked: "
                            + ", ".join(b[:12] for b in selection.orphans[:5]))
    if selection.superseded:
        report.notes.append(f"{len(selection.superseded)} superseded batch(es) skipped")
    if t.queued:
        report.notes.append(f"{t.queued} trace(s) not yet read by triage (its consumer lag); "
                            "run `flywheel demo reconcile` again once it caught up")
    return report


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[RawRecord]:
    """Every record of ``topic`` from the beginning to the end offsets at call time.

    No consumer group: reading never moves anybody's offsets.

    Raises:
        ReconcileError: the end offsets were not reached within ``timeout_s``.
    """
    from flywheel.kafka.reader import read_to_end

    try:
        records = read_to_end(bootstrap, topic, timeout_s, client_id="flywheel-reconcile")
    except TimeoutError as exc:
        raise ReconcileError(str(exc)) from exc
    return [RawRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]


def _read_rows(root: Path, entry: Mapping[str, Any] | None, problems: list[str],
               where: str) -> list[dict[str, Any]]:
    if not entry:
        return []
    path = root / str(entry.get("path", ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
        return []
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        problems.append(f"{where}: {path} does not match its content hash")
    rows = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            problems.append(f"{where}: {path}:{number} is not JSON")
    return rows


def load_batches(artifacts_root: Path, line: str) -> list[BatchData]:
    """Every manifest of ``line`` with the rows of its SFT and DPO files."""
    manifests = Path(artifacts_root) / "datasets" / line / "manifests"
    out = []
    for path in sorted(manifests.glob("*.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            out.append(BatchData(path.stem, {}, file_problems=[f"manifest {path}: {exc}"]))
            continue
        batch = BatchData(path.stem, manifest)
        files = manifest.get("files") or {}
        for kind in KINDS:
            batch.rows[kind] = _read_rows(Path(artifacts_root), files.get(kind),
                                          batch.file_problems, f"{batch.label()} {kind}")
        out.append(batch)
    return out


def recorded_batches(settings: Settings, line: str) -> dict[str, str] | None:
    """Batch id -> status from the registry, or None when it cannot be read."""
    from sqlmodel import select

    from flywheel.db.engine import make_engine, session_scope
    from flywheel.db.models import DatasetBatch as BatchRow

    try:
        engine = make_engine(settings.database())
    except Exception as exc:  # the registry is optional for this report
        log.warning("reconcile_registry_unavailable", error=str(exc))
        return None
    try:
        with session_scope(engine) as session:
            rows = session.exec(select(BatchRow).where(BatchRow.model_line == line)).all()
            return {r.batch_id: str(getattr(r.status, "value", r.status)) for r in rows}
    except Exception as exc:  # no schema yet, locked file: report without it
        log.warning("reconcile_registry_unavailable", error=str(exc))
        return None
    finally:
        engine.dispose()


def triage_committed(settings: Settings) -> dict[int, int] | None:
    """Triage's committed offset per partition of ``traces.raw`` (the highest over its consumer
    groups), or None when it has none or the broker cannot say (every gap is then missing)."""
    from flywheel.kafka.lag import consumer_lag

    try:
        rows = consumer_lag(settings.kafka(), group_prefix=f"{settings.topic_prefix}-triage",
                            topic_prefix=settings.topic("traces.raw"))
    except Exception as exc:  # noqa: BLE001 - the stricter books are still right
        log.warning("reconcile_committed_unavailable", error=str(exc))
        return None
    committed: dict[int, int] = {}
    for row in rows:
        if row.topic == settings.topic("traces.raw"):
            committed[row.partition] = max(committed.get(row.partition, 0), row.committed)
    return committed or None


def reconcile(settings: Settings, line: str = "shop-assistant",
              timeout_s: float = 120.0) -> ReconcileReport:
    """Read the broker, the batch files and the registry, and run the checks."""
    started = time.monotonic()
    bootstrap = settings.kafka()

    def read(short: str) -> list[RawRecord]:
        return read_topic(bootstrap, settings.topic(short), timeout_s)

    dead = [c.event for c in decode_records(read("deadletter"), DeadLetter) if c.event]
    raw = decode_records(read("traces.raw"), Trace)
    decisions = [c.event for c in decode_records(read("traces.triaged"), TriageDecision)
                 if c.event is not None]
    labels = decode_records(read("annotation.labels"), AnnotationLabel)
    announced = {c.event.batch_id for c in decode_records(read("datasets.batches"), DatasetBatch)
                 if c.event is not None and c.event.model_line == line}
    batches = load_batches(settings.data_dir / "artifacts", line)
    selection = select_batches(batches, announced, recorded_batches(settings, line))
    report = build_report(line, raw=raw, decisions=decisions, dead_letters=dead,
                          raw_topic=settings.topic("traces.raw"), labels=labels,
                          selection=selection, committed=triage_committed(settings))
    log.info("reconciled", line=line, ok=report.ok, problems=len(report.problems),
             traces=report.traces.ingested, labels=report.labels.labels,
             batches=report.examples.batches, seconds=round(time.monotonic() - started, 2))
    return report


def reconcile_drained(settings: Settings, line: str = "shop-assistant", *,
                      drain_s: float = 240.0, poll_s: float = 5.0, wait_for_queued: bool = True,
                      say: Callable[[str], None] | None = None) -> ReconcileReport:
    """:func:`reconcile` once triage has caught up: repeated until no trace is missing (and,
    with ``wait_for_queued``, none is queued either) or ``drain_s`` passed; then the last report.

    Only the deadline ends the wait: a consumer-group rebalance (after a restart) can pause
    triage for tens of seconds, so a count that stopped rising is no proof that the rest is lost.
    """
    deadline = time.monotonic() + drain_s
    while True:
        report = reconcile(settings, line)
        t = report.traces
        if say is not None:
            say(f"draining: {t.triaged} triaged, {t.queued} queued, {t.missing} missing")
        settled = t.missing == 0 and (t.queued == 0 or not wait_for_queued)
        if settled or time.monotonic() + poll_s > deadline:
            return report
        time.sleep(poll_s)


def report_tables(report: ReconcileReport) -> list[Any]:
    """The report as rich tables (counts per check, then problems and notes)."""
    from rich.table import Table

    t, lab, ex = report.traces, report.labels, report.examples
    counts = Table(title=f"reconciliation of {report.line}: "
                         f"{'ok' if report.ok else f'{len(report.problems)} problem(s)'}")
    counts.add_column("check")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    for what, n in (("records on traces.raw", t.raw_records), ("trace ids ingested", t.ingested),
                    ("triaged", t.triaged), ("dead-lettered", t.dead_lettered),
                    ("undecodable records", t.undecodable), ("missing", t.missing),
                    ("queued in triage", t.queued)):
        counts.add_row("traces", what, str(n))
    for what, n in (("labels", lab.labels), ("in a batch", lab.in_batches),
                    ("pending", lab.pending), ("in several batches", lab.in_several_batches),
                    ("split over batches", lab.split),
                    ("undecodable records", lab.undecodable)):
        counts.add_row("labels", what, str(n))
    for what, n in (("batches", ex.batches), *((f"{k} rows", v) for k, v in ex.rows.items()),
                    ("replayed rows", ex.replayed_rows),
                    ("duplicates in a file", len(ex.duplicates_within)),
                    ("new in several batches", len(ex.duplicates_across))):
        counts.add_row("examples", what, str(n))
    tables: list[Any] = [counts]
    for title, lines in (("problems", report.problems), ("notes", report.notes)):
        if lines:
            table = Table(title=title)
            table.add_column(title[:-1])
            for text in lines:
                table.add_row(text)
            tables.append(table)
    return tables
