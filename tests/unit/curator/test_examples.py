"""Examples from every source: decisions, labels and preferences (eval split switched off
unless a test is about it)."""

from __future__ import annotations

import json

from curator_builders import (
    correction,
    failure,
    make_decision,
    make_label,
    make_preference,
    make_task,
    make_trace,
    msg,
    rating,
    shop_tools,
    thumbs,
    tool_call_msg,
)

from flywheel.designs import designs_config
from flywheel.services.curator.logic.decontam import is_eval_prompt, prompt_key, prompt_text
from flywheel.services.curator.logic.examples import (
    Coordinates,
    CurationRules,
    LabelContext,
    SourceRule,
    from_decision,
    from_label,
    from_preference,
    label_needs_context,
    split_conversation,
)
from flywheel.services.curator.logic.formats import dpo_row, sft_row
from flywheel.v1.annotation_pb2 import AnnotationKind, LabellerType
from flywheel.v1.common_pb2 import Choice, FailureSource
from flywheel.v1.examples_pb2 import EvalKind
from flywheel.v1.triage_pb2 import Route

RULES = CurationRules(eval_share=0.0)
NO_DESIGNS = designs_config({}).only([])
COORDS = Coordinates("flywheel.traces.triaged.v1", 2, 41)
Q = "Where is my order 4512?"
RIGHT = "Order 4512 has shipped and arrives within 3 business days."
WRONG = "Order 4521 has shipped and arrives within 3 business days."


def _roles(messages):  # noqa: ANN001, ANN202
    return [(m["role"], m["content"]) for m in messages]


def test_split_conversation() -> None:
    trace = make_trace("t", Q, [tool_call_msg("lookup_order", {"order_number": "4512"}),
                                msg("tool", "{}", tool_call_id="call_0"), msg("assistant", RIGHT)])
    prompt, answer = split_conversation(trace.messages)
    assert [m.role for m in prompt] == ["system", "user"]
    assert [m.role for m in answer] == ["assistant", "tool", "assistant"]
    assert split_conversation([msg("assistant", "hi")]) == ([], [])


def test_thumbs_up_sft_candidate_becomes_sft_with_lineage() -> None:
    trace = make_trace("t1", Q, RIGHT, user="u7", feedback=[thumbs()])
    decision = make_decision(trace, intent="order_status", scores={"quality": 0.9})
    out = from_decision(decision, COORDS, RULES, NO_DESIGNS)
    [cand] = out.candidates
    ex = cand.example
    assert cand.kind == "sft" and ex.source == "thumbs_up" and ex.intent == "order_status"
    assert cand.quality == 0.9
    assert _roles(sft_row(ex)["messages"]) == [
        ("system", "You are the support assistant of Northwind Outfitters."),
        ("user", Q), ("assistant", RIGHT)]
    assert list(ex.lineage.trace_ids) == ["t1"] and list(ex.lineage.user_ids) == ["u7"]
    assert (ex.lineage.topic, ex.lineage.partition, ex.lineage.offset) == (
        "flywheel.traces.triaged.v1", 2, 41)
    assert set(ex.lineage.event_ids) == {trace.envelope.event_id, decision.envelope.event_id}
    assert ex.example_id == f"sft_{ex.content_hash[:40]}"
    assert out.retract_trace == "t1" and not out.evals


def test_sft_source_follows_the_feedback() -> None:
    def source(feedback):  # noqa: ANN001, ANN202
        out = from_decision(make_decision(make_trace("t", Q, RIGHT, feedback=feedback)), COORDS,
                            RULES, NO_DESIGNS)
        return [c.example.source for c in out.candidates]

    assert source([]) == ["triage"]
    assert source([rating(6)]) == ["rating"]
    assert source([thumbs(False)]) == []
    assert source([rating(2)]) == []
    assert source([thumbs(), thumbs(False)]) == []  # the latest thumbs counts


def test_disabled_source_gives_nothing() -> None:
    rules = CurationRules(eval_share=0.0, sources={**RULES.sources,
                                                   "triage": SourceRule(False, 0.6)})
    out = from_decision(make_decision(make_trace("t", Q, RIGHT)), COORDS, rules, NO_DESIGNS)
    assert out.candidates == []


def test_inline_user_correction_gives_sft_and_dpo() -> None:
    trace = make_trace("t2", Q, WRONG, user="u3", feedback=[thumbs(False), correction(RIGHT)])
    out = from_decision(make_decision(trace, Route.ROUTE_ANNOTATE), COORDS, RULES, NO_DESIGNS)
    sft, dpo = out.candidates
    assert sft.example.source == "correction"
    assert _roles(sft_row(sft.example)["messages"])[-1] == ("assistant", RIGHT)
    assert dpo.example.source == "correction"
    row = dpo_row(dpo.example)
    assert _roles(row["prompt"])[-1] == ("user", Q)
    assert _roles(row["chosen"]) == [("assistant", RIGHT)]
    assert _roles(row["rejected"]) == [("assistant", WRONG)]
    assert list(sft.example.lineage.labeller_ids) == ["user:u3"]


def test_annotation_correction_becomes_sft_and_dpo_quickly() -> None:
    trace = make_trace("t3", Q, WRONG)
    task = make_task(trace)
    label = make_label("t3", AnnotationKind.ANNOTATION_KIND_CORRECT, labeller="ann-9",
                       corrected=[msg("assistant", RIGHT)])
    ctx = LabelContext(task=task)
    assert not label_needs_context(label, ctx)
    out = from_label(label, ctx, Coordinates("flywheel.annotation.labels.v1", 0, 7), RULES,
                     NO_DESIGNS)
    sft, dpo = out.candidates
    assert sft.example.source == "correction" and sft.quality == 1.0
    assert _roles(sft_row(sft.example)["messages"]) == [
        ("system", "You are the support assistant of Northwind Outfitters."), ("user", Q),
        ("assistant", RIGHT)]
    assert list(sft.example.lineage.labeller_ids) == ["ann-9"]
    assert sft.example.lineage.topic == "flywheel.annotation.labels.v1"
    assert _roles(dpo_row(dpo.example)["rejected"]) == [("assistant", WRONG)]
    assert out.retract_trace == "t3"


def test_correction_needs_its_trace_unless_it_is_a_whole_conversation() -> None:
    partial = make_label("t4", AnnotationKind.ANNOTATION_KIND_CORRECT,
                         corrected=[msg("assistant", RIGHT)])
    assert label_needs_context(partial, LabelContext())
    whole = make_label("t4", AnnotationKind.ANNOTATION_KIND_CORRECT,
                       corrected=[msg("user", Q), msg("assistant", RIGHT)])
    assert not label_needs_context(whole, LabelContext())
    out = from_label(whole, LabelContext(), COORDS, RULES, NO_DESIGNS)
    [sft] = out.candidates  # no original answer known: no pair
    assert _roles(sft_row(sft.example)["messages"]) == [("user", Q), ("assistant", RIGHT)]


def test_multi_turn_correction_masks_earlier_turns_and_keeps_tools() -> None:
    history = [msg("user", "Hi"), msg("assistant", "Hello! How can I help?")]
    answer = [tool_call_msg("lookup_order", {"order_number": "4521"}),
              msg("tool", "{\"error\": \"order not found\"}", tool_call_id="call_0"),
              msg("assistant", "I could not find that order.")]
    fixed = [tool_call_msg("lookup_order", {"order_number": "4512"}, "call_1"),
             msg("tool", "{\"status\": \"shipped\"}", tool_call_id="call_1"),
             msg("assistant", RIGHT)]
    trace = make_trace("t5", Q, answer, history=history, tools=shop_tools(),
                       outcome=failure(FailureSource.FAILURE_SOURCE_MODEL, "bad_arguments"))
    decision = make_decision(trace, Route.ROUTE_ANNOTATE,
                             failure_source=FailureSource.FAILURE_SOURCE_MODEL)
    label = make_label("t5", AnnotationKind.ANNOTATION_KIND_CORRECT, corrected=fixed)
    out = from_label(label, LabelContext(decision=decision), COORDS, RULES, NO_DESIGNS)
    sft, dpo = out.candidates
    assert sft.example.source == "agent_fix"
    row = sft_row(sft.example)
    assert [m["role"] for m in row["messages"]] == [
        "system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    assert row["messages"][4]["tool_calls"][0]["function"] == {
        "name": "lookup_order", "arguments": "{\"order_number\": \"4512\"}"}
    assert row["messages"][5]["tool_call_id"] == "call_1"
    assert row["loss_masks"] == [{"message_index": 2, "char_start": 0,
                                  "char_end": len("Hello! How can I help?"), "weight": 0.0}]
    assert [t["function"]["name"] for t in json.loads(row["tools"])] == [
        "lookup_order", "issue_refund", "cancel_order", "update_address", "get_policy"]
    pair = dpo_row(dpo.example)
    assert [m["role"] for m in pair["chosen"]] == ["assistant", "tool", "assistant"]
    assert pair["rejected"][0]["tool_calls"][0]["function"]["arguments"] == \
        "{\"order_number\": \"4521\"}"
    assert json.loads(pair["tools"]) == json.loads(row["tools"])


def test_failed_model_run_without_correction_is_only_a_possible_eval() -> None:
    trace = make_trace("t6", Q, WRONG, outcome=failure(FailureSource.FAILURE_SOURCE_MODEL))
    out = from_decision(make_decision(trace), COORDS, RULES, NO_DESIGNS)
    assert out.candidates == [] and out.evals == [] and out.skipped == "model_failure"
    always = CurationRules(eval_share=0.999999)
    out = from_decision(make_decision(trace), COORDS, always, NO_DESIGNS)
    [ev] = out.evals
    assert ev.kind == EvalKind.EVAL_KIND_MODEL and list(ev.reference) == []
    assert ev.metric == "judge_score"


def test_system_failure_becomes_a_system_eval_only() -> None:
    trace = make_trace("t7", Q, [tool_call_msg("lookup_order", {"order_number": "4512"}),
                                 msg("tool", "{\"error\": \"timeout\"}", tool_call_id="call_0")],
                       feedback=[thumbs()], tools=shop_tools(),
                       outcome=failure(FailureSource.FAILURE_SOURCE_SYSTEM, "tool_timeout"))
    out = from_decision(make_decision(trace), COORDS, RULES, NO_DESIGNS)
    assert out.candidates == [] and out.retract_trace == "t7"
    [ev] = out.evals
    assert ev.kind == EvalKind.EVAL_KIND_SYSTEM and ev.metric == "system_success"
    assert [m.role for m in ev.reference] == ["assistant", "tool"]
    routed = from_decision(make_decision(make_trace("t8", Q, RIGHT), Route.ROUTE_SYSTEM_EVAL),
                           COORDS, RULES, NO_DESIGNS)
    assert [e.kind for e in routed.evals] == [EvalKind.EVAL_KIND_SYSTEM]


def test_eval_candidate_route_and_metric() -> None:
    out = from_decision(make_decision(make_trace("t9", Q, RIGHT, feedback=[thumbs()]),
                                      Route.ROUTE_EVAL_CANDIDATE), COORDS, RULES, NO_DESIGNS)
    [ev] = out.evals
    assert ev.metric == "exact_match" and [m.content for m in ev.reference] == [RIGHT]
    assert ev.example_id.startswith("eval_") and out.candidates == []


def test_unapproved_answers_are_no_eval_reference() -> None:
    # The served answer, unchecked, would let the release agree with itself in the gate.
    silent = from_decision(make_decision(make_trace("t9", Q, RIGHT), Route.ROUTE_EVAL_CANDIDATE),
                           COORDS, RULES, NO_DESIGNS)
    down = from_decision(make_decision(make_trace("t9", Q, RIGHT, feedback=[thumbs(up=False)]),
                                       Route.ROUTE_EVAL_CANDIDATE), COORDS, RULES, NO_DESIGNS)
    for out in (silent, down):
        [ev] = out.evals
        assert list(ev.reference) == [] and ev.metric == "judge_score"
    rules = CurationRules(eval_share=0.99)  # nearly every prompt held out
    held = [from_decision(make_decision(make_trace(f"u{i}", f"Where is order {100 + i}?", RIGHT)),
                          COORDS, rules, NO_DESIGNS) for i in range(10)]
    evals = [ev for out in held for ev in out.evals]
    assert evals and all(list(ev.reference) == [] for ev in evals)
    approved = [from_decision(make_decision(make_trace(f"v{i}", f"Where is order {100 + i}?",
                                                       RIGHT, feedback=[thumbs()])),
                              COORDS, rules, NO_DESIGNS) for i in range(10)]
    assert all([m.content for m in ev.reference] == [RIGHT]
               for out in approved for ev in out.evals)


def test_drop_route_retracts_and_gives_nothing() -> None:
    out = from_decision(make_decision(make_trace("t", Q, RIGHT, feedback=[thumbs()]),
                                      Route.ROUTE_DROP), COORDS, RULES, NO_DESIGNS)
    assert out.candidates == [] and out.retract_trace == "t" and out.skipped == "dropped"


def test_eval_split_moves_candidates_to_the_eval_set() -> None:
    rules = CurationRules(eval_share=0.5)
    held, trained = [], []
    for i in range(40):
        trace = make_trace(f"t{i}", f"Where is my order {1000 + i}?", RIGHT, feedback=[thumbs()])
        out = from_decision(make_decision(trace), COORDS, rules, NO_DESIGNS)
        key = prompt_key(prompt_text(trace.messages))
        (held if is_eval_prompt(key, 0.5) else trained).append(i)
        assert len(out.candidates) + len(out.evals) == 1
        assert bool(out.evals) == is_eval_prompt(key, 0.5)
    assert held and trained


def test_rate_labels() -> None:
    trace = make_trace("t10", Q, RIGHT)
    ctx = LabelContext(decision=make_decision(trace, Route.ROUTE_ANNOTATE))
    good = from_label(make_label("t10", AnnotationKind.ANNOTATION_KIND_RATE, rating=4), ctx,
                      COORDS, RULES, NO_DESIGNS)
    [sft] = good.candidates
    assert sft.example.source == "rating" and sft.quality == 1.0
    assert good.rated[0].score == 1.0 and good.retract_trace is None
    judged = from_label(make_label("t10", AnnotationKind.ANNOTATION_KIND_RATE, rating=3,
                                   labeller_type=LabellerType.LABELLER_TYPE_JUDGE), ctx,
                        COORDS, RULES, NO_DESIGNS)
    assert [c.example.source for c in judged.candidates] == ["judge"]
    assert judged.candidates[0].quality == 0.7
    bad = from_label(make_label("t10", AnnotationKind.ANNOTATION_KIND_RATE, rating=0), ctx,
                     COORDS, RULES, NO_DESIGNS)
    assert bad.candidates == [] and bad.retract_trace == "t10" and bad.rated[0].score == 0.0
    unrated = from_label(make_label("t10", AnnotationKind.ANNOTATION_KIND_RATE), ctx, COORDS,
                         RULES, NO_DESIGNS)
    assert unrated.candidates == [] and unrated.skipped == "no_rating"


def test_pairwise_labels_need_the_task_candidates() -> None:
    trace = make_trace("t11", Q, WRONG)
    task = make_task(trace, AnnotationKind.ANNOTATION_KIND_PAIRWISE,
                     candidates=[[msg("assistant", WRONG)], [msg("assistant", RIGHT)]])
    label = make_label("t11", AnnotationKind.ANNOTATION_KIND_PAIRWISE, choice=Choice.CHOICE_B,
                       labeller_type=LabellerType.LABELLER_TYPE_JUDGE, labeller="judge-x")
    assert label_needs_context(label, LabelContext(decision=make_decision(trace)))
    out = from_label(label, LabelContext(task=task), COORDS, RULES, NO_DESIGNS)
    [pair] = out.candidates
    row = dpo_row(pair.example)
    assert pair.example.source == "judge"
    assert _roles(row["chosen"]) == [("assistant", RIGHT)]
    assert _roles(row["rejected"]) == [("assistant", WRONG)]
    tie = make_label("t11", AnnotationKind.ANNOTATION_KIND_PAIRWISE, choice=Choice.CHOICE_TIE)
    assert from_label(tie, LabelContext(task=task), COORDS, RULES, NO_DESIGNS).candidates == []


def test_classify_failure_labels() -> None:
    trace = make_trace("t12", Q, RIGHT)
    ctx = LabelContext(decision=make_decision(trace))
    system = from_label(make_label("t12", AnnotationKind.ANNOTATION_KIND_CLASSIFY_FAILURE,
                                   failure_source=FailureSource.FAILURE_SOURCE_SYSTEM), ctx,
                        COORDS, RULES, NO_DESIGNS)
    assert [e.kind for e in system.evals] == [EvalKind.EVAL_KIND_SYSTEM]
    assert system.retract_trace == "t12" and system.candidates == []
    model = from_label(make_label("t12", AnnotationKind.ANNOTATION_KIND_CLASSIFY_FAILURE,
                                  failure_source=FailureSource.FAILURE_SOURCE_MODEL), ctx,
                       COORDS, RULES, NO_DESIGNS)
    assert model.retract_trace == "t12" and model.evals == []


def test_unusable_and_non_final_labels() -> None:
    label = make_label("t", AnnotationKind.ANNOTATION_KIND_RATE, rating=4)
    label.unusable = True
    assert from_label(label, LabelContext(), COORDS, RULES, NO_DESIGNS).skipped == "unusable"
    label.unusable, label.is_final = False, False
    rules = CurationRules(eval_share=0.0, final_labels_only=True)
    assert from_label(label, LabelContext(), COORDS, rules, NO_DESIGNS).skipped == "not_final"


def test_user_preference_becomes_dpo_with_tools_from_the_trace() -> None:
    prompt = [msg("system", "sys"), msg("user", Q)]
    answer = make_preference("t13", prompt, RIGHT, WRONG, user="u5", choice=Choice.CHOICE_B)
    # CHOICE_B: the event still carries chosen_messages as the chosen side.
    trace = make_trace("t13", Q, RIGHT, user="u1", tools=shop_tools())
    out = from_preference(answer, COORDS, RULES, make_decision(trace, intent="order_status"))
    [pair] = out.candidates
    row = dpo_row(pair.example)
    assert _roles(row["chosen"]) == [("assistant", RIGHT)]
    assert pair.example.source == "user_preference" and pair.example.intent == "order_status"
    assert len(json.loads(row["tools"])) == 5
    assert sorted(pair.example.lineage.user_ids) == ["u1", "u5"]
    assert list(pair.example.lineage.trace_ids) == ["t13"]
    assert pair.example.chosen_model.version == "2"
    tie = make_preference("t13", prompt, RIGHT, WRONG, choice=Choice.CHOICE_TIE)
    assert from_preference(tie, COORDS, RULES).skipped == "tie"


def test_same_content_gives_the_same_hash_whoever_labelled_it() -> None:
    trace = make_trace("t14", Q, WRONG)
    ctx = LabelContext(task=make_task(trace))
    a = from_label(make_label("t14", AnnotationKind.ANNOTATION_KIND_CORRECT, labeller="a",
                              corrected=[msg("assistant", RIGHT)]), ctx, COORDS, RULES,
                   NO_DESIGNS)
    b = from_label(make_label("t14", AnnotationKind.ANNOTATION_KIND_CORRECT, labeller="b",
                              corrected=[msg("assistant", RIGHT)]), ctx, COORDS, RULES,
                   NO_DESIGNS)
    assert a.candidates[0].example.content_hash == b.candidates[0].example.content_hash


def test_designs_are_applied_to_sft_and_recorded() -> None:
    designs = designs_config({"pam": {"enabled": True}})
    trace = make_trace("t15", Q, WRONG)
    label = make_label("t15", AnnotationKind.ANNOTATION_KIND_CORRECT,
                       corrected=[msg("assistant", RIGHT)])
    out = from_label(label, LabelContext(task=make_task(trace)), COORDS, RULES, designs)
    kinds = [(c.kind, list(c.example.transforms)) for c in out.candidates]
    assert kinds == [("sft", []), ("sft", ["pam"]), ("dpo", [])]
    pam = out.candidates[1].example
    assert pam.messages[-1].content.startswith(WRONG + "\n\n")
    assert [(m.char_start, m.char_end, m.weight) for m in pam.masks] == [(0, len(WRONG), 0.0)]
    assert out.candidates[1].prompt_text == out.candidates[0].prompt_text
