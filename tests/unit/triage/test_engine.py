"""The engine on in-memory fakes: the join, holds, late feedback, dead letters, budgets,
sampling, ownership and recovery, without a broker or Redis."""

from __future__ import annotations

import asyncio
import random

import pytest

from flywheel.services.triage import samples
from flywheel.services.triage.logic import state as st
from flywheel.services.triage.logic.policy import load_policy, parse_policy
from flywheel.services.triage.logic.records import FEEDBACK_IDS_TAG, decision_id
from flywheel.services.triage.logic.redact import RedactionError

from .conftest import FakeSampler, MemStore


def _trace_event(h, trace):
    key, value = samples.record(trace)
    return h.event("traces.raw", key, value)


def _fb_event(h, fb):
    key, value = samples.record(fb)
    return h.event("feedback.events", key, value)


def _policy_with(budget_per_hour: float = 1e9, burst: float | None = None, max_wait: float = 600,
                 uncertainty: bool = True):
    policy = load_policy()
    data = policy.model_dump()
    for b in data["budgets"].values():
        b["per_hour"], b["burst"], b["max_wait_s"] = budget_per_hour, burst, max_wait
    data["uncertainty"]["enabled"] = uncertainty
    return parse_policy(data)


async def test_trace_waits_for_the_hold_time(make_harness, rng) -> None:
    h = await make_harness()
    trace = samples.chat_trace(rng, "t1")
    await h.feed(_trace_event(h, trace))
    await h.tick(5)
    assert h.decisions() == []
    await h.tick(6)
    [d] = h.decisions()
    assert d.trace_id == "t1" and d.revision == 1 and d.envelope.event_id == decision_id("t1", 1)
    assert d.uncertainty.model_unavailable and "model_unavailable" in d.reasons
    assert h.store.get("t1").status == st.DECIDED


async def test_feedback_before_the_trace_is_joined(make_harness, rng) -> None:
    h = await make_harness(policy=_policy_with())
    fb = samples.feedback_event("t1", "thumbs", thumbs="down")
    await h.feed(_fb_event(h, fb))
    assert h.store.get("t1").status == st.WAITING_TRACE
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1", correct=False)))
    await h.tick(0.1)  # strong feedback: no hold
    [d] = h.decisions()
    assert d.trace.tags[FEEDBACK_IDS_TAG] == fb.envelope.event_id
    assert h.routes()["t1"] == "annotate"
    [task] = h.tasks()
    assert task.decision_id == d.decision_id


async def test_late_feedback_supersedes_when_the_route_changes(make_harness, rng) -> None:
    h = await make_harness(policy=_policy_with())
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1")))
    await h.tick(11)
    first = h.decisions()[0]
    assert first.revision == 1
    fb = samples.feedback_event("t1", "thumbs", thumbs="down")
    await h.feed(_fb_event(h, fb))
    await h.tick(0.1)
    second = h.decisions()[-1]
    assert second.revision == 2 and second.supersedes_decision_id == first.decision_id
    assert second.route != first.route
    # Feedback that does not change the route emits nothing.
    await h.feed(_fb_event(h, samples.feedback_event("t1", "comment", comment="meh")))
    await h.tick(0.1)
    assert len(h.decisions()) == 2 and h.store.get("t1").revision == 2


async def test_feedback_after_the_window_is_dead_lettered(make_harness, rng) -> None:
    h = await make_harness()
    trace = samples.chat_trace(rng, "t1")
    await h.feed(_trace_event(h, trace))
    await h.tick(11)
    late = samples.feedback_event("t1", "thumbs", thumbs="down")
    late.envelope.occurred_at.FromSeconds(trace.envelope.occurred_at.seconds + 101)
    await h.feed(_fb_event(h, late))
    [dl] = h.deadletters()
    assert dl.error_type == "FeedbackTooLate" and dl.source_topic == h.settings.topic("feedback.events")
    assert len(h.decisions()) == 1


async def test_orphan_feedback_is_dead_lettered_after_the_window(make_harness) -> None:
    h = await make_harness()
    fb = samples.feedback_event("never", "thumbs", thumbs="up")
    event = _fb_event(h, fb)
    await h.feed(event)
    await h.tick(50)
    assert h.deadletters() == []
    await h.tick(60)
    [dl] = h.deadletters()
    assert dl.error_type == "OrphanFeedback" and dl.offset == event.message.offset
    assert dl.partition == event.message.partition and dl.key == b"never"
    assert h.store.get("never") is None


async def test_decided_entries_expire(make_harness, rng) -> None:
    h = await make_harness()
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1")))
    await h.tick(11)
    await h.tick(100)
    assert h.store.get("t1") is None and h.store.changelog[-1][2] is None


async def test_garbage_and_schema_violations_are_dead_lettered(make_harness, rng) -> None:
    h = await make_harness()
    garbage = h.event("traces.raw", b"k", b"\xff\x00not protobuf", partition=2)
    wrong_key = _trace_event(h, samples.chat_trace(rng, "t1"))
    wrong_key.message.key = b"other"
    bad_fb = h.event("feedback.events", b"x", b"\x0a\x00", partition=1)
    await h.feed(garbage, wrong_key, bad_fb)
    dls = {(d.error_type, d.partition, d.offset) for d in h.deadletters()}
    assert ("EventDecodeError", 2, garbage.message.offset) in dls
    assert ("SchemaViolation", wrong_key.message.partition, wrong_key.message.offset) in dls
    assert any(t == "SchemaViolation" and p == 1 for t, p, _ in dls)  # empty envelope, no trace id
    assert all(d.value for d in h.deadletters())
    await h.tick(20)
    assert h.decisions() == []


async def test_failed_redaction_fails_closed(make_harness, rng) -> None:
    h = await make_harness()

    class Broken:
        def redact(self, text):
            raise RedactionError("boom")

    h.engine.redactor = Broken()
    trace = samples.chat_trace(rng, "t1", pii="email")
    await h.feed(_trace_event(h, trace))
    await h.tick(20)
    [dl] = h.deadletters()
    assert dl.error_type == "RedactionError" and dl.value == samples.record(trace)[1]
    assert h.decisions() == [] and h.store.get("t1") is None
    dl_topic = h.settings.topic("deadletter")
    assert not any(b"@example.com" in v for topic, _, v in h.out.records if topic != dl_topic)


async def test_pii_never_reaches_state_or_outputs(make_harness, rng) -> None:
    h = await make_harness()
    trace = samples.chat_trace(rng, "t1", pii="credit_card")
    await h.feed(_trace_event(h, trace))
    await h.tick(11)
    assert all(b"4111 1111" not in s.to_bytes() for _, _, s in h.store.changelog if s)
    [d] = h.decisions()
    assert d.pii_counts["credit_card"] == 1 and "[CREDIT_CARD]" in d.trace.messages[1].content


async def test_duplicates_are_linked_and_not_routed_again(make_harness, rng) -> None:
    h = await make_harness()
    first = samples.chat_trace(random.Random(1), "first")
    copy = samples.chat_trace(random.Random(1), "copy")
    await h.feed(_trace_event(h, first))
    await h.feed(_trace_event(h, copy))
    await h.tick(11)
    by_id = {d.trace_id: d for d in h.decisions()}
    assert by_id["copy"].duplicate_of == "first" and h.routes()["copy"] == "drop"
    assert by_id["first"].duplicate_of == "" and h.routes()["first"] != "drop"


async def test_redelivery_is_idempotent(make_harness, rng) -> None:
    h = await make_harness()
    trace = samples.chat_trace(rng, "t1")
    fb = samples.feedback_event("t1", "comment", comment="ok")
    await h.feed(_trace_event(h, trace), _fb_event(h, fb))
    await h.feed(_trace_event(h, trace), _fb_event(h, fb))
    await h.tick(11)
    assert len(h.decisions()) == 1
    assert len(h.store.get("t1").feedback) == 1


async def test_budget_gives_slots_to_the_most_uncertain_and_overflows_to_the_judge(make_harness) -> None:
    policy = _policy_with(budget_per_hour=3600 / 1000, burst=2, max_wait=30)
    h = await make_harness(policy=policy, hold_s=0)
    rng = random.Random(3)
    for i, n_bad in enumerate([1, 5, 3, 2]):
        trace = samples.agent_trace(rng, f"t{i}", failure="invented_tool")
        await h.feed(_trace_event(h, trace))
        # More negative feedback, higher urgency.
        for j in range(n_bad):
            await h.feed(_fb_event(h, samples.feedback_event(f"t{i}", "regenerate")))
    await h.tick(0.1)
    granted = {t.trace_id for t in h.tasks()}
    assert len(granted) == 2
    await h.tick(40)
    routes = h.routes()
    assert sorted(routes.values()).count("annotate") == 2
    overflow = [d for d in h.decisions() if any(r.startswith("budget:annotate:overflow") for r in d.reasons)]
    assert {d.trace_id for d in overflow} == set(routes) - granted
    assert all(routes[d.trace_id] == "judge" for d in overflow)


async def test_priority_order_with_measured_uncertainty(make_harness) -> None:
    policy = _policy_with(budget_per_hour=3600 / 1000, burst=1, max_wait=1000)
    h = await make_harness(policy=policy, hold_s=0)
    rng = random.Random(5)
    for i, k_distinct in enumerate([3, 5, 4]):
        trace = samples.chat_trace(rng, f"u{i}")
        trace.logprobs.samples.extend([samples.trace_pb2.SampledAnswer(text=f"ans {j % k_distinct}")
                                       for j in range(5)])
        trace.logprobs.token_count = 0
        await h.feed(_trace_event(h, trace))
    await h.tick(0.1)
    assert [t.trace_id for t in h.tasks()] == ["u1"]  # five distinct answers: most uncertain
    await h.tick(1000)
    assert [t.trace_id for t in h.tasks()][1] == "u2"


async def test_sampling_feeds_uncertainty_and_preferences(make_harness, rng) -> None:
    from flywheel.services.triage.logic.decide import eval_bucket

    tid = next(f"p{i}" for i in range(1000) if eval_bucket(f"p{i}") >= 0.1)
    trace = samples.chat_trace(rng, tid, user_id="u-9")
    logged = trace.messages[-1].content
    # Three samples agree with the logged answer, two do not: moderate uncertainty.
    sampler = FakeSampler([logged, logged, "Another reply.", logged, "Another reply."])
    h = await make_harness(policy=_policy_with(), sampler=sampler, hold_s=0)
    await h.feed(_trace_event(h, trace))
    await asyncio.sleep(0.01)
    await h.tick(0.1)
    [d] = h.decisions()
    assert sampler.calls == 1 and d.uncertainty.k == 5 and not d.uncertainty.model_unavailable
    assert d.uncertainty.disagreement == 0.4 and h.routes()[tid] == "preference"
    [req] = h.preference_requests()
    assert req.answer_a.messages[0].content == logged
    assert req.answer_b.messages[0].content == "Another reply."
    assert req.user_id == "u-9" and req.envelope.event_id == req.request_id


async def test_model_down_marks_and_never_stalls(make_harness, rng) -> None:
    h = await make_harness(sampler=FakeSampler(None), hold_s=0)
    for i in range(5):
        await h.feed(_trace_event(h, samples.chat_trace(rng, f"t{i}")))
    await asyncio.sleep(0.01)
    await h.tick(0.1)
    ds = h.decisions()
    assert len(ds) == 5 and all(d.uncertainty.model_unavailable for d in ds)


async def test_slow_model_hits_the_sampling_deadline(make_harness, rng) -> None:
    class Slow(FakeSampler):
        async def sample(self, trace):
            await asyncio.sleep(3600)

    h = await make_harness(sampler=Slow([]), hold_s=0, sampling_deadline_s=5)
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1")))
    await h.tick(1)
    assert h.decisions() == []
    await h.tick(10)
    [d] = h.decisions()
    assert d.uncertainty.model_unavailable


async def test_only_owned_partitions_are_decided_and_recovery_drops_the_rest(make_harness, rng) -> None:
    h = await make_harness()
    mine = samples.chat_trace(rng, "mine")
    theirs = samples.chat_trace(rng, "theirs")
    e_mine, e_theirs = _trace_event(h, mine), _trace_event(h, theirs)
    e_mine.message.partition, e_theirs.message.partition = 0, 5
    await h.feed(e_mine, e_theirs)
    h.owned.discard(5)
    await h.tick(11)
    assert set(h.routes()) == {"mine"}
    await h.engine.on_recovered()
    assert h.store.get("theirs") is None


async def test_restart_recovers_pending_and_queued_work(make_harness, rng) -> None:
    h = await make_harness(policy=_policy_with(budget_per_hour=0.001, burst=0, max_wait=30))
    await h.feed(_trace_event(h, samples.chat_trace(rng, "pending")))
    await h.feed(_trace_event(h, samples.agent_trace(rng, "queued", failure="invented_tool")))
    await h.feed(_fb_event(h, samples.feedback_event("queued", "thumbs", thumbs="down")))
    await h.tick(0.1)
    assert h.store.get("queued").status == st.QUEUED
    # A new worker recovers the same table (the changelog replayed into a fresh store).
    store = MemStore()
    for _, key, value in h.store.changelog:
        if value is None:
            store.data.pop(key, None)
        else:
            store.data[key] = st.TriageState.from_bytes(value.to_bytes())
    h2 = await make_harness(policy=_policy_with(budget_per_hour=0.001, burst=0, max_wait=30),
                            store=store)
    h2.clock.t = h.clock.t
    await h2.tick(11)
    assert "pending" in h2.routes()
    await h2.tick(40)
    assert h2.routes()["queued"] == "judge"


async def test_health_event_counts(make_harness, rng) -> None:
    h = await make_harness()
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1")), h.event("traces.raw", b"k", b"\xff"))
    event = h.engine.health_event()
    assert event.service == "triage"
    assert event.counters["traces.raw.ingested"] == 1 and event.counters["deadlettered"] == 1
    assert event.gauges["state.pending"] == 1.0
    assert h.engine.health_event().counters == {}


async def test_not_ready_engine_does_nothing_on_ticks(make_harness, rng) -> None:
    h = await make_harness()
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1")))
    await h.engine.on_revoked()
    await h.tick(20)
    assert h.decisions() == []


@pytest.mark.parametrize("kind", ["regenerate", "correction"])
async def test_strong_feedback_ends_the_hold(make_harness, rng, kind) -> None:
    h = await make_harness(policy=_policy_with())
    await h.feed(_trace_event(h, samples.chat_trace(rng, "t1", correct=False)))
    await h.tick(1)
    assert h.decisions() == []
    kw = {"correction": "Order 12 has shipped."} if kind == "correction" else {}
    await h.feed(_fb_event(h, samples.feedback_event("t1", kind, **kw)))
    await h.tick(0.1)
    assert len(h.decisions()) == 1


def _partition_log(h, seed: int, partition: int):  # noqa: ANN001, ANN202 - a test harness
    """``at(offset, trace_id)`` makes a trace event at that offset of ``partition`` of
    traces.raw and logs it; the engine's ``read_range`` reads that log and records each read
    in ``reads``."""
    from flywheel.services.triage.engine import Record

    rng = random.Random(seed)
    log: dict[int, tuple[bytes, bytes]] = {}
    reads: list[tuple[str, int, int, int]] = []

    def at(offset: int, tid: str):  # noqa: ANN202
        e = _trace_event(h, samples.chat_trace(rng, tid))
        e.message.partition, e.message.offset = partition, offset
        log[offset] = (e.message.key, e.message.value)
        return e

    async def read_range(t, part, start, end):  # noqa: ANN001, ANN202
        reads.append((t, part, start, end))
        return [Record(t, part, o, *log[o]) for o in range(start, end) if o in log]

    h.engine.read_range = read_range
    return at, reads


async def test_offset_holes_are_read_again_once(make_harness) -> None:
    h = await make_harness(hold_s=0)
    topic = h.settings.topic("traces.raw")
    at, reads = _partition_log(h, 9, 3)
    first = [at(0, "a"), at(1, "b")]
    skipped = [at(2, "c"), at(3, "d"), at(4, "e")]  # fetched by Faust, dropped in a rebalance
    await h.feed(*first)
    await h.feed(at(5, "f"))
    assert reads == [(topic, 3, 2, 5)]
    assert set(h.routes()) == {"a", "b", "c", "d", "e", "f"}
    # A hole whose records do not exist (transaction markers): read once, then accepted.
    await h.feed(at(9, "j"))
    assert reads[-1] == (topic, 3, 6, 9) and "j" in h.routes()
    await h.feed(at(9, "j"))  # a redelivery from an earlier position: no hole
    assert len(reads) == 2
    assert h.engine.health_event().counters["offset_holes"] == 2
    assert len(skipped) == 3


async def test_a_hole_before_the_first_offset_read_is_found_from_the_committed_offset(
        make_harness) -> None:
    """After a restart the process has no previous offset to compare with: a record fetched
    during start-up and dropped in a rebalance shows only as the group's committed offset
    lying behind the first offset delivered."""
    h = await make_harness(hold_s=0)
    topic = h.settings.topic("traces.raw")
    at, reads = _partition_log(h, 10, 2)
    asked = []

    async def committed_offset(t, partition):
        asked.append((t, partition))
        return {(topic, 2): 17}.get((t, partition))

    h.engine.committed_offset = committed_offset
    dropped = at(17, "lost-in-rebalance")
    await h.feed(at(18, "next"))
    assert reads == [(topic, 2, 17, 18)] and asked == [(topic, 2)]
    assert {"lost-in-rebalance", "next"} <= set(h.routes())
    await h.feed(at(19, "after"))  # the partition is known now: no second question
    assert asked == [(topic, 2)] and len(reads) == 1
    # a partition whose first offset is the committed one, or that has none: nothing to read
    e = _trace_event(h, samples.chat_trace(random.Random(10), "other"))
    e.message.partition, e.message.offset = 4, 0
    await h.feed(e)
    assert len(reads) == 1 and dropped.message.offset == 17


async def test_an_unanswered_committed_offset_question_reads_on(make_harness) -> None:
    h = await make_harness(hold_s=0)

    async def committed_offset(t, partition):
        raise ConnectionError("broker away")

    h.engine.committed_offset = committed_offset
    e = _trace_event(h, samples.chat_trace(random.Random(11), "t1"))
    e.message.partition, e.message.offset = 1, 40
    await h.feed(e)
    assert "t1" in h.routes()
