"""Model work of the annotation service: the judge, the teacher and judge calibration.

* Routed tasks (see ``routing.py``): the judge labels and settles them; the teacher writes an
  answer, the judge rates it, and only good or excellent answers settle the task as final
  teacher labels (others stay in SQL, unpublished, and the task goes to people).
* ``traces.triaged`` decisions routed to the judge get a judge rating with no task.
* Calibration: after people settle a task, the judge labels a hash sample of them too; the
  pair (people, judge) feeds the per-criterion window in Redis (``calibration.py``).

Judge and teacher labels carry ``labeller_type`` judge/teacher, the model name and the prompt
version, so they never mix with people's labels.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flywheel.events.codec import to_dict
from flywheel.logging import get_logger
from flywheel.rediskit import claim_once
from flywheel.v1.triage_pb2 import TriageDecision

from . import calibration, queue, store
from .errors import LLMUnavailable
from .kinds import RATE, LabelRecord, agreement_value, corrected_conversation
from .llm.annotators import Judge, Teacher
from .llm.prompts import PromptRegistry
from .llm.rubrics import JUDGE, JUDGE_KINDS, TEACHER
from .routing import route_task
from .service import AnnotationService
from .store import TaskView

log = get_logger(__name__)

_IDEM_TTL_S = 7 * 86_400


class Automation:
    """Runs the judge and the teacher for an :class:`AnnotationService`."""

    def __init__(self, service: AnnotationService, registry: PromptRegistry,
                 judge: Judge | None, teacher: Teacher | None) -> None:
        self.service = service
        self.registry = registry
        self.judge = judge
        self.teacher = teacher
        self.config = service.config

    # -- routing -----------------------------------------------------------------------------

    async def route(self, task: TaskView) -> str:
        """Decide who labels a new task; model routes start in the background."""
        route = route_task(task.task_id, task.kind, task.payload.get("reasons", []),
                           judge_enabled=self.judge is not None,
                           teacher_enabled=self.teacher is not None and self.judge is not None,
                           teacher_share=self.config.teacher_share,
                           judge_tag=self.config.judge_tag, teacher_tag=self.config.teacher_tag)
        if route == "judge":
            self.service.spawn(self.judge_task(task), f"judge-{task.task_id}")
        elif route == "teacher":
            self.service.spawn(self.teach(task), f"teacher-{task.task_id}")
        return route

    async def _to_people(self, task: TaskView, why: str) -> None:
        log.warning("model_route_fell_back", task_id=task.task_id, reason=why)
        await queue.enqueue(self.service.redis, task.task_id, task.priority, task.kind)

    async def _guideline_text(self, task: TaskView) -> str:
        found = await self.service.guideline(task.kind, task.guideline_version)
        return found[1] if found else ""

    async def _store_and_publish(self, task: TaskView | None, **fields: Any) -> LabelRecord:
        record = await asyncio.to_thread(store.record_model_label, self.service.engine, **fields)
        await self.service.publish(record)
        return record

    # -- the judge on its own tasks ----------------------------------------------------------

    async def judge_task(self, task: TaskView) -> None:
        """The judge labels and settles a task routed to it."""
        assert self.judge is not None
        prompt = await asyncio.to_thread(self.registry.active, JUDGE, task.kind)
        try:
            result = await self.judge.label(task.kind, task.payload, prompt,
                                            await self._guideline_text(task))
        except LLMUnavailable as exc:
            await self._to_people(task, str(exc))
            return
        await self._store_and_publish(
            task, task_id=task.task_id, trace_id=task.trace_id, kind=task.kind,
            labeller_type="judge", labeller_id=self.judge.labeller_id, value=result.value,
            guideline_version=task.guideline_version, prompt_version=result.prompt_version,
            is_final=True, settle="unusable" if result.value.get("unusable") else "done")

    # -- the teacher -------------------------------------------------------------------------

    async def teach(self, task: TaskView) -> None:
        """The teacher writes the answer; it counts only when the judge rates it good or better."""
        assert self.teacher is not None and self.judge is not None
        guideline = await self._guideline_text(task)
        try:
            written = await self.teacher.write(
                task.kind, task.payload, await asyncio.to_thread(self.registry.active, TEACHER,
                                                                 task.kind), guideline)
            rate_prompt = await asyncio.to_thread(self.registry.active, JUDGE, RATE)
            rate_guideline = await self.service.guideline(RATE, None)
            rating = await self.judge.rate_answer(task.payload, written.value["answer"],
                                                  rate_prompt, rate_guideline[1] if rate_guideline else "")
        except LLMUnavailable as exc:
            await self._to_people(task, str(exc))
            return
        accepted = rating.value["rating"] >= self.config.teacher_min_rating
        messages = task.payload.get("trace", {}).get("messages", [])
        value = {**written.value,
                 "corrected_messages": corrected_conversation(messages, written.value["answer"]),
                 "judge_rating": rating.value["rating"], "judge_model": rating.model,
                 "judge_prompt_version": rating.prompt_version,
                 "reason": f"judge rated {rating.value['rating']}/4: {rating.value.get('reason', '')}"}
        fields = dict(task_id=task.task_id, trace_id=task.trace_id, kind=task.kind,
                      labeller_type="teacher", labeller_id=self.teacher.labeller_id, value=value,
                      guideline_version=task.guideline_version,
                      prompt_version=written.prompt_version)
        if accepted:
            await self._store_and_publish(task, **fields, is_final=True, settle="done")
        else:
            # Kept for lineage, never published as training data; people take the task.
            await asyncio.to_thread(store.record_model_label, self.service.engine, **fields,
                                    is_final=False)
            await self._to_people(task, f"teacher answer rated {rating.value['rating']}")

    # -- the judge on triaged traces ---------------------------------------------------------

    async def judge_triaged(self, decision: TriageDecision) -> str:
        """A judge rating of a trace triage routed to the judge (a label with no task)."""
        assert self.judge is not None
        if not await claim_once(self.service.redis, "annotation-judge",
                                decision.envelope.event_id or decision.decision_id, _IDEM_TTL_S):
            return "duplicate"
        payload = {"trace": to_dict(decision.trace), "intent": decision.intent,
                   "reasons": list(decision.reasons)}
        guideline = await self.service.guideline(RATE, None)
        prompt = await asyncio.to_thread(self.registry.active, JUDGE, RATE)
        result = await self.judge.label(RATE, payload, prompt, guideline[1] if guideline else "")
        await self._store_and_publish(
            None, task_id=None, trace_id=decision.trace_id, kind=RATE, labeller_type="judge",
            labeller_id=self.judge.labeller_id, value=result.value,
            guideline_version=guideline[0] if guideline else None,
            prompt_version=result.prompt_version, is_final=True,
            app_id=decision.envelope.app_id or decision.trace.app_id)
        return "judged"

    # -- calibration -------------------------------------------------------------------------

    def after_settled(self, task: TaskView, final: LabelRecord) -> None:
        """Hook: people settled a task; the judge re-labels a sample of them."""
        if self.judge is None or task.kind not in JUDGE_KINDS or final.labeller_type not in (
                "human", "reviewer"):
            return
        if calibration.should_calibrate(task.task_id, self.config.calibration_rate):
            self.service.spawn(self.calibrate(task, final), f"calibrate-{task.task_id}")

    async def calibrate(self, task: TaskView, final: LabelRecord) -> dict[str, Any] | None:
        """Judge a settled task and add (people, judge) to the criterion's window."""
        assert self.judge is not None
        if not await claim_once(self.service.redis, "calibration", task.task_id, _IDEM_TTL_S):
            return None
        prompt = await asyncio.to_thread(self.registry.active, JUDGE, task.kind)
        try:
            result = await self.judge.label(task.kind, task.payload, prompt,
                                            await self._guideline_text(task))
        except LLMUnavailable as exc:
            log.warning("calibration_judge_failed", task_id=task.task_id, error=str(exc))
            return None
        await self._store_and_publish(
            task, task_id=task.task_id, trace_id=task.trace_id, kind=task.kind,
            labeller_type="judge", labeller_id=self.judge.labeller_id, value=result.value,
            guideline_version=task.guideline_version, prompt_version=result.prompt_version,
            is_final=False)
        cfg = self.config
        summary = await calibration.record_pair(
            self.service.redis, task.kind, agreement_value(task.kind, final.value),
            agreement_value(task.kind, result.value), window=cfg.calibration_window,
            threshold=cfg.calibration_threshold, min_pairs=cfg.calibration_min_pairs)
        if summary["low"]:
            log.warning("calibration_low", criterion=task.kind, agreement=summary["agreement"],
                        n=summary["n"])
        return summary
