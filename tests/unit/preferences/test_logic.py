"""Pure decisions of the preferences service."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from flywheel.events.codec import decode, encode
from flywheel.services.preferences.errors import InvalidAnswer
from flywheel.services.preferences.logic import (
    answer_event,
    answers_differ,
    budget_key,
    choose_second_model,
    display_order,
    expiry,
    pending_view,
    resolve_answer,
    split_model_id,
)
from flywheel.v1 import common_pb2
from flywheel.v1.preference_pb2 import PreferenceAnswer

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def _payload(display: list[str]) -> dict:
    return {
        "app_id": "shop",
        "prompt": [{"role": "user", "content": "Where is my order 123?"}],
        "answers": {
            "a": {"answer_id": "ans_1", "messages": [{"role": "assistant", "content": "Shipped."}],
                  "model": {"name": "shop-assistant", "version": "7"}},
            "b": {"answer_id": "ans_2", "messages": [{"role": "assistant", "content": "On its way."}],
                  "model": {"name": "shop-assistant", "version": "8"}},
        },
        "display": display,
    }


# -- which model answers second ---------------------------------------------------------------


def test_canary_is_asked_when_live_and_not_the_first_answerer() -> None:
    listing = [{"id": "shop"}, {"id": "shop:7", "role": "stable"}, {"id": "shop:8", "role": "canary"}]
    choice = choose_second_model(listing, "7", "shop", 0.7, 1.0)
    assert (choice.model, choice.role, choice.temperature) == ("shop:8", "canary", 0.7)


def test_release_is_sampled_when_the_canary_gave_the_first_answer_or_none_is_live() -> None:
    listing = [{"id": "shop:7", "role": "stable"}, {"id": "shop:8", "role": "canary"}]
    assert choose_second_model(listing, "8", "shop", 0.7, 1.0).model == "shop:7"
    assert choose_second_model(listing[:1], "7", "shop", 0.7, 1.0).role == "release"
    plain = choose_second_model([{"id": "gpt-x"}], "7", "shop", 0.7, 1.0)
    assert (plain.model, plain.temperature) == ("shop", 1.0)


def test_model_ids_split_into_line_and_version() -> None:
    assert split_model_id("shop:8") == ("shop", "8")
    assert split_model_id("shop", "9") == ("shop", "9")


def test_identical_answers_are_not_worth_asking_about() -> None:
    a = [{"role": "assistant", "content": "Order 12  shipped."}]
    assert not answers_differ(a, [{"role": "assistant", "content": " Order 12 shipped. "}])
    assert answers_differ(a, [{"role": "assistant", "content": "Order 13 shipped."}])
    call = {"role": "assistant", "tool_calls": [
        {"function": {"name": "lookup_order", "arguments": '{"order_number": "12"}'}}]}
    other = {"role": "assistant", "tool_calls": [
        {"function": {"name": "issue_refund", "arguments": '{"order_number": "12"}'}}]}
    assert answers_differ([call], [other])


# -- pending requests -------------------------------------------------------------------------


def test_display_order_is_random_but_seeded() -> None:
    orders = {tuple(display_order(random.Random(seed))) for seed in range(20)}
    assert orders == {("a", "b"), ("b", "a")}


def test_expiry_uses_the_request_else_ttl_and_never_exceeds_the_cap() -> None:
    assert expiry(NOW, None, 3600, 86400) == NOW + timedelta(hours=1)
    assert expiry(NOW, NOW + timedelta(hours=5), 3600, 86400) == NOW + timedelta(hours=5)
    assert expiry(NOW, NOW + timedelta(days=30), 3600, 86400) == NOW + timedelta(days=1)
    assert expiry(NOW, NOW - timedelta(hours=1), 3600, 86400) == NOW + timedelta(hours=1)


def test_budget_key_is_per_user_and_utc_day() -> None:
    assert budget_key("u1", NOW) == "fw:pref:budget:u1:20261121"


def test_pending_view_lists_answers_in_display_order() -> None:
    view = pending_view("pr_1", "tr_1", "u1", _payload(["b", "a"]), NOW, NOW)
    assert [a["answer_id"] for a in view["answers"]] == ["ans_2", "ans_1"]
    assert view["answers"][0]["model"]["version"] == "8"


# -- answers ----------------------------------------------------------------------------------


def test_position_of_chosen_follows_the_display_order() -> None:
    resolved = resolve_answer(_payload(["b", "a"]), "ans_2")
    assert (resolved.choice, resolved.chosen_side, resolved.position_of_chosen) == (
        common_pb2.CHOICE_B, "b", 0)
    resolved = resolve_answer(_payload(["b", "a"]), "ans_1")
    assert (resolved.choice, resolved.position_of_chosen) == (common_pb2.CHOICE_A, 1)


def test_tie_chooses_a_and_shown_order_overrides_display() -> None:
    resolved = resolve_answer(_payload(["a", "b"]), "tie", shown_order=["ans_2", "ans_1"])
    assert (resolved.choice, resolved.chosen_side, resolved.position_of_chosen) == (
        common_pb2.CHOICE_TIE, "a", 1)


@pytest.mark.parametrize(("chosen", "ratings", "shown"), [
    ("ans_9", None, None),
    ("ans_1", {"ans_9": {"style": 3}}, None),
    ("ans_1", {"ans_1": {"style": 8}}, None),
    ("ans_1", {"ans_1": {"tone": 3}}, None),
    ("ans_1", None, ["ans_1", "ans_1"]),
])
def test_invalid_answers_are_refused(chosen: str, ratings: dict | None, shown: list | None) -> None:
    with pytest.raises(InvalidAnswer):
        resolve_answer(_payload(["a", "b"]), chosen, ratings, shown)


def test_answer_event_carries_both_models_position_ratings_and_copies() -> None:
    payload = _payload(["b", "a"])
    resolved = resolve_answer(payload, "ans_2", {"ans_1": {"helpfulness": 2},
                                                  "ans_2": {"helpfulness": 6, "style": 5}})
    event = answer_event(request_id="pr_1", trace_id="tr_1", user_id="u1", payload=payload,
                         resolved=resolved, reason="clearer", answered_at=NOW)
    again = decode(encode(event), PreferenceAnswer)
    assert again.chosen == common_pb2.CHOICE_B and again.position_of_chosen == 0
    assert (again.chosen_model.version, again.rejected_model.version) == ("8", "7")
    assert again.ratings_a.helpfulness == 2 and again.ratings_b.style == 5
    assert again.chosen_messages[0].content == "On its way."
    assert again.rejected_messages[0].content == "Shipped."
    assert again.prompt[0].content.startswith("Where")
    assert again.envelope.producer == "preferences" and again.envelope.app_id == "shop"
