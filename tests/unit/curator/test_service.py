"""The Curator over plain-dict tables: joins, retractions, rating gaps, cuts and the eval
guard, without a broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from curator_builders import (
    make_decision,
    make_label,
    make_preference,
    make_task,
    make_trace,
    msg,
    rating,
    shop_decision,
    thumbs,
)

from flywheel.db.models import BatchStatus
from flywheel.demo import shop
from flywheel.events.codec import decode
from flywheel.services.curator.logic.decontam import is_eval_prompt, normalize_text, prompt_key
from flywheel.services.curator.logic.examples import Coordinates
from flywheel.services.curator.service import Curator, Tables
from flywheel.services.curator.settings import CuratorSettings, load_curation
from flywheel.v1.annotation_pb2 import AnnotationKind
from flywheel.v1.datasets_pb2 import DatasetBatch
from flywheel.v1.triage_pb2 import Route

C = Coordinates("flywheel.traces.triaged.v1", 0, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, bytes]] = []

    async def __call__(self, topic: str, key: str, value: bytes) -> None:
        self.records.append((topic, key, value))

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.records if t == topic]


def make_curator(store, tmp_path: Path, **overrides) -> tuple[Curator, Sent, Clock]:  # noqa: ANN001, ANN003
    settings = CuratorSettings(**{"min_sft": 4, "min_dpo": 0, "max_age_s": 0.0,
                                  "eval_share": 0.0, "replay_share": 0.0, **overrides})
    sent, clock = Sent(), Clock()
    curator = Curator(settings, load_curation(settings), store, Tables(), sent,
                      data_dir=tmp_path, clock=clock)
    asyncio.run(curator.startup())
    return curator, sent, clock


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_thumbs_up_traces_fill_a_batch(store, tmp_path) -> None:  # noqa: ANN001
    curator, sent, _ = make_curator(store, tmp_path)
    questions = shop.sample_questions(4, seed=1)
    for i, q in enumerate(questions[:3]):
        run(curator.on_decision(shop_decision(q, f"t{i}", feedback=[thumbs()]), C))
    assert run(curator.tick()) is None and len(curator.t.pool) == 3
    run(curator.on_decision(shop_decision(questions[3], "t3", feedback=[thumbs()]), C))
    row = run(curator.tick())
    assert row is not None and row.counts["sft"] == 4 and curator.t.pool == {}
    [announced] = [decode(v, DatasetBatch) for v in sent.on("datasets.batches")]
    assert announced.batch_id == row.batch_id and announced.sft_path == row.sft_path
    assert store.batch(row.batch_id).status == BatchStatus.ANNOUNCED
    assert len(sent.on("examples.sft")) == 4
    lines = [json.loads(line) for line in open(row.sft_path).read().splitlines()]
    assert {line["messages"][-1]["content"] for line in lines} == {
        shop.reference_answer(q) for q in questions}


def test_redelivery_changes_nothing(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path)
    decision = shop_decision(shop.sample_questions(1, seed=2)[0], "t1", feedback=[thumbs()])
    run(curator.on_decision(decision, C))
    pool = dict(curator.t.pool)
    run(curator.on_decision(decision, C))
    assert curator.t.pool == pool


def test_label_waits_for_its_trace_then_replaces_the_decision_example(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path)
    q = shop.sample_questions(1, seed=3)[0]
    right = shop.reference_answer(q)
    label = make_label("t1", AnnotationKind.ANNOTATION_KIND_CORRECT,
                       corrected=[msg("assistant", right)])
    run(curator.on_label(label, C))
    assert list(curator.t.pending) == [label.label_id] and curator.t.pool == {}
    wrong = shop.wrong_answer(q, __import__("random").Random(0))
    run(curator.on_decision(shop_decision(q, "t1", wrong, route=Route.ROUTE_SFT_CANDIDATE), C))
    assert curator.t.pending == {}
    sources = sorted((v["kind"], v["source"]) for v in curator.t.pool.values())
    # the decision's own SFT of the wrong answer was withdrawn by the correction
    assert sources == [("dpo", "correction"), ("sft", "correction")]
    # a later revision of the decision does not bring the withdrawn example back
    revised = make_decision(make_trace("t1", q.text, wrong, feedback=[thumbs()]), revision=2)
    run(curator.on_decision(revised, C))
    assert sorted(v["source"] for v in curator.t.pool.values()) == ["correction", "correction"]


def test_task_arrival_releases_a_pairwise_label(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path)
    trace = make_trace("t1", "When are you open?", "Soon.")
    label = make_label("t1", AnnotationKind.ANNOTATION_KIND_PAIRWISE, choice=1)
    run(curator.on_label(label, C))
    assert curator.t.pending
    task = make_task(trace, AnnotationKind.ANNOTATION_KIND_PAIRWISE,
                     candidates=[[msg("assistant", "9 to 6.")], [msg("assistant", "Soon.")]])
    run(curator.on_task(task, C))
    [(key, value)] = curator.t.pool.items()
    assert key.startswith("dpo:") and value["source"] == "annotation"
    assert value["row"]["chosen"] == [{"role": "assistant", "content": "9 to 6."}]


def test_join_timeout_uses_self_contained_labels_and_drops_the_rest(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, clock = make_curator(store, tmp_path, join_timeout_s=10.0)
    whole = make_label("tx", AnnotationKind.ANNOTATION_KIND_CORRECT, label_id="whole",
                       corrected=[msg("user", "hours?"), msg("assistant", "9 to 6")])
    rate = make_label("ty", AnnotationKind.ANNOTATION_KIND_RATE, rating=4, label_id="rate")
    pairwise = make_label("tz", AnnotationKind.ANNOTATION_KIND_PAIRWISE, choice=1,
                          label_id="pairwise")
    run(curator.on_label(whole, C))  # usable at once
    run(curator.on_label(rate, C))
    run(curator.on_label(pairwise, C))
    assert sorted(curator.t.pending) == ["pairwise", "rate"]
    clock.now += 11
    run(curator.flush_pending())
    assert curator.t.pending == {} and curator.metrics["label_join_timeout"] == 2
    assert [v["source"] for v in curator.t.pool.values()] == ["correction"]


def test_rating_gap_between_two_traces_makes_a_pair(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path)
    good = make_decision(make_trace("t1", "When are you open?", "9 to 6.",
                                    feedback=[rating(7)]), Route.ROUTE_PREFERENCE)
    bad = make_decision(make_trace("t2", "When are you open?", "No idea.",
                                   feedback=[rating(1)]), Route.ROUTE_PREFERENCE)
    run(curator.on_decision(good, C))
    run(curator.on_decision(bad, C))
    [pair] = [v for v in curator.t.pool.values() if v["kind"] == "dpo"]
    assert pair["source"] == "rating_gap" and sorted(pair["trace_ids"]) == ["t1", "t2"]
    assert pair["row"]["chosen"][0]["content"] == "9 to 6."


def test_preferences_become_pairs(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path)
    answer = make_preference("t1", [msg("user", "hours?")], "9 to 6", "no idea")
    run(curator.on_preference(answer, C))
    assert [v["source"] for v in curator.t.pool.values()] == ["user_preference"]


def test_eval_prompts_never_reach_training(store, tmp_path) -> None:  # noqa: ANN001
    curator, sent, _ = make_curator(store, tmp_path, eval_share=0.3, min_sft=10)
    questions = shop.sample_questions(60, seed=7)
    for i, q in enumerate(questions):
        run(curator.on_decision(shop_decision(q, f"t{i}", feedback=[thumbs()]), C))
    held = {prompt_key(normalize_text(q.text)) for q in questions
            if is_eval_prompt(prompt_key(normalize_text(q.text)), 0.3)}
    assert held and len(sent.on("examples.eval")) == len(held)
    # a near-duplicate of an eval prompt arrives for training
    eval_q = next(q for q in questions if prompt_key(normalize_text(q.text)) in held)
    near = shop.Question(eval_q.intent, "Hi, " + eval_q.text, eval_q.order_number)
    run(curator.on_decision(shop_decision(near, "near", feedback=[thumbs()]), C))
    rows = []
    while (row := run(curator.tick())) is not None:
        rows.append(row)
    assert rows
    eval_prompts = {r["prompt"][-1]["content"] for r in store.eval_rows()}
    trained = [json.loads(line)["messages"][1]["content"]
               for r in rows for line in open(r.sft_path).read().splitlines()]
    assert not eval_prompts & set(trained)
    assert near.text not in trained
    dropped = {k: v for r in rows for k, v in r.manifest["dropped"].items()}
    assert dropped.get("near_duplicate", 0) >= 1  # the greeting variant, maybe others


def test_eval_candidates_that_were_trained_on_are_refused(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path, min_sft=1)
    q = shop.sample_questions(1, seed=9)[0]
    run(curator.on_decision(shop_decision(q, "t1", feedback=[thumbs()]), C))
    assert run(curator.tick()) is not None
    run(curator.on_decision(shop_decision(q, "t2", route=Route.ROUTE_EVAL_CANDIDATE), C))
    assert store.eval_rows() == [] and curator.metrics["eval_seen_in_training"] == 1


def test_replay_share_and_later_batches(store, tmp_path) -> None:  # noqa: ANN001
    curator, _, _ = make_curator(store, tmp_path, replay_share=0.2, min_sft=8)
    questions = shop.sample_questions(16, seed=11)
    for i, q in enumerate(questions[:8]):
        run(curator.on_decision(shop_decision(q, f"a{i}", feedback=[thumbs()]), C))
    first = run(curator.tick())
    assert first.counts["replay"] == 0
    for i, q in enumerate(questions[8:]):
        run(curator.on_decision(shop_decision(q, f"b{i}", feedback=[thumbs()]), C))
    second = run(curator.tick())
    assert second.counts["sft"] == 8 and second.counts["replay_sft"] == 2
    assert second.version == 2
    replayed = [e for e in second.manifest["examples"] if e["replay"]]
    assert {e["trace_ids"][0][0] for e in replayed} == {"a"}


def test_forgotten_users_are_purged_from_the_tables(store, tmp_path) -> None:  # noqa: ANN001
    from flywheel.services.curator.logic.forget import forget_user

    curator, _, _ = make_curator(store, tmp_path, min_sft=100)
    for i, q in enumerate(shop.sample_questions(4, seed=12)):
        user = "alice" if i % 2 else "bob"
        run(curator.on_decision(shop_decision(q, f"t{i}", user=user, feedback=[thumbs()]), C))
    forget_user(store, "alice", tmp_path)
    run(curator.tick())
    assert all("alice" not in v["user_ids"] for v in curator.t.pool.values())
    assert len(curator.t.pool) == 2 and len(curator.t.traces) == 2


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_age_trigger_cuts_small_batches(store, tmp_path, share: float) -> None:  # noqa: ANN001
    curator, _, clock = make_curator(store, tmp_path, min_sft=100, max_age_s=60.0,
                                     replay_share=share)
    run(curator.on_decision(shop_decision(shop.sample_questions(1, seed=5)[0], "t",
                                          feedback=[thumbs()]), C))
    assert run(curator.tick()) is None
    clock.now += 61
    row = run(curator.tick())
    assert row is not None and row.manifest["cut_reason"] == "max_age"


def test_rag_traces_get_cot_targets_and_feed_in2(store, tmp_path) -> None:  # noqa: ANN001
    from flywheel.v1.trace_pb2 import ContextDocument

    curator, _, _ = make_curator(store, tmp_path, min_sft=3, designs="rag_cot,in2")
    facts = [("Returns", "Unused items can be returned within 30 days for a full refund.",
              "Can I return a jacket?", "You can return unused items within 30 days."),
             ("Hours", "The store is open Monday to Saturday from 9 am to 6 pm.",
              "When are you open?", "We are open Monday to Saturday from 9 am to 6 pm."),
             ("Warranty", "All products have a two year warranty against defects.",
              "Is my tent under warranty?", "Your tent has a two year warranty.")]
    for i, (title, content, question, answer) in enumerate(facts):
        trace = make_trace(f"r{i}", question, answer, feedback=[thumbs()],
                           docs=[ContextDocument(title=title, content=content)])
        run(curator.on_decision(make_decision(trace), C))
    assert len(curator.t.facts) == 3
    row = run(curator.tick())
    assert row.manifest["transforms"] == {"in2": 8, "rag_cot": 3}
    assert row.manifest["designs_enabled"] == ["rag_cot", "in2"]
    rows = [json.loads(line) for line in open(row.sft_path).read().splitlines()]
    cot = [r for r in rows if r["messages"][-1]["content"].startswith("Document [1]")]
    assert len(cot) == 3 and all("Documents:\n[1]" in r["messages"][-2]["content"] for r in cot)
    long = [r for r in rows if "Answer from the context above." in r["messages"][-2]["content"]]
    assert len(long) == 8


def test_crash_before_the_announcement_is_recovered_on_restart(store, tmp_path) -> None:  # noqa: ANN001
    """The worker dies after recording a batch but before the broker acknowledged its
    announcement, and its pool removal never reached the changelog. The restarted worker
    announces that same batch and does not cut the examples again."""
    curator, _, _ = make_curator(store, tmp_path)
    for i, q in enumerate(shop.sample_questions(4, seed=21)):
        run(curator.on_decision(shop_decision(q, f"t{i}", feedback=[thumbs()]), C))
    pool_before_crash = dict(curator.t.pool)

    async def broker_down(topic: str, key: str, value: bytes) -> None:
        if topic == "datasets.batches":
            raise ConnectionError("worker killed before the ack")

    curator.send = broker_down
    with pytest.raises(ConnectionError):
        run(curator.tick())
    [row] = store.batches("shop-assistant")
    assert row.status == BatchStatus.WRITTEN

    settings = curator.settings
    sent = Sent()
    restarted = Curator(settings, load_curation(settings), store,
                        Tables(pool=pool_before_crash), sent, data_dir=tmp_path)
    run(restarted.startup())
    [announced] = [decode(v, DatasetBatch) for v in sent.on("datasets.batches")]
    assert (announced.batch_id, announced.content_hash) == (row.batch_id,
                                                            row.manifest["content_hash"])
    assert run(restarted.tick()) is None
    assert restarted.t.pool == {} and restarted.metrics["dropped_already_batched"] == 4
    assert [b.batch_id for b in store.batches("shop-assistant")] == [row.batch_id]
    assert store.batch(row.batch_id).status == BatchStatus.ANNOUNCED
