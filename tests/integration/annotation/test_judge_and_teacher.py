"""The LLM judge and teacher behind a fake OpenAI-compatible endpoint: routed tasks, judge
ratings of triaged traces, the teacher's quality gate, calibration against people, and the
prompt-version gate."""

from __future__ import annotations

import uuid

import pytest

from flywheel.events.envelope import stamp
from flywheel.v1 import triage_pb2
from flywheel.v1.annotation_pb2 import (
    LABELLER_TYPE_JUDGE,
    LABELLER_TYPE_TEACHER,
)
from flywheel.v1.common_pb2 import CHOICE_A, FAILURE_SOURCE_SYSTEM

pytestmark = pytest.mark.integration


async def test_judge_labels_routed_tasks_and_triaged_traces(ann_settings, start_annotation, io,
                                                            fake_llm) -> None:
    running = await start_annotation(ann_settings(judge=True))
    tasks = [io.task_event("rate", reasons=("cheap signals agree: judge",)),
             io.task_event("pairwise", reasons=("judge",)),
             io.task_event("classify_failure", reasons=("route to the judge",)),
             io.task_event("rate")]  # no tag: people
    await io.produce_tasks(running.settings, tasks)
    decision = triage_pb2.TriageDecision(decision_id="td_1", trace_id="tr_judge",
                                         route=triage_pb2.ROUTE_JUDGE, intent="order_status")
    decision.trace.trace_id = "tr_judge"
    decision.trace.messages.add(role="user", content="Where is my order 4411?")
    decision.trace.messages.add(role="assistant", content="Order 4411 has shipped.")
    skipped = triage_pb2.TriageDecision(decision_id="td_2", trace_id="tr_sft",
                                        route=triage_pb2.ROUTE_SFT_CANDIDATE)
    await io.produce(running.settings, "traces.triaged",
                     [("tr_judge", stamp(decision, "triage", app_id="shop")),
                      ("tr_sft", stamp(skipped, "triage"))])

    labels = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 4)
    assert all(x.labeller.type == LABELLER_TYPE_JUDGE for x in labels)
    assert all(x.labeller.model_name == io.JUDGE_MODEL and x.is_final for x in labels)
    by_trace = {x.trace_id: x for x in labels}
    assert by_trace["tr_judge"].task_id == "" and by_trace["tr_judge"].rating == 4
    assert by_trace["tr_judge"].prompt_version == "judge-rate-1"
    assert by_trace[tasks[0].trace_id].rating == 4
    assert by_trace[tasks[1].trace_id].choice == CHOICE_A
    assert by_trace[tasks[2].trace_id].failure_source == FAILURE_SOURCE_SYSTEM
    people = await running.annotator("ana")
    claimed = await people.claim()
    assert claimed.json()["task"]["task_id"] == tasks[3].task_id
    assert (await people.claim()).json()["task"]["task_id"] == tasks[3].task_id  # only one


async def test_teacher_answers_count_only_when_the_judge_rates_them_good(
        ann_settings, start_annotation, io, fake_llm) -> None:
    llm, _ = fake_llm
    running = await start_annotation(ann_settings(judge=True, teacher=True))
    good = io.task_event("correct", reasons=("teacher",), answer="I am not sure.")
    await io.produce_tasks(running.settings, [good])
    [label] = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 1)
    assert label.labeller.type == LABELLER_TYPE_TEACHER
    assert label.labeller.model_name == io.TEACHER_MODEL and label.is_final
    assert label.corrected_messages[-1].content == llm.teacher_answer
    assert label.corrected_messages[-2].content == "Where is my order 4411?"
    assert label.prompt_version == "teacher-correct-1" and "rated 4/4" in label.reason

    llm.teacher_answer = "Please contact support."  # the judge rates it 1 (bad)
    bad = io.task_event("correct", reasons=("teacher",))
    await io.produce_tasks(running.settings, [bad])
    ana = await running.annotator("ana")
    claimed = await io.eventually(lambda: _claim_json(ana))
    assert claimed["task"]["task_id"] == bad.task_id  # rejected: people take it
    detail = await running.service.task_detail(bad.task_id)
    [kept] = detail["labels"]
    assert kept["labeller_type"] == "teacher" and not kept["is_final"]
    assert kept["value"]["judge_rating"] == 1


async def _claim_json(person) -> dict | None:  # noqa: ANN001
    response = await person.claim()
    return response.json() if response.status_code == 200 else None


async def test_calibration_tracks_judge_vs_people_and_flags_low_agreement(
        ann_settings, start_annotation, io, fake_llm) -> None:
    llm, _ = fake_llm
    llm.rate = lambda answer: 4  # the judge likes everything
    running = await start_annotation(ann_settings(
        judge=True, calibration_rate=1.0, calibration_min_pairs=4, calibration_threshold=0.5))
    redis = running.service.redis
    await redis.delete("fw:calibration:rate", "fw:calibration:rate:pairs")
    ana = await running.annotator("ana")
    events = [io.task_event() for _ in range(6)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, len(events))
    for rating in (4, 0, 1, 4, 0, 2):
        task_id = (await ana.claim()).json()["task"]["task_id"]
        assert (await ana.label(task_id, rating=rating)).status_code == 201
    await running.service.drain()

    summary = {k.decode(): v.decode() for k, v in (await redis.hgetall("fw:calibration:rate")).items()}
    assert summary["n"] == "6" and summary["low"] == "1"
    assert float(summary["percent"]) == pytest.approx(2 / 6, abs=1e-3)
    assert float(summary["agreement"]) < 0.5
    shown = (await running.client.get("/v1/calibration", headers=ana.auth)).json()
    assert shown["criteria"][0]["criterion"] == "rate" and shown["criteria"][0]["low"] == "1"
    page = await running.client.get("/stats", cookies=await _login(running, "ana", io))
    assert "LOW: more to people" in page.text

    labels = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 12)
    judged = [x for x in labels if x.labeller.type == LABELLER_TYPE_JUDGE]
    assert len(judged) == 6 and not any(x.is_final for x in judged)  # kept apart from people's


async def _login(running, username: str, io) -> dict[str, str]:  # noqa: ANN001
    response = await running.client.post("/v1/auth/login",
                                         json={"username": username, "password": io.PASSWORD})
    return {"fw_session": response.cookies["fw_session"]}


async def test_a_new_judge_prompt_is_previewed_approved_scored_then_activated(
        ann_settings, start_annotation, io, fake_llm) -> None:
    running = await start_annotation(ann_settings(judge=True, prompt_eval_min=500))
    admin = await running.annotator("boss", "admin")
    ana = await running.annotator("ana")
    intents = ["order_status", "refund", "warranty"]
    events = [io.task_event(intent=intents[i % 3],
                            answer="Order 4411 has shipped." if i % 2 else "No idea.")
              for i in range(30)]
    await io.produce_tasks(running.settings, events)
    await io.wait_ingested(running, len(events))
    while (claimed := await ana.claim()).status_code == 200:
        task = claimed.json()["task"]
        rating = 4 if "shipped" in task["answer"][0]["content"] else 1
        assert (await ana.label(task["task_id"], rating=rating)).status_code == 201

    client, auth = running.client, admin.auth
    version = f"judge-rate-{uuid.uuid4().hex[:4]}"
    created = await client.post("/v1/prompts", headers=auth, json={
        "role": "judge", "kind": "rate", "version": version,
        "system": "You grade support answers strictly.",
        "user": "Conversation:\n{conversation}\n\nFinal answer:\n{answer}\n\nRate it 0-4. "
                'JSON: {{"rating": n, "reason": "..."}}'})
    assert created.status_code == 201 and created.json()["stage"] == "draft"
    base = f"/v1/prompts/judge/rate/{version}"
    assert (await client.post(f"{base}/evaluate", headers=auth)).status_code == 409
    assert (await client.post(f"{base}/activate", headers=auth)).status_code == 409
    assert (await client.post(f"{base}/preview?n=25", headers=auth)).status_code == 422

    preview = (await client.post(f"{base}/preview?n=12", headers=auth)).json()
    assert preview["stage"] == "previewed" and len(preview["preview"]) == 12
    row = preview["preview"][0]
    assert {"human", "active", "candidate", "conversation"} <= set(row)
    page = await client.get(f"/prompts/judge/rate/{version}",
                            cookies=await _login(running, "boss", io))
    assert "Side by side" in page.text
    assert (await client.post(f"{base}/approve", headers=ana.auth)).status_code == 403
    assert (await client.post(f"{base}/approve", headers=auth)).json()["stage"] == "approved"

    scored = (await client.post(f"{base}/evaluate", headers=auth)).json()
    evaluation = scored["evaluation"]
    assert scored["stage"] == "passed" and evaluation["n"] == 30 and evaluation["all_available"]
    assert set(evaluation["slices"]) == {"intent", "length", "tool_use"}
    assert set(evaluation["slices"]["intent"]) == set(intents)
    assert evaluation["match_rate"] == 1.0

    active = (await client.post(f"{base}/activate", headers=auth)).json()
    assert active["stage"] == "active"
    judged = io.task_event(reasons=("judge",))
    await io.produce_tasks(running.settings, [judged])
    labels = await io.consume(running.settings, "annotation.labels", "AnnotationLabel", 31)
    assert [x.prompt_version for x in labels if x.task_id == judged.task_id] == [version]
