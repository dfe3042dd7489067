"""Triaged traces, annotation tasks and labels, and preference answers go through a real
Kafka broker into the curator worker; a batch comes out on datasets.batches.

Checks the batch files (content-addressed TRL JSONL that ``datasets`` loads), the manifest
and lineage in SQL, the announcement, and that no eval prompt appears in any training file.
Then more data is pooled by a worker that is stopped before it cuts; the next worker recovers
the pool from the table changelogs and cuts a second batch that replays the first.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest
from curator_builders import (
    failure,
    make_decision,
    make_label,
    make_preference,
    make_task,
    make_trace,
    msg,
    shop_decision,
    thumbs,
)
from kafka import KafkaConsumer

from flywheel.db.engine import make_engine, session_scope
from flywheel.db.models import BatchStatus, DatasetBatch, Example, ExampleKind
from flywheel.demo import shop
from flywheel.events.codec import decode, encode
from flywheel.kafka.admin import create_topics, describe_topics, group_offsets
from flywheel.kafka.producer import make_producer
from flywheel.services.curator.logic.decontam import is_eval_prompt, normalize_text, prompt_key
from flywheel.v1.annotation_pb2 import AnnotationKind
from flywheel.v1.common_pb2 import FailureSource
from flywheel.v1.datasets_pb2 import DatasetBatch as DatasetBatchEvent
from flywheel.v1.triage_pb2 import Route

EVAL_SHARE = 0.2
DEADLINE_S = 120.0


def _is_eval(text: str) -> bool:
    return is_eval_prompt(prompt_key(normalize_text(text)), EVAL_SHARE)


def _produce(settings, records: list[tuple[str, str, bytes]]) -> None:  # noqa: ANN001
    producer = make_producer(settings.kafka())
    try:
        for short, key, value in records:
            producer.send(settings.topic(short), key=key.encode(), value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _wait_batches(settings, count: int, proc) -> list[DatasetBatchEvent]:  # noqa: ANN001
    consumer = KafkaConsumer(settings.topic("datasets.batches"),
                             bootstrap_servers=settings.kafka(), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    seen: dict[str, DatasetBatchEvent] = {}
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline and len(seen) < count:
            for record in consumer:
                event = decode(record.value, DatasetBatchEvent)
                seen.setdefault(event.batch_id, event)
            assert proc.proc.poll() is None, f"curator exited:\n{proc.log()[-4000:]}"
    finally:
        consumer.close()
    assert len(seen) >= count, f"{len(seen)} batches in {DEADLINE_S}s:\n{proc.log()[-4000:]}"
    return sorted(seen.values(), key=lambda e: e.version)


INPUTS = ("traces.triaged", "annotation.tasks", "annotation.labels", "preference.answers")


def _lag(settings) -> dict[str, int]:  # noqa: ANN001
    """Records of the input topics the curator's consumer group has not committed yet."""
    ends = {(row["topic"], p): off for row in describe_topics(settings.kafka(),
                                                               settings.topic_prefix)
            if row["short"] in INPUTS for p, off in row["end_offsets"].items()}
    done = group_offsets(settings.kafka(), f"{settings.topic_prefix}-curator")
    committed = {(tp.topic, tp.partition): off for tp, off in done.items()}
    return {f"{t}[{p}]": end - committed.get((t, p), 0) for (t, p), end in ends.items()
            if end > committed.get((t, p), 0)}


def _wait_consumed(settings, proc) -> None:  # noqa: ANN001
    """Wait until the worker has handled and committed every input record."""
    deadline = time.monotonic() + DEADLINE_S
    while (lag := _lag(settings)) and time.monotonic() < deadline:
        assert proc.proc.poll() is None, f"curator exited:\n{proc.log()[-4000:]}"
        time.sleep(0.5)
    assert not lag, f"uncommitted input records {lag}:\n{proc.log()[-4000:]}"


def _inputs(seed: int, prefix: str) -> tuple[list[tuple[str, str, bytes]], dict]:
    """Thumbs-up traces, corrected traces (task + label), preferences and a system failure."""
    rng = random.Random(seed)
    questions = shop.sample_questions(40, seed=seed)
    records: list[tuple[str, str, bytes]] = []
    expect = {"thumbs": [], "corrections": [], "preferences": []}
    for i, q in enumerate(questions[:24]):
        d = shop_decision(q, f"{prefix}-up-{i}", feedback=[thumbs()], user=f"user-{i % 5}")
        records.append(("traces.triaged", d.trace_id, encode(d)))
        expect["thumbs"].append(q)
    for i, q in enumerate(questions[24:34]):
        trace_id = f"{prefix}-fix-{i}"
        d = shop_decision(q, trace_id, shop.wrong_answer(q, rng), route=Route.ROUTE_ANNOTATE)
        task = make_task(d.trace, intent=q.intent)
        label = make_label(trace_id, AnnotationKind.ANNOTATION_KIND_CORRECT, labeller="ann-1",
                           corrected=[msg("assistant", shop.reference_answer(q))])
        # the label first: the curator must wait for its task or trace
        records += [("annotation.labels", label.task_id, encode(label)),
                    ("annotation.tasks", task.task_id, encode(task)),
                    ("traces.triaged", trace_id, encode(d))]
        expect["corrections"].append(q)
    for i, q in enumerate(questions[34:40]):
        answer = make_preference(f"{prefix}-pref-{i}", [msg("user", q.text)],
                                 shop.reference_answer(q), shop.wrong_answer(q, rng))
        records.append(("preference.answers", answer.trace_id, encode(answer)))
        expect["preferences"].append(q)
    broken = make_trace(f"{prefix}-sys", "Where is my order 9999?", [],
                        outcome=failure(FailureSource.FAILURE_SOURCE_SYSTEM, "tool_timeout"))
    system = make_decision(broken, Route.ROUTE_SYSTEM_EVAL,
                           failure_source=FailureSource.FAILURE_SOURCE_SYSTEM)
    records.append(("traces.triaged", system.trace_id, encode(system)))
    return records, expect


def _training_prompts(event: DatasetBatchEvent) -> set[str]:
    prompts = set()
    for path, column in ((event.sft_path, "messages"), (event.dpo_path, "prompt")):
        if path:
            for line in Path(path).read_text().splitlines():
                prompts.update(normalize_text(m["content"]) for m in json.loads(line)[column]
                               if m["role"] == "user")
    return prompts


@pytest.mark.slow
def test_batches_from_the_broker(make_settings, curator_process) -> None:  # noqa: ANN001
    datasets = pytest.importorskip("datasets")
    settings = make_settings(redis_url=None)
    create_topics(settings.kafka(), settings.topic_prefix)
    records, expect = _inputs(1, "a")
    # a near-duplicate of an eval prompt, with thumbs up: must not be trained on
    eval_q = next(q for q in expect["thumbs"] if _is_eval(q.text))
    near = shop.Question(eval_q.intent, "Hi, " + eval_q.text, eval_q.order_number)
    near_decision = shop_decision(near, "a-near", feedback=[thumbs()])
    records.append(("traces.triaged", "a-near", encode(near_decision)))
    records.append(("traces.triaged", "junk", b"\x00not a protobuf"))
    _produce(settings, records)

    env = {"min_sft": 0, "min_dpo": 0, "max_age_s": 6, "eval_share": EVAL_SHARE,
           "check_interval_s": 0.5, "replay_share": 0.2}
    proc = curator_process(settings, **env)
    [event] = _wait_batches(settings, 1, proc)

    # -- the announcement and the files
    assert event.model_line == "shop-assistant" and event.version == 1
    assert event.envelope.producer == "curator"
    for path in (event.sft_path, event.dpo_path, event.eval_set_path, event.manifest_path):
        assert Path(path).is_file() and str(settings.data_dir / "artifacts") in path
    for path in (event.sft_path, event.dpo_path, event.eval_set_path):
        assert Path(path).stem == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    sft = datasets.load_dataset("json", data_files=event.sft_path, split="train")
    dpo = datasets.load_dataset("json", data_files=event.dpo_path, split="train")
    assert set(sft.column_names) == {"messages", "tools", "loss_masks"}
    assert set(dpo.column_names) == {"prompt", "chosen", "rejected", "tools"}

    trained_answers = {row["messages"][-1]["content"] for row in sft}
    for q in expect["thumbs"] + expect["corrections"]:
        if not _is_eval(q.text):
            assert shop.reference_answer(q) in trained_answers, q.text
    dpo_chosen = {row["chosen"][0]["content"] for row in dpo}
    for q in expect["corrections"] + expect["preferences"]:
        if not _is_eval(q.text):
            assert shop.reference_answer(q) in dpo_chosen, q.text
    assert event.counts["sft"] == sft.num_rows and event.counts["dpo"] == dpo.num_rows

    # -- no eval prompt in any training file; the near-duplicate was dropped and counted
    eval_rows = [json.loads(line) for line in Path(event.eval_set_path).read_text().splitlines()]
    eval_prompts = {normalize_text(m["content"]) for r in eval_rows for m in r["prompt"]
                    if m["role"] == "user"}
    assert eval_prompts and not eval_prompts & _training_prompts(event)
    assert normalize_text(near.text) not in _training_prompts(event)
    assert {r["kind"] for r in eval_rows} == {"model", "system"}

    # -- the manifest and lineage in SQL
    engine = make_engine(settings.database())
    with session_scope(engine) as s:
        row = s.get(DatasetBatch, event.batch_id)
        assert row.status == BatchStatus.ANNOUNCED and row.announced_at is not None
        manifest = row.manifest
        assert manifest["content_hash"] == event.content_hash
        assert manifest["dropped"].get("near_duplicate", 0) >= 1
        assert manifest["sources"]["sft"]["correction"] >= 1
        assert manifest["sources"]["dpo"]["user_preference"] >= 1
        entries = manifest["examples"]
        fix = next(e for e in entries if e["trace_ids"][0].startswith("a-fix")
                   and e["kind"] == "sft")
        assert fix["labeller_ids"] == ["ann-1"]
        assert fix["topic"] == settings.topic("annotation.labels") and fix["offset"] >= 0
        up = next(e for e in entries if e["trace_ids"][0].startswith("a-up"))
        assert up["topic"] == settings.topic("traces.triaged") and up["user_ids"]
        examples = s.query(Example).filter(Example.kind != ExampleKind.EVAL).all()
        assert len(examples) == event.counts["sft"] + event.counts["dpo"]
        assert all(e.kafka_topic and e.trace_ids for e in examples)
    assert json.loads(Path(event.manifest_path).read_text()) == manifest

    # -- restart: more data is pooled by a worker that does not cut, which is stopped; the
    # next worker recovers the pool (Faust changelogs) and cuts batch 2 with replay
    proc.stop()
    more, expect_more = _inputs(2, "b")
    _produce(settings, more)
    pooling = curator_process(settings, **{**env, "max_age_s": 3600})
    _wait_consumed(settings, pooling)
    pooling.stop()
    proc3 = curator_process(settings, **env)
    first, second = _wait_batches(settings, 2, proc3)
    assert first.batch_id == event.batch_id
    assert second.version == 2 and second.counts["replay"] > 0
    assert not eval_prompts & _training_prompts(second)
    second_answers = {json.loads(line)["messages"][-1]["content"]
                      for line in Path(second.sft_path).read_text().splitlines()}
    for q in expect_more["thumbs"]:
        if not _is_eval(q.text):
            assert shop.reference_answer(q) in second_answers, q.text
    with session_scope(engine) as s:
        assert s.query(DatasetBatch).count() == 2
    engine.dispose()
