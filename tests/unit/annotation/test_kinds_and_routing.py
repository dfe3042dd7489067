"""Pure decisions of the annotation service: label values, settling tasks, routing, families."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flywheel.events.codec import decode, encode
from flywheel.services.annotation.errors import InvalidLabel
from flywheel.services.annotation.kinds import (
    LabelRecord,
    agreement_value,
    corrected_conversation,
    decide,
    label_event,
    rating_from,
    validate_label,
)
from flywheel.services.annotation.llm.families import model_family, same_family
from flywheel.services.annotation.routing import route_task
from flywheel.services.annotation.settings import AnnotationSection
from flywheel.v1 import annotation_pb2, common_pb2

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("given", "expected"), [(0, 0), (4, 4), ("3", 3), ("good", 3),
                                                 ("Very bad", 0), ("excellent", 4)])
def test_ratings_accept_numbers_and_scale_words(given: object, expected: int) -> None:
    assert rating_from(given) == expected


@pytest.mark.parametrize("given", [5, -1, "great", None, True, 2.5])
def test_ratings_outside_the_scale_are_refused(given: object) -> None:
    with pytest.raises(InvalidLabel):
        rating_from(given)


def test_validate_label_per_kind() -> None:
    assert validate_label("rate", {"rating": "good", "reason": " ok "}) == {"rating": 3, "reason": "ok"}
    assert validate_label("pairwise", {"choice": "B"}) == {"choice": "b"}
    assert validate_label("classify_failure", {"failure_source": "system",
                                               "failure_kind": "tool_timeout"}) == {
        "failure_source": "system", "failure_kind": "tool_timeout"}
    assert validate_label("correct", {"answer": " Order 12 shipped. "}) == {"answer": "Order 12 shipped."}
    assert validate_label("rate", {"unusable": True, "reason": "garbled"}) == {
        "unusable": True, "reason": "garbled"}


@pytest.mark.parametrize(("kind", "raw"), [
    ("rate", {}), ("pairwise", {"choice": "c"}), ("correct", {"answer": "  "}),
    ("classify_failure", {"failure_source": "user"}),
    ("classify_failure", {"failure_source": "model", "failure_kind": "Wrong Tool"}),
    ("summarise", {"rating": 1}),
])
def test_invalid_labels_are_refused(kind: str, raw: dict) -> None:
    with pytest.raises(InvalidLabel):
        validate_label(kind, raw)


def test_decide_waits_settles_or_sends_to_review() -> None:
    one = [("l1", {"rating": 3})]
    assert decide("rate", 2, one).status == "pending"
    agreed = decide("rate", 2, [*one, ("l2", {"rating": 3})])
    assert (agreed.status, agreed.final_label_id) == ("done", "l2")
    assert decide("rate", 2, [*one, ("l2", {"rating": 2})]).status == "in_review"
    unusable = decide("pairwise", 1, [("l1", {"unusable": True})])
    assert unusable.status == "unusable"
    assert agreement_value("correct", {"answer": "Order  12 Shipped"}) == \
        agreement_value("correct", {"answer": "order 12 shipped"})


def test_corrected_conversation_replaces_the_final_answer() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "wrong"}]
    assert corrected_conversation(messages, "right") == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": "right"}]


def test_label_event_carries_lineage_and_kind_fields() -> None:
    record = LabelRecord("lb1", "at1", "tr1", "pairwise", "judge", "judge:qwen-x",
                         {"choice": "b", "reason": "clearer", "model_name": "qwen-x"},
                         "g-2", "judge-pairwise-1", True, NOW, model_name="qwen-x", app_id="shop")
    event = decode(encode(label_event(record)), annotation_pb2.AnnotationLabel)
    assert event.choice == common_pb2.CHOICE_B and not event.HasField("rating")
    assert event.labeller.type == annotation_pb2.LABELLER_TYPE_JUDGE
    assert event.labeller.model_name == "qwen-x" and event.prompt_version == "judge-pairwise-1"
    assert (event.guideline_version, event.is_final, event.envelope.app_id) == ("g-2", True, "shop")
    rated = label_event(LabelRecord("lb2", "at2", "tr2", "rate", "human", "ann1", {"rating": 0},
                                    "g-1", None, False, NOW))
    assert rated.HasField("rating") and rated.rating == 0  # 0 is a real rating


def test_routing() -> None:
    common = dict(judge_enabled=True, teacher_enabled=True, teacher_share=0.0)
    assert route_task("t1", "correct", ["teacher please"], **common) == "teacher"
    assert route_task("t1", "rate", ["send to judge"], **common) == "judge"
    assert route_task("t1", "correct", ["judge"], **common) == "people"
    assert route_task("t1", "rate", ["uncertain"], **common) == "people"
    assert route_task("t1", "rate", ["judge"], judge_enabled=False, teacher_enabled=False,
                      teacher_share=1.0) == "people"
    shares = [route_task(f"t{i}", "correct", [], judge_enabled=True, teacher_enabled=True,
                         teacher_share=0.5) for i in range(200)]
    assert 60 < shares.count("teacher") < 140


def test_model_families() -> None:
    assert model_family("Qwen/Qwen2.5-7B-Instruct") == "qwen"
    assert model_family("meta-llama/Llama-3.1-8B") == "llama"
    assert model_family("gpt-4o-mini") == "openai"
    assert model_family("shop-assistant:7") == "flywheel"
    assert model_family("acme-7b") == "acme"
    assert model_family("anything", "Mistral") == "mistral"
    assert same_family("qwen2.5-7b", "qwen3-32b") and not same_family("qwen3", "llama3")


def test_config_refuses_a_judge_of_the_generators_family_unless_overridden() -> None:
    with pytest.raises(ValueError, match="generator's family"):
        AnnotationSection(judge_base_url="http://j/v1", judge_model="qwen2.5-7b",
                          generator_model="Qwen3-4B")
    allowed = AnnotationSection(judge_base_url="http://j/v1", judge_model="qwen2.5-7b",
                                generator_model="Qwen3-4B", judge_allow_same_family=True)
    assert allowed.judge_enabled
    with pytest.raises(ValueError, match="teacher's family"):
        AnnotationSection(judge_base_url="http://j/v1", judge_model="llama-3-8b",
                          teacher_base_url="http://t/v1", teacher_model="llama-3-70b")
    ok = AnnotationSection(judge_base_url="http://j/v1", judge_model="qwen2.5-7b",
                           teacher_base_url="http://t/v1", teacher_model="llama-3-70b")
    assert ok.teacher_enabled
