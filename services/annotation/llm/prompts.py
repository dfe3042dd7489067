"""Versioned judge and teacher prompts, and the gate a new version passes before the stream uses it.

A new version goes through these stages, in order:

1. ``draft``: created (``POST /v1/prompts``).
2. ``previewed``: run, next to the active version, on a small sample (at most 19 items) of
   tasks people settled; the page ``/prompts/<role>/<kind>/<version>`` shows them side by side.
3. ``approved``: a reviewer or admin looked at the preview and approved it.
4. ``passed`` or ``failed``: scored on a larger sample (at least ``prompt_eval_min``, 500 by
   default, or every settled item when fewer exist) against the people's final labels, overall
   and per slice (intent, length, tool use). It passes when the overall match rate reaches
   ``prompt_pass_rate`` and no slice of 10+ items is under ``prompt_slice_min_rate``.
5. ``active``: only a passed version can be activated; the stream then uses it.

A match is: the same rating within one step (rate), the same choice (pairwise), the same
failure source (classify_failure), or a token F1 of 0.5+ with the person's answer (teacher).

Storage (no table of its own): versioned rows of the ``guidelines`` table under the kinds
``prompt.<role>.<kind>`` (the prompt), ``prompt-eval.<role>.<kind>`` (the stage and reports,
JSON) and ``prompt-active.<role>.<kind>`` (version ``active``: the active version's name).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine

from .. import store
from ..errors import Conflict, LLMUnavailable, NotFound, PromptStageError
from ..kinds import CORRECT, RATE, agreement_value
from .annotators import Judge, Teacher
from .rubrics import DEFAULT_PROMPTS, JUDGE, JUDGE_KINDS, TEACHER, TEACHER_KINDS, Prompt, render_messages

STAGES = ("draft", "previewed", "approved", "passed", "failed", "active")
ACTIVE = "active"
_WORD = re.compile(r"\w+")
_CACHE_S = 5.0


def doc_kind(role: str, kind: str) -> str:
    return f"prompt.{role}.{kind}"


def eval_kind(role: str, kind: str) -> str:
    return f"prompt-eval.{role}.{kind}"


def active_kind(role: str, kind: str) -> str:
    return f"prompt-active.{role}.{kind}"


def check_role_kind(role: str, kind: str) -> None:
    if (role, kind) not in DEFAULT_PROMPTS:
        known = ", ".join(f"{r}/{k}" for r, k in DEFAULT_PROMPTS)
        raise NotFound(f"no prompt for {role}/{kind}; known: {known}")


# -- scoring (pure) ---------------------------------------------------------------------------


def slices_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """The slices an item belongs to: intent, length bucket and whether tools were used."""
    messages = payload.get("trace", {}).get("messages", [])
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    length = "short" if chars < 200 else "medium" if chars < 800 else "long"
    tools = any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)
    return {"intent": str(payload.get("intent") or "unknown"), "length": length,
            "tool_use": "tools" if tools else "no_tools"}


def token_f1(a: str, b: str) -> float:
    """Token-overlap F1 of two texts (lower-cased words)."""
    ta, tb = _WORD.findall(a.lower()), _WORD.findall(b.lower())
    if not ta or not tb:
        return float(ta == tb)
    common = sum((Counter(ta) & Counter(tb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


def item_match(kind: str, candidate: Mapping[str, Any], human: Mapping[str, Any]) -> bool:
    """Whether a model's label matches the people's final label (see the module docstring)."""
    if candidate.get("unusable") or human.get("unusable"):
        return bool(candidate.get("unusable")) == bool(human.get("unusable"))
    if kind == RATE:
        return abs(int(candidate["rating"]) - int(human["rating"])) <= 1
    if kind == CORRECT:
        return token_f1(str(candidate.get("answer", "")), str(human.get("answer", ""))) >= 0.5
    return agreement_value(kind, candidate) == agreement_value(kind, human)


def evaluation_report(rows: Sequence[Mapping[str, Any]], pass_rate: float, slice_min_rate: float,
                      min_slice_n: int = 10) -> dict[str, Any]:
    """Overall and per-slice match rates of scored items, and the verdict.

    Args:
        rows: ``{"match": bool, "slices": {dimension: value}}`` per item.
    """
    n = len(rows)
    overall = sum(r["match"] for r in rows) / n if n else 0.0
    slices: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    counts: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for row in rows:
        for dimension, value in row["slices"].items():
            counts[(dimension, value)].append(bool(row["match"]))
    failing = []
    for (dimension, value), matches in sorted(counts.items()):
        rate = sum(matches) / len(matches)
        slices[dimension][value] = {"n": len(matches), "match_rate": round(rate, 4)}
        if len(matches) >= min_slice_n and rate < slice_min_rate:
            failing.append(f"{dimension}={value}")
    passed = n > 0 and overall >= pass_rate and not failing
    return {"n": n, "match_rate": round(overall, 4), "slices": dict(slices),
            "failing_slices": failing, "pass_rate": pass_rate, "slice_min_rate": slice_min_rate,
            "passed": passed}


# -- the registry -----------------------------------------------------------------------------


class PromptRegistry:
    """Reads and writes prompt versions and their stage (blocking SQL: call from threads)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._active: dict[tuple[str, str], tuple[float, Prompt]] = {}

    def seed(self) -> None:
        """Store the first versions, active, for every role and kind that has none."""
        for (role, kind), prompt in DEFAULT_PROMPTS.items():
            store.ensure_documents(self.engine, {
                doc_kind(role, kind): (prompt.version, prompt.to_text()),
                eval_kind(role, kind): (prompt.version, json.dumps({"stage": ACTIVE,
                                                                    "builtin": True})),
                active_kind(role, kind): (ACTIVE, prompt.version)})

    def get(self, role: str, kind: str, version: str) -> Prompt:
        check_role_kind(role, kind)
        doc = store.get_document(self.engine, doc_kind(role, kind), version)
        if doc is None:
            raise NotFound(f"no {role}/{kind} prompt version {version!r}")
        return Prompt.from_text(role, kind, version, doc[1])

    def active(self, role: str, kind: str) -> Prompt:
        """The version the stream uses (cached for a few seconds)."""
        cached = self._active.get((role, kind))
        if cached is not None and time.monotonic() - cached[0] < _CACHE_S:
            return cached[1]
        pointer = store.get_document(self.engine, active_kind(role, kind), ACTIVE)
        prompt = self.get(role, kind, pointer[1]) if pointer else DEFAULT_PROMPTS[(role, kind)]
        self._active[(role, kind)] = (time.monotonic(), prompt)
        return prompt

    def create(self, role: str, kind: str, version: str, system: str, user: str) -> dict[str, Any]:
        check_role_kind(role, kind)
        prompt = Prompt(role, kind, version, system, user)
        store.put_document(self.engine, doc_kind(role, kind), version, prompt.to_text())
        return self.set_report(role, kind, version, {"stage": "draft"})

    def report(self, role: str, kind: str, version: str) -> dict[str, Any]:
        doc = store.get_document(self.engine, eval_kind(role, kind), version)
        if doc is None:
            raise NotFound(f"no {role}/{kind} prompt version {version!r}")
        return json.loads(doc[1])

    def set_report(self, role: str, kind: str, version: str, report: dict[str, Any]) -> dict[str, Any]:
        report = {**report, "updated_at": datetime.now(timezone.utc).isoformat()}
        store.put_document(self.engine, eval_kind(role, kind), version, json.dumps(report),
                           overwrite=True)
        return report

    def activate(self, role: str, kind: str, version: str) -> dict[str, Any]:
        report = self.report(role, kind, version)
        if report.get("stage") != "passed":
            raise PromptStageError(f"only a passed version can be activated; {version!r} is "
                                   f"{report.get('stage')}")
        previous = self.active(role, kind).version
        store.put_document(self.engine, active_kind(role, kind), ACTIVE, version, overwrite=True)
        self._active.pop((role, kind), None)
        if previous != version:
            old = self.report(role, kind, previous)
            self.set_report(role, kind, previous, {**old, "stage": "passed" if not old.get(
                "builtin") else "retired"})
        return self.set_report(role, kind, version, {**report, "stage": ACTIVE})

    def versions(self) -> list[dict[str, Any]]:
        rows = []
        for kind_name, version, created in store.list_documents(self.engine, "prompt-eval."):
            _, role, kind = kind_name.split(".", 2)
            report = self.report(role, kind, version)
            rows.append({"role": role, "kind": kind, "version": version,
                         "stage": report.get("stage"), "created_at": created.isoformat()})
        return rows


# -- the lab: preview, approve, evaluate ------------------------------------------------------


class PromptLab:
    """Runs prompt versions on settled items for the preview and the scored evaluation."""

    def __init__(self, registry: PromptRegistry, judge: Judge | None, teacher: Teacher | None,
                 *, preview_max: int, eval_min: int, pass_rate: float, slice_min_rate: float) -> None:
        self.registry = registry
        self.judge = judge
        self.teacher = teacher
        self.preview_max = preview_max
        self.eval_min = eval_min
        self.pass_rate = pass_rate
        self.slice_min_rate = slice_min_rate

    def _runner(self, role: str, kind: str):  # noqa: ANN202
        if role == JUDGE and kind in JUDGE_KINDS and self.judge is not None:
            return self.judge.label
        if role == TEACHER and kind in TEACHER_KINDS and self.teacher is not None:
            return self.teacher.write
        raise Conflict(f"no {role} is configured for {kind} tasks")

    async def _run(self, role: str, kind: str, prompt: Prompt, items: Sequence[tuple]) -> list:
        runner = self._runner(role, kind)
        engine = self.registry.engine

        async def one(task: store.TaskView) -> dict[str, Any] | None:
            doc = await asyncio.to_thread(store.get_document, engine, kind, task.guideline_version)
            guideline = doc[1] if doc else ""
            try:
                return (await runner(kind, task.payload, prompt, guideline)).value
            except LLMUnavailable:
                return None

        return await asyncio.gather(*(one(task) for task, _ in items))

    async def preview(self, role: str, kind: str, version: str, n: int) -> dict[str, Any]:
        """Run the candidate and the active version side by side on at most 19 items."""
        registry = self.registry
        candidate = await asyncio.to_thread(registry.get, role, kind, version)
        active = await asyncio.to_thread(registry.active, role, kind)
        items = await asyncio.to_thread(store.settled_items, registry.engine, kind,
                                        min(n, self.preview_max))
        if not items:
            raise Conflict(f"no {kind} tasks settled by people yet to preview on")
        new_out, old_out = await asyncio.gather(self._run(role, kind, candidate, items),
                                                self._run(role, kind, active, items))
        rows = [{"task_id": task.task_id, "intent": task.payload.get("intent", ""),
                 "conversation": render_messages(task.payload.get("trace", {}).get("messages", [])),
                 "human": dict(label.value), "active": old, "candidate": new}
                for (task, label), new, old in zip(items, new_out, old_out)]
        report = {"stage": "previewed", "active_version": active.version, "preview": rows}
        return await asyncio.to_thread(registry.set_report, role, kind, version, report)

    async def approve(self, role: str, kind: str, version: str, by: str) -> dict[str, Any]:
        report = await asyncio.to_thread(self.registry.report, role, kind, version)
        if report.get("stage") != "previewed":
            raise PromptStageError(f"{version!r} must be previewed before approval "
                                   f"(it is {report.get('stage')})")
        return await asyncio.to_thread(self.registry.set_report, role, kind, version,
                                       {**report, "stage": "approved", "approved_by": by})

    async def evaluate(self, role: str, kind: str, version: str, n: int) -> dict[str, Any]:
        """Score the candidate against people's final labels, overall and per slice."""
        registry = self.registry
        report = await asyncio.to_thread(registry.report, role, kind, version)
        if report.get("stage") not in ("approved", "failed", "passed"):
            raise PromptStageError(f"{version!r} must be previewed and approved before the "
                                   f"scored evaluation (it is {report.get('stage')})")
        prompt = await asyncio.to_thread(registry.get, role, kind, version)
        items = await asyncio.to_thread(store.settled_items, registry.engine, kind,
                                        max(n, self.eval_min))
        if not items:
            raise Conflict(f"no {kind} tasks settled by people yet to evaluate on")
        outputs = await self._run(role, kind, prompt, items)
        rows = [{"match": out is not None and item_match(kind, out, label.value),
                 "slices": slices_of(task.payload)}
                for (task, label), out in zip(items, outputs)]
        result = evaluation_report(rows, self.pass_rate, self.slice_min_rate)
        result["errors"] = sum(out is None for out in outputs)
        result["all_available"] = len(items) < max(n, self.eval_min)
        stage = "passed" if result["passed"] else "failed"
        return await asyncio.to_thread(registry.set_report, role, kind, version,
                                       {**report, "stage": stage, "evaluation": result})

