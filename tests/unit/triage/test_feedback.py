"""Feedback items, the join reducer, strong feedback, implicit rephrases and the summary."""

from __future__ import annotations

import random

from flywheel.services.triage import samples
from flywheel.services.triage.logic.feedback import (
    CORRECTION,
    REPHRASE,
    THUMBS,
    FeedbackItem,
    add_item,
    implicit_items,
    inline_items,
    is_strong,
    item_from_event,
    summarise,
    within_window,
)

STRONG = ["thumbs_down", "correction", "regenerate"]


def _item(kind: str, **kw) -> FeedbackItem:
    return item_from_event(samples.feedback_event("t1", kind, **kw), at=100.0)


def test_items_from_events() -> None:
    down = _item("thumbs", thumbs="down")
    assert (down.kind, down.thumbs, down.source) == (THUMBS, -1, "event")
    rating = _item("rating", rating=2)
    assert rating.rating == 2.0
    corr = _item("correction", correction="Order 12 has shipped.")
    assert corr.kind == CORRECTION and corr.corrected
    thumbs_with_text = _item("thumbs", thumbs="down", correction="The right answer.")
    assert thumbs_with_text.corrected


def test_item_json_round_trip() -> None:
    item = FeedbackItem("e1", "thumbs", -1, 0.0, 5.0, "event", b"\x01\x02", "f1", True, "t|1|2")
    assert FeedbackItem.from_json(item.to_json()) == item


def test_add_item_is_idempotent() -> None:
    item = _item("thumbs", thumbs="up")
    items, added = add_item([], item)
    assert added and len(items) == 1
    again, added = add_item(items, item)
    assert not added and again == items


def test_strong_feedback() -> None:
    assert is_strong(_item("thumbs", thumbs="down"), STRONG)
    assert not is_strong(_item("thumbs", thumbs="up"), STRONG)
    assert is_strong(_item("correction", correction="x"), STRONG)
    assert is_strong(_item("regenerate"), STRONG)
    assert not is_strong(_item("rating", rating=1), STRONG)
    assert is_strong(_item("rating", rating=1), ["low_rating"])


def test_window() -> None:
    assert within_window(1000.0, 500.0, 10.0)  # before the trace: always
    assert within_window(1000.0, 1010.0, 10.0)
    assert not within_window(1000.0, 1010.1, 10.0)


def test_summary_scores() -> None:
    assert summarise([]).score == 0.0 and not summarise([]).negative
    s = summarise([_item("thumbs", thumbs="up"), _item("rating", rating=7)])
    assert s.positive and not s.negative and s.score == 1.0 and s.rating_mean == 7.0
    s = summarise([_item("thumbs", thumbs="down"), _item("regenerate")])
    assert s.negative and s.thumbs_down == 1 and s.regenerated and s.score < 0
    s = summarise([_item("correction", correction="x")])
    assert s.has_correction and s.negative and s.score == -1.0
    s = summarise([_item("comment", comment="thanks")])
    assert s.items == 1 and not s.negative and not s.positive


def test_inline_feedback_items() -> None:
    trace = samples.chat_trace(random.Random(1))
    trace.feedback.add(kind=1, thumbs=2)
    items = inline_items(trace, 10.0)
    assert len(items) == 1 and items[0].item_id == "inline:0" and items[0].thumbs == -1


def test_implicit_rephrase() -> None:
    trace = samples.trace_from_messages("t", [
        {"role": "user", "content": "Where is my order 1234?"},
        {"role": "assistant", "content": "We are open from 9 to 6."},
        {"role": "user", "content": "No, where is order 1234 right now?"},
        {"role": "assistant", "content": "Order 1234 has shipped."},
    ], rng=random.Random(0))
    items = implicit_items(trace, 5.0)
    assert [i.kind for i in items] == [REPHRASE]
    follow_up = samples.trace_from_messages("t", [
        {"role": "user", "content": "Where is my order 1234?"},
        {"role": "assistant", "content": "It shipped."},
        {"role": "user", "content": "Thanks! And what is your return policy?"},
    ], rng=random.Random(0))
    assert implicit_items(follow_up, 5.0) == []
