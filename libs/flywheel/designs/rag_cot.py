"""Chain-of-thought fine-tuning for retrieval-augmented generation (in the spirit of
Chain-of-Note, Yu et al. 2023, and RAFT, Zhang et al. 2024).

For a trace with retrieved documents the target answer becomes a short reasoning chain: for
each document, a summary and a judgement of whether it answers the question; then the answer
taken from the relevant documents, or a statement that they are irrelevant. The model learns
to read before answering and to refuse to answer from documents that do not help.

The documents are placed in the prompt (appended to the last user message) when the prompt
does not already contain them. Relevance comes from the document's ``metadata.relevant``
when set (people or the judge may label it), else from how much of the answer's content
words the document contains. Summaries are extractive: the document's first sentences up to
``summary_chars``.

Target format (one block per document, then the answer)::

    Document [1] "Returns": You can return unused items within 30 days.
    Answers the question: yes.

    Answer: You can return unused items within 30 days for a full refund.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from flywheel.designs.base import (
    DesignContext,
    copy_example,
    drop_masks_for,
    final_text_answer,
    last_assistant_index,
    last_user_index,
    with_transform,
)
from flywheel.v1.examples_pb2 import SftExample
from flywheel.v1.trace_pb2 import ContextDocument

NAME = "rag_cot"

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    "the a an and or but if of to in on at by for with from as is are was were be been it its "
    "this that these those you your we our they their he she his her i me my can will would "
    "should could do does did have has had not no yes so than then there here what which who "
    "when where why how all any some each more most other into over under about up out".split()
)


@dataclass(frozen=True)
class RagCotConfig:
    """Args:
        enabled: switch for this design.
        summary_chars: longest extractive summary per document.
        min_answer_recall: share of the answer's content words a document must contain to
            count as answering the question (when it carries no relevance label).
        inject_documents: put the documents into the last user message when absent.
        irrelevant_answer: what the model says when no document answers the question.
    """

    enabled: bool = True
    summary_chars: int = 200
    min_answer_recall: float = 0.5
    inject_documents: bool = True
    irrelevant_answer: str = "The documents do not answer this question."

    def __post_init__(self) -> None:
        if self.summary_chars < 20:
            raise ValueError("rag_cot.summary_chars must be at least 20")
        if not 0.0 < self.min_answer_recall <= 1.0:
            raise ValueError("rag_cot.min_answer_recall must be in (0, 1]")


def content_words(text: str) -> list[str]:
    """Lower-case words of at least three characters that are not stopwords."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS]


def summarize(text: str, max_chars: int) -> str:
    """The first whole sentences of ``text`` that fit in ``max_chars`` (at least one, cut)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    if not sentences:
        return ""
    summary = sentences[0]
    for sentence in sentences[1:]:
        if len(summary) + 1 + len(sentence) > max_chars:
            break
        summary = f"{summary} {sentence}"
    if len(summary) > max_chars:
        summary = summary[: max_chars - 3].rstrip() + "..."
    return summary


def answer_recall(document: str, answer: str) -> float:
    """Share of the answer's distinct content words that appear in the document."""
    wanted = set(content_words(answer))
    if not wanted:
        return 0.0
    return len(wanted & set(content_words(document))) / len(wanted)


def is_relevant(doc: ContextDocument, answer: str, min_recall: float) -> bool:
    """A label in ``metadata.relevant`` wins; otherwise the answer-recall heuristic."""
    if doc.HasField("metadata") and "relevant" in doc.metadata.fields:
        value = doc.metadata.fields["relevant"]
        if value.WhichOneof("kind") == "bool_value":
            return value.bool_value
    return answer_recall(doc.content, answer) >= min_recall


def _label(index: int, doc: ContextDocument) -> str:
    return f'Document [{index}] "{doc.title}"' if doc.title else f"Document [{index}]"


def cot_target(docs: Sequence[ContextDocument], answer: str, config: RagCotConfig) -> str:
    """The reasoning chain: per-document summary and judgement, then the answer."""
    blocks: list[str] = []
    any_relevant = False
    for index, doc in enumerate(docs, start=1):
        relevant = is_relevant(doc, answer, config.min_answer_recall)
        any_relevant = any_relevant or relevant
        summary = summarize(doc.content, config.summary_chars)
        verdict = "yes" if relevant else "no"
        blocks.append(f"{_label(index, doc)}: {summary}\nAnswers the question: {verdict}.")
    final = answer if any_relevant else config.irrelevant_answer
    blocks.append(f"Answer: {final}")
    return "\n\n".join(blocks)


def documents_block(docs: Sequence[ContextDocument]) -> str:
    """The documents as they are shown in the prompt."""
    parts = []
    for index, doc in enumerate(docs, start=1):
        head = f"[{index}] {doc.title}" if doc.title else f"[{index}]"
        parts.append(f"{head}\n{doc.content}")
    return "Documents:\n" + "\n\n".join(parts)


class RagCot:
    """Rewrite a RAG answer as summarise -> judge relevance -> answer or say irrelevant."""

    name = NAME

    def __init__(self, config: RagCotConfig | None = None) -> None:
        self.config = config or RagCotConfig()

    def _inject(self, example: SftExample, docs: Sequence[ContextDocument]) -> None:
        prompt_text = "\n".join(m.content for m in example.messages if m.role != "assistant")
        if all(doc.content in prompt_text for doc in docs):
            return
        index = last_user_index(example.messages)
        if index is None:
            return
        message = example.messages[index]
        message.content = f"{message.content}\n\n{documents_block(docs)}"

    def apply(self, example: SftExample, ctx: DesignContext) -> list[SftExample]:
        """The example with a chain-of-thought target, or the input when it does not apply.

        Applies when the trace has context documents and the final assistant message is a
        plain text answer (tool-calling turns are left as they are).
        """
        docs = list(ctx.trace.context_documents) if ctx.trace is not None else []
        answer = final_text_answer(example.messages)
        if not docs or answer is None:
            return [example]
        out = copy_example(example)
        index = last_assistant_index(out.messages)
        assert index is not None
        out.messages[index].content = cot_target(docs, answer, self.config)
        drop_masks_for(out, [index])
        if self.config.inject_documents:
            self._inject(out, docs)
        return [with_transform(out, NAME)]
