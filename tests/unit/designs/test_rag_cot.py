"""CoT for RAG: summarise each document, judge relevance, answer from it or say irrelevant."""

from __future__ import annotations

from google.protobuf.struct_pb2 import Struct

from flywheel.designs.base import DesignContext
from flywheel.designs.rag_cot import RagCot, RagCotConfig, answer_recall, summarize
from flywheel.v1.common_pb2 import ChatMessage
from flywheel.v1.examples_pb2 import SftExample
from flywheel.v1.trace_pb2 import ContextDocument, Trace

RETURNS = ContextDocument(title="Returns", content=(
    "Unused items can be returned within 30 days for a full refund. Returns are free. "
    "Refunds reach your account within five business days."))
HOURS = ContextDocument(title="Hours", content="The shop is open Monday to Saturday, 9 to 6.")
ANSWER = "You can return unused items within 30 days for a full refund."


def _example() -> SftExample:
    return SftExample(messages=[ChatMessage(role="user", content="Can I return a jacket?"),
                                ChatMessage(role="assistant", content=ANSWER)])


def test_relevant_and_irrelevant_documents_exact_target() -> None:
    design = RagCot(RagCotConfig(summary_chars=100))
    [out] = design.apply(_example(), DesignContext(trace=Trace(context_documents=[RETURNS,
                                                                                   HOURS])))
    assert out.messages[1].content == (
        'Document [1] "Returns": Unused items can be returned within 30 days for a full refund. '
        "Returns are free.\nAnswers the question: yes.\n\n"
        'Document [2] "Hours": The shop is open Monday to Saturday, 9 to 6.\n'
        "Answers the question: no.\n\n"
        f"Answer: {ANSWER}")
    assert out.messages[0].content == (
        "Can I return a jacket?\n\nDocuments:\n[1] Returns\n" + RETURNS.content
        + "\n\n[2] Hours\n" + HOURS.content)
    assert list(out.transforms) == ["rag_cot"]
    assert len(out.masks) == 0


def test_only_irrelevant_documents_say_so() -> None:
    design = RagCot(RagCotConfig(irrelevant_answer="Not in the documents."))
    [out] = design.apply(_example(), DesignContext(trace=Trace(context_documents=[HOURS])))
    assert out.messages[1].content == (
        'Document [1] "Hours": The shop is open Monday to Saturday, 9 to 6.\n'
        "Answers the question: no.\n\nAnswer: Not in the documents.")


def test_relevance_label_in_metadata_wins() -> None:
    labelled = ContextDocument()
    labelled.CopyFrom(HOURS)
    meta = Struct()
    meta.update({"relevant": True})
    labelled.metadata.CopyFrom(meta)
    [out] = RagCot().apply(_example(), DesignContext(trace=Trace(context_documents=[labelled])))
    assert "Answers the question: yes." in out.messages[1].content
    assert out.messages[1].content.endswith(f"Answer: {ANSWER}")


def test_documents_already_in_the_prompt_are_not_repeated() -> None:
    example = _example()
    example.messages.insert(0, ChatMessage(role="system", content="Context: " + RETURNS.content))
    [out] = RagCot().apply(example, DesignContext(trace=Trace(context_documents=[RETURNS])))
    assert out.messages[1].content == "Can I return a jacket?"


def test_without_documents_nothing_changes() -> None:
    example = _example()
    assert RagCot().apply(example, DesignContext(trace=Trace())) == [example]
    assert RagCot().apply(example, DesignContext()) == [example]


def test_helpers() -> None:
    assert summarize("One. Two is longer. Three.", 12) == "One."
    assert summarize("A very long first sentence without a stop", 20) == "A very long first..."
    assert answer_recall(RETURNS.content, ANSWER) == 6 / 7  # all but "return" (no stemming)
    assert answer_recall(HOURS.content, ANSWER) == 0.0
