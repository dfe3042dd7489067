"""Examples from every source: triage decisions, annotation labels and user preferences.

| input | becomes |
|---|---|
| decision routed ``sft_candidate`` (thumbs up, good 1-7 ratings, or triage alone) | SFT |
| a correction (user ``corrected_answer``, annotation ``CORRECT``) | SFT + DPO (fixed vs original) |
| same, on a failed agent run blamed on the model | SFT ``agent_fix`` + DPO |
| annotation ``RATE`` >= ``positive_rating`` | SFT (``rating`` / ``judge`` / ``teacher``) |
| annotation ``PAIRWISE``, user ``PreferenceAnswer`` | DPO |
| ratings of two answers to one prompt that differ by ``min_rating_gap`` | DPO ``rating_gap`` |
| decision routed ``eval_candidate`` | model eval |
| system failure (route ``system_eval``, failure source system) | system eval only |
| model failure without a correction, in the eval split | model eval (no reference) |

Training candidates whose normalised prompt falls in the deterministic eval split become
model eval examples instead (:func:`split_eval`). SFT examples pass through the enabled data
designs. Earlier assistant turns of a multi-turn conversation are context, not targets: their
content gets a loss mask of weight 0 (unless the whole conversation is a human correction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from flywheel.designs import DesignContext, DesignsConfig, apply_designs
from flywheel.designs.base import mask
from flywheel.services.curator.logic.decontam import (
    is_eval_prompt,
    prompt_key,
    prompt_text,
)
from flywheel.services.curator.logic.formats import canonical_json, seal_sft, sha256_hex
from flywheel.services.curator.logic.pairs import RatedAnswer, build_pair
from flywheel.v1.annotation_pb2 import AnnotationKind, AnnotationLabel, AnnotationTask, LabellerType
from flywheel.v1.common_pb2 import ChatMessage, Choice, FailureSource, ModelRef, ToolDefinition
from flywheel.v1.examples_pb2 import DpoExample, EvalExample, EvalKind, Lineage, SftExample
from flywheel.v1.feedback_pb2 import FeedbackKind, Thumbs
from flywheel.v1.preference_pb2 import PreferenceAnswer
from flywheel.v1.trace_pb2 import OutcomeStatus, Trace
from flywheel.v1.triage_pb2 import Route, TriageDecision

Kind = Literal["sft", "dpo"]
SOURCES: tuple[str, ...] = (
    "thumbs_up", "rating", "triage", "correction", "agent_fix", "teacher", "judge",
    "user_preference", "annotation", "rating_gap",
)


@dataclass(frozen=True)
class SourceRule:
    """Whether a source feeds training, and the quality its examples get (0-1)."""

    enabled: bool = True
    quality: float = 0.8


def _default_sources() -> dict[str, SourceRule]:
    qualities = {"thumbs_up": 0.8, "rating": 0.75, "triage": 0.6, "correction": 1.0,
                 "agent_fix": 1.0, "teacher": 0.9, "judge": 0.7, "user_preference": 0.7,
                 "annotation": 0.9, "rating_gap": 0.7}
    return {name: SourceRule(True, q) for name, q in qualities.items()}


@dataclass(frozen=True)
class CurationRules:
    """How inputs become examples.

    Args:
        sources: per-source switch and quality.
        eval_share: share of normalised prompts held out for evaluation (hash split).
        positive_rating: annotation rating (0-4) at or above which an answer is an SFT target.
        negative_rating: annotation rating at or below which earlier SFT of the trace is retracted.
        positive_feedback_rating: mean end-user 1-7 rating at or above which feedback is positive.
        min_rating_gap: score gap (0-1 scale) that makes two rated answers a DPO pair.
        final_labels_only: use only labels marked ``is_final``.
        mask_earlier_turns: mask the content of assistant turns before the last user turn.
        default_metric: eval metric for plain-text references.
    """

    sources: dict[str, SourceRule] = field(default_factory=_default_sources)
    eval_share: float = 0.1
    positive_rating: int = 3
    negative_rating: int = 1
    positive_feedback_rating: float = 5.0
    min_rating_gap: float = 0.5
    final_labels_only: bool = False
    mask_earlier_turns: bool = True
    default_metric: str = "exact_match"

    def __post_init__(self) -> None:
        if not 0.0 <= self.eval_share < 1.0:
            raise ValueError("eval_share must be in [0, 1)")
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown sources {sorted(unknown)}; known: {list(SOURCES)}")
        if not 0.0 < self.min_rating_gap <= 1.0:
            raise ValueError("min_rating_gap must be in (0, 1]")

    def rule(self, source: str) -> SourceRule:
        return self.sources.get(source, SourceRule())


@dataclass(frozen=True)
class Coordinates:
    """Where the input record was read: full topic name, partition, offset."""

    topic: str = ""
    partition: int = 0
    offset: int = 0


@dataclass
class Candidate:
    """A training example on its way to the pool."""

    kind: Kind
    example: SftExample | DpoExample
    quality: float
    prompt_text: str
    trace_id: str = ""

    @property
    def prompt_key(self) -> str:
        return prompt_key(self.prompt_text)


@dataclass
class Curated:
    """What one input produced.

    ``retract_trace`` names a trace whose earlier decision-derived examples must leave the
    pool (a new decision revision, a correction, a bad rating, a failure classification).
    """

    candidates: list[Candidate] = field(default_factory=list)
    evals: list[EvalExample] = field(default_factory=list)
    rated: list[RatedAnswer] = field(default_factory=list)
    retract_trace: str | None = None
    skipped: str = ""


# -- conversation helpers -----------------------------------------------------------------------


def split_conversation(messages: Sequence[ChatMessage]
                       ) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """(prompt, answer): the prompt runs to the last user turn, the answer is what follows."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        return [], []
    return list(messages[: last_user + 1]), list(messages[last_user + 1:])


def _has_user(messages: Sequence[ChatMessage]) -> bool:
    return any(m.role == "user" for m in messages)


def _lineage(trace: Trace | None, coords: Coordinates, *, labeller_ids: Sequence[str] = (),
             event_ids: Sequence[str] = (), user_ids: Sequence[str] = ()) -> Lineage:
    users = set(user_ids) | ({trace.user_id} if trace is not None and trace.user_id else set())
    traces = [trace.trace_id] if trace is not None and trace.trace_id else []
    return Lineage(trace_ids=traces, topic=coords.topic, partition=coords.partition,
                   offset=coords.offset, labeller_ids=sorted({i for i in labeller_ids if i}),
                   user_ids=sorted(users), event_ids=sorted({e for e in event_ids if e}))


def _earlier_turn_masks(prompt: Sequence[ChatMessage]) -> list:
    return [mask(i, 0, len(m.content), 0.0) for i, m in enumerate(prompt)
            if m.role == "assistant" and m.content]


def build_sft(prompt: Sequence[ChatMessage], answer: Sequence[ChatMessage], *,
              tools: Sequence[ToolDefinition], source: str, intent: str, lineage: Lineage,
              mask_prompt_turns: bool) -> SftExample:
    """An SFT example (not yet sealed): the prompt, then the answer turn(s)."""
    example = SftExample(messages=list(prompt) + list(answer), tools=list(tools),
                         source=source, intent=intent)
    example.lineage.CopyFrom(lineage)
    if mask_prompt_turns:
        example.masks.extend(_earlier_turn_masks(prompt))
    return example


def _designed(example: SftExample, ctx: DesignContext, designs: DesignsConfig,
              quality: float, trace_id: str) -> list[Candidate]:
    text = prompt_text(example.messages)
    return [Candidate("sft", seal_sft(out), quality, text, trace_id)
            for out in apply_designs(example, ctx, designs)]


# -- eval examples --------------------------------------------------------------------------------


def _metric(reference: Sequence[ChatMessage], kind: int, rules: CurationRules) -> str:
    if kind == EvalKind.EVAL_KIND_SYSTEM:
        return "system_success"
    if any(m.tool_calls for m in reference):
        return "tool_call_match"
    return rules.default_metric if reference else "judge_score"


def eval_example_id(kind: int, key: str) -> str:
    """One eval example per (kind, normalised prompt)."""
    name = "system" if kind == EvalKind.EVAL_KIND_SYSTEM else "model"
    return f"eval_{sha256_hex(f'{name}:{key}')[:40]}"


def build_eval(prompt: Sequence[ChatMessage], reference: Sequence[ChatMessage], *,
               tools: Sequence[ToolDefinition], kind: int, intent: str, lineage: Lineage,
               rules: CurationRules) -> EvalExample:
    """An eval example keyed by its kind and normalised prompt."""
    key = prompt_key(prompt_text(prompt))
    example = EvalExample(prompt=list(prompt), reference=list(reference), tools=list(tools),
                          kind=kind, intent=intent, metric=_metric(reference, kind, rules))
    example.lineage.CopyFrom(lineage)
    example.example_id = eval_example_id(kind, key)
    example.content_hash = sha256_hex(canonical_json({"kind": kind, "prompt_key": key}))
    return example


# SFT sources whose answer nobody checked: the served answer itself. As an eval reference it
# would score the release against its own output, so such eval rows carry no reference.
UNVERIFIED_SOURCES = frozenset({"triage"})


def _to_eval(candidate: Candidate, rules: CurationRules) -> EvalExample:
    ex = candidate.example
    if isinstance(ex, SftExample):
        prompt, reference = split_conversation(ex.messages)
        if ex.source in UNVERIFIED_SOURCES:
            reference = []
    else:
        prompt, reference = list(ex.prompt), list(ex.chosen)
    return build_eval(prompt, reference, tools=ex.tools, kind=EvalKind.EVAL_KIND_MODEL,
                      intent=ex.intent, lineage=ex.lineage, rules=rules)


def split_eval(curated: Curated, rules: CurationRules) -> Curated:
    """Move candidates whose prompt is in the eval split to the eval examples."""
    keep: list[Candidate] = []
    for candidate in curated.candidates:
        if is_eval_prompt(candidate.prompt_key, rules.eval_share):
            curated.evals.append(_to_eval(candidate, rules))
        else:
            keep.append(candidate)
    curated.candidates = keep
    return curated


# -- feedback -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackSummary:
    """The latest explicit signals on a trace."""

    thumbs: int = Thumbs.THUMBS_UNSPECIFIED
    rating: float | None = None  # mean 1-7 over the rated criteria
    correction: str = ""


def summarize_feedback(trace: Trace) -> FeedbackSummary:
    """Latest thumbs, latest 1-7 ratings (mean of rated criteria), latest correction."""
    thumbs, rating, correction = Thumbs.THUMBS_UNSPECIFIED, None, ""
    for fb in trace.feedback:
        if fb.thumbs != Thumbs.THUMBS_UNSPECIFIED:
            thumbs = fb.thumbs
        values = [v for v in (fb.ratings.helpfulness, fb.ratings.correctness, fb.ratings.style)
                  if v > 0]
        if values:
            rating = sum(values) / len(values)
        if fb.kind == FeedbackKind.FEEDBACK_KIND_CORRECTION or fb.corrected_answer:
            correction = fb.corrected_answer or correction
    return FeedbackSummary(thumbs, rating, correction)


def failure_of(decision: TriageDecision) -> int:
    """Whose fault a failed trace was, from the decision or else the trace's outcome."""
    if decision.failure_source != FailureSource.FAILURE_SOURCE_UNSPECIFIED:
        return decision.failure_source
    outcome = decision.trace.outcome
    if outcome.status == OutcomeStatus.OUTCOME_STATUS_FAILURE:
        return outcome.failure_source
    return FailureSource.FAILURE_SOURCE_UNSPECIFIED


def _is_model_failure(decision: TriageDecision | None, trace: Trace | None) -> bool:
    if decision is not None:
        return failure_of(decision) == FailureSource.FAILURE_SOURCE_MODEL
    return trace is not None and trace.outcome.status == OutcomeStatus.OUTCOME_STATUS_FAILURE \
        and trace.outcome.failure_source == FailureSource.FAILURE_SOURCE_MODEL


# -- corrections ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correction:
    """A corrected answer for a trace's prompt, with who corrected it."""

    prompt: list[ChatMessage]
    corrected: list[ChatMessage]
    original: list[ChatMessage]
    full_conversation: bool
    source: str
    labeller_ids: tuple[str, ...]
    event_ids: tuple[str, ...]


def correction_examples(c: Correction, *, trace: Trace | None, tools: Sequence[ToolDefinition],
                        intent: str, coords: Coordinates, rules: CurationRules,
                        designs: DesignsConfig, model: ModelRef | None = None) -> list[Candidate]:
    """SFT of the corrected conversation, plus DPO corrected-vs-original when both exist."""
    lineage = _lineage(trace, coords, labeller_ids=c.labeller_ids, event_ids=c.event_ids)
    trace_id = trace.trace_id if trace is not None else ""
    out: list[Candidate] = []
    rule = rules.rule(c.source)
    if rule.enabled:
        sft = build_sft(c.prompt, c.corrected, tools=tools, source=c.source, intent=intent,
                        lineage=lineage,
                        mask_prompt_turns=rules.mask_earlier_turns and not c.full_conversation)
        ctx = DesignContext(trace=trace, original_answer=tuple(c.original))
        out += _designed(sft, ctx, designs, rule.quality, trace_id)
    pair_rule = rules.rule("correction")
    if pair_rule.enabled and c.original:
        pair = build_pair(c.prompt, c.corrected, c.original, tools=tools, source="correction",
                          intent=intent, lineage=lineage, rejected_model=model)
        if pair is not None:
            out.append(Candidate("dpo", pair, pair_rule.quality, prompt_text(c.prompt), trace_id))
    return out


# -- from triage decisions ------------------------------------------------------------------------


def _positive_source(fb: FeedbackSummary, rules: CurationRules) -> str | None:
    if fb.thumbs == Thumbs.THUMBS_DOWN:
        return None
    if fb.rating is not None and fb.rating < rules.positive_feedback_rating:
        return None
    if fb.thumbs == Thumbs.THUMBS_UP:
        return "thumbs_up"
    if fb.rating is not None:
        return "rating"
    return "triage"


def _decision_quality(decision: TriageDecision, rule: SourceRule) -> float:
    return float(decision.scores["quality"]) if "quality" in decision.scores else rule.quality


def from_decision(decision: TriageDecision, coords: Coordinates, rules: CurationRules,
                  designs: DesignsConfig) -> Curated:
    """Examples from one triage decision (each revision replaces the previous one's)."""
    trace = decision.trace
    out = Curated(retract_trace=decision.trace_id or trace.trace_id)
    prompt, answer = split_conversation(trace.messages)
    if decision.route in (Route.ROUTE_DROP, Route.ROUTE_UNSPECIFIED) or not prompt:
        out.skipped = "dropped" if prompt else "no_user_turn"
        return out
    event_ids = [trace.envelope.event_id, decision.envelope.event_id]
    lineage = _lineage(trace, coords, event_ids=event_ids)
    failure = failure_of(decision)
    if failure == FailureSource.FAILURE_SOURCE_SYSTEM or decision.route == Route.ROUTE_SYSTEM_EVAL:
        out.evals.append(build_eval(prompt, answer, tools=trace.tools,
                                    kind=EvalKind.EVAL_KIND_SYSTEM, intent=decision.intent,
                                    lineage=lineage, rules=rules))
        return out
    fb = summarize_feedback(trace)
    if fb.correction:
        source = "agent_fix" if failure == FailureSource.FAILURE_SOURCE_MODEL else "correction"
        correction = Correction(prompt, [ChatMessage(role="assistant", content=fb.correction)],
                                answer, False, source, (f"user:{trace.user_id}",), tuple(event_ids))
        out.candidates += correction_examples(correction, trace=trace, tools=trace.tools,
                                              intent=decision.intent, coords=coords, rules=rules,
                                              designs=designs, model=trace.model)
        return split_eval(out, rules)
    if failure == FailureSource.FAILURE_SOURCE_MODEL:
        if is_eval_prompt(prompt_key(prompt_text(prompt)), rules.eval_share):
            out.evals.append(build_eval(prompt, [], tools=trace.tools,
                                        kind=EvalKind.EVAL_KIND_MODEL, intent=decision.intent,
                                        lineage=lineage, rules=rules))
        out.skipped = "model_failure"
        return out
    if decision.route == Route.ROUTE_EVAL_CANDIDATE:
        # Only an answer someone approved is a reference; otherwise the release is measured
        # against its own served answer.
        reference = answer if _positive_source(fb, rules) not in (None, "triage") else []
        out.evals.append(build_eval(prompt, reference, tools=trace.tools,
                                    kind=EvalKind.EVAL_KIND_MODEL, intent=decision.intent,
                                    lineage=lineage, rules=rules))
        return out
    if fb.rating is not None and answer:
        out.rated.append(_rated(trace, prompt, answer, (fb.rating - 1.0) / 6.0,
                                decision.intent, f"user:{trace.user_id}", coords,
                                decision.envelope.event_id))
    source = _positive_source(fb, rules)
    if decision.route == Route.ROUTE_SFT_CANDIDATE and answer and source is not None:
        rule = rules.rule(source)
        if rule.enabled:
            sft = build_sft(prompt, answer, tools=trace.tools, source=source,
                            intent=decision.intent, lineage=lineage,
                            mask_prompt_turns=rules.mask_earlier_turns)
            out.candidates += _designed(sft, DesignContext(trace=trace), designs,
                                        _decision_quality(decision, rule), trace.trace_id)
    return split_eval(out, rules)


def _rated(trace: Trace, prompt: Sequence[ChatMessage], answer: Sequence[ChatMessage],
           score: float, intent: str, labeller: str, coords: Coordinates,
           event_id: str) -> RatedAnswer:
    return RatedAnswer(prompt=tuple(prompt), answer=tuple(answer), score=score,
                       tools=tuple(trace.tools), model=trace.model, intent=intent,
                       trace_id=trace.trace_id, user_id=trace.user_id, labeller_id=labeller,
                       event_id=event_id, topic=coords.topic, partition=coords.partition,
                       offset=coords.offset)


# -- from annotation labels -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelContext:
    """What a label is about: the triage decision and/or the annotation task (either may be
    missing; the task carries the trace too)."""

    decision: TriageDecision | None = None
    task: AnnotationTask | None = None

    @property
    def trace(self) -> Trace | None:
        if self.decision is not None and self.decision.HasField("trace"):
            return self.decision.trace
        if self.task is not None and self.task.HasField("trace"):
            return self.task.trace
        return None

    @property
    def intent(self) -> str:
        if self.decision is not None and self.decision.intent:
            return self.decision.intent
        return self.task.intent if self.task is not None else ""


def label_needs_context(label: AnnotationLabel, ctx: LabelContext) -> bool:
    """True when the label cannot be used until its trace (or task) arrives."""
    if label.kind == AnnotationKind.ANNOTATION_KIND_PAIRWISE:
        return ctx.task is None or len(ctx.task.candidates) < 2
    if label.kind == AnnotationKind.ANNOTATION_KIND_CORRECT and _has_user(label.corrected_messages):
        return False
    return ctx.trace is None


def _labeller_source(label: AnnotationLabel, human: str) -> str:
    kind = label.labeller.type
    if kind == LabellerType.LABELLER_TYPE_JUDGE:
        return "judge"
    if kind == LabellerType.LABELLER_TYPE_TEACHER:
        return "teacher"
    return human


def _label_correction(label: AnnotationLabel, ctx: LabelContext) -> Correction | None:
    trace = ctx.trace
    corrected = list(label.corrected_messages)
    original: list[ChatMessage] = []
    if trace is not None:
        prompt, original = split_conversation(trace.messages)
    if _has_user(corrected):
        prompt, answer = split_conversation(corrected)
        full = True
    else:
        if trace is None:
            return None
        answer, full = corrected, False
    if not prompt or not answer:
        return None
    source = _labeller_source(label, "correction")
    if source == "correction" and _is_model_failure(ctx.decision, trace):
        source = "agent_fix"
    return Correction(prompt, answer, original, full, source, (label.labeller.id,),
                      (label.envelope.event_id,))


def from_label(label: AnnotationLabel, ctx: LabelContext, coords: Coordinates,
               rules: CurationRules, designs: DesignsConfig) -> Curated:
    """Examples from one annotation label, given what is known about its trace."""
    if label.unusable:
        return Curated(skipped="unusable")
    if rules.final_labels_only and not label.is_final:
        return Curated(skipped="not_final")
    kind = label.kind
    if kind == AnnotationKind.ANNOTATION_KIND_CORRECT:
        return _from_correct(label, ctx, coords, rules, designs)
    if kind == AnnotationKind.ANNOTATION_KIND_RATE:
        return _from_rate(label, ctx, coords, rules, designs)
    if kind == AnnotationKind.ANNOTATION_KIND_PAIRWISE:
        return _from_pairwise(label, ctx, coords, rules)
    if kind == AnnotationKind.ANNOTATION_KIND_CLASSIFY_FAILURE:
        return _from_classify(label, ctx, coords, rules)
    return Curated(skipped="unknown_kind")


def _from_correct(label: AnnotationLabel, ctx: LabelContext, coords: Coordinates,
                  rules: CurationRules, designs: DesignsConfig) -> Curated:
    correction = _label_correction(label, ctx)
    if correction is None:
        return Curated(skipped="no_context")
    trace = ctx.trace
    out = Curated(retract_trace=label.trace_id or None)
    model = trace.model if trace is not None else None
    out.candidates = correction_examples(
        correction, trace=trace, tools=trace.tools if trace is not None else [],
        intent=ctx.intent, coords=coords, rules=rules, designs=designs, model=model)
    return split_eval(out, rules)


def _from_rate(label: AnnotationLabel, ctx: LabelContext, coords: Coordinates,
               rules: CurationRules, designs: DesignsConfig) -> Curated:
    trace = ctx.trace
    if not label.HasField("rating") or trace is None:
        return Curated(skipped="no_rating" if trace is not None else "no_context")
    prompt, answer = split_conversation(trace.messages)
    if not prompt or not answer:
        return Curated(skipped="no_answer")
    out = Curated()
    score = max(0, min(4, label.rating)) / 4.0
    out.rated.append(_rated(trace, prompt, answer, score, ctx.intent, label.labeller.id, coords,
                            label.envelope.event_id))
    if label.rating <= rules.negative_rating:
        out.retract_trace = trace.trace_id
    source = _labeller_source(label, "rating")
    rule = rules.rule(source)
    if label.rating >= rules.positive_rating and rule.enabled:
        lineage = _lineage(trace, coords, labeller_ids=[label.labeller.id],
                           event_ids=[label.envelope.event_id])
        sft = build_sft(prompt, answer, tools=trace.tools, source=source, intent=ctx.intent,
                        lineage=lineage, mask_prompt_turns=rules.mask_earlier_turns)
        out.candidates += _designed(sft, DesignContext(trace=trace), designs,
                                    min(rule.quality, score) if source != "rating" else score,
                                    trace.trace_id)
    return split_eval(out, rules)


def _from_pairwise(label: AnnotationLabel, ctx: LabelContext, coords: Coordinates,
                   rules: CurationRules) -> Curated:
    task, trace = ctx.task, ctx.trace
    if task is None or len(task.candidates) < 2:
        return Curated(skipped="no_candidates")
    if label.choice not in (Choice.CHOICE_A, Choice.CHOICE_B):
        return Curated(skipped="tie")
    a, b = task.candidates[0], task.candidates[1]
    chosen, rejected = (a, b) if label.choice == Choice.CHOICE_A else (b, a)
    prompt = split_conversation(trace.messages)[0] if trace is not None else []
    source = _labeller_source(label, "annotation")
    rule = rules.rule(source)
    if not prompt or not rule.enabled:
        return Curated(skipped="no_prompt" if not prompt else "source_disabled")
    lineage = _lineage(trace, coords, labeller_ids=[label.labeller.id],
                       event_ids=[label.envelope.event_id])
    pair = build_pair(prompt, chosen.messages, rejected.messages,
                      tools=trace.tools if trace is not None else [], source=source,
                      intent=ctx.intent, lineage=lineage, chosen_model=chosen.model,
                      rejected_model=rejected.model)
    out = Curated()
    if pair is not None:
        out.candidates.append(Candidate("dpo", pair, rule.quality, prompt_text(prompt),
                                        label.trace_id))
    return split_eval(out, rules)


def _from_classify(label: AnnotationLabel, ctx: LabelContext, coords: Coordinates,
                   rules: CurationRules) -> Curated:
    trace = ctx.trace
    if trace is None:
        return Curated(skipped="no_context")
    prompt, answer = split_conversation(trace.messages)
    out = Curated()
    if not prompt or label.failure_source not in (FailureSource.FAILURE_SOURCE_SYSTEM,
                                                  FailureSource.FAILURE_SOURCE_MODEL):
        out.skipped = "no_failure"
        return out
    out.retract_trace = trace.trace_id
    lineage = _lineage(trace, coords, labeller_ids=[label.labeller.id],
                       event_ids=[label.envelope.event_id])
    if label.failure_source == FailureSource.FAILURE_SOURCE_SYSTEM:
        out.evals.append(build_eval(prompt, answer, tools=trace.tools,
                                    kind=EvalKind.EVAL_KIND_SYSTEM, intent=ctx.intent,
                                    lineage=lineage, rules=rules))
    elif is_eval_prompt(prompt_key(prompt_text(prompt)), rules.eval_share):
        out.evals.append(build_eval(prompt, [], tools=trace.tools, kind=EvalKind.EVAL_KIND_MODEL,
                                    intent=ctx.intent, lineage=lineage, rules=rules))
    return out


# -- from user preferences ------------------------------------------------------------------------


def from_preference(answer: PreferenceAnswer, coords: Coordinates, rules: CurationRules,
                    decision: TriageDecision | None = None) -> Curated:
    """A DPO pair from a user's choice between two answers (ties give nothing).

    The tools list and intent come from the trace's triage decision when it is known.
    """
    rule = rules.rule("user_preference")
    if answer.chosen not in (Choice.CHOICE_A, Choice.CHOICE_B):
        return Curated(skipped="tie" if answer.chosen == Choice.CHOICE_TIE else "no_choice")
    if not rule.enabled:
        return Curated(skipped="source_disabled")
    trace = decision.trace if decision is not None else None
    lineage = _lineage(None, coords, labeller_ids=[f"user:{answer.user_id}"],
                       event_ids=[answer.envelope.event_id],
                       user_ids=[answer.user_id] + ([trace.user_id] if trace else []))
    lineage.trace_ids.append(answer.trace_id)
    intent = decision.intent if decision is not None else ""
    pair = build_pair(answer.prompt, answer.chosen_messages, answer.rejected_messages,
                      tools=trace.tools if trace is not None else [], source="user_preference",
                      intent=intent, lineage=lineage, chosen_model=answer.chosen_model,
                      rejected_model=answer.rejected_model)
    out = Curated()
    if pair is not None:
        out.candidates.append(Candidate("dpo", pair, rule.quality, prompt_text(answer.prompt),
                                        answer.trace_id))
    return split_eval(out, rules)


def with_rating_gaps(curated: Curated, pairs: Sequence[DpoExample],
                     rules: CurationRules) -> Curated:
    """Add rating-gap pairs (from :func:`pairs.rating_gap_pairs`) as DPO candidates."""
    rule = rules.rule("rating_gap")
    if not rule.enabled:
        return curated
    for pair in pairs:
        curated.candidates.append(Candidate("dpo", pair, rule.quality, prompt_text(pair.prompt),
                                            pair.lineage.trace_ids[0] if pair.lineage.trace_ids
                                            else ""))
    return split_eval(curated, rules)
