"""Tasks that need several annotators: agreement settles them, disagreement goes to a reviewer
whose decision is final; agreement figures per kind and per annotator."""

from __future__ import annotations

import pytest

from flywheel.v1.annotation_pb2 import LABELLER_TYPE_HUMAN, LABELLER_TYPE_REVIEWER

pytestmark = pytest.mark.integration


async def _label_all(person, ratings: dict[str, int]) -> dict[str, dict]:  # noqa: ANN001
    results = {}
    while True:
        claimed = await person.claim()
        if claimed.status_code == 204:
            return results
        task_id = claimed.json()["task"]["task_id"]
        response = await person.label(task_id, rating=ratings[task_id])
        assert response.status_code == 201, response.text
        results[task_id] = response.json()


async def test_two_annotators_agreement_and_review(ann_settings, start_annotation, io) -> None:
    running = await start_annotation(ann_settings())
    ana, bob = await running.annotator("ana"), await running.annotator("bob")
    rev = await running.annotator("rev", "reviewer")
    events = [io.task_event(required=2, priority=0.1 * i) for i in range(6)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, len(events))
    ids = [e.task_id for e in events]
    ana_ratings = dict(zip(ids, [4, 3, 2, 1, 0, 4]))
    bob_ratings = dict(zip(ids, [4, 3, 2, 1, 1, 2]))  # disagree on the last two

    first = await _label_all(ana, ana_ratings)
    assert {r["task_status"] for r in first.values()} == {"pending"}
    assert (await ana.claim()).status_code == 204  # never offered a task twice
    second = await _label_all(bob, bob_ratings)
    statuses = {tid: r["task_status"] for tid, r in second.items()}
    assert [statuses[t] for t in ids] == ["done"] * 4 + ["in_review"] * 2
    assert all(second[t]["is_final"] for t in ids[:4])

    decided = []
    while True:
        claimed = await running.client.post("/v1/review/claim", headers=rev.auth)
        if claimed.status_code == 204:
            break
        view = claimed.json()
        assert {lab["labeller"] for lab in view["labels"]} == {"ana", "bob"}
        task_id = view["task"]["task_id"]
        response = await running.client.post(f"/v1/review/{task_id}", headers=rev.auth,
                                             json={"rating": 3, "reason": "close to good"})
        assert response.status_code == 201, response.text
        assert response.json()["is_final"] and response.json()["task_status"] == "done"
        decided.append(task_id)
    assert sorted(decided) == sorted(ids[4:])

    labels = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 14)
    finals = [x for x in labels if x.is_final]
    assert len(finals) == 6 and len({x.task_id for x in finals}) == 6
    reviewer_finals = [x for x in finals if x.labeller.type == LABELLER_TYPE_REVIEWER]
    assert sorted(x.task_id for x in reviewer_finals) == sorted(ids[4:])
    assert all(x.rating == 3 for x in reviewer_finals)
    assert sum(x.labeller.type == LABELLER_TYPE_HUMAN for x in labels) == 12
    assert all(x.guideline_version == "g-1" and x.trace_id for x in labels)

    stats = (await running.client.get("/v1/agreement", headers=ana.auth)).json()
    [rate] = stats["by_kind"]
    assert rate["statistic"] == "cohen_kappa" and rate["units"] == 6 and rate["raters"] == 2
    assert rate["percent_agreement"] == pytest.approx(4 / 6, abs=1e-3)
    assert 0 < rate["value"] < 1
    people = {row["annotator"]: row for row in stats["by_annotator"]}
    assert people["ana"]["pairs"] == 6 and people["ana"]["kappa"] == rate["value"]
    assert people["bob"]["matches_final"] is not None


async def test_three_annotators_use_krippendorffs_alpha(ann_settings, start_annotation, io) -> None:
    running = await start_annotation(ann_settings())
    people = [await running.annotator(name) for name in ("ana", "bob", "cy")]
    events = [io.task_event("pairwise", required=3) for _ in range(4)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, len(events))
    choices = {"ana": "aaba", "bob": "aabb", "cy": "aaba"}
    order = [e.task_id for e in events]
    for person in people:
        while (claimed := await person.claim()).status_code == 200:
            task_id = claimed.json()["task"]["task_id"]
            choice = choices[person.username][order.index(task_id)]
            assert (await person.label(task_id, choice=choice)).status_code == 201

    stats = (await running.client.get("/v1/agreement", headers=people[0].auth)).json()
    [pairwise] = stats["by_kind"]
    assert pairwise["statistic"] == "krippendorff_alpha" and pairwise["raters"] == 3
    assert pairwise["units"] == 4 and pairwise["percent_agreement"] == pytest.approx(0.75)
    counts = (await running.client.get("/v1/queue", headers=people[0].auth)).json()
    assert counts["tasks"]["pairwise"] == {"done": 3, "in_review": 1}
    assert counts["review_queue"] == 1
