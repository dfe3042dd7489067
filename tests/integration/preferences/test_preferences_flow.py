"""Preferences end to end on the real broker, Redis and SQL: request -> pending -> answer ->
preference.answers; per-user budget; webhook signatures and retries; every bad request."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from flywheel.events.envelope import stamp
from flywheel.services.preferences import store
from flywheel.services.preferences.signing import verify_signature
from flywheel.v1 import common_pb2
from flywheel.v1.pipeline_pb2 import DeadLetter
from flywheel.v1.preference_pb2 import PreferenceAnswer, PreferenceRequest

pytestmark = pytest.mark.integration


def unique(name: str) -> str:
    """A user id no earlier run used (daily budgets live in Redis across test runs)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def request_event(user: str, *, app_id: str = "shop", text: str = "Where is my order 4411?",
                  first: str = "Order 4411 has shipped and arrives within 3 business days.",
                  expires_in_s: float | None = None) -> PreferenceRequest:
    trace_id = f"tr_{uuid.uuid4().hex[:12]}"
    event = PreferenceRequest(request_id=f"pr_{uuid.uuid4().hex[:12]}", trace_id=trace_id,
                              user_id=user)
    event.prompt.add(role="system", content="You are the support assistant.")
    event.prompt.add(role="user", content=text)
    event.answer_a.answer_id = "ans_a"
    event.answer_a.messages.add(role="assistant", content=first)
    event.answer_a.model.name, event.answer_a.model.version = "shop-assistant", "7"
    if expires_in_s is not None:
        event.expires_at.FromDatetime(datetime.now(timezone.utc) + timedelta(seconds=expires_in_s))
    return stamp(event, "triage", app_id=app_id)


async def _pending(running, user: str, io) -> list[dict]:  # noqa: ANN001
    async def check():  # noqa: ANN202
        response = await running.client.get("/v1/preferences/pending", params={"user": user},
                                            headers=running.auth)
        assert response.status_code == 200
        return response.json()["requests"]

    return await io.eventually(check)


async def test_round_trip_from_request_to_preference_answers(pref_settings, start_service, io,
                                                             fake_model) -> None:
    model, _ = fake_model
    running = await start_service(pref_settings())
    user = unique("u-round")
    event = request_event(user)
    await io.produce(running.settings, "preference.requests", event.trace_id, event)

    [pending] = await _pending(running, user, io)
    assert pending["request_id"] == event.request_id and pending["trace_id"] == event.trace_id
    versions = sorted(a["model"]["version"] for a in pending["answers"])
    assert versions == ["7", "8"]  # the release's answer and the live canary's
    assert model.requests[0]["model"] == "shop-assistant:8"
    assert datetime.fromisoformat(pending["expires_at"]) > datetime.now(timezone.utc)
    second = pending["answers"][1]

    response = await running.client.post(
        f"/v1/preferences/{event.request_id}", headers=running.auth,
        json={"user": user, "chosen": second["answer_id"], "reason": "more precise",
              "ratings": {second["answer_id"]: {"helpfulness": 6, "correctness": 7}}})
    assert response.status_code == 200, response.text
    assert response.json()["position_of_chosen"] == 1

    [answer] = await io.consume(running.settings, "preference.answers", "PreferenceAnswer", 1)
    assert isinstance(answer, PreferenceAnswer)
    assert answer.request_id == event.request_id and answer.trace_id == event.trace_id
    assert answer.position_of_chosen == 1 and answer.reason == "more precise"
    assert answer.chosen_model.version == second["model"]["version"]
    assert {answer.chosen_model.version, answer.rejected_model.version} == {"7", "8"}
    chosen_side_ratings = answer.ratings_a if answer.chosen == common_pb2.CHOICE_A else answer.ratings_b
    assert (chosen_side_ratings.helpfulness, chosen_side_ratings.correctness) == (6, 7)
    assert answer.chosen_messages[0].content == second["messages"][0]["content"]
    assert answer.envelope.app_id == "shop" and answer.envelope.producer == "preferences"

    again = await running.client.get("/v1/preferences/pending", params={"user": user},
                                     headers=running.auth)
    assert again.json()["requests"] == []


async def test_each_user_is_asked_at_most_the_daily_budget(pref_settings, start_service,
                                                           io) -> None:
    running = await start_service(pref_settings(daily_budget=2))
    user, other = unique("u-budget"), unique("u-other")
    events = [request_event(user) for _ in range(4)] + [request_event(other)]
    for event in events:
        await io.produce(running.settings, "preference.requests", event.trace_id, event)

    await io.eventually(lambda: sum(running.service.outcomes.values()) >= len(events))
    assert running.service.outcomes["over_budget"] == 2
    assert len(await _pending(running, user, io)) == 2
    assert len(await _pending(running, other, io)) == 1
    now = datetime.now(timezone.utc)
    assert int(await running.service.redis.get(f"fw:pref:budget:{user}:{now:%Y%m%d}")) == 2


async def test_webhook_is_signed_and_retried_with_backoff(pref_settings, start_service, io,
                                                          webhook_receiver) -> None:
    hooks, url = webhook_receiver
    hooks.statuses = [500, 503, 200]
    running = await start_service(pref_settings())
    created = await running.client.post("/v1/webhooks", headers=running.auth, json={"url": url})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]

    event = request_event(unique("u-hook"))
    await io.produce(running.settings, "preference.requests", event.trace_id, event)
    await io.eventually(lambda: len(hooks.calls) >= 3)
    await asyncio.sleep(0.5)  # a fourth delivery would be a bug; give it the chance to show
    assert len(hooks.calls) == 3

    deliveries = {headers["x-flywheel-delivery"] for _, headers, _ in hooks.calls}
    assert len(deliveries) == 1
    for at, headers, body in hooks.calls:
        assert verify_signature(secret, headers["x-flywheel-signature"], body, now=at)
        assert not verify_signature("whsec_wrong-secret-0000", headers["x-flywheel-signature"],
                                    body, now=at)
        payload = io.body_json(body)
        assert payload["type"] == "preference.request"
        assert payload["request"]["request_id"] == event.request_id
        assert len(payload["request"]["answers"]) == 2
    assert [io.body_json(b)["attempt"] for _, _, b in hooks.calls] == [1, 2, 3]
    gaps = [b[0] - a[0] for a, b in zip(hooks.calls, hooks.calls[1:])]
    assert all(g >= 0.1 for g in gaps)  # backoff base 0.2 s, jitter keeps at least half
    assert running.service.dispatcher.stats["delivered"] == 1
    assert running.service.dispatcher.stats["retried"] == 2


async def test_webhook_client_errors_are_not_retried(pref_settings, start_service, io,
                                                     webhook_receiver) -> None:
    hooks, url = webhook_receiver
    hooks.statuses = [400]
    running = await start_service(pref_settings())
    await running.client.post("/v1/webhooks", headers=running.auth, json={"url": url})
    event = request_event(unique("u-hook-400"))
    await io.produce(running.settings, "preference.requests", event.trace_id, event)
    await io.eventually(lambda: running.service.dispatcher.stats["failed"] == 1)
    assert len(hooks.calls) == 1


async def test_every_bad_request_gets_its_status(pref_settings, start_service, io) -> None:
    running = await start_service(pref_settings())
    user = unique("u-bad")
    event = request_event(user)
    await io.produce(running.settings, "preference.requests", event.trace_id, event)
    [pending] = await _pending(running, user, io)
    rid, first = pending["request_id"], pending["answers"][0]["answer_id"]
    post = running.client.post

    assert (await post("/v1/preferences/pr_unknown", headers=running.auth,
                       json={"user": user, "chosen": first})).status_code == 404
    assert (await post(f"/v1/preferences/{rid}", headers=running.auth,
                       json={"user": "someone-else", "chosen": first})).status_code == 404
    assert (await post(f"/v1/preferences/{rid}", json={"user": user, "chosen": first})
            ).status_code == 401
    assert (await post(f"/v1/preferences/{rid}", headers={"Authorization": "Bearer fw_nope"},
                       json={"user": user, "chosen": first})).status_code == 401
    assert (await post(f"/v1/preferences/{rid}", headers=running.auth,
                       json={"user": user, "chosen": "ans_not_here"})).status_code == 422
    assert (await post(f"/v1/preferences/{rid}", headers=running.auth,
                       json={"user": user, "chosen": first,
                             "ratings": {first: {"style": 9}}})).status_code == 422
    assert (await post(f"/v1/preferences/{rid}", headers=running.auth,
                       json={"chosen": first})).status_code == 422
    assert (await running.client.get("/v1/preferences/pending", headers=running.auth)
            ).status_code == 422

    ok = await post(f"/v1/preferences/{rid}", headers=running.auth,
                    json={"user": user, "chosen": "tie"})
    assert ok.status_code == 200
    twice = await post(f"/v1/preferences/{rid}", headers=running.auth,
                       json={"user": user, "chosen": first})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_answered"

    now = datetime.now(timezone.utc)
    payload = {**(await asyncio.to_thread(store.get_request, running.service.engine, rid)).payload}
    await asyncio.to_thread(
        store.insert_request, running.service.engine, request_id="pr_expired", trace_id="tr_x",
        user_id=user, app_id=running.app_id, payload=payload,
        created_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))
    gone = await post("/v1/preferences/pr_expired", headers=running.auth,
                      json={"user": user, "chosen": first})
    assert gone.status_code == 410
    assert (await post("/v1/preferences/pr_expired", headers=running.auth,
                       json={"user": user, "chosen": first})).status_code == 410
    assert (await running.client.delete("/v1/webhooks/wh_unknown", headers=running.auth)
            ).status_code == 404


async def test_concurrent_answers_only_one_wins(pref_settings, start_service, io) -> None:
    running = await start_service(pref_settings())
    user = unique("u-race")
    event = request_event(user)
    await io.produce(running.settings, "preference.requests", event.trace_id, event)
    [pending] = await _pending(running, user, io)
    body = {"user": user, "chosen": pending["answers"][0]["answer_id"]}
    results = await asyncio.gather(*(
        running.client.post(f"/v1/preferences/{pending['request_id']}", headers=running.auth,
                            json=body) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]


async def test_undecodable_and_incomplete_requests_are_dead_lettered(pref_settings, start_service,
                                                                     io) -> None:
    running = await start_service(pref_settings())
    incomplete = request_event("")
    await io.produce(running.settings, "preference.requests", "k", incomplete)

    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=running.settings.kafka())
    await producer.start()
    await producer.send_and_wait(running.settings.topic("preference.requests"), b"\xff\x00junk",
                                 key=b"junk")
    await producer.stop()
    letters = await io.consume(running.settings, "deadletter", "DeadLetter", 2)
    assert all(isinstance(x, DeadLetter) and x.service == "preferences" for x in letters)
    assert {x.error_type for x in letters} == {"InvalidEvent", "EventDecodeError"}


async def test_a_failing_model_endpoint_dead_letters_and_gives_the_budget_back(
        pref_settings, start_service, io, fake_model) -> None:
    model, _ = fake_model
    model.status = 503
    running = await start_service(pref_settings())
    user = unique("u-down")
    event = request_event(user)
    await io.produce(running.settings, "preference.requests", event.trace_id, event)
    [letter] = await io.consume(running.settings, "deadletter", "DeadLetter", 1)
    assert letter.error_type == "SecondAnswerUnavailable" and letter.offset == 0
    assert len(model.requests) == 3  # retried with backoff before giving up
    now = datetime.now(timezone.utc)
    assert int(await running.service.redis.get(f"fw:pref:budget:{user}:{now:%Y%m%d}")) == 0
