"""The annotation queue on real Kafka, Redis and SQL: priority order, leases that expire back
to the queue, no task held by two annotators at once, and the statuses of bad requests."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from flywheel.v1.annotation_pb2 import LABELLER_TYPE_HUMAN, AnnotationLabel

pytestmark = pytest.mark.integration


async def test_queue_is_ordered_by_priority_and_labels_reach_the_topic(ann_settings,
                                                                       start_annotation, io) -> None:
    running = await start_annotation(ann_settings())
    ana = await running.annotator("ana")
    events = [io.task_event(priority=p) for p in (0.2, 0.9, 0.5)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, 3)

    order = []
    for rating in (4, 3, 2):
        claimed = await ana.claim()
        assert claimed.status_code == 200, claimed.text
        body = claimed.json()
        assert body["guideline"]["version"] == "g-1" and "very bad" in body["guideline"]["text"]
        assert body["task"]["conversation"][-1]["content"] == "Where is my order 4411?"
        order.append(body["task"]["priority"])
        done = await ana.label(body["task"]["task_id"], rating=rating,
                               lease_token=body["lease"]["token"])
        assert done.status_code == 201, done.text
        assert done.json()["task_status"] == "done" and done.json()["is_final"]
    assert order == [0.9, 0.5, 0.2]
    assert (await ana.claim()).status_code == 204

    labels = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 3)
    assert all(isinstance(x, AnnotationLabel) for x in labels)
    by_task = {x.task_id: x for x in labels}
    first = by_task[events[1].task_id]
    assert first.rating == 4 and first.is_final and first.trace_id == events[1].trace_id
    assert first.labeller.type == LABELLER_TYPE_HUMAN and first.labeller.id
    assert first.guideline_version == "g-1" and first.envelope.producer == "annotation"


async def test_an_expired_lease_returns_the_item_to_the_queue(ann_settings, start_annotation,
                                                              io) -> None:
    running = await start_annotation(ann_settings(lease_s=1.0))
    ana, bob = await running.annotator("ana"), await running.annotator("bob")
    event = io.task_event()
    await io.produce_tasks(running.settings, [event])
    await io.wait_ingested(running, 1)

    held = (await ana.claim()).json()
    assert held["task"]["task_id"] == event.task_id
    again = await ana.claim()  # claiming twice returns the task already held
    assert again.json()["task"]["task_id"] == event.task_id
    assert (await bob.claim()).status_code == 204  # nobody sees a held item

    async def bob_gets_it():  # noqa: ANN202
        response = await bob.claim()
        return response.json() if response.status_code == 200 else None

    taken = await io.eventually(bob_gets_it, deadline_s=10)
    assert taken["task"]["task_id"] == event.task_id

    late = await ana.label(event.task_id, rating=2, lease_token=held["lease"]["token"])
    assert late.status_code == 409 and late.json()["error"]["code"] == "lease_lost"
    ok = await bob.label(event.task_id, rating=3)
    assert ok.status_code == 201


async def test_two_annotators_never_hold_the_same_item(ann_settings, start_annotation, io) -> None:
    running = await start_annotation(ann_settings(lease_s=30.0))
    people = [await running.annotator(f"worker{i}") for i in range(6)]
    events = [io.task_event(priority=i / 40) for i in range(40)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, len(events))

    holding: dict[str, str] = {}  # task id -> who holds it now
    overlaps: list[str] = []
    labelled: Counter[str] = Counter()

    async def work(person) -> None:  # noqa: ANN001
        while True:
            response = await person.claim()
            if response.status_code == 204:
                return
            task_id = response.json()["task"]["task_id"]
            if task_id in holding:
                overlaps.append(task_id)
            holding[task_id] = person.username
            await asyncio.sleep(0.005)  # hold it for a moment while the others claim
            del holding[task_id]
            result = await person.label(task_id, rating=3)
            assert result.status_code == 201, result.text
            labelled[task_id] += 1

    await asyncio.gather(*(work(p) for p in people))
    assert overlaps == []
    assert set(labelled) == {e.task_id for e in events}
    assert set(labelled.values()) == {1}


async def test_bad_requests_get_their_status(ann_settings, start_annotation, io) -> None:
    running = await start_annotation(ann_settings())
    ana = await running.annotator("ana")
    bob = await running.annotator("bob")
    await io.produce_tasks(running.settings, [io.task_event("pairwise")])
    await io.wait_ingested(running, 1)
    client = running.client

    assert (await client.post("/v1/tasks/claim")).status_code == 401
    assert (await client.post("/v1/tasks/claim", headers={"Authorization": "Bearer fwa_nope"})
            ).status_code == 401
    assert (await client.post("/v1/review/claim", headers=ana.auth)).status_code == 403
    assert (await client.post("/v1/annotators", headers=ana.auth,
                              json={"username": "x", "password": "password1"})).status_code == 403
    assert (await ana.claim(kind="nonsense")).status_code == 422
    assert (await ana.claim(kind="rate")).status_code == 204  # only a pairwise task exists

    task = (await ana.claim(kind="pairwise")).json()["task"]
    task_id = task["task_id"]
    assert [c["label"] for c in task["candidates"]] == ["A", "B"]
    assert "model" not in task["candidates"][0]  # choices stay blind
    assert (await ana.label(task_id, choice="maybe")).status_code == 422
    assert (await ana.label(task_id, rating=3)).status_code == 422  # wrong field for the kind
    assert (await bob.label(task_id, choice="a")).status_code == 409  # ana holds it
    assert (await ana.label("at_unknown", choice="a")).status_code == 409  # no lease on it
    assert (await client.get(f"/v1/tasks/{task_id}", headers=bob.auth)).status_code == 409
    assert (await client.post(f"/v1/tasks/{task_id}/release", headers=bob.auth, json={})
            ).status_code == 409
    assert (await ana.label(task_id, choice="a", lease_token="wrong")).status_code == 409
    assert (await client.post(f"/v1/tasks/{task_id}/release", headers=ana.auth, json={})
            ).status_code == 204
    assert (await ana.label(task_id, choice="a")).status_code == 409  # given back
    login = await client.post("/v1/auth/login", json={"username": "ana", "password": "wrong"})
    assert login.status_code == 401
    login = await client.post("/v1/auth/login", json={"username": "ana", "password": io.PASSWORD})
    assert login.status_code == 200 and "fw_session" in login.cookies


async def test_unusable_and_undecodable(ann_settings, start_annotation, io) -> None:
    running = await start_annotation(ann_settings())
    ana = await running.annotator("ana")
    bad = io.task_event()
    bad.kind = 0
    await io.produce(running.settings, "annotation.tasks",
                     [("junk", b"\x00\xffnot protobuf"), (bad.task_id, bad)])
    await io.produce_tasks(running.settings, [io.task_event("correct")])
    letters = await io.consume(running.settings, "deadletter", "DeadLetter", 2)
    assert {x.error_type for x in letters} == {"EventDecodeError", "InvalidEvent"}

    await io.wait_ingested(running, 1)
    task = (await ana.claim()).json()["task"]
    result = await ana.label(task["task_id"], unusable=True, reason="garbled")
    assert result.json()["task_status"] == "unusable"
    [label] = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 1)
    assert label.unusable and label.reason == "garbled" and label.is_final
