"""Agent outcome and failure attribution: was a failed run the model's fault or the system's?

The model is to blame when its own output went wrong: it called a tool that does not exist,
called the wrong tool, passed arguments that are not valid JSON or miss required parameters,
made a plan that failed, or gave a wrong final answer. The system is to blame when the world
around the model failed: a tool timed out, returned HTTP 5xx or 429, or raised an exception.
Model failures feed SFT and model evals; system failures feed the system eval set only.

The producer's own verdict (``Outcome.failure_source``) wins when it is set. Otherwise the
first piece of evidence in the run decides: agent steps when the trace has them, else the
assistant's tool calls and the tool messages (``{"error": "timeout"}``, ``HTTP 500``). A failure
without any evidence is a wrong answer, which is the model's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from flywheel.v1 import common_pb2, trace_pb2

MODEL = "model"
SYSTEM = "system"
UNKNOWN = "unknown"

MODEL_KINDS = frozenset({
    "wrong_tool", "bad_arguments", "invented_tool", "bad_plan", "wrong_answer", "hallucination",
    "no_tool_call", "refusal", "looping", "format_error"})
SYSTEM_KINDS = frozenset({
    "tool_timeout", "tool_http_5xx", "tool_http_500", "tool_exception", "rate_limited",
    "retrieval_down", "tool_unavailable", "infrastructure", "model_server_error"})

_SOURCE_NAMES = {
    common_pb2.FAILURE_SOURCE_MODEL: MODEL,
    common_pb2.FAILURE_SOURCE_SYSTEM: SYSTEM,
    common_pb2.FAILURE_SOURCE_UNKNOWN: UNKNOWN,
}
_OUTCOMES = {
    trace_pb2.OUTCOME_STATUS_SUCCESS: "success",
    trace_pb2.OUTCOME_STATUS_FAILURE: "failure",
    trace_pb2.OUTCOME_STATUS_UNKNOWN: "unknown",
}
_TIMEOUT_TEXT = re.compile(r"(?i)\btime(?:d)?[ _-]?out\b|deadline exceeded")
_HTTP_5XX_TEXT = re.compile(r"(?i)\b(?:http[ _/]?)?5\d\d\b(?:\s|$|\")|internal server error|"
                            r"bad gateway|service unavailable")
_VALIDATION_ERRORS = ("ValidationError", "ValueError", "TypeError", "KeyError", "SchemaError",
                      "InvalidArguments", "BadRequest")


@dataclass(frozen=True)
class Evidence:
    source: str
    kind: str
    detail: str


@dataclass(frozen=True)
class Attribution:
    """``outcome``: success/failure/unknown/unreported; ``source``: model/system/unknown or ""."""

    outcome: str
    source: str = ""
    kind: str = ""
    detail: str = ""
    inferred: bool = False

    @property
    def failed(self) -> bool:
        return self.outcome == "failure"

    def proto_source(self) -> int:
        return {MODEL: common_pb2.FAILURE_SOURCE_MODEL, SYSTEM: common_pb2.FAILURE_SOURCE_SYSTEM,
                UNKNOWN: common_pb2.FAILURE_SOURCE_UNKNOWN}.get(self.source, 0)


def source_of_kind(kind: str) -> str:
    """``model``/``system`` for a known failure kind, "" otherwise."""
    if kind in MODEL_KINDS:
        return MODEL
    if kind in SYSTEM_KINDS or kind.startswith("tool_http_5"):
        return SYSTEM
    return ""


def _http_evidence(status: int, name: str) -> Evidence | None:
    if status == 429:
        return Evidence(SYSTEM, "rate_limited", f"{name}: HTTP 429")
    if status >= 500:
        return Evidence(SYSTEM, "tool_http_5xx", f"{name}: HTTP {status}")
    if status in (400, 404, 409, 422):
        return Evidence(MODEL, "bad_arguments", f"{name}: HTTP {status}")
    return None


def _step_evidence(step) -> Evidence | None:
    failed = step.status in (trace_pb2.STEP_STATUS_ERROR, trace_pb2.STEP_STATUS_TIMEOUT)
    if not failed:
        return None
    if step.status == trace_pb2.STEP_STATUS_TIMEOUT or _TIMEOUT_TEXT.search(step.error.type):
        return Evidence(SYSTEM, "tool_timeout", f"{step.name}: timeout")
    http = _http_evidence(step.error.http_status, step.name)
    if http is not None:
        return http
    if step.kind == trace_pb2.STEP_KIND_PLAN:
        return Evidence(MODEL, "bad_plan", f"plan {step.name!r} failed")
    if step.kind == trace_pb2.STEP_KIND_MODEL_CALL:
        return Evidence(SYSTEM, "model_server_error", f"{step.name}: {step.error.type}")
    if any(v in step.error.type for v in _VALIDATION_ERRORS):
        return Evidence(MODEL, "bad_arguments", f"{step.name}: {step.error.type}")
    return Evidence(SYSTEM, "tool_exception", f"{step.name}: {step.error.type or 'error'}")


@lru_cache(maxsize=1024)
def _parse_schema(parameters_json: str) -> dict:
    # Tool definitions repeat across traces of one app: parse each distinct one once.
    try:
        schema = json.loads(parameters_json) if parameters_json else {}
    except (json.JSONDecodeError, TypeError):
        return {}
    return schema if isinstance(schema, dict) else {}


def _tool_schemas(trace) -> dict[str, dict]:
    return {tool.name: _parse_schema(tool.parameters_json) for tool in trace.tools}


def _call_evidence(call, schemas: dict[str, dict]) -> Evidence | None:
    name = call.function.name
    if schemas and name not in schemas:
        return Evidence(MODEL, "invented_tool", f"called unknown tool {name!r}")
    try:
        args = json.loads(call.function.arguments) if call.function.arguments else {}
    except json.JSONDecodeError:
        return Evidence(MODEL, "bad_arguments", f"{name}: arguments are not valid JSON")
    if not isinstance(args, dict):
        return Evidence(MODEL, "bad_arguments", f"{name}: arguments are not an object")
    schema = schemas.get(name) or {}
    missing = [p for p in schema.get("required", []) if p not in args]
    if missing:
        return Evidence(MODEL, "bad_arguments", f"{name}: missing {', '.join(missing)}")
    props = schema.get("properties")
    if props and schema.get("additionalProperties") is False:
        extra = [k for k in args if k not in props]
        if extra:
            return Evidence(MODEL, "bad_arguments", f"{name}: unexpected {', '.join(extra)}")
    return None


def _tool_message_evidence(content: str, name: str) -> Evidence | None:
    try:
        payload = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    text = str(error) if error is not None else ""
    if not text:
        return None
    if _TIMEOUT_TEXT.search(text):
        return Evidence(SYSTEM, "tool_timeout", f"{name}: {text[:80]}")
    if _HTTP_5XX_TEXT.search(text):
        return Evidence(SYSTEM, "tool_http_5xx", f"{name}: {text[:80]}")
    if re.search(r"(?i)unknown tool|no such tool", text):
        return Evidence(MODEL, "invented_tool", f"{name}: {text[:80]}")
    return Evidence(MODEL, "bad_arguments", f"{name}: {text[:80]}")


def collect_evidence(trace) -> list[Evidence]:
    """Failure evidence in the order it happened."""
    if trace.steps:
        return [e for e in map(_step_evidence, trace.steps) if e is not None]
    schemas = _tool_schemas(trace)
    names: dict[str, str] = {}
    found: list[Evidence] = []
    for m in trace.messages:
        if m.role == "assistant":
            for call in m.tool_calls:
                names[call.id] = call.function.name
                ev = _call_evidence(call, schemas)
                if ev is not None:
                    found.append(ev)
        elif m.role == "tool":
            ev = _tool_message_evidence(m.content, m.name or names.get(m.tool_call_id, "tool"))
            if ev is not None:
                found.append(ev)
    return found


def attribute_failure(trace) -> Attribution:
    """The outcome of the run and, on failure, who is to blame (see the module docstring)."""
    has_outcome = trace.HasField("outcome")
    outcome = _OUTCOMES.get(trace.outcome.status, "unreported") if has_outcome else "unreported"
    declared = _SOURCE_NAMES.get(trace.outcome.failure_source, "") if has_outcome else ""
    kind = trace.outcome.failure_kind if has_outcome else ""
    detail = trace.outcome.detail if has_outcome else ""
    if outcome == "success":
        return Attribution("success")
    evidence = collect_evidence(trace)
    if declared in (MODEL, SYSTEM):
        first = next((e for e in evidence if e.source == declared), None)
        return Attribution(outcome, declared, kind or (first.kind if first else ""),
                           detail or (first.detail if first else ""))
    by_kind = source_of_kind(kind)
    if by_kind:
        return Attribution(outcome, by_kind, kind, detail, inferred=True)
    if evidence:
        first = evidence[0]
        return Attribution(outcome, first.source, first.kind, first.detail, inferred=True)
    if outcome == "failure":
        return Attribution("failure", MODEL, kind or "wrong_answer", detail, inferred=True)
    return Attribution(outcome, UNKNOWN if declared == UNKNOWN else "", kind, detail)
