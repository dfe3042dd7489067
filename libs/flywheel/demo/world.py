"""The demo's simulated world: shop customers, an agent, an annotator, all over real HTTP.

* Customers ask the model servers (OpenAI-compatible ``/v1/chat/completions``) questions with
  checkable answers, then send noisy feedback (thumbs, ratings, now and then a correction)
  through the gateway, and answer the preference questions the preference service has for them.
* An agent runs multi-step tool tasks whose tools sometimes fail, and logs each run as a trace
  through the gateway (model failures and system failures both happen).
* An annotator works the annotation queue through its API with an API token, within a label
  budget, giving mostly right labels.

Every request goes through the project's public APIs; nothing here touches Kafka or SQL.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from flywheel.demo import shop
from flywheel.demo.expert import QuestionBook
from flywheel.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class WorldUrls:
    serving: str
    gateway: str
    preferences: str
    annotation: str


@dataclass
class WorldStats:
    """Live counters of the simulated world, read by the progress display."""

    asked: int = 0
    served_errors: int = 0
    correct_by_version: Counter = field(default_factory=Counter)
    asked_by_version: Counter = field(default_factory=Counter)
    feedback: int = 0
    agent_runs: int = 0
    agent_failures: Counter = field(default_factory=Counter)
    preferences_answered: int = 0
    labels: int = 0
    labels_by_kind: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def live_accuracy(self) -> dict[str, float]:
        return {v: self.correct_by_version[v] / n for v, n in self.asked_by_version.items() if n}


@dataclass
class WorldConfig:
    seed: int = 0
    users: int = 4
    model_line: str = "shop-assistant"
    label_budget: int = 10_000
    annotator_accuracy: float = 0.95
    agent_share: float = 0.15
    # Pause between a customer's turns: with 4 customers about 10 questions/s, enough data
    # for the loop while leaving the 2 cores to triage and training.
    think_s: float = 0.3
    max_tokens: int = 40


class World:
    """Runs the simulated customers, agent and annotator until a deadline."""

    def __init__(self, urls: WorldUrls, api_key: str, annotator_token: str, book: QuestionBook,
                 config: WorldConfig) -> None:
        self.urls = urls
        self.api_key = api_key
        self.annotator_token = annotator_token
        self.book = book
        self.cfg = config
        self.stats = WorldStats()
        self.rng = random.Random(config.seed)
        self._questions: dict[str, shop.Question] = {}

    # -- customers --------------------------------------------------------------------------

    async def _ask(self, http: httpx.AsyncClient, user: str, q: shop.Question,
                   rng: random.Random) -> None:
        self.book.add(q)
        body = {"model": self.cfg.model_line, "messages": shop.question_messages(q),
                "user": user, "max_tokens": self.cfg.max_tokens, "temperature": 0}
        try:
            resp = await http.post(f"{self.urls.serving}/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            self.stats.served_errors += 1
            self.stats.errors[f"serving:{type(exc).__name__}"] += 1
            return
        if resp.status_code != 200:
            self.stats.served_errors += 1
            self.stats.errors[f"serving:{resp.status_code}"] += 1
            return
        data = resp.json()
        answer = data["choices"][0]["message"].get("content") or ""
        version = resp.headers.get("x-flywheel-model-version", data.get("model", "?"))
        trace_id = resp.headers.get("x-request-id") or data.get("id", "")
        self.stats.asked += 1
        self.stats.asked_by_version[version] += 1
        self.stats.correct_by_version[version] += shop.is_correct(answer, q)
        self._questions[trace_id] = q
        fb = shop.noisy_feedback(answer, q, rng)
        if fb is not None:
            await self._send_feedback(http, trace_id, user, fb)

    async def _send_feedback(self, http: httpx.AsyncClient, trace_id: str, user: str,
                             fb: shop.Feedback) -> None:
        events = []
        base = {"trace_id": trace_id, "user_id": user}
        if fb.thumbs:
            events.append({**base, "feedback": {
                "kind": "FEEDBACK_KIND_THUMBS",
                "thumbs": "THUMBS_UP" if fb.thumbs == "up" else "THUMBS_DOWN"}})
        if fb.ratings:
            events.append({**base, "feedback": {"kind": "FEEDBACK_KIND_RATING",
                                                "ratings": fb.ratings}})
        if fb.corrected_answer:
            events.append({**base, "feedback": {"kind": "FEEDBACK_KIND_CORRECTION",
                                                "corrected_answer": fb.corrected_answer}})
        if fb.comment:
            events.append({**base, "feedback": {"kind": "FEEDBACK_KIND_COMMENT",
                                                "comment": fb.comment}})
        await self._post_gateway(http, "/v1/feedback", {"events": events})
        self.stats.feedback += len(events)

    async def _post_gateway(self, http: httpx.AsyncClient, path: str, body: Any) -> None:
        for attempt in range(4):
            try:
                resp = await http.post(f"{self.urls.gateway}{path}", json=body,
                                       headers={"X-API-Key": self.api_key})
            except httpx.HTTPError as exc:
                self.stats.errors[f"gateway:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if resp.status_code in (429, 503, 409):
                await asyncio.sleep(float(resp.headers.get("retry-after", 1)))
                continue
            if resp.status_code >= 400:
                self.stats.errors[f"gateway:{resp.status_code}"] += 1
                log.warning("demo_gateway_rejected", path=path, status=resp.status_code,
                            body=resp.text[:300])
            return

    async def _answer_preferences(self, http: httpx.AsyncClient, user: str,
                                  rng: random.Random) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            resp = await http.get(f"{self.urls.preferences}/v1/preferences/pending",
                                  params={"user": user}, headers=headers)
            if resp.status_code != 200:
                return
            items = resp.json().get("requests", [])
            for item in items[:2]:
                await self._answer_one(http, user, item, rng, headers)
        except httpx.HTTPError as exc:
            self.stats.errors[f"preferences:{type(exc).__name__}"] += 1

    async def _answer_one(self, http: httpx.AsyncClient, user: str, item: dict,
                          rng: random.Random, headers: dict) -> None:
        q = self.book.find(_last_user_text(item.get("prompt", [])))
        answers = item.get("answers", [])
        if q is None or len(answers) != 2:
            return
        texts = [_answer_text(a) for a in answers]
        pref = shop.noisy_preference(texts[0], texts[1], q, rng)
        if pref.choice is None:
            return
        chosen = "tie" if pref.choice == "tie" else answers[0 if pref.choice == "a" else 1]["answer_id"]
        body = {"user": user, "chosen": chosen, "reason": pref.reason,
                "ratings": {answers[0]["answer_id"]: pref.ratings_a,
                            answers[1]["answer_id"]: pref.ratings_b}}
        resp = await http.post(f"{self.urls.preferences}/v1/preferences/{item['request_id']}",
                               json=body, headers=headers)
        if resp.status_code == 200:
            self.stats.preferences_answered += 1
        else:
            self.stats.errors[f"preferences:{resp.status_code}"] += 1

    async def _customer(self, http: httpx.AsyncClient, index: int, deadline: float) -> None:
        rng = random.Random(f"{self.cfg.seed}-user-{index}")
        users = [f"u{index}-{k}" for k in range(25)]
        while time.monotonic() < deadline:
            user = rng.choice(users)
            try:
                if rng.random() < self.cfg.agent_share:
                    await self._agent_run(http, rng, user)
                else:
                    await self._ask(http, user, shop.sample_question(rng), rng)
                if rng.random() < 0.3:
                    await self._answer_preferences(http, user, rng)
            except Exception as exc:  # one customer's bad turn must not end the world
                self.stats.errors[f"customer:{type(exc).__name__}"] += 1
                log.warning("demo_customer_error", error=repr(exc))
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.cfg.think_s)

    # -- the agent ---------------------------------------------------------------------------

    async def _agent_run(self, http: httpx.AsyncClient, rng: random.Random, user: str) -> None:
        task = shop.sample_agent_task(rng)
        self.book.add(task.question)
        tool, args = task.tool, dict(task.arguments)
        roll = rng.random()
        if roll < 0.15:  # the model picks the wrong tool
            tool = rng.choice([t["function"]["name"] for t in shop.TOOLS if t["function"]["name"] != tool])
        elif roll < 0.25 and "order_number" in args:  # or garbles the order number
            args["order_number"] = str(int(args["order_number"]) + 1)
        result = shop.call_tool(task, tool, args, rng)
        final = task.final_answer if result.status == "ok" and (tool, args) == (task.tool, task.arguments) \
            else "I am sorry, something went wrong with your request."
        outcome = shop.judge_episode(task, [(tool, args)], [result], final)
        self.stats.agent_runs += 1
        if not outcome.success:
            self.stats.agent_failures[outcome.failure_source] += 1
        await self._post_gateway(http, "/v1/traces", _agent_trace(task, tool, args, result,
                                                                  final, outcome, user))

    # -- the annotator -----------------------------------------------------------------------

    async def _annotator(self, http: httpx.AsyncClient, deadline: float) -> None:
        rng = random.Random(f"{self.cfg.seed}-annotator")
        headers = {"Authorization": f"Bearer {self.annotator_token}"}
        while time.monotonic() < deadline and self.stats.labels < self.cfg.label_budget:
            try:
                pause = await self._annotate_one(http, headers, rng)
            except Exception as exc:  # a failed claim or submit: the lease expires, go on
                self.stats.errors[f"annotation:{type(exc).__name__}"] += 1
                log.warning("demo_annotator_error", error=repr(exc))
                pause = 1.0
            if pause:
                await asyncio.sleep(pause)

    async def _annotate_one(self, http: httpx.AsyncClient, headers: dict,
                            rng: random.Random) -> float:
        """Claim and label one task; the seconds to pause before the next claim."""
        resp = await http.post(f"{self.urls.annotation}/v1/tasks/claim", headers=headers)
        if resp.status_code == 204:
            return 0.5
        if resp.status_code != 200:
            self.stats.errors[f"annotation:{resp.status_code}"] += 1
            return 1.0
        claimed = resp.json()
        task = claimed["task"]
        label = self._label_for(task, rng)
        label["lease_token"] = claimed["lease"]["token"]
        sub = await http.post(f"{self.urls.annotation}/v1/tasks/{task['task_id']}/labels",
                              json=label, headers=headers)
        if sub.status_code == 201:
            self.stats.labels += 1
            self.stats.labels_by_kind[task["kind"]] += 1
        else:
            self.stats.errors[f"annotation-submit:{sub.status_code}"] += 1
            log.warning("demo_label_rejected", status=sub.status_code, body=sub.text[:300])
        return 0.0

    def _label_for(self, task: dict, rng: random.Random) -> dict[str, Any]:
        # The task as the annotation API shows it: conversation, answer, candidates, steps.
        q = self.book.find(_last_user_text(task.get("conversation", [])))
        right = rng.random() < self.cfg.annotator_accuracy
        kind = task["kind"]
        if q is None:
            return {"unusable": True, "reason": "cannot tell what was asked"}
        answer = _final_answer(task.get("answer", []))
        if kind == "rate":
            ok = shop.is_correct(answer, q) == right
            return {"rating": 4 if ok else 0}
        if kind == "correct":
            text = shop.reference_answer(q) if right else shop.wrong_answer(q, rng)
            return {"answer": text}
        if kind == "pairwise":
            cands = [_answer_text(c) for c in task.get("candidates", [])]
            oks = [shop.is_correct(c, q) for c in cands]
            if len(oks) != 2 or oks[0] == oks[1]:
                return {"choice": "tie"}
            pick = "a" if oks[0] == right else "b"
            return {"choice": pick}
        steps = json.dumps(task.get("steps", []))
        system = any(s in steps for s in ("TIMEOUT", "timeout", "500"))
        return {"failure_source": "system" if system == right else "model"}

    # -- all together ------------------------------------------------------------------------

    async def run(self, seconds: float) -> WorldStats:
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
            jobs = [self._customer(http, i, deadline) for i in range(self.cfg.users)]
            jobs.append(self._annotator(http, deadline))
            await asyncio.gather(*jobs)
        return self.stats


def _last_user_text(messages: list[dict]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _final_answer(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "assistant" and m.get("content"):
            return m["content"]
    return ""


def _answer_text(answer: dict) -> str:
    if answer.get("content"):
        return answer["content"]
    return _final_answer(answer.get("messages", []))


def _agent_trace(task: shop.AgentTask, tool: str, args: dict, result: shop.ToolResult,
                 final: str, outcome: shop.AgentOutcome, user: str) -> dict[str, Any]:
    call_id = "call_0"
    status = {"ok": "STEP_STATUS_OK", "timeout": "STEP_STATUS_TIMEOUT"}.get(result.status,
                                                                         "STEP_STATUS_ERROR")
    step_error = {} if result.status == "ok" else {
        "type": "TimeoutError" if result.status == "timeout" else "HTTPError",
        "message": result.content, "http_status": 500 if result.status == "http_500" else 0}
    messages = shop.question_messages(task.question) + [
        shop.tool_call_message(tool, args, call_id),
        {"role": "tool", "tool_call_id": call_id, "name": tool, "content": result.content},
        {"role": "assistant", "content": final},
    ]
    trace: dict[str, Any] = {
        "trace_id": f"agent-{uuid.uuid4().hex}",
        "user_id": user,  # the customer the agent worked for
        "model": {"name": "shop-assistant", "version": "agent"},
        "messages": messages,
        "tools": [{"name": t["function"]["name"], "description": t["function"]["description"],
                   "parameters_json": json.dumps(t["function"]["parameters"])} for t in shop.TOOLS],
        "steps": [
            {"step_id": "s1", "kind": "STEP_KIND_TOOL_CALL", "name": tool,
             "input": json.dumps(args), "status": "STEP_STATUS_OK", "latency_ms": 1.0},
            {"step_id": "s2", "kind": "STEP_KIND_TOOL_RESULT", "name": tool,
             "output": result.content, "status": status, "latency_ms": float(result.latency_ms),
             "parent_step_id": "s1", **({"error": step_error} if step_error else {})},
        ],
        "outcome": {"status": "OUTCOME_STATUS_SUCCESS" if outcome.success else "OUTCOME_STATUS_FAILURE",
                    **({} if outcome.success else {
                        "failure_source": f"FAILURE_SOURCE_{outcome.failure_source.upper()}",
                        "failure_kind": outcome.failure_kind, "detail": outcome.detail})},
        "tags": {"world": "demo", "intent": task.question.intent},
    }
    return trace
