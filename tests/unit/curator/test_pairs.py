"""Pair construction: build_pair rules and rating-gap pairs."""

from __future__ import annotations

from curator_builders import msg, shop_tools, tool_call_msg

from flywheel.services.curator.logic.formats import dpo_row
from flywheel.services.curator.logic.pairs import (
    RatedAnswer,
    add_rated,
    build_pair,
    rating_gap_pairs,
)
from flywheel.v1.common_pb2 import ModelRef
from flywheel.v1.examples_pb2 import Lineage

PROMPT = (msg("system", "sys"), msg("user", "When are you open?"))
GOOD = "We are open Monday to Saturday from 9 am to 6 pm."
BAD = "Please visit our website."


def _rated(answer: str, score: float, trace: str, user: str, **kw) -> RatedAnswer:  # noqa: ANN003
    return RatedAnswer(prompt=PROMPT, answer=(msg("assistant", answer),), score=score,
                       trace_id=trace, user_id=user, labeller_id=f"lab-{trace}",
                       model=ModelRef(name="m", version=trace), **kw)


def test_build_pair_exact_row_and_refusals() -> None:
    pair = build_pair(PROMPT, [msg("assistant", GOOD)], [msg("assistant", BAD)],
                      source="annotation", intent="opening_hours",
                      lineage=Lineage(trace_ids=["t"]))
    assert dpo_row(pair) == {
        "prompt": [{"role": "system", "content": "sys"},
                   {"role": "user", "content": "When are you open?"}],
        "chosen": [{"role": "assistant", "content": GOOD}],
        "rejected": [{"role": "assistant", "content": BAD}],
        "tools": None}
    assert pair.example_id == f"dpo_{pair.content_hash[:40]}"
    assert build_pair(PROMPT, [msg("assistant", GOOD)], [msg("assistant", GOOD + " ")],
                      source="x") is None
    assert build_pair(PROMPT, [], [msg("assistant", BAD)], source="x") is None
    assert build_pair((), [msg("assistant", GOOD)], [msg("assistant", BAD)], source="x") is None


def test_tool_turns_stay_on_both_sides() -> None:
    chosen = [tool_call_msg("get_policy", {"topic": "hours"}),
              msg("tool", "{\"policy\": \"9-6\"}", tool_call_id="call_0"), msg("assistant", GOOD)]
    rejected = [tool_call_msg("lookup_order", {"order_number": "1"}),
                msg("tool", "{\"error\": \"order not found\"}", tool_call_id="call_0"),
                msg("assistant", BAD)]
    row = dpo_row(build_pair(PROMPT, chosen, rejected, tools=shop_tools(), source="judge"))
    assert [m["role"] for m in row["chosen"]] == ["assistant", "tool", "assistant"]
    assert row["chosen"][0]["tool_calls"][0]["function"]["name"] == "get_policy"
    assert row["rejected"][1]["content"] == "{\"error\": \"order not found\"}"
    assert row["tools"] is not None


def test_rating_gap_pairs_choose_the_better_answer() -> None:
    earlier = [_rated(BAD, 0.25, "t1", "u1"), _rated("Close enough.", 0.75, "t2", "u2")]
    new = _rated(GOOD, 1.0, "t3", "u3", topic="labels", partition=1, offset=9)
    [pair] = rating_gap_pairs(new, earlier, min_gap=0.5)
    row = dpo_row(pair)
    assert row["chosen"][0]["content"] == GOOD and row["rejected"][0]["content"] == BAD
    assert pair.source == "rating_gap"
    assert list(pair.lineage.trace_ids) == ["t1", "t3"]
    assert list(pair.lineage.user_ids) == ["u1", "u3"]
    assert (pair.lineage.topic, pair.lineage.offset) == ("labels", 9)
    assert pair.chosen_model.version == "t3" and pair.rejected_model.version == "t1"
    worse = _rated("Closed.", 0.0, "t4", "u4")
    [flipped] = rating_gap_pairs(worse, [_rated(GOOD, 0.75, "t5", "u5")], min_gap=0.5)
    assert dpo_row(flipped)["chosen"][0]["content"] == GOOD


def test_same_answer_or_small_gap_gives_no_pair() -> None:
    assert rating_gap_pairs(_rated(GOOD, 1.0, "a", "u"), [_rated(GOOD, 0.0, "b", "v")], 0.5) == []
    assert rating_gap_pairs(_rated(GOOD, 0.75, "a", "u"), [_rated(BAD, 0.5, "b", "v")], 0.5) == []


def test_add_rated_keeps_latest_per_answer_and_a_bound() -> None:
    kept = add_rated([_rated(GOOD, 0.5, "a", "u")], _rated(GOOD, 1.0, "b", "v"))
    assert [(r.score, r.trace_id) for r in kept] == [(1.0, "b")]
    many = []
    for i in range(20):
        many = add_rated(many, _rated(f"answer {i}", 0.5, str(i), "u"), limit=4)
    assert [r.trace_id for r in many] == ["16", "17", "18", "19"]


def test_rated_answer_round_trips_through_a_table() -> None:
    rated = _rated(GOOD, 0.75, "t1", "u1", tools=tuple(shop_tools()), intent="opening_hours")
    again = RatedAnswer.from_dict(rated.to_dict())
    assert again.to_dict() == rated.to_dict()
    assert again.answer_key() == rated.answer_key()
