"""Batch files, manifest, SQL records and the crash-safe announcement protocol."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from curator_builders import LINE, make_trace, sft_record
from curator_builders import batch_content as content

from flywheel.db.engine import session_scope
from flywheel.db.models import BatchExample, BatchStatus, DatasetBatch, Example
from flywheel.events.codec import decode, encode
from flywheel.services.curator.logic.writer import (
    BatchWriteError,
    announce_pending,
    announcement_event_id,
    batch_event,
    publish_batch,
)
from flywheel.v1.datasets_pb2 import DatasetBatch as DatasetBatchEvent
from flywheel.v1.examples_pb2 import Lineage


class Announcer:
    """Collects announcements; fails the first ``fail`` calls (a crash before the ack)."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.events: list[DatasetBatchEvent] = []

    async def __call__(self, event: DatasetBatchEvent) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker went away")
        self.events.append(decode(encode(event), DatasetBatchEvent))


def test_write_files_manifest_and_sql(store) -> None:  # noqa: ANN001
    records = [sft_record(i) for i in range(3)]
    row = store.write(content(records))
    assert row.version == 1 and row.status == BatchStatus.WRITTEN
    sft_bytes = open(row.sft_path, "rb").read()
    assert row.sft_path.endswith(f"{hashlib.sha256(sft_bytes).hexdigest()}.jsonl")
    lines = [json.loads(line) for line in sft_bytes.decode().splitlines()]
    assert sorted(r["messages"][0]["content"] for r in lines) == [
        "question 0", "question 1", "question 2"]
    assert set(lines[0]) == {"messages", "tools", "loss_masks"}
    manifest_path = store.manifest_path(LINE, row.batch_id)
    manifest = json.loads(manifest_path.read_text())
    assert hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest() == row.batch_id
    assert manifest["counts"] == {"sft": 3, "dpo": 0, "replay_sft": 0, "replay_dpo": 0,
                                  "eval": 1, "replay": 0}
    assert manifest["sources"] == {"sft": {"correction": 3}}
    assert manifest["designs_enabled"] == ["prompt_erasure"]
    entry = manifest["examples"][0]
    assert {entry["topic"], entry["partition"], tuple(entry["labeller_ids"])} == {
        "flywheel.annotation.labels.v1", 1, ("ann-1",)}
    assert manifest["files"]["dpo"] is None and manifest["files"]["eval"]["rows"] == 1
    with session_scope(store.engine) as s:
        examples = s.query(Example).all()
        assert sorted(e.kafka_offset for e in examples) == [100, 101, 102]
        assert {e.batch_id for e in examples} == {row.batch_id}
        assert s.query(BatchExample).count() == 3


def test_write_is_idempotent_and_versions_count_up(store) -> None:  # noqa: ANN001
    first = store.write(content([sft_record(1)]))
    again = store.write(content([sft_record(1)]))
    assert again.batch_id == first.batch_id and again.version == 1
    second = store.write(content([sft_record(2)]))
    assert second.version == 2 and second.batch_id != first.batch_id
    with pytest.raises(BatchWriteError):
        store.write(content([]))


def test_replay_is_linked_and_sampled_from_earlier_batches(store) -> None:  # noqa: ANN001
    store.write(content([sft_record(i) for i in range(4)]))
    candidates = store.replay_candidates(LINE, "sft")
    assert sorted(r.example_id for r in candidates) == sorted(
        sft_record(i).example_id for i in range(4))
    assert candidates[0].row and candidates[0].trace_ids
    row = store.write(content([sft_record(10)], replay_sft=candidates[:2]))
    assert row.counts["replay_sft"] == 2 and row.replay_share == pytest.approx(2 / 3)
    new, replayed = store.batch_records(row.batch_id)
    assert [r.example_id for r in new] == [sft_record(10).example_id]
    assert len(replayed) == 2
    assert len(open(row.sft_path).read().splitlines()) == 3
    assert store.batched_hashes([sft_record(0).content_hash, "nope"]) == {
        sft_record(0).content_hash}


def test_batch_event_carries_paths_hashes_and_a_stable_id(store) -> None:  # noqa: ANN001
    row = store.write(content([sft_record(1)]))
    event = batch_event(row, store)
    assert event.batch_id == row.batch_id and event.version == 1
    assert event.sft_path == row.sft_path and event.sft_path.startswith(str(store.root))
    assert event.dpo_path == ""
    assert event.manifest_path == str(store.manifest_path(LINE, row.batch_id))
    assert event.content_hash == row.manifest["content_hash"]
    assert event.eval_set_path.endswith(".jsonl") and len(event.eval_set_hash) == 64
    assert dict(event.counts)["sft"] == 1
    assert event.envelope.event_id == announcement_event_id(row.batch_id)
    assert batch_event(row, store).envelope == event.envelope


def test_crash_between_write_and_announce_recovers_the_same_batch(store) -> None:  # noqa: ANN001
    released: list[str] = []

    async def release(row) -> None:  # noqa: ANN001
        released.append(row.batch_id)

    crashing = Announcer(fail=1)
    with pytest.raises(ConnectionError):
        asyncio.run(publish_batch(store, content([sft_record(1)]), crashing, release))
    [row] = store.batches(LINE)
    assert row.status == BatchStatus.WRITTEN and released == [row.batch_id]

    # restart: the pending batch is announced first, with the same id and content hash
    restarted = Announcer()
    assert asyncio.run(announce_pending(store, LINE, restarted)) == [row.batch_id]
    [event] = restarted.events
    assert (event.batch_id, event.content_hash) == (row.batch_id, row.manifest["content_hash"])
    assert store.batch(row.batch_id).status == BatchStatus.ANNOUNCED
    # the same examples cannot make a second batch: they are recorded as batched
    assert store.batched_hashes([sft_record(1).content_hash]) == {sft_record(1).content_hash}
    # a retried cut of the same content returns the same batch, never a second version
    again = store.write(content([sft_record(1)]))
    assert again.batch_id == row.batch_id
    assert [b.batch_id for b in store.batches(LINE)] == [row.batch_id]
    assert asyncio.run(announce_pending(store, LINE, restarted)) == []


def test_crash_before_recording_rewrites_identical_files(store) -> None:  # noqa: ANN001
    """Files written before a crash are reused: the retry produces the same batch id."""
    records = [sft_record(i) for i in range(3)]
    files = store._files(content(records))  # step 1 only, then "crash"
    row = store.write(content(list(reversed(records))))
    assert row.sft_path == str(files["sft"].path)
    assert len(list((store.root / f"datasets/{LINE}/sft").iterdir())) == 1


def test_publish_announces_after_pending_ones_in_order(store) -> None:  # noqa: ANN001
    store.write(content([sft_record(1)]))  # left written by a crash
    announcer = Announcer()
    row = asyncio.run(publish_batch(store, content([sft_record(2)]), announcer))
    assert [e.version for e in announcer.events] == [1, 2]
    assert row.version == 2
    assert {b.status for b in store.batches(LINE)} == {BatchStatus.ANNOUNCED}


def test_eval_examples_are_stored_once_and_references_filled_in(store) -> None:  # noqa: ANN001
    from flywheel.services.curator.logic.examples import CurationRules, build_eval
    from flywheel.v1.examples_pb2 import EvalKind

    trace = make_trace("t", "When are you open?", "9 to 6")
    empty = build_eval(trace.messages[:2], [], tools=[], kind=EvalKind.EVAL_KIND_MODEL,
                       intent="hours", lineage=Lineage(trace_ids=["t"]), rules=CurationRules())
    assert store.add_eval(empty, "when are you open", "model_eval") == "added"
    assert store.add_eval(empty, "when are you open", "model_eval") == "exists"
    full = build_eval(trace.messages[:2], trace.messages[2:], tools=[],
                      kind=EvalKind.EVAL_KIND_MODEL, intent="hours",
                      lineage=Lineage(trace_ids=["t"]), rules=CurationRules())
    assert full.example_id == empty.example_id
    assert store.add_eval(full, "when are you open", "model_eval") == "updated"
    [row] = store.eval_rows()
    assert row["reference"] == [{"role": "assistant", "content": "9 to 6"}]
    assert store.eval_prompts() == [(full.example_id, "when are you open")]
    with session_scope(store.engine) as s:
        assert s.query(DatasetBatch).count() == 0
