"""The reconciliation checks over in-memory events and rows, and over batches the real curator
wrote (SQLite and files under tmp_path; no broker)."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.demo import shop
from flywheel.demo.reconcile import (
    BatchData,
    Consumed,
    RawRecord,
    build_report,
    check_examples,
    check_labels,
    check_traces,
    decode_records,
    load_batches,
    report_tables,
    row_hash,
    select_batches,
)
from flywheel.events.codec import encode
from flywheel.events.envelope import stamp
from flywheel.kafka.deadletter import build_dead_letter
from flywheel.v1.annotation_pb2 import AnnotationKind, AnnotationLabel, Labeller, LabellerType
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.feedback_pb2 import Feedback, FeedbackKind, Thumbs
from flywheel.v1.trace_pb2 import Trace
from flywheel.v1.triage_pb2 import Route, TriageDecision

RAW = "p.traces.raw.v1"
LABELS = "p.annotation.labels.v1"
LINE = "shop-assistant"


# -- builders ---------------------------------------------------------------------------------


def trace(trace_id: str, question: str = "When are you open?", answer: str = "9 to 6.",
          thumbs_up: bool = False) -> Trace:
    t = Trace(trace_id=trace_id, user_id="u1", app_id="shop",
              messages=[ChatMessage(role="system", content=shop.SYSTEM_PROMPT),
                        ChatMessage(role="user", content=question),
                        ChatMessage(role="assistant", content=answer)])
    if thumbs_up:
        t.feedback.append(Feedback(kind=FeedbackKind.FEEDBACK_KIND_THUMBS,
                                   thumbs=Thumbs.THUMBS_UP))
    return stamp(t, "gateway")


def decision(t: Trace, route: int = Route.ROUTE_SFT_CANDIDATE) -> TriageDecision:
    d = TriageDecision(decision_id=f"d-{t.trace_id}", trace_id=t.trace_id, revision=1,
                       route=route)
    d.trace.CopyFrom(t)
    return stamp(d, "triage")


def label(trace_id: str, answer: str, label_id: str) -> AnnotationLabel:
    lab = AnnotationLabel(label_id=label_id, task_id=f"task-{trace_id}", trace_id=trace_id,
                          kind=AnnotationKind.ANNOTATION_KIND_CORRECT, is_final=True,
                          labeller=Labeller(id="ann-1", type=LabellerType.LABELLER_TYPE_HUMAN),
                          corrected_messages=[ChatMessage(role="assistant", content=answer)])
    return stamp(lab, "annotation")


def raw(t: Trace | None, partition: int, offset: int, value: bytes | None = None) -> Consumed:
    key = t.trace_id.encode() if t is not None else b"junk"
    return Consumed(RAW, partition, offset, key, t) if value is None else \
        decode_records([RawRecord(RAW, partition, offset, key, value)], Trace)[0]


def dead(partition: int, offset: int, key: bytes = b"", topic: str = RAW):  # noqa: ANN201
    return build_dead_letter(service="triage", source_topic=topic, partition=partition,
                             offset=offset, key=key, value=b"\xff", error_type="EventDecodeError")


def sft_row(question: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}],
            "tools": None, "loss_masks": []}


def batch(batch_id: str, version: int, rows: list[dict], replay: set[int] = frozenset(),
          event_ids: dict[int, list[str]] | None = None, source: str = "correction",
          coords: dict[int, tuple[str, int, int]] | None = None,
          manifest_rows: list[dict] | None = None) -> BatchData:
    """A batch whose manifest lists ``manifest_rows`` (default: its rows) with lineage."""
    listed = rows if manifest_rows is None else manifest_rows
    examples = []
    for i, row in enumerate(listed):
        topic, partition, offset = (coords or {}).get(i, (LABELS, 0, 0))
        examples.append({"kind": "sft", "content_hash": row_hash(row), "replay": i in replay,
                         "source": source, "event_ids": (event_ids or {}).get(i, []),
                         "topic": topic, "partition": partition, "offset": offset})
    return BatchData(batch_id, {"version": version, "examples": examples},
                     rows={"sft": list(rows), "dpo": []})


# -- traces -----------------------------------------------------------------------------------


def test_every_trace_triaged_is_ok() -> None:
    traces = [trace(f"t{i}") for i in range(5)]
    records = [raw(t, i % 2, i) for i, t in enumerate(traces)]
    records.append(raw(traces[0], 0, 9))  # a client's retry: the same trace twice
    result = check_traces(records, [decision(t) for t in traces], [], RAW)
    assert (result.raw_records, result.ingested, result.triaged, result.missing) == (6, 5, 5, 0)


def test_dead_letters_account_for_traces_by_coordinates_or_key() -> None:
    a, b, c = trace("a"), trace("b"), trace("c")
    records = [raw(a, 0, 0), raw(b, 1, 0), raw(c, 2, 0),
               raw(None, 3, 7, value=b"\xff\xfe not a trace")]
    dls = [dead(1, 0), dead(5, 5, key=b"c"), dead(3, 7, key=b"junk"),
           dead(0, 0, topic="p.feedback.events.v1")]  # another topic's record: no alibi for a
    result = check_traces(records, [], dls, RAW)
    assert result.undecodable == 1
    assert result.dead_lettered == 3  # b by coordinates, c by key, the junk by coordinates
    assert (result.missing, result.missing_examples) == (1, ["a"])


def test_an_undecodable_record_without_dead_letter_is_missing() -> None:
    result = check_traces([raw(None, 2, 4, value=b"\xff\xff\xff")], [], [], RAW)
    assert result.missing_examples == [f"{RAW}[2]@4"]


def test_traces_past_triages_committed_offset_are_queued_not_missing() -> None:
    a, b, c, d = (trace(x) for x in "abcd")
    records = [raw(a, 0, 0), raw(b, 0, 1), raw(c, 0, 2), raw(d, 1, 0), raw(d, 1, 5)]
    # partition 0: read up to offset 1 (a decided, b read but undecided, c not read yet);
    # partition 1: d's first copy was read, so d counts as read.
    result = check_traces(records, [decision(a)], [], RAW, committed={0: 2, 1: 1})
    assert (result.triaged, result.queued, result.missing) == (1, 1, 2)
    assert result.missing_examples == ["b", "d"]
    assert check_traces(records, [decision(a)], [], RAW).queued == 0  # no offsets: strict


def test_missing_examples_are_capped_but_counted() -> None:
    records = [raw(trace(f"t{i}"), 0, i) for i in range(30)]
    result = check_traces(records, [], [], RAW)
    assert result.missing == 30 and len(result.missing_examples) == 20


# -- labels -----------------------------------------------------------------------------------


def _labels(n: int) -> list[Consumed]:
    return [Consumed(LABELS, 0, i, b"k", label(f"t{i}", f"answer {i}", f"l{i}"))
            for i in range(n)]


def test_labels_in_one_batch_or_pending() -> None:
    labs = _labels(3)
    rows = [sft_row("q0", "a0"), sft_row("q1", "a1")]
    ids = {i: [labs[i].event.envelope.event_id] for i in range(2)}
    result = check_labels(labs, [batch("b1", 1, rows, event_ids=ids)])
    assert (result.labels, result.in_batches, result.pending, result.in_several_batches) == \
        (3, 2, 1, 0)


def test_a_label_in_two_batches_is_reported_and_replays_are_not() -> None:
    labs = _labels(2)
    e0, e1 = (lab.event.envelope.event_id for lab in labs)
    first = batch("b1", 1, [sft_row("q0", "a0"), sft_row("q1", "a1")], event_ids={0: [e0], 1: [e1]})
    # batch 2 replays label 0's example (fine) but introduces a new example of label 1 again
    second = batch("b2", 2, [sft_row("q0", "a0"), sft_row("q1", "a1 again")], replay={0},
                   event_ids={0: [e0], 1: [e1]})
    result = check_labels(labs, [first, second])
    assert result.in_several_batches == 1
    assert result.several_examples == [{"label_id": "l1", "batches": ["v1:b1", "v2:b2"]}]


def test_a_label_whose_examples_were_cut_apart_is_split_not_a_problem() -> None:
    [lab] = _labels(1)
    e0 = lab.event.envelope.event_id
    sft = batch("b1", 1, [sft_row("q0", "a0")], event_ids={0: [e0]})
    pair = {"prompt": [{"role": "user", "content": "q0"}],
            "chosen": [{"role": "assistant", "content": "a0"}],
            "rejected": [{"role": "assistant", "content": "no"}], "tools": None}
    dpo = BatchData("b2", {"version": 2, "examples": [
        {"kind": "dpo", "content_hash": row_hash(pair), "replay": False, "source": "correction",
         "event_ids": [e0], "topic": LABELS, "partition": 0, "offset": 0}]},
        rows={"sft": [], "dpo": [pair]})
    result = check_labels([lab], [sft, dpo])
    assert (result.in_batches, result.in_several_batches, result.split) == (1, 0, 1)
    report = build_report(LINE, raw=[], decisions=[], dead_letters=[], raw_topic=RAW,
                          labels=[lab], selection=select_batches([sft, dpo], {"b1", "b2"}, None))
    assert report.ok and "split" in report.notes[0]


def test_a_republished_label_is_one_label() -> None:
    lab = label("t0", "a0", "l0")
    again = copy.deepcopy(lab)
    again.envelope.event_id = "another-event-id"
    records = [Consumed(LABELS, 0, 0, b"k", lab), Consumed(LABELS, 1, 5, b"k", again)]
    b1 = batch("b1", 1, [sft_row("q", "a")], event_ids={0: [lab.envelope.event_id]})
    b2 = batch("b2", 2, [sft_row("q", "b")], event_ids={0: ["another-event-id"]})
    assert check_labels(records, [b1]).labels == 1
    assert check_labels(records, [b1, b2]).in_several_batches == 1


def test_a_rating_gap_pair_counts_for_the_newer_label_only() -> None:
    older, newer, newest = _labels(3)
    eo, e1, e2 = (lab.event.envelope.event_id for lab in (older, newer, newest))
    first = batch("b1", 1, [sft_row("q", "good")], event_ids={0: [eo]}, coords={0: older.coords})
    # the older rating is paired with a newer one in batch 2 and with another in batch 3
    pair1 = batch("b2", 2, [sft_row("q", "pair 1")], event_ids={0: [eo, e1]},
                  source="rating_gap", coords={0: newer.coords})
    pair2 = batch("b3", 3, [sft_row("q", "pair 2")], event_ids={0: [eo, e2]},
                  source="rating_gap", coords={0: newest.coords})
    result = check_labels([older, newer, newest], [first, pair1, pair2])
    assert (result.in_batches, result.in_several_batches, result.split) == (3, 0, 0)


def test_undecodable_label_records_are_counted_not_attributed() -> None:
    [bad] = decode_records([RawRecord(LABELS, 0, 3, b"k", b"\xff\xfe\xfd")], AnnotationLabel)
    result = check_labels([bad, *_labels(1)], [])
    assert (result.undecodable, result.labels, result.pending) == (1, 1, 1)


# -- examples ---------------------------------------------------------------------------------


def test_distinct_rows_and_marked_replays_are_ok() -> None:
    a, b, c = sft_row("q", "a"), sft_row("q", "b"), sft_row("q", "c")
    result = check_examples([batch("b1", 1, [a, b]), batch("b2", 2, [c, a], replay={1})])
    assert result.rows == {"sft": 4, "dpo": 0} and result.replayed_rows == 1
    assert not (result.duplicates_within or result.duplicates_across
                or result.replay_without_origin or result.manifest_mismatches)


def test_duplicate_rows_within_and_across_batches() -> None:
    a, b = sft_row("q", "a"), sft_row("q", "b")
    result = check_examples([batch("b1", 1, [a, a, b]), batch("b2", 2, [b])])
    assert [(d["batch"], d["rows"]) for d in result.duplicates_within] == [("v1:b1", 2)]
    assert [d["batches"] for d in result.duplicates_across] == [["v1:b1", "v2:b2"]]


def test_a_replay_needs_an_origin_and_the_manifest_must_match_the_file() -> None:
    a, b = sft_row("q", "a"), sft_row("q", "b")
    orphan_replay = check_examples([batch("b1", 1, [a, b], replay={1})])
    assert [d["batches"] for d in orphan_replay.replay_without_origin] == [["v1:b1"]]
    mismatch = check_examples([batch("b1", 1, [a, b], manifest_rows=[a])])
    assert mismatch.manifest_mismatches and "2 rows" in mismatch.manifest_mismatches[0]


def test_rows_without_lineage_count_as_new() -> None:
    a = sft_row("q", "a")
    plain = BatchData("b9", {"version": 1}, rows={"sft": [a]})
    result = check_examples([plain, batch("b2", 2, [a], replay={0})])
    assert result.replayed_rows == 1 and not result.replay_without_origin


def test_select_batches_skips_superseded_and_orphans() -> None:
    live, old, new, orphan = (batch(f"b{i}", i, [sft_row("q", str(i))]) for i in range(4))
    new.manifest["supersedes"] = old.batch_id
    chosen = select_batches([live, old, new, orphan], announced={"b0", "b1", "gone"},
                            recorded={"b0": "announced", "b1": "superseded", "b2": "written"})
    assert [b.batch_id for b in chosen.live] == ["b0", "b2"]
    assert chosen.superseded == ["b1"] and chosen.orphans == ["b3"]
    assert chosen.announced_missing == ["gone"]
    assert live.announced and not new.announced
    without_sql = select_batches([live, orphan], announced=set(), recorded=None)
    assert [b.batch_id for b in without_sql.live] == ["b0", "b3"]


def test_report_collects_problems_and_serialises() -> None:
    t = trace("t1")
    a = sft_row("q", "a")
    selection = select_batches([batch("b1", 1, [a, a])], {"b1", "gone"}, None)
    report = build_report(LINE, raw=[raw(t, 0, 0)], decisions=[], dead_letters=[],
                          raw_topic=RAW, labels=[], selection=selection)
    # the missing trace, the duplicate row, the announced batch without a manifest
    assert not report.ok and len(report.problems) == 3
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["traces"]["missing_examples"] == ["t1"]
    assert len(report_tables(report)) == 2
    clean = build_report(LINE, raw=[raw(t, 0, 0)], decisions=[decision(t)], dead_letters=[],
                         raw_topic=RAW, labels=[], selection=select_batches([], set(), None))
    assert clean.ok and clean.to_dict()["ok"] is True


# -- batches written by the real curator --------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    from flywheel.db.engine import make_engine, migrate
    from flywheel.services.curator.logic.writer import BatchStore

    url = f"sqlite:///{tmp_path / 'flywheel.db'}"
    migrate(url)
    engine = make_engine(url)
    batch_store = BatchStore(engine, tmp_path / "artifacts")
    batch_store.ensure_model_line(LINE, "tiny")
    yield batch_store
    engine.dispose()


def test_batches_of_the_real_curator_reconcile(store, tmp_path: Path) -> None:  # noqa: ANN001
    from flywheel.services.curator.logic.examples import Coordinates
    from flywheel.services.curator.service import Curator, Tables
    from flywheel.services.curator.settings import CuratorSettings, load_curation

    settings = CuratorSettings(min_sft=4, min_dpo=0, max_age_s=0.0, eval_share=0.0,
                               replay_share=0.5)
    sent: list[tuple[str, str, bytes]] = []

    async def send(topic: str, key: str, value: bytes) -> None:
        sent.append((topic, key, value))

    curator = Curator(settings, load_curation(settings), store, Tables(), send, data_dir=tmp_path)
    questions = shop.sample_questions(8, seed=5)
    triaged = Coordinates("p.traces.triaged.v1", 0, 0)

    async def scenario() -> list[Consumed]:
        await curator.startup()
        for i, q in enumerate(questions[:4]):  # batch 1: traces with a thumbs up
            t = trace(f"a{i}", q.text, shop.reference_answer(q), thumbs_up=True)
            await curator.on_decision(decision(t), triaged)
        assert await curator.tick() is not None
        records = []
        for i, q in enumerate(questions[4:]):  # batch 2: corrections by an annotator
            t = trace(f"b{i}", q.text, "I do not know.")
            await curator.on_decision(decision(t, Route.ROUTE_ANNOTATE), triaged)
            lab = label(t.trace_id, shop.reference_answer(q), f"l{i}")
            at = Coordinates(LABELS, 1, 10 + i)
            await curator.on_label(lab, at)
            records.append(Consumed(at.topic, at.partition, at.offset, b"k", lab))
        assert await curator.tick() is not None
        return records

    labels = asyncio.run(scenario())
    batches = load_batches(tmp_path / "artifacts", LINE)
    assert len(batches) == 2 and not any(b.file_problems for b in batches)
    announced = {b.batch_id for b in batches}
    selection = select_batches(batches, announced, {bid: "announced" for bid in announced})
    examples = check_examples(selection.live)
    assert examples.rows == {"sft": 4 + 4 + 4, "dpo": 4} and examples.replayed_rows == 4
    assert not (examples.duplicates_within or examples.duplicates_across
                or examples.manifest_mismatches or examples.replay_without_origin)
    result = check_labels(labels, selection.live)
    assert (result.labels, result.in_batches, result.in_several_batches) == (4, 4, 0)

    # A second copy of batch 2 (as if cut again from the same pool) breaks both checks.
    second = max(batches, key=lambda b: b.version)
    twin = BatchData("twin", {**second.manifest, "version": 3}, rows=second.rows)
    examples = check_examples([*selection.live, twin])
    assert len(examples.duplicates_across) == 4 + 4  # the 4 new SFT and 4 DPO rows
    assert check_labels(labels, [*selection.live, twin]).in_several_batches == 4
    assert encode(labels[0].event)  # the events are real, encodable AnnotationLabels


def _missing_reports(*missing: int) -> list[Any]:
    from flywheel.demo.reconcile import ReconcileReport, TraceCheck

    return [ReconcileReport("line", traces=TraceCheck(ingested=10, triaged=10 - m, missing=m))
            for m in missing]


def test_reconcile_drained_waits_until_nothing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.demo import reconcile as module

    reports = _missing_reports(7, 7, 3, 0, 0)
    monkeypatch.setattr(module, "reconcile", lambda settings, line: reports.pop(0))
    said: list[str] = []
    report = module.reconcile_drained(None, "line", drain_s=30, poll_s=0.01, say=said.append)
    assert report.traces.missing == 0
    assert said == ["draining: 3 triaged, 0 queued, 7 missing",
                    "draining: 3 triaged, 0 queued, 7 missing",
                    "draining: 7 triaged, 0 queued, 3 missing",
                    "draining: 10 triaged, 0 queued, 0 missing"]


def test_reconcile_drained_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.demo import reconcile as module

    calls: list[int] = []

    def stuck(settings: Any, line: str) -> Any:
        calls.append(1)
        return _missing_reports(4)[0]

    monkeypatch.setattr(module, "reconcile", stuck)
    report = module.reconcile_drained(None, "line", drain_s=0.2, poll_s=0.05)
    assert report.traces.missing == 4 and 2 <= len(calls) <= 6
