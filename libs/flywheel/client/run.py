"""Record an agent run step by step and log it as one Trace when the run ends.

    with client.run(user_id="u-1", model="gpt-4o") as run:
        run.user("Where is order A-1?")
        with run.model_call("gpt-4o") as call:
            call.output(tool_calls=[{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}])
        with run.tool_call("lookup", {"order_id": "A-1"}, call_id="c1") as tool:
            tool.result({"status": "shipped"})
        run.assistant("It has shipped.")

Every step gets its latency; an exception inside a step marks it ERROR (TIMEOUT for timeouts)
with the error and propagates; an exception leaving the run marks the outcome FAILURE. The
same objects work with ``async with``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from flywheel.v1 import common_pb2, trace_pb2

from .wire import build_trace, chat_message


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


class _Step:
    """A timed step; subclasses say what to record at the end."""

    def __init__(self, run: "AgentRun", kind: int, name: str, step_input: str,
                 parent: str = "") -> None:
        self.run = run
        self.step = trace_pb2.AgentStep(step_id=uuid.uuid4().hex[:16], kind=kind, name=name,
                                        input=step_input, parent_step_id=parent,
                                        status=trace_pb2.STEP_STATUS_OK)
        self.step.started_at.FromDatetime(datetime.now(timezone.utc))
        self._t0 = time.perf_counter()

    def _finish(self, exc: BaseException | None) -> None:
        self.step.latency_ms = (time.perf_counter() - self._t0) * 1000
        if exc is not None:
            self.step.status = trace_pb2.STEP_STATUS_TIMEOUT if _is_timeout(exc) else \
                trace_pb2.STEP_STATUS_ERROR
            self.step.error.type = type(exc).__name__
            self.step.error.message = str(exc)[:4000]
            status = getattr(exc, "status_code", getattr(exc, "status", 0))
            if isinstance(status, int):
                self.step.error.http_status = status
        self.run.steps.append(self.step)

    def __enter__(self) -> "_Step":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._finish(exc)

    async def __aenter__(self) -> "_Step":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._finish(exc)


class ModelCall(_Step):
    """A model call; ``output()`` records the assistant message it produced."""

    def output(self, text: str | None = None, tool_calls: list[Mapping[str, Any]] | None = None,
               ) -> None:
        calls = []
        for call in tool_calls or ():
            call = dict(call)
            call.setdefault("id", f"call_{uuid.uuid4().hex[:12]}")
            call.setdefault("type", "function")
            calls.append(call)
        self.run.messages.append(chat_message({"role": "assistant", "content": text,
                                               "tool_calls": calls}))
        self.step.output = text or json.dumps(calls, ensure_ascii=False)


class ToolCall(_Step):
    """A tool call; ``result()`` records the tool's answer (or the error it raised)."""

    def __init__(self, run: "AgentRun", name: str, arguments: Any, call_id: str) -> None:
        super().__init__(run, trace_pb2.STEP_KIND_TOOL_CALL, name, _text(arguments))
        self.call_id = call_id
        self._result: str | None = None

    def result(self, value: Any) -> None:
        self._result = _text(value)

    def _finish(self, exc: BaseException | None) -> None:
        super()._finish(exc)
        content = self._result or ""
        if exc is not None:
            content = f"error: {type(exc).__name__}: {exc}"
        result = trace_pb2.AgentStep(step_id=f"{self.step.step_id}-result",
                                     kind=trace_pb2.STEP_KIND_TOOL_RESULT, name=self.step.name,
                                     output=content, status=self.step.status,
                                     parent_step_id=self.step.step_id)
        result.error.CopyFrom(self.step.error)
        result.started_at.CopyFrom(self.step.started_at)
        self.run.steps.append(result)
        self.run.messages.append(common_pb2.ChatMessage(role="tool", tool_call_id=self.call_id,
                                                        name=self.step.name, content=content))


class AgentRun:
    """Collects messages, steps and the outcome of one run; ``sink`` receives the Trace."""

    def __init__(self, sink: Callable[[trace_pb2.Trace], Any], *, trace_id: str | None = None,
                 session_id: str = "", user_id: str = "", model: str | None = None,
                 model_version: str = "", request_id: str = "",
                 tags: Mapping[str, str] | None = None) -> None:
        self.sink = sink
        self.trace_id = trace_id or str(uuid.uuid4())
        self.session_id, self.user_id, self.request_id = session_id, user_id, request_id
        self.model = common_pb2.ModelRef(name=model or "", version=model_version)
        self.tags = dict(tags or {})
        self.messages: list[common_pb2.ChatMessage] = []
        self.steps: list[trace_pb2.AgentStep] = []
        self.tools: list[common_pb2.ToolDefinition] = []
        self.documents: list[trace_pb2.ContextDocument] = []
        self.outcome: trace_pb2.Outcome | None = None
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.trace: trace_pb2.Trace | None = None

    # -- conversation ------------------------------------------------------------------------
    def message(self, message: Mapping[str, Any]) -> None:
        self.messages.append(chat_message(message))

    def system(self, text: str) -> None:
        self.message({"role": "system", "content": text})

    def user(self, text: str) -> None:
        self.message({"role": "user", "content": text})

    def assistant(self, text: str | None = None,
                  tool_calls: list[Mapping[str, Any]] | None = None) -> None:
        self.message({"role": "assistant", "content": text, "tool_calls": tool_calls or []})

    def tool(self, name: str, description: str = "", parameters: Any = None) -> None:
        """Declare a tool offered to the model."""
        self.tools.append(common_pb2.ToolDefinition(
            name=name, description=description,
            parameters_json=_text(parameters) if parameters is not None else ""))

    def document(self, content: str, *, id: str = "", score: float = 0.0,  # noqa: A002
                 source: str = "", title: str = "") -> None:
        """A retrieved document placed in the model's context."""
        self.documents.append(trace_pb2.ContextDocument(id=id, content=content, score=score,
                                                        source=source, title=title))

    # -- steps -------------------------------------------------------------------------------
    def model_call(self, name: str | None = None, input: Any = None) -> ModelCall:  # noqa: A002
        return ModelCall(self, trace_pb2.STEP_KIND_MODEL_CALL, name or self.model.name,
                         _text(input))

    def tool_call(self, name: str, arguments: Any = None, *, call_id: str | None = None) -> ToolCall:
        return ToolCall(self, name, arguments, call_id or self._open_call_id(name))

    def plan(self, text: str) -> None:
        self.steps.append(trace_pb2.AgentStep(step_id=uuid.uuid4().hex[:16],
                                              kind=trace_pb2.STEP_KIND_PLAN, name="plan",
                                              output=text, status=trace_pb2.STEP_STATUS_OK))

    def _open_call_id(self, name: str) -> str:
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        for message in reversed(self.messages):
            for call in message.tool_calls:
                if call.function.name == name and call.id not in answered:
                    return call.id
        return f"call_{uuid.uuid4().hex[:12]}"

    def fail(self, kind: str, detail: str = "", *, source: str = "unknown") -> None:
        """Mark the run failed without an exception (``source``: model, system or unknown)."""
        sources = {"model": common_pb2.FAILURE_SOURCE_MODEL,
                   "system": common_pb2.FAILURE_SOURCE_SYSTEM,
                   "unknown": common_pb2.FAILURE_SOURCE_UNKNOWN}
        self.outcome = trace_pb2.Outcome(status=trace_pb2.OUTCOME_STATUS_FAILURE,
                                         failure_source=sources[source], failure_kind=kind,
                                         detail=detail)

    # -- the end -----------------------------------------------------------------------------
    def finish(self, exc: BaseException | None = None) -> trace_pb2.Trace:
        """Build the Trace and hand it to the sink (called by the context manager)."""
        if exc is not None and self.outcome is None:
            kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
            self.fail(kind, str(exc)[:4000], source="system" if _is_timeout(exc) else "unknown")
        outcome = self.outcome or trace_pb2.Outcome(status=trace_pb2.OUTCOME_STATUS_SUCCESS)
        self.trace = build_trace(
            trace_id=self.trace_id, session_id=self.session_id, user_id=self.user_id,
            request_id=self.request_id, model=self.model, messages=self.messages,
            steps=self.steps, tools=self.tools, context_documents=self.documents,
            outcome=outcome, tags=self.tags, started_at=self.started_at,
            latency_ms=(time.perf_counter() - self._t0) * 1000)
        self.sink(self.trace)
        return self.trace

    def __enter__(self) -> "AgentRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.finish(exc)

    async def __aenter__(self) -> "AgentRun":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.finish(exc)
